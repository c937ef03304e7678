package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
)

// writes are the rows one trigger or check writes once it has read.
type writes struct {
	save    *verifyd.Verification // an existing verification whose mutable columns changed
	events  []*verifyd.Event
	insert  *verifyd.Verification // a new verification, inserted with job
	job     *verifyd.Job
	idem    *verifyd.IdempotencyRecord
	idemAt  time.Time
	failure *checkFailure
}

// checkFailure is a row of check_failures.
type checkFailure struct {
	profileID, phone string
	at               time.Time
}

// complete moves v to a final status and, if its profile has a webhook
// (hooked), writes its verify.completed event; for a profile without one,
// whose events insertEvents would not write, no payload is built.
func (w *writes) complete(hooked bool, v *verifyd.Verification, status verifyd.Status, reason string, now time.Time) {
	if !hooked {
		complete(v, status, reason, now)
		return
	}
	w.events = append(w.events, completeV(v, status, reason, now))
}

func (w *writes) empty() bool {
	return w.save == nil && len(w.events) == 0 && w.insert == nil && w.idem == nil && w.failure == nil
}

// queue queues w, one statement per row (an operation alone).
func (w *writes) queue(t *txn) {
	if w.save != nil {
		saveVerifications(t, []*verifyd.Verification{w.save})
	}
	insertEvents(t, w.events)
	if w.insert != nil {
		v := w.insert
		t.queue(`INSERT INTO verifications (`+verificationCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
			v.ID, v.AccountID, v.ProfileID, string(v.Type), v.PhoneNumber, v.CodeHash, v.CustomCode, v.Extension,
			v.TimeoutSecs, string(v.Status), v.Attempts, v.CompletionReason, v.DeliveryStatus,
			v.CreatedAt, v.UpdatedAt, v.ExpiresAt)
		queueJobs(t, []*verifyd.Verification{v}, []*verifyd.Job{w.job})
	}
	if w.idem != nil {
		insertIdempotency(t, w.idem, w.idemAt)
	}
	if f := w.failure; f != nil {
		t.queue(`INSERT INTO check_failures (profile_id, phone_number, at) VALUES ($1, $2, $3)`, f.profileID, f.phone, f.at)
	}
}

// commitWrites ends the transaction of an operation alone whose logic
// returned w and err: an error with nothing to keep is returned at once
// (the transaction is rolled back); otherwise w is written and committed,
// and err returned.
func commitWrites(ctx context.Context, t *txn, w *writes, err error) error {
	if err != nil && w.empty() {
		return err
	}
	w.queue(t)
	if cerr := t.commit(ctx); cerr != nil {
		return cerr
	}
	return err
}

// batchWrites are the writes of every operation of a batch, written with
// one statement per table.
type batchWrites struct {
	saves    []*verifyd.Verification
	events   []*verifyd.Event
	inserts  []*verifyd.Verification
	jobs     []*verifyd.Job
	failures []checkFailure
}

func (b *batchWrites) add(w *writes) {
	if w.save != nil {
		b.saves = append(b.saves, w.save)
	}
	b.events = append(b.events, w.events...)
	if w.insert != nil {
		b.inserts, b.jobs = append(b.inserts, w.insert), append(b.jobs, w.job)
	}
	if w.failure != nil {
		b.failures = append(b.failures, *w.failure)
	}
}

// queue queues the writes of a batch: one statement per table, each with
// a text only batches use (see qBatchPlanner), whatever the number of rows.
func (b *batchWrites) queue(t *txn) {
	if len(b.saves) > 0 {
		saveVerificationsAs(t, qBatchSave, b.saves)
	}
	if len(b.events) > 0 {
		insertEventsAs(t, qBatchEvents, b.events)
	}
	if len(b.inserts) > 0 {
		insertVerifications(t, b.inserts)
		queueJobs(t, b.inserts, b.jobs)
	}
	if len(b.failures) > 0 {
		insertCheckFailures(t, b.failures)
	}
}

// insertVerifications queues the insert of vs.
func insertVerifications(t *txn, vs []*verifyd.Verification) {
	n := len(vs)
	ids, accounts, profiles, types, phones := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	hashes, custom, exts := make([][]byte, n), make([]bool, n), make([]string, n)
	timeouts, statuses, attempts := make([]int32, n), make([]string, n), make([]int32, n)
	reasons, deliveries := make([]string, n), make([]string, n)
	createdAt, updatedAt, expiresAt := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	for i, v := range vs {
		ids[i], accounts[i], profiles[i], types[i], phones[i] = v.ID, v.AccountID, v.ProfileID, string(v.Type), v.PhoneNumber
		hashes[i], custom[i], exts[i] = v.CodeHash, v.CustomCode, v.Extension
		timeouts[i], statuses[i], attempts[i] = int32(v.TimeoutSecs), string(v.Status), int32(v.Attempts)
		reasons[i], deliveries[i] = v.CompletionReason, v.DeliveryStatus
		createdAt[i], updatedAt[i], expiresAt[i] = v.CreatedAt, v.UpdatedAt, v.ExpiresAt
	}
	t.queue(`INSERT INTO verifications (`+verificationCols+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bool[],
			$8::text[], $9::int4[], $10::text[], $11::int4[], $12::text[], $13::text[], $14::timestamptz[],
			$15::timestamptz[], $16::timestamptz[])`,
		ids, accounts, profiles, types, phones, hashes, custom, exts, timeouts, statuses, attempts, reasons, deliveries,
		createdAt, updatedAt, expiresAt)
}

// insertJobs queues the insert of js.
func insertJobs(t *txn, js []*verifyd.Job) {
	n := len(js)
	ids, kinds, accounts, vids := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	payloads, attempt, maxAttempts, states := make([][]byte, n), make([]int32, n), make([]int32, n), make([]string, n)
	runAt, lockedBy, lockedUntil := make([]time.Time, n), make([]string, n), make([]*time.Time, n)
	lastErrs, createdAt := make([]string, n), make([]time.Time, n)
	for i, j := range js {
		ids[i], kinds[i], accounts[i], vids[i] = j.ID, j.Kind, j.AccountID, j.VerificationID
		payloads[i], attempt[i], maxAttempts[i], states[i] = j.Payload, int32(j.Attempt), int32(j.MaxAttempts), j.State
		runAt[i], lockedBy[i], lockedUntil[i] = j.RunAt, j.LockedBy, nullTime(j.LockedUntil)
		lastErrs[i], createdAt[i] = j.LastError, j.CreatedAt
	}
	t.queue(`INSERT INTO jobs (`+jobCols+`)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::int4[], $7::int4[],
			$8::text[], $9::timestamptz[], $10::text[], $11::timestamptz[], $12::text[], $13::timestamptz[])`,
		ids, kinds, accounts, vids, payloads, attempt, maxAttempts, states, runAt, lockedBy, lockedUntil, lastErrs, createdAt)
}

// insertCheckFailures queues the insert of fs.
func insertCheckFailures(t *txn, fs []checkFailure) {
	profiles, phones, at := make([]string, len(fs)), make([]string, len(fs)), make([]time.Time, len(fs))
	for i, f := range fs {
		profiles[i], phones[i], at[i] = f.profileID, f.phone, f.at
	}
	t.queue(`INSERT INTO check_failures (profile_id, phone_number, at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])`, profiles, phones, at)
}

// The reads of a batch (writer.go), one statement each whatever the
// number of operations, sent with BEGIN as one round trip.
const (
	// qBatchPlanner sets how the statements of a batch are planned, for
	// the transaction. Their arrays vary in length from one batch to the
	// next, so the planner would plan most of them anew at every execution
	// (custom plans), at a cost above their execution: they use their
	// generic plans. Those must be the lookups the arrays drive, whatever
	// the size (or statistics) of the tables when a connection first
	// plans them, or a plan made on a young table (a sequential scan)
	// would stay for the life of the connection: sequential scans are
	// disabled. Every statement a batch runs has a text that only batches
	// use (qBatchSave, qBatchEvents), since a cached plan belongs to its
	// text.
	qBatchPlanner = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
		set_config('enable_seqscan', 'off', true)`

	// qBatchLock takes the (profile, phone) advisory lock (as
	// qLockProfilePhone) of every trigger and check by phone ($1, $2) and of
	// every check by ID ($3, $4: the verification's columns, which never
	// change), one after the other in the order of the lock keys: the
	// subquery sorts them (OFFSET 0 keeps it a subquery, so the outer
	// query calls the function on its rows in that order). Two batches,
	// of any nodes, thus never wait for each other's advisory locks in a
	// cycle.
	qBatchLock = `SELECT pg_advisory_xact_lock(k.h1, k.h2) FROM (
		SELECT DISTINCT hashtext(u.p) AS h1, hashtext(u.ph) AS h2 FROM (
			SELECT * FROM unnest($1::text[], $2::text[]) AS u(p, ph)
			UNION ALL
			SELECT v.profile_id, v.phone_number FROM unnest($3::text[], $4::text[]) AS b(id, acc)
				JOIN verifications v ON v.id = b.id AND v.account_id = b.acc
		) u
		ORDER BY 1, 2 OFFSET 0
	) k`
	// qBatchRows reads and locks the newest verification of each (profile,
	// phone, account) of $1-$3 (as qNewestVerification) and the
	// verifications of the checks by ID ($4, $5, as qVerificationByID),
	// each row once, locked in ID order (as every multi-row lock of
	// verifications is); with each row, the ordinals (1-based) of the keys
	// it is the newest of, and whether its profile has a webhook.
	qBatchRows = `WITH newest AS (
			SELECT k.n, v.id FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(p, ph, acc, n)
			CROSS JOIN LATERAL (SELECT id FROM verifications
				WHERE profile_id = k.p AND phone_number = k.ph AND account_id = k.acc
				ORDER BY created_at DESC, id DESC LIMIT 1) v
		)
		SELECT ` + verificationCols + `, ARRAY(SELECT n FROM newest WHERE newest.id = verifications.id),
			coalesce((SELECT p.webhook_url <> '' FROM profiles p WHERE p.id = verifications.profile_id), false)
		FROM verifications
		WHERE id = ANY(ARRAY(SELECT id FROM newest UNION ALL
			SELECT w.id FROM unnest($4::text[], $5::text[]) AS b(id, acc)
				JOIN verifications w ON w.id = b.id AND w.account_id = b.acc))
		ORDER BY id FOR UPDATE`
	// qBatchFailures counts the failures since $5 of the (profile, phone)
	// of each check: given ($3, $4) for a check by phone (ID ''), the
	// verification's for a check by ID ($1, $2; no row when there is
	// none). It returns each check's ordinal (1-based) and count.
	qBatchFailures = `SELECT o.n, (SELECT count(*) FROM check_failures c
			WHERE c.profile_id = k.p AND c.phone_number = k.ph AND c.at >= o.since)
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
			WITH ORDINALITY AS o(id, acc, p, ph, since, n)
		CROSS JOIN LATERAL (
			SELECT o.p, o.ph WHERE o.id = ''
			UNION ALL
			SELECT w.profile_id, w.phone_number FROM verifications w
			WHERE o.id <> '' AND w.id = o.id AND w.account_id = o.acc
		) k(p, ph)`
)

// The writes of batches that other transactions make too, with texts of
// their own (see qBatchPlanner).
var (
	qBatchSave   = "-- batch\n" + qSaveVerifications
	qBatchEvents = "-- batch\n" + qInsertEvents
)

// lockKey is the (profile, phone) whose advisory lock a trigger or check
// takes.
type lockKey struct{ profileID, phone string }

// batch is one run of a writer: the operations of one transaction and
// their outcomes.
type batch struct {
	ops     []*wop
	outs    []wout
	carried []bool // the operation did not run: an earlier one has its (profile, phone)
}

// run is the transaction of b (the function given to tryTx): the reads of
// every operation in one round trip, the logic of each, its writes and
// COMMIT in a second round trip. It runs once; an error means nothing was
// committed, or (after the second round trip was sent) it is not known.
func (b *batch) run(ctx context.Context, t *txn) error {
	n := len(b.ops)
	b.outs, b.carried = make([]wout, n), make([]bool, n)
	newest := make([]*verifyd.Verification, n)
	failures := make([]int, n)
	byID := map[string]*verifyd.Verification{}
	hooked := map[string]bool{} // by verification ID

	var lockP, lockPh, idIDs, idAccs, nP, nPh, nAcc []string
	var nOp []int // op of each newest key
	var fID, fAcc, fP, fPh []string
	var fSince []time.Time
	var fOp []int // op of each failure count
	for i, o := range b.ops {
		if c := o.create; c != nil {
			v := c.Verification
			lockP, lockPh = append(lockP, v.ProfileID), append(lockPh, v.PhoneNumber)
			nP, nPh, nAcc, nOp = append(nP, v.ProfileID), append(nPh, v.PhoneNumber), append(nAcc, v.AccountID), append(nOp, i)
			continue
		}
		a := o.attempt
		if a.ID != "" {
			idIDs, idAccs = append(idIDs, a.ID), append(idAccs, a.AccountID)
		} else {
			lockP, lockPh = append(lockP, a.ProfileID), append(lockPh, a.PhoneNumber)
			nP, nPh, nAcc, nOp = append(nP, a.ProfileID), append(nPh, a.PhoneNumber), append(nAcc, a.AccountID), append(nOp, i)
		}
		fID, fAcc, fP, fPh = append(fID, a.ID), append(fAcc, a.AccountID), append(fP, a.ProfileID), append(fPh, a.PhoneNumber)
		fSince, fOp = append(fSince, a.FailuresSince), append(fOp, i)
	}

	t.queue(qBatchPlanner)
	t.queue(qBatchLock, lockP, lockPh, idIDs, idAccs)
	t.queue(qBatchRows, nP, nPh, nAcc, idIDs, idAccs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var ns []int64
			var hook bool
			v, err := scanVerificationExtra(rows, &ns, &hook)
			if err != nil {
				return err
			}
			byID[v.ID], hooked[v.ID] = v, hook
			for _, k := range ns {
				if k < 1 || int(k) > len(nOp) {
					return fmt.Errorf("batch read: key ordinal %d of %d", k, len(nOp))
				}
				newest[nOp[k-1]] = v
			}
		}
		return rows.Err()
	})
	if len(fOp) > 0 {
		t.queue(qBatchFailures, fID, fAcc, fP, fPh, fSince).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var k, count int64
				if err := rows.Scan(&k, &count); err != nil {
					return err
				}
				if k < 1 || int(k) > len(fOp) {
					return fmt.Errorf("batch read: check ordinal %d of %d", k, len(fOp))
				}
				failures[fOp[k-1]] = int(count)
			}
			return rows.Err()
		})
	}
	if err := t.flush(ctx); err != nil {
		return err
	}

	// Each operation runs on what the reads found, in queue order; one
	// whose (profile, phone) an earlier one has is carried to the next
	// batch, where it sees that one's writes.
	var bw batchWrites
	used := make(map[lockKey]bool, n)
	for i, o := range b.ops {
		var v *verifyd.Verification
		var key lockKey
		switch {
		case o.create != nil:
			v, key = newest[i], lockKey{o.create.Verification.ProfileID, o.create.Verification.PhoneNumber}
		case o.attempt.ID != "":
			if v = byID[o.attempt.ID]; v != nil {
				key = lockKey{v.ProfileID, v.PhoneNumber}
			}
		default:
			v, key = newest[i], lockKey{o.attempt.ProfileID, o.attempt.PhoneNumber}
		}
		if v != nil || o.attempt == nil || o.attempt.ID == "" { // a check by an unknown ID has no key
			if used[key] {
				b.carried[i] = true
				continue
			}
			used[key] = true
		}
		// Without a row, no event can be written.
		w, out := o.step(v, failures[i], v != nil && hooked[v.ID])
		b.outs[i] = out
		bw.add(&w)
	}
	bw.queue(t)
	return t.commit(ctx)
}

// step runs the logic of o on v (and failures, for a check) and returns
// its writes and outcome. A panic of a callback (Guard, Decide, Respond)
// is o's outcome alone: it writes nothing, and its caller panics with it.
func (o *wop) step(v *verifyd.Verification, failures int, hooked bool) (w writes, out wout) {
	defer func() {
		if r := recover(); r != nil {
			w, out = writes{}, wout{panicked: true, panicVal: r}
		}
	}()
	var err error
	if o.create != nil {
		w, out.created, err = createStep(*o.create, v, hooked)
	} else {
		w, out.attempt, err = attemptStep(*o.attempt, v, failures, hooked)
	}
	out.err = err
	return w, out
}
