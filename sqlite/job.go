package sqlite

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

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
		if err := w.moveLapsedHandoffs(p.Now); err != nil {
			return err
		}
		// One statement: SET expressions see the row before the update, so
		// in_doubt records whether the job was running (its lease lapsed).
		rows, err := w.query(`UPDATE jobs SET in_doubt = state = 'running', state = 'running', attempt = attempt + 1,
				locked_by = ?3, locked_until = ?4
			WHERE id IN (SELECT id FROM (
				SELECT id, run_at FROM (SELECT id, run_at FROM jobs
					WHERE state = 'available' AND run_at <= ?1 ORDER BY run_at, id LIMIT ?2)
				UNION ALL
				SELECT id, run_at FROM (SELECT id, run_at FROM jobs INDEXED BY jobs_running_lease
					WHERE state = 'running' AND locked_until <= ?1 ORDER BY locked_until LIMIT ?2)
			) ORDER BY run_at, id LIMIT ?2)
			RETURNING `+jobCols+`, in_doubt`, tm(p.Now), p.Limit, p.Worker, tm(p.Now.Add(p.Lease)))
		if err != nil {
			return err
		}
		jobs, err = collect(s, rows, func(r rowScanner) (*verifyd.Job, error) {
			var inDoubt bool
			j, err := scanJob(extraScanner{r, &inDoubt})
			if err != nil {
				return nil, err
			}
			j.InDoubt = inDoubt
			return j, nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	// RETURNING has no order.
	slices.SortFunc(jobs, func(a, b *verifyd.Job) int {
		return cmp.Or(a.RunAt.Compare(b.RunAt), strings.Compare(a.ID, b.ID))
	})
	if jobs == nil {
		jobs = []*verifyd.Job{}
	}
	return jobs, nil
}

// extraScanner scans one more column after those its caller scans.
type extraScanner struct {
	r     rowScanner
	extra any
}

func (e extraScanner) Scan(dest ...any) error { return e.r.Scan(append(dest, e.extra)...) }

// FinishJobs applies the outcomes in one transaction, each only while its
// Worker still holds the job's lease (the job is running and locked by
// Worker; a lapsed lease nobody took over still counts): otherwise that
// outcome's error is ErrLeaseLost and it changes nothing.
//
// Jobs done (neither retried, dead nor failing their verification: the
// common case) are finished a chunk at a time with one statement per table;
// the others one by one.
func (s *Store) FinishJobs(ctx context.Context, outs []verifyd.JobOutcome) []error {
	errs := make([]error, len(outs))
	if len(outs) == 0 {
		return errs
	}
	err := s.write(ctx, func(w *wtx) error {
		clear(errs)
		return w.finishJobs(outs, errs)
	})
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// finishChunk bounds the rows of one multi-row statement (and so the
// number of statement texts the writer prepares).
const finishChunk = 64

func (w *wtx) finishJobs(outs []verifyd.JobOutcome, errs []error) error {
	seen := make(map[string]bool, len(outs))
	var slow []int
	byWorker := map[string][]int{}
	var workers []string
	for i, o := range outs {
		if seen[o.JobID] {
			errs[i] = verifyd.ErrLeaseLost // the first outcome of the job finished it
			continue
		}
		seen[o.JobID] = true
		if o.Retry || o.Dead || o.FailVerification {
			slow = append(slow, i)
			continue
		}
		if _, ok := byWorker[o.Worker]; !ok {
			workers = append(workers, o.Worker)
		}
		byWorker[o.Worker] = append(byWorker[o.Worker], i)
	}
	for _, worker := range workers {
		idx := byWorker[worker]
		for len(idx) > 0 {
			n := min(len(idx), finishChunk)
			if err := w.finishDone(outs, errs, worker, idx[:n]); err != nil {
				return err
			}
			idx = idx[n:]
		}
	}
	for _, i := range slow {
		if err := w.finishJob(outs[i]); err != nil {
			if err != verifyd.ErrLeaseLost {
				return err
			}
			errs[i] = err
		}
	}
	return nil
}

// placeholders returns n groups of k "?" each: "(?, ?), (?, ?)".
func placeholders(n, k int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j := range k {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
	return b.String()
}

// finishDone finishes the done outcomes outs[idx] of worker: deletes the
// jobs (hand-offs first, then jobs rows) still leased to it, records their
// attempts, delivery statuses and events.
func (w *wtx) finishDone(outs []verifyd.JobOutcome, errs []error, worker string, idx []int) error {
	// recorded: a hand-off, whose delivery status is recorded already.
	type held struct {
		verificationID, accountID string
		recorded                  bool
	}
	jobs := make(map[string]held, len(idx))
	handoffs, err := w.finishHandoffs(outs, worker, idx)
	if err != nil {
		return err
	}
	rest := idx
	if len(handoffs) > 0 {
		rest = make([]int, 0, len(idx)-len(handoffs))
		for _, i := range idx {
			if vid, ok := handoffs[outs[i].JobID]; ok {
				jobs[outs[i].JobID] = held{verificationID: vid, recorded: true}
			} else {
				rest = append(rest, i)
			}
		}
	}
	if len(rest) > 0 {
		// The lease check and the delete are one statement.
		args := make([]any, 0, 1+len(rest))
		args = append(args, worker)
		for _, i := range rest {
			args = append(args, outs[i].JobID)
		}
		// "+state": look the jobs up by id, not by walking every running job
		// through a state index.
		rows, err := w.query(`DELETE FROM jobs WHERE +state = 'running' AND locked_by = ? AND id IN (`+
			strings.TrimSuffix(strings.Repeat("?, ", len(rest)), ", ")+`) RETURNING id, verification_id, account_id`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var h held
			if err := rows.Scan(&id, &h.verificationID, &h.accountID); err != nil {
				rows.Close()
				return err
			}
			jobs[id] = h
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}

	// Attempts, and the delivery statuses to record (one per verification
	// per statement; a second outcome for a verification goes alone).
	type attempt struct {
		o   *verifyd.JobOutcome
		a   *verifyd.DeliveryAttempt
		vid string
	}
	var attempts []attempt
	type delivery struct {
		o   *verifyd.JobOutcome
		job held
	}
	var deliveries []delivery
	var again []delivery
	vseen := map[string]bool{}
	for _, i := range idx {
		o := &outs[i]
		h, ok := jobs[o.JobID]
		if !ok {
			errs[i] = verifyd.ErrLeaseLost
			continue
		}
		for _, a := range o.Attempts {
			attempts = append(attempts, attempt{o, a, h.verificationID})
		}
		if o.DeliveryStatus == "" || h.verificationID == "" || h.recorded {
			continue
		}
		d := delivery{o, h}
		if vseen[h.verificationID] {
			again = append(again, d)
			continue
		}
		vseen[h.verificationID] = true
		deliveries = append(deliveries, d)
	}
	// The delivery statuses first: their RETURNING gives the attempts and
	// events their verifications' seqs (w.seqs).
	fds := make([]finishedDelivery, len(deliveries))
	for i, d := range deliveries {
		fds[i] = finishedDelivery{d.o, d.job.verificationID, d.job.accountID}
	}
	if err := w.finishDeliveries(fds); err != nil {
		return err
	}
	if len(attempts) > 0 {
		args := make([]any, 0, 10*len(attempts))
		for _, t := range attempts {
			row := attemptRow(t.o, t.a, t.vid)
			var seq any // NULL: looked up by id
			if n, ok := w.seqs[row[1].(string)]; ok {
				seq = n
			}
			args = append(append(args, row...), seq)
		}
		if _, err := w.exec(insertAttempts(len(attempts)), args...); err != nil {
			return err
		}
	}
	for _, d := range again {
		if err := w.recordDelivery(d.o, d.job.verificationID, d.job.accountID); err != nil {
			return err
		}
	}
	return nil
}

// insertAttempts is the insert of n delivery attempts: attemptRow's nine
// values and the verification's seq, or NULL to look it up by id.
func insertAttempts(n int) string {
	return `INSERT INTO delivery_attempts (id, verification_id, verification_seq, job_id, sender,
		provider_message_id, parts, outcome, error, at) SELECT column1, column2,
		coalesce(column10, (SELECT seq FROM verifications WHERE id = column2)), column3, column4, column5, column6,
		column7, column8, column9 FROM (VALUES ` + placeholders(n, 10) + `)`
}

// finishedDelivery is a delivery status to record on a verification.
type finishedDelivery struct {
	o                         *verifyd.JobOutcome
	verificationID, accountID string
}

// finishDeliveries records the delivery statuses of ds (one per
// verification) with their events, in two statements, and remembers the
// verifications' seqs in w.seqs.
func (w *wtx) finishDeliveries(ds []finishedDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	args := make([]any, 0, 4*len(ds))
	at := make(map[string]time.Time, len(ds))
	for _, d := range ds {
		args = append(args, d.verificationID, d.accountID, d.o.DeliveryStatus, tm(d.o.Now))
		at[d.verificationID] = d.o.Now
	}
	got, err := w.deliveryRows(`WITH x(vid, acc, ds, at) AS (VALUES `+placeholders(len(ds), 4)+`)
		UPDATE verifications SET delivery_status = x.ds, updated_at = x.at FROM x
		WHERE verifications.id = x.vid AND verifications.account_id = x.acc
		RETURNING seq, id, profile_id, delivery_status`, args...)
	if err != nil {
		return err
	}
	for _, r := range got {
		w.seqs[r.id] = r.seq
	}
	return w.deliveryEvents(got, func(id string) time.Time { return at[id] })
}

// deliveryRow is a verification whose delivery status an update recorded.
type deliveryRow struct {
	seq                           int64
	id, profileID, deliveryStatus string
}

// deliveryRows runs an update of delivery statuses that returns seq, id,
// profile_id and delivery_status, and returns those rows.
func (w *wtx) deliveryRows(query string, args ...any) ([]deliveryRow, error) {
	rows, err := w.query(query, args...)
	if err != nil {
		return nil, err
	}
	var got []deliveryRow
	for rows.Next() {
		var r deliveryRow
		if err := rows.Scan(&r.seq, &r.id, &r.profileID, &r.deliveryStatus); err != nil {
			rows.Close()
			return nil, err
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, err
	}
	return got, rows.Close()
}

// deliveryEvents writes the events of the delivery statuses just recorded
// on got (at gives each one's time), for profiles with a webhook, in one
// statement.
func (w *wtx) deliveryEvents(got []deliveryRow, at func(id string) time.Time) error {
	var events []any
	nEvents := 0
	for _, r := range got {
		typ := verifyd.DeliveryEvent(r.deliveryStatus)
		if typ == "" {
			continue
		}
		if hooked, err := w.hooked(r.profileID); err != nil {
			return err
		} else if !hooked {
			continue
		}
		// The event carries the whole verification: read only when there
		// is one to write (by seq, as this transaction left it).
		v, err := w.getVerification(wqVerificationBySeq, r.seq)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("sqlite: verification %s vanished while its delivery was recorded", r.id)
		}
		e := verifyd.NewEvent(typ, v, at(r.id))
		events = append(events, e.ID, e.AccountID, e.ProfileID, e.VerificationID, r.seq, e.Type, tm(e.OccurredAt), e.Payload)
		nEvents++
	}
	if nEvents > 0 {
		if _, err := w.exec(insertEventsHead+placeholders(nEvents, 8)+insertEventsTail, events...); err != nil {
			return err
		}
	}
	return nil
}

// The insert of several events (VALUES rows of the first eight columns),
// each pending delivery to its profile's webhook (no row for a profile
// without one). The VALUES are the outer loop of the CROSS JOIN, so the
// events are inserted (and get their seqs) in the order given.
const (
	insertEventsHead = `INSERT INTO events (id, account_id, profile_id, verification_id, verification_seq, type,
		occurred_at, payload, wh_state, wh_next_at)
		SELECT x.column1, x.column2, x.column3, x.column4, x.column5, x.column6, x.column7, x.column8,
			'pending', p.wh_paused_until
		FROM (VALUES `
	insertEventsTail = `) x CROSS JOIN profiles p WHERE p.id = x.column3 AND p.webhook_url != ''`
)

// seqScanner scans one column before those its caller scans.
type seqScanner struct {
	r   rowScanner
	seq any
}

func (s seqScanner) Scan(dest ...any) error { return s.r.Scan(append([]any{s.seq}, dest...)...) }

// finishJob applies one outcome, only while Worker holds the lease:
// otherwise ErrLeaseLost and nothing changes.
func (w *wtx) finishJob(o verifyd.JobOutcome) error {
	if err := w.moveHandoff(o.VerificationID, o.JobID); err != nil {
		return err
	}
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

	for _, a := range o.Attempts {
		if _, err := w.exec(`INSERT INTO delivery_attempts (id, verification_id, verification_seq, job_id, sender,
			provider_message_id, parts, outcome, error, at)
			VALUES (?1, ?2, (SELECT seq FROM verifications WHERE id = ?2), ?3, ?4, ?5, ?6, ?7, ?8, ?9)`,
			attemptRow(&o, a, verificationID)...); err != nil {
			return err
		}
	}
	return w.recordDelivery(&o, verificationID, accountID)
}

// attemptRow returns the 9 values of a's delivery_attempts row (id,
// verification_id, job_id, sender, provider_message_id, parts, outcome,
// error, at), defaulting what a leaves out from its outcome o and job's
// verification.
func attemptRow(o *verifyd.JobOutcome, a *verifyd.DeliveryAttempt, verificationID string) []any {
	id, vid, jid, at := a.ID, a.VerificationID, a.JobID, a.At
	if id == "" {
		id = verifyd.NewOrderedID()
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
	return []any{id, vid, jid, a.Sender, a.ProviderMessageID, a.Parts, a.Outcome, a.Error, tm(at)}
}

// recordDelivery records o's delivery status (with its event) on the
// verification and fails it if o says so.
func (w *wtx) recordDelivery(o *verifyd.JobOutcome, verificationID, accountID string) error {
	if (o.DeliveryStatus == "" && !o.FailVerification) || verificationID == "" {
		return nil
	}
	v, err := w.getVerification(wqVerificationByID, verificationID, accountID)
	if err != nil || v == nil {
		return err
	}
	if o.DeliveryStatus != "" {
		v.DeliveryStatus, v.UpdatedAt = o.DeliveryStatus, o.Now
		if err := w.saveDelivery(v); err != nil {
			return err
		}
		if typ := verifyd.DeliveryEvent(o.DeliveryStatus); typ != "" {
			if err := w.event(typ, v, o.Now); err != nil {
				return err
			}
		}
	}
	if o.FailVerification && v.Status == verifyd.StatusPending {
		return w.complete(v, verifyd.StatusError, verifyd.ReasonSendingFailed, o.Now)
	}
	return nil
}

// QueueDepth returns the number of jobs available or running.
func (s *Store) QueueDepth(ctx context.Context) (int, error) {
	var n int
	err := s.queryRow(ctx, func(r rowScanner) error { return r.Scan(&n) },
		`SELECT (SELECT count(*) FROM jobs WHERE state = 'available') + (SELECT count(*) FROM jobs WHERE state = 'running') +
			(SELECT count(*) FROM handoffs)`)
	return n, err
}

// ListDeliveryAttempts returns the delivery attempts recorded for one
// verification of the account, oldest first. It is not part of
// verifyd.Store; storetest checks it when a store has it.
func (s *Store) ListDeliveryAttempts(ctx context.Context, accountID, verificationID string) ([]*verifyd.DeliveryAttempt, error) {
	rows, err := s.query(ctx, `SELECT d.id, d.verification_id, d.job_id, d.sender, d.provider_message_id, d.parts,
		d.outcome, d.error, d.at FROM delivery_attempts d
		WHERE d.verification_seq = (SELECT seq FROM verifications WHERE id = ?1 AND account_id = ?2)
		AND d.verification_id = ?1 ORDER BY d.at, d.seq`, verificationID, accountID)
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
