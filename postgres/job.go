package postgres

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
)

const jobCols = `id, kind, account_id, verification_id, payload, attempt, max_attempts, state, run_at,
	locked_by, locked_until, last_error, created_at`

func scanJob(r pgx.Row, extra ...any) (*verifyd.Job, error) {
	var j verifyd.Job
	var lockedUntil *time.Time
	if err := r.Scan(append([]any{&j.ID, &j.Kind, &j.AccountID, &j.VerificationID, &j.Payload, &j.Attempt,
		&j.MaxAttempts, &j.State, &j.RunAt, &j.LockedBy, &lockedUntil, &j.LastError, &j.CreatedAt}, extra...)...); err != nil {
		return nil, err
	}
	j.RunAt, j.LockedUntil, j.CreatedAt = utc(j.RunAt), fromNull(lockedUntil), utc(j.CreatedAt)
	return &j, nil
}

// ClaimJobs leases up to Limit due jobs to Worker until Now+Lease: available
// jobs whose RunAt has come and running jobs whose lease has lapsed (those
// with InDoubt set). Oldest RunAt first. Two statements: the hand-offs
// whose lease lapsed are moved into jobs (handoff.go), then the claim, in
// which each kind of due job is read from its partial index; both lock
// with FOR UPDATE SKIP LOCKED, so workers on any number of nodes claim
// disjoint jobs without waiting for each other.
func (s *Store) ClaimJobs(ctx context.Context, p verifyd.ClaimParams) ([]*verifyd.Job, error) {
	if p.Limit <= 0 {
		return []*verifyd.Job{}, nil
	}
	// Hand-offs whose lease lapsed become running jobs first (handoff.go),
	// which the claim below takes over like any other.
	if _, err := s.exec(ctx, qMoveLapsedHandoffs, p.Now, p.Limit); err != nil {
		return nil, err
	}
	// SET expressions see the row before the update: in_doubt records
	// whether the job was running (its lease lapsed).
	jobs, err := queryAll(ctx, s, func(r pgx.Row) (*verifyd.Job, error) {
		var inDoubt bool
		j, err := scanJob(r, &inDoubt)
		if err != nil {
			return nil, err
		}
		j.InDoubt = inDoubt
		return j, nil
	}, `WITH available AS (
			SELECT id, run_at FROM jobs WHERE state = 'available' AND run_at <= $1
			ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
		), lapsed AS (
			SELECT id, run_at FROM jobs WHERE state = 'running' AND locked_until <= $1
			ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
		), picked AS (
			SELECT id FROM (SELECT * FROM available UNION ALL SELECT * FROM lapsed) d ORDER BY run_at, id LIMIT $2
		)
		UPDATE jobs SET in_doubt = (jobs.state = 'running'), state = 'running', attempt = jobs.attempt + 1,
			locked_by = $3, locked_until = $4
		FROM picked WHERE jobs.id = picked.id
		RETURNING `+prefixed("jobs.", jobCols)+`, jobs.in_doubt`, p.Now, p.Limit, p.Worker, p.Now.Add(p.Lease))
	if err != nil {
		return nil, err
	}
	// RETURNING has no order.
	slices.SortFunc(jobs, func(a, b *verifyd.Job) int {
		return cmp.Or(a.RunAt.Compare(b.RunAt), strings.Compare(a.ID, b.ID))
	})
	return jobs, nil
}

// prefixed qualifies every column of a column list with prefix.
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, c := range parts {
		parts[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(parts, ", ")
}

// FinishJobs applies the outcomes in one transaction, each only while its
// Worker still holds the job's lease (the job is running and locked by
// Worker; a lapsed lease nobody took over still counts): otherwise that
// outcome's error is ErrLeaseLost and it changes nothing.
//
// Two round trips whatever the batch size: the first locks the jobs still
// leased to their outcome's worker and the verifications the outcomes
// record on; the second applies everything with set-based statements (one
// per table and kind of change) and commits.
func (s *Store) FinishJobs(ctx context.Context, outs []verifyd.JobOutcome) []error {
	errs := make([]error, len(outs))
	if len(outs) == 0 {
		return errs
	}
	err := s.tx(ctx, func(ctx context.Context, t *txn) error {
		clear(errs)
		// Its statements take arrays of varying length, like a batch's:
		// planned as a batch's are (qBatchPlanner).
		t.queue(qBatchPlanner)
		return finishJobs(ctx, t, outs, errs)
	})
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// The reads of finishJobs: the jobs of $1 leased to the workers of $2 and
// still running, locked in the order of $1; the verifications of those of
// them in $1, locked in ID order, each with whether its profile has a
// webhook.
var (
	qFinishHandoffs = `SELECT h.job, h.verification_id, h.account_id
		FROM unnest($1::text[], $2::text[]) AS o(id, worker)
		CROSS JOIN LATERAL (SELECT job, verification_id, account_id FROM handoffs
			WHERE job = o.id AND locked_by = o.worker OFFSET 0 FOR UPDATE) h`
	qFinishJobs = `SELECT j.id, j.verification_id, j.account_id
		FROM unnest($1::text[], $2::text[]) AS o(id, worker)
		CROSS JOIN LATERAL (SELECT id, verification_id, account_id FROM jobs
			WHERE id = o.id AND locked_by = o.worker AND state = 'running' OFFSET 0 FOR UPDATE) j`
	qFinishVerifications = `SELECT ` + prefixed("v.", verificationCols) + `,
			coalesce((SELECT p.webhook_url <> '' FROM profiles p WHERE p.id = v.profile_id), false)
		FROM unnest($1::text[], $2::text[]) AS o(id, worker)
		CROSS JOIN LATERAL (SELECT verification_id, account_id FROM jobs
				WHERE id = o.id AND locked_by = o.worker AND state = 'running'
			UNION ALL SELECT verification_id, account_id FROM handoffs
				WHERE job = o.id AND locked_by = o.worker OFFSET 0) j
		JOIN verifications v ON v.id = j.verification_id AND v.account_id = j.account_id
		ORDER BY v.id FOR UPDATE OF v`
)

// heldJob is a job whose lease its outcome's worker holds (handoff: a
// hand-off, not a jobs row).
type heldJob struct {
	verificationID, accountID string
	handoff                   bool
}

func finishJobs(ctx context.Context, t *txn, outs []verifyd.JobOutcome, errs []error) error {
	// The first outcome of a job is the one that may apply; a second one
	// finds the job finished by it. Taken in job ID order (stable: a job's
	// first outcome stays first), the order in which the jobs are locked.
	order := make([]int, len(outs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(outs[a].JobID, outs[b].JobID) })
	var jobIDs, workers, vJobIDs, vWorkers []string
	first := make(map[string]bool, len(outs))
	for _, i := range order {
		o := &outs[i]
		if first[o.JobID] {
			errs[i] = verifyd.ErrLeaseLost
			continue
		}
		first[o.JobID] = true
		jobIDs, workers = append(jobIDs, o.JobID), append(workers, o.Worker)
		if o.DeliveryStatus != "" || o.FailVerification {
			vJobIDs, vWorkers = append(vJobIDs, o.JobID), append(vWorkers, o.Worker)
		}
	}

	// Each job is looked up by its primary key and locked, in job ID order
	// (the order of jobIDs), before any verification; then the
	// verifications the outcomes record on, in verification ID order (their
	// statement sorts them), as every multi-row lock of verifications is
	// (see the locking order in writer.go). The lookups are LATERAL
	// subqueries that cannot be flattened, so that the planner cannot turn
	// them into a scan of every running job joined with the input (a
	// generic plan made when few jobs were running once did, at a cost that
	// grew with the backlog).
	held := make(map[string]heldJob, len(jobIDs))
	// Hand-offs (handoff.go) are locked first, by primary key in job ID
	// order as jobs are, and before any verification.
	t.queue(qFinishHandoffs, jobIDs, workers).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			h := heldJob{handoff: true}
			if err := rows.Scan(&id, &h.verificationID, &h.accountID); err != nil {
				return err
			}
			held[id] = h
		}
		return rows.Err()
	})
	t.queue(qFinishJobs, jobIDs, workers).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var h heldJob
			if err := rows.Scan(&id, &h.verificationID, &h.accountID); err != nil {
				return err
			}
			held[id] = h
		}
		return rows.Err()
	})
	vs := map[string]*verifyd.Verification{}
	hooked := map[string]bool{}
	if len(vJobIDs) > 0 {
		t.queue(qFinishVerifications, vJobIDs, vWorkers).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var hook bool
				v, err := scanVerificationExtra(rows, &hook)
				if err != nil {
					return err
				}
				vs[v.ID], hooked[v.ID] = v, hook
			}
			return rows.Err()
		})
	}
	if err := t.flush(ctx); err != nil {
		return err
	}

	var (
		doneIDs, doneHandoffs    []string
		moveIDs                  []string // hand-offs retried or dead: moved into jobs first
		retryIDs, retryErrs      []string
		retryAt                  []time.Time
		deadIDs, deadErrs        []string
		aID, aVID, aJID, aSender []string
		aMsgID, aOutcome, aErr   []string
		aParts                   []int32
		aAt                      []time.Time
		dirty                    []*verifyd.Verification
		events                   []*verifyd.Event
	)
	isDirty := map[string]bool{}
	for i := range outs {
		o := &outs[i]
		if errs[i] != nil {
			continue
		}
		h, ok := held[o.JobID]
		if !ok {
			errs[i] = verifyd.ErrLeaseLost
			continue
		}
		switch {
		case o.Retry:
			retryIDs, retryAt, retryErrs = append(retryIDs, o.JobID), append(retryAt, o.RetryAt), append(retryErrs, o.Error)
		case o.Dead:
			deadIDs, deadErrs = append(deadIDs, o.JobID), append(deadErrs, o.Error)
		case h.handoff:
			doneHandoffs = append(doneHandoffs, o.JobID)
		default:
			doneIDs = append(doneIDs, o.JobID)
		}
		if h.handoff && (o.Retry || o.Dead) {
			moveIDs = append(moveIDs, o.JobID)
		}
		for _, a := range o.Attempts {
			id, vid, jid, at := a.ID, a.VerificationID, a.JobID, a.At
			if id == "" {
				id = verifyd.NewOrderedID()
			}
			if vid == "" {
				vid = h.verificationID
			}
			if jid == "" {
				jid = o.JobID
			}
			if at.IsZero() {
				at = o.Now
			}
			aID, aVID, aJID, aSender = append(aID, id), append(aVID, vid), append(aJID, jid), append(aSender, a.Sender)
			aMsgID, aOutcome, aErr = append(aMsgID, a.ProviderMessageID), append(aOutcome, a.Outcome), append(aErr, a.Error)
			aParts, aAt = append(aParts, int32(a.Parts)), append(aAt, at)
		}
		if (o.DeliveryStatus == "" && !o.FailVerification) || h.verificationID == "" {
			continue
		}
		v := vs[h.verificationID]
		if v == nil {
			continue // purged meanwhile (or another account's): nothing to record on
		}
		// Events only for a profile with a webhook (insertEvents would
		// write no other): no payload is built for the others.
		if o.DeliveryStatus != "" {
			v.DeliveryStatus, v.UpdatedAt = o.DeliveryStatus, o.Now
			if typ := verifyd.DeliveryEvent(o.DeliveryStatus); typ != "" && hooked[v.ID] {
				events = append(events, verifyd.NewEvent(typ, v, o.Now))
			}
		}
		if o.FailVerification && v.Status == verifyd.StatusPending {
			if ev := completeV(v, verifyd.StatusError, verifyd.ReasonSendingFailed, o.Now); hooked[v.ID] {
				events = append(events, ev)
			}
		}
		if !isDirty[v.ID] {
			isDirty[v.ID] = true
			dirty = append(dirty, v)
		}
	}

	if len(doneIDs) > 0 {
		t.queue(`DELETE FROM jobs WHERE id = ANY($1)`, doneIDs)
	}
	if len(doneHandoffs) > 0 {
		t.queue(`DELETE FROM handoffs WHERE job = ANY($1)`, doneHandoffs)
	}
	if len(moveIDs) > 0 {
		t.queue(qMoveHandoffsByJob, moveIDs)
	}
	if len(retryIDs) > 0 {
		t.queue(`UPDATE jobs SET state = 'available', run_at = u.run_at, locked_by = '', locked_until = NULL,
				last_error = u.error
			FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(id, run_at, error) WHERE jobs.id = u.id`,
			retryIDs, retryAt, retryErrs)
	}
	if len(deadIDs) > 0 {
		t.queue(`UPDATE jobs SET state = 'failed', locked_by = '', locked_until = NULL, last_error = u.error
			FROM unnest($1::text[], $2::text[]) AS u(id, error) WHERE jobs.id = u.id`, deadIDs, deadErrs)
	}
	if len(aID) > 0 {
		t.queue(`INSERT INTO delivery_attempts (id, verification_id, job_id, sender, provider_message_id, parts,
				outcome, error, at)
			SELECT id, vid, jid, sender, msg, parts, outcome, error, at
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::text[], $8::text[],
				$9::timestamptz[]) WITH ORDINALITY AS a(id, vid, jid, sender, msg, parts, outcome, error, at, n)
			ORDER BY n`, aID, aVID, aJID, aSender, aMsgID, aParts, aOutcome, aErr, aAt)
	}
	saveVerifications(t, dirty)
	insertEvents(t, events)
	return t.commit(ctx)
}

// QueueDepth returns the number of jobs available or running.
func (s *Store) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, func(r pgx.Row) error { return r.Scan(&n) },
		`SELECT (SELECT count(*) FROM jobs WHERE state IN ('available', 'running')) + (SELECT count(*) FROM handoffs)`)
	return n, err
}

// ListDeliveryAttempts returns the delivery attempts recorded for one
// verification of the account, oldest first. It is not part of
// verifyd.Store; storetest checks it when a store has it.
func (s *Store) ListDeliveryAttempts(ctx context.Context, accountID, verificationID string) ([]*verifyd.DeliveryAttempt, error) {
	return queryAll(ctx, s, func(r pgx.Row) (*verifyd.DeliveryAttempt, error) {
		var a verifyd.DeliveryAttempt
		if err := r.Scan(&a.ID, &a.VerificationID, &a.JobID, &a.Sender, &a.ProviderMessageID, &a.Parts,
			&a.Outcome, &a.Error, &a.At); err != nil {
			return nil, err
		}
		a.At = utc(a.At)
		return &a, nil
	}, `SELECT d.id, d.verification_id, d.job_id, d.sender, d.provider_message_id, d.parts, d.outcome, d.error, d.at
		FROM delivery_attempts d
		WHERE d.verification_id = $1 AND EXISTS (SELECT 1 FROM verifications v WHERE v.id = $1 AND v.account_id = $2)
		ORDER BY d.at, d.seq`, verificationID, accountID)
}
