package sqlite

import (
	"context"

	"github.com/verifyd/verifyd"
)

const jobCols = `id, kind, account_id, verification_id, payload, attempt, max_attempts, state, run_at,
	locked_by, locked_until, last_error, created_at`

func scanJob(r rowScanner) (*verifyd.Job, error) {
	var j verifyd.Job
	var runAt, lockedUntil, created int64
	if err := r.Scan(&j.ID, &j.Kind, &j.AccountID, &j.VerificationID, &j.Payload, &j.Attempt, &j.MaxAttempts,
		&j.State, &runAt, &j.LockedBy, &lockedUntil, &j.LastError, &created); err != nil {
		return nil, err
	}
	j.RunAt, j.LockedUntil, j.CreatedAt = fromTM(runAt), fromTM(lockedUntil), fromTM(created)
	return &j, nil
}

func (w *wtx) insertJob(j *verifyd.Job) error {
	_, err := w.exec(`INSERT INTO jobs (`+jobCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Kind, j.AccountID, j.VerificationID, j.Payload, j.Attempt, j.MaxAttempts, j.State, tm(j.RunAt),
		j.LockedBy, tm(j.LockedUntil), j.LastError, tm(j.CreatedAt))
	return err
}

// ClaimJobs leases up to Limit due jobs to Worker until Now+Lease: available
// jobs whose RunAt has come and running jobs whose lease has lapsed (those
// with InDoubt set). Oldest RunAt first.
func (s *Store) ClaimJobs(ctx context.Context, p verifyd.ClaimParams) ([]*verifyd.Job, error) {
	if p.Limit <= 0 {
		return []*verifyd.Job{}, nil
	}
	var jobs []*verifyd.Job
	err := s.write(ctx, func(w *wtx) error {
		jobs = jobs[:0]
		now := tm(p.Now)
		rows, err := w.query(`SELECT id, state FROM (
				SELECT id, state, run_at FROM (SELECT id, state, run_at FROM jobs
					WHERE state = 'available' AND run_at <= ?1 ORDER BY run_at, id LIMIT ?2)
				UNION ALL
				SELECT id, state, run_at FROM (SELECT id, state, run_at FROM jobs
					WHERE state = 'running' AND locked_until <= ?1 ORDER BY run_at, id LIMIT ?2)
			) ORDER BY run_at, id LIMIT ?2`, now, p.Limit)
		if err != nil {
			return err
		}
		type due struct {
			id      string
			inDoubt bool
		}
		var ids []due
		for rows.Next() {
			var d due
			var state string
			if err := rows.Scan(&d.id, &state); err != nil {
				rows.Close()
				return err
			}
			d.inDoubt = state == verifyd.JobRunning
			ids = append(ids, d)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		until := tm(p.Now.Add(p.Lease))
		for _, d := range ids {
			var j *verifyd.Job
			if _, err := w.queryRow(func(r rowScanner) (err error) { j, err = scanJob(r); return err },
				`UPDATE jobs SET state = 'running', attempt = attempt + 1, locked_by = ?, locked_until = ?
				WHERE id = ? RETURNING `+jobCols, p.Worker, until, d.id); err != nil {
				return err
			}
			j.InDoubt = d.inDoubt
			jobs = append(jobs, j)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if jobs == nil {
		jobs = []*verifyd.Job{}
	}
	return jobs, nil
}

// FinishJob applies the outcome in one transaction, only while Worker still
// holds the lease (the job is running and locked by Worker; a lapsed lease
// nobody took over still counts): otherwise ErrLeaseLost and nothing changes.
func (s *Store) FinishJob(ctx context.Context, o verifyd.JobOutcome) error {
	return s.write(ctx, func(w *wtx) error {
		var verificationID, accountID string
		found, err := w.queryRow(func(r rowScanner) error { return r.Scan(&verificationID, &accountID) },
			`SELECT verification_id, account_id FROM jobs WHERE id = ? AND state = 'running' AND locked_by = ?`,
			o.JobID, o.Worker)
		if err != nil {
			return err
		}
		if !found {
			return verifyd.ErrLeaseLost
		}

		switch {
		case o.Retry:
			_, err = w.exec(`UPDATE jobs SET state = 'available', run_at = ?, locked_by = '', locked_until = 0,
				last_error = ? WHERE id = ?`, tm(o.RetryAt), o.Error, o.JobID)
		case o.Dead:
			_, err = w.exec(`UPDATE jobs SET state = 'failed', locked_by = '', locked_until = 0, last_error = ?
				WHERE id = ?`, o.Error, o.JobID)
		default:
			_, err = w.exec(`DELETE FROM jobs WHERE id = ?`, o.JobID)
		}
		if err != nil {
			return err
		}

		if a := o.Attempt; a != nil {
			id, vid, jid, at := a.ID, a.VerificationID, a.JobID, a.At
			if id == "" {
				id = verifyd.NewID()
			}
			if vid == "" {
				vid = verificationID
			}
			if jid == "" {
				jid = o.JobID
			}
			if at.IsZero() {
				at = o.Now
			}
			if _, err := w.exec(`INSERT INTO delivery_attempts (id, verification_id, job_id, sender,
				provider_message_id, parts, outcome, error, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, vid, jid, a.Sender, a.ProviderMessageID, a.Parts, a.Outcome, a.Error, tm(at)); err != nil {
				return err
			}
		}

		if (o.DeliveryStatus == "" && !o.FailVerification) || verificationID == "" {
			return nil
		}
		v, err := w.getVerification(qVerificationByID, verificationID, accountID)
		if err != nil || v == nil {
			return err
		}
		if o.DeliveryStatus != "" {
			v.DeliveryStatus, v.UpdatedAt = o.DeliveryStatus, o.Now
			if err := w.saveVerification(v); err != nil {
				return err
			}
			if typ := deliveryEvent(o.DeliveryStatus); typ != "" {
				if err := w.insertEvent(verifyd.NewEvent(typ, v, o.Now)); err != nil {
					return err
				}
			}
		}
		if o.FailVerification && v.Status == verifyd.StatusPending {
			return w.complete(v, verifyd.StatusError, verifyd.ReasonSendingFailed, o.Now)
		}
		return nil
	})
}

// deliveryEvent returns the event type a delivery status emits ("" none).
func deliveryEvent(status string) string {
	switch status {
	case verifyd.DeliverySent:
		return verifyd.EventSent
	case verifyd.DeliveryDelivered:
		return verifyd.EventDelivered
	case verifyd.DeliverySendingFailed, verifyd.DeliveryFailed:
		return verifyd.EventFailed
	}
	return ""
}

// QueueDepth returns the number of jobs available or running.
func (s *Store) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, func(r rowScanner) error { return r.Scan(&n) },
		`SELECT count(*) FROM jobs WHERE state IN ('available', 'running')`)
	return n, err
}

// ListDeliveryAttempts returns the delivery attempts recorded for one
// verification of the account, oldest first. It is not part of
// verifyd.Store; storetest checks it when a store has it.
func (s *Store) ListDeliveryAttempts(ctx context.Context, accountID, verificationID string) ([]*verifyd.DeliveryAttempt, error) {
	rows, err := s.query(ctx, `SELECT d.id, d.verification_id, d.job_id, d.sender, d.provider_message_id, d.parts,
		d.outcome, d.error, d.at FROM delivery_attempts d JOIN verifications v ON v.id = d.verification_id
		WHERE d.verification_id = ? AND v.account_id = ? ORDER BY d.at, d.rowid`, verificationID, accountID)
	if err != nil {
		return nil, err
	}
	return collect(s, rows, func(r rowScanner) (*verifyd.DeliveryAttempt, error) {
		var a verifyd.DeliveryAttempt
		var at int64
		if err := r.Scan(&a.ID, &a.VerificationID, &a.JobID, &a.Sender, &a.ProviderMessageID, &a.Parts,
			&a.Outcome, &a.Error, &at); err != nil {
			return nil, err
		}
		a.At = fromTM(at)
		return &a, nil
	})
}
