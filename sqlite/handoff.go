package sqlite

import (
	"time"

	"github.com/verifyd/verifyd"
)

// Hand-offs. A delivery job the service hands to its local worker is
// inserted running, leased to that worker, in its trigger's transaction.
// Such a job is kept in handoffs (migration 0007), keyed by its
// verification's seq, instead of in jobs: one B-tree appended at its right
// edge instead of three, one of them keyed by a random id. Anything a job
// may go through besides being sent and recorded — a lease that lapses and
// is claimed again, a retry, a dead job, a failed verification — starts by
// moving the hand-off into jobs (moveHandoffs), as the running job it is,
// and goes on from there unchanged.

// insertHandoff keeps j as the hand-off of the verification inserted just
// before, in the same transaction.
func (w *wtx) insertHandoff(j *verifyd.Job) error {
	_, err := w.exec(`INSERT INTO handoffs (seq, job, payload, locked_by, locked_until, attempt, max_attempts, at)
		VALUES (last_insert_rowid(), ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Payload, j.LockedBy, tm(j.LockedUntil), j.Attempt, j.MaxAttempts, tm(j.RunAt))
	return err
}

// moveHandoffs moves the hand-offs cond selects (a WHERE clause on
// handoffs AS h; args its parameters) into jobs, leases as they stand.
// cond must select the same rows twice: nothing writes between the two
// statements.
func (w *wtx) moveHandoffs(cond string, args ...any) error {
	if _, err := w.exec(`INSERT INTO jobs (`+jobCols+`)
		SELECT h.job, 'deliver', v.account_id, v.id, h.payload, h.attempt, h.max_attempts, 'running', h.at,
			h.locked_by, h.locked_until, '', h.at
		FROM handoffs AS h JOIN verifications AS v ON v.seq = h.seq WHERE `+cond, args...); err != nil {
		return err
	}
	_, err := w.exec(`DELETE FROM handoffs AS h WHERE `+cond, args...)
	return err
}

// moveLapsedHandoffs moves the hand-offs whose lease has lapsed at now
// into jobs, where ClaimJobs takes them over.
func (w *wtx) moveLapsedHandoffs(now time.Time) error {
	return w.moveHandoffs(`h.locked_until <= ?`, tm(now))
}

// moveHandoff moves job jobID's hand-off (of verification vid, if known)
// into jobs, if it is one.
func (w *wtx) moveHandoff(vid, jobID string) error {
	if vid == "" {
		return w.moveHandoffs(`h.job = ?`, jobID)
	}
	return w.moveHandoffs(`h.seq = (SELECT seq FROM verifications WHERE id = ?) AND h.job = ?`, vid, jobID)
}

// finishHandoffs finishes the done outcomes outs[idx] of worker whose jobs
// are hand-offs it holds: deletes them (the lease check is the delete's),
// then records their delivery statuses and those statuses' events. It
// returns the verification of each job it finished, by job ID; the other
// outcomes' jobs are in jobs, or their leases are lost.
func (w *wtx) finishHandoffs(outs []verifyd.JobOutcome, worker string, idx []int) (map[string]string, error) {
	args := make([]any, 0, 1+2*len(idx))
	args = append(args, worker)
	vidOf := make(map[string]string, len(idx)) // verification by job ID
	outOf := make(map[string]*verifyd.JobOutcome, len(idx))
	for _, i := range idx {
		o := &outs[i]
		vid := o.VerificationID
		if vid == "" {
			// Not given: look it up (a walk of the hand-offs in flight).
			if _, err := w.queryRow(func(r rowScanner) error { return r.Scan(&vid) },
				`SELECT v.id FROM handoffs AS h JOIN verifications AS v ON v.seq = h.seq WHERE h.job = ?`,
				o.JobID); err != nil {
				return nil, err
			}
			if vid == "" {
				continue
			}
		}
		vidOf[o.JobID], outOf[o.JobID] = vid, o
		args = append(args, vid, o.JobID)
	}
	if len(vidOf) == 0 {
		return nil, nil
	}
	rows, err := w.query(finishHandoffsQuery(len(vidOf)), args...)
	if err != nil {
		return nil, err
	}
	done := make(map[string]string, len(vidOf))
	var status []any // seq, delivery status, time: the statuses to record
	at := make(map[string]time.Time, len(vidOf))
	for rows.Next() {
		var seq int64
		var job string
		if err := rows.Scan(&seq, &job); err != nil {
			rows.Close()
			return nil, err
		}
		vid, o := vidOf[job], outOf[job]
		done[job] = vid
		w.seqs[vid] = seq
		if o.DeliveryStatus != "" {
			status = append(status, seq, o.DeliveryStatus, tm(o.Now))
			at[vid] = o.Now
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(status) == 0 {
		return done, nil
	}
	got, err := w.deliveryRows(handoffStatusQuery(len(status)/3), status...)
	if err != nil {
		return nil, err
	}
	return done, w.deliveryEvents(got, func(id string) time.Time { return at[id] })
}

// finishHandoffsQuery deletes the hand-offs of n (verification ID, job ID)
// pairs that a worker holds, and returns their seqs and job IDs.
func finishHandoffsQuery(n int) string {
	return `DELETE FROM handoffs AS h WHERE h.locked_by = ? AND (h.seq, h.job) IN
		(SELECT v.seq, x.column2 FROM (VALUES ` + placeholders(n, 2) + `) AS x
			JOIN verifications AS v ON v.id = x.column1)
		RETURNING seq, job`
}

// handoffStatusQuery records n (seq, delivery status, time) rows.
func handoffStatusQuery(n int) string {
	return `WITH x(seq, ds, at) AS (VALUES ` + placeholders(n, 3) + `)
		UPDATE verifications SET delivery_status = x.ds, updated_at = x.at FROM x WHERE verifications.seq = x.seq
		RETURNING seq, id, profile_id, delivery_status`
}
