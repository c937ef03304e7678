package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
)

const verificationCols = `id, account_id, profile_id, type, phone_number, code_hash, custom_code, extension,
	timeout_secs, status, attempts, completion_reason, delivery_status, created_at, updated_at, expires_at`

func scanVerification(r pgx.Row) (*verifyd.Verification, error) { return scanVerificationExtra(r) }

func scanVerificationExtra(r pgx.Row, extra ...any) (*verifyd.Verification, error) {
	var v verifyd.Verification
	if err := r.Scan(append([]any{&v.ID, &v.AccountID, &v.ProfileID, &v.Type, &v.PhoneNumber, &v.CodeHash,
		&v.CustomCode, &v.Extension, &v.TimeoutSecs, &v.Status, &v.Attempts, &v.CompletionReason, &v.DeliveryStatus,
		&v.CreatedAt, &v.UpdatedAt, &v.ExpiresAt}, extra...)...); err != nil {
		return nil, err
	}
	v.CreatedAt, v.UpdatedAt, v.ExpiresAt = utc(v.CreatedAt), utc(v.UpdatedAt), utc(v.ExpiresAt)
	return &v, nil
}

// scanOne returns a Query callback that scans the first row, if any, into
// *v (left nil when there is none).
func scanOne(v **verifyd.Verification) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		*v = nil
		if !rows.Next() {
			return nil
		}
		var err error
		*v, err = scanVerification(rows)
		return err
	}
}

const (
	qVerificationByID = `SELECT ` + verificationCols + ` FROM verifications WHERE id = $1 AND account_id = $2`
	// The newest verification of (profile, phone), by created_at then id.
	qNewestVerification = `SELECT ` + verificationCols + ` FROM verifications
		WHERE profile_id = $1 AND phone_number = $2 AND account_id = $3
		ORDER BY created_at DESC, id DESC LIMIT 1`
	// The lock that serializes triggers (and checks by phone) of one
	// (profile, phone), held until the transaction ends. Its two int4 keys
	// are a space of their own: migrations lock with one int8 key.
	qLockProfilePhone = `SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))`
)

// completeV moves v out of pending to status with reason at now (a
// delivery still only sent becomes delivery_unconfirmed, D33) and returns
// its verify.completed event (the caller saves both).
func completeV(v *verifyd.Verification, status verifyd.Status, reason string, now time.Time) *verifyd.Event {
	complete(v, status, reason, now)
	return verifyd.NewEvent(verifyd.EventCompleted, v, now)
}

// complete moves v to a final status.
func complete(v *verifyd.Verification, status verifyd.Status, reason string, now time.Time) {
	v.Status, v.CompletionReason, v.UpdatedAt = status, reason, now
	v.DeliveryStatus = verifyd.CompletedDeliveryStatus(v.DeliveryStatus)
}

// saveVerifications queues the writes of the mutable columns of vs.
func saveVerifications(t *txn, vs []*verifyd.Verification) {
	switch len(vs) {
	case 0:
		return
	case 1:
		v := vs[0]
		t.queue(`UPDATE verifications SET status = $2, attempts = $3, completion_reason = $4, delivery_status = $5,
			updated_at = $6 WHERE id = $1`, v.ID, string(v.Status), v.Attempts, v.CompletionReason, v.DeliveryStatus, v.UpdatedAt)
		return
	}
	saveVerificationsAs(t, qSaveVerifications, vs)
}

// qSaveVerifications writes the mutable columns of the verifications of
// $1.
const qSaveVerifications = `UPDATE verifications AS v SET status = u.status, attempts = u.attempts,
		completion_reason = u.reason, delivery_status = u.delivery, updated_at = u.updated
	FROM unnest($1::text[], $2::text[], $3::int4[], $4::text[], $5::text[], $6::timestamptz[])
		AS u(id, status, attempts, reason, delivery, updated)
	WHERE v.id = u.id`

// saveVerificationsAs queues the writes of vs (one or more) as sql, the
// text of qSaveVerifications (or its text for batches).
func saveVerificationsAs(t *txn, sql string, vs []*verifyd.Verification) {
	ids, statuses, reasons, deliveries := make([]string, len(vs)), make([]string, len(vs)), make([]string, len(vs)), make([]string, len(vs))
	attempts, updated := make([]int32, len(vs)), make([]time.Time, len(vs))
	for i, v := range vs {
		ids[i], statuses[i], reasons[i], deliveries[i] = v.ID, string(v.Status), v.CompletionReason, v.DeliveryStatus
		attempts[i], updated[i] = int32(v.Attempts), v.UpdatedAt
	}
	t.queue(sql, ids, statuses, attempts, reasons, deliveries, updated)
}

// An event exists to be delivered to its profile's webhook (D32): it is
// written, pending, only when the profile has a webhook_url at that moment
// (a deleted profile too: its profile_deleted completions are delivered),
// and first due at once (the zero time) unless the deliverer paused the
// profile's receiver (PauseWebhooks). A profile without a webhook records
// no events. One primary-key lookup of the profile in the insert itself.

// insertEvents queues the insert of evs, in order (those of profiles
// without a webhook_url are not written).
func insertEvents(t *txn, evs []*verifyd.Event) {
	switch len(evs) {
	case 0:
		return
	case 1:
		e := evs[0]
		t.queue(`INSERT INTO events (id, account_id, profile_id, verification_id, type, occurred_at, payload, wh_state,
			wh_next_at) SELECT $1, $2, $3, $4, $5, $6, $7, 'pending', p.wh_paused_until
			FROM profiles p WHERE p.id = $3 AND p.webhook_url <> ''`,
			e.ID, e.AccountID, e.ProfileID, e.VerificationID, e.Type, e.OccurredAt, e.Payload)
		return
	}
	insertEventsAs(t, qInsertEvents, evs)
}

// qInsertEvents inserts the events of $1, in order.
var qInsertEvents = `INSERT INTO events (id, account_id, profile_id, verification_id, type, occurred_at, payload, wh_state,
		wh_next_at)
	SELECT e.id, e.acc, e.prof, e.vid, e.typ, e.at, e.payload, 'pending', p.wh_paused_until
	FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::bytea[])
		WITH ORDINALITY AS e(id, acc, prof, vid, typ, at, payload, n)
		JOIN profiles p ON p.id = e.prof AND p.webhook_url <> ''
	ORDER BY e.n`

// insertEventsAs queues the insert of evs (one or more) as sql, the text
// of qInsertEvents (or its text for batches).
func insertEventsAs(t *txn, sql string, evs []*verifyd.Event) {
	n := len(evs)
	ids, accounts, profiles, vids, types := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at, payloads := make([]time.Time, n), make([][]byte, n)
	for i, e := range evs {
		ids[i], accounts[i], profiles[i], vids[i], types[i] = e.ID, e.AccountID, e.ProfileID, e.VerificationID, e.Type
		at[i], payloads[i] = e.OccurredAt, e.Payload
	}
	t.queue(sql, ids, accounts, profiles, vids, types, at, payloads)
}

// CreateVerification expires by time the newest verification of (profile,
// phone), calls Guard, supersedes a pending newest one (its Attempts carry
// over to p.Verification), and inserts the verification and its job, all in
// one transaction. A Guard error keeps only the time expiry.
//
// With writers (WithWriters) concurrent triggers and checks share
// transactions (writer.go); a trigger carrying an Idempotency record, and
// every operation of a batch the server refused, runs alone
// (createAlone).
func (s *Store) CreateVerification(ctx context.Context, p verifyd.CreateParams) (*verifyd.Verification, error) {
	if p.Verification == nil || p.Job == nil {
		return nil, verifyd.Errorf(verifyd.EINTERNAL, "Verification and job are required.")
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	var c created
	var err error
	if s.wq != nil && p.Idempotency == nil {
		var out wout
		out, err = s.submit(&wop{ctx: ctx, octx: octx, create: &p})
		if out.fallback {
			c, err = s.createAlone(ctx, octx, p)
		} else {
			c = out.created
		}
	} else {
		c, err = s.createAlone(ctx, octx, p)
	}
	if err != nil {
		return nil, err
	}
	// The caller sees the stored state (IDs, carried Attempts) once committed.
	*p.Verification, *p.Job = *c.v, *c.j
	return c.superseded, nil
}

// created is the outcome of a trigger: the rows inserted and the
// verification superseded, if any.
type created struct {
	v          *verifyd.Verification
	j          *verifyd.Job
	superseded *verifyd.Verification
}

// createStep is the logic of a trigger, run on newest (the newest
// verification of (profile, phone), read and locked in the transaction;
// it may be changed): it returns the writes and the outcome. A refused
// trigger returns its error and only the writes it keeps (a time expiry
// before Guard; nothing when IdempotencyRow fails). Guard, Rows and
// IdempotencyRow may thus run more than once for one trigger (a
// transaction that failed runs again).
//
// hooked tells whether the profile has a webhook, as for attemptStep.
func createStep(p verifyd.CreateParams, newest *verifyd.Verification, hooked bool) (w writes, c created, err error) {
	now := p.Now
	if newest != nil && newest.PendingExpired(now) {
		w.complete(hooked, newest, verifyd.StatusExpired, verifyd.ReasonTimedOut, now)
		w.save = newest
	}
	if p.Guard != nil {
		var arg *verifyd.Verification
		if newest != nil {
			c := *newest
			arg = &c
		}
		if gerr := p.Guard(arg); gerr != nil {
			return w, created{}, gerr
		}
	}
	if newest != nil && newest.Status == verifyd.StatusPending {
		w.complete(hooked, newest, verifyd.StatusExpired, verifyd.ReasonSuperseded, now)
		w.save = newest
		c.superseded = newest
	}
	nv, nj := p.Rows(newest, c.superseded)
	c.v, c.j = &nv, &nj
	w.insert, w.job = c.v, c.j
	r, err := p.IdempotencyRow(&nv)
	if err != nil {
		return writes{}, created{}, err // nothing written: rolled back
	}
	if r != nil {
		w.idem, w.idemAt = r, now
	}
	return w, c, nil
}

// createAlone is CreateVerification as its own transaction, under octx.
//
// Two round trips: BEGIN, the (profile, phone) advisory lock and the newest
// row (FOR UPDATE) go in one; the writes and COMMIT in the other.
func (s *Store) createAlone(ctx, octx context.Context, p verifyd.CreateParams) (created, error) {
	v := p.Verification
	var c created
	err := s.txIn(ctx, octx, func(ctx context.Context, t *txn) error {
		c = created{}
		var newest *verifyd.Verification
		t.queue(qLockProfilePhone, v.ProfileID, v.PhoneNumber)
		t.queue(qNewestVerification+` FOR UPDATE`, v.ProfileID, v.PhoneNumber, v.AccountID).Query(scanOne(&newest))
		if err := t.flush(ctx); err != nil {
			return err
		}
		w, out, serr := createStep(p, newest, true)
		if err := commitWrites(ctx, t, &w, serr); err != nil {
			return err
		}
		c = out
		return nil
	})
	return c, err
}

// GetVerification returns the verification as stored, or ENOTFOUND.
func (s *Store) GetVerification(ctx context.Context, accountID, id string) (*verifyd.Verification, error) {
	var v *verifyd.Verification
	err := s.queryRow(ctx, func(r pgx.Row) (err error) { v, err = scanVerification(r); return err },
		qVerificationByID, id, accountID)
	return v, err
}

// ListVerificationsByPhone returns the account's verifications for phone
// over every profile (deleted ones too), newest first (created_at, id), and
// the total: one seek of verifications_profile_phone per profile.
func (s *Store) ListVerificationsByPhone(ctx context.Context, accountID, phone string, offset, limit int) ([]*verifyd.Verification, int, error) {
	var lim *int // NULL: no limit
	if limit > 0 {
		lim = &limit
	}
	var total int
	list, err := queryAll(ctx, s, func(r pgx.Row) (*verifyd.Verification, error) { return scanVerificationExtra(r, &total) },
		`SELECT `+verificationCols+`, count(*) OVER () FROM verifications
		WHERE profile_id IN (SELECT id FROM profiles WHERE account_id = $1) AND phone_number = $2 AND account_id = $1
		ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4`, accountID, phone, lim, max(offset, 0))
	if err != nil {
		return nil, 0, err
	}
	if len(list) == 0 && offset > 0 {
		err := s.queryRow(ctx, func(r pgx.Row) error { return r.Scan(&total) },
			`SELECT count(*) FROM verifications
			WHERE profile_id IN (SELECT id FROM profiles WHERE account_id = $1) AND phone_number = $2 AND account_id = $1`,
			accountID, phone)
		if err != nil {
			return nil, 0, err
		}
	}
	return list, total, nil
}

// ExpireVerification records a pending verification past its expiry at now
// as expired (timed_out, with its event) and returns it as stored after.
func (s *Store) ExpireVerification(ctx context.Context, accountID, id string, now time.Time) (*verifyd.Verification, error) {
	v, err := s.GetVerification(ctx, accountID, id)
	if err != nil || !v.PendingExpired(now) {
		return v, err // nothing to write: no transaction
	}
	err = s.tx(ctx, func(ctx context.Context, t *txn) error {
		t.queue(qVerificationByID+` FOR UPDATE`, id, accountID).Query(scanOne(&v))
		if err := t.flush(ctx); err != nil {
			return err
		}
		if v == nil {
			return verifyd.ErrNotFound
		}
		if !v.PendingExpired(now) {
			return nil // changed meanwhile; rolled back (nothing written)
		}
		e := completeV(v, verifyd.StatusExpired, verifyd.ReasonTimedOut, now)
		saveVerifications(t, []*verifyd.Verification{v})
		insertEvents(t, []*verifyd.Event{e})
		return t.commit(ctx)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ExpirePending records up to limit pending verifications past expiry at
// now as expired (with events); returns how many. Rows another transaction
// holds are skipped (SKIP LOCKED): whoever holds them resolves expiry
// itself, and nodes running this at once never wait for each other.
func (s *Store) ExpirePending(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int
	err := s.tx(ctx, func(ctx context.Context, t *txn) error {
		n = 0
		var due []*verifyd.Verification
		t.queue(`SELECT `+verificationCols+` FROM verifications
			WHERE status = 'pending' AND expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit).
			Query(func(rows pgx.Rows) (err error) { due, err = collect(rows, scanVerification); return err })
		if err := t.flush(ctx); err != nil {
			return err
		}
		if len(due) == 0 {
			return nil
		}
		events := make([]*verifyd.Event, len(due))
		for i, v := range due {
			events[i] = completeV(v, verifyd.StatusExpired, verifyd.ReasonTimedOut, now)
		}
		saveVerifications(t, due)
		insertEvents(t, events)
		if err := t.commit(ctx); err != nil {
			return err
		}
		n = len(due)
		return nil
	})
	return n, err
}

// ListEvents returns the events of one verification, oldest first.
func (s *Store) ListEvents(ctx context.Context, accountID, verificationID string) ([]*verifyd.Event, error) {
	return queryAll(ctx, s, func(r pgx.Row) (*verifyd.Event, error) {
		var e verifyd.Event
		if err := r.Scan(&e.ID, &e.AccountID, &e.ProfileID, &e.VerificationID, &e.Type, &e.OccurredAt, &e.Payload); err != nil {
			return nil, err
		}
		e.OccurredAt = utc(e.OccurredAt)
		return &e, nil
	}, `SELECT id, account_id, profile_id, verification_id, type, occurred_at, payload
		FROM events WHERE verification_id = $1 AND account_id = $2 ORDER BY seq`, verificationID, accountID)
}
