package service

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/verifyd/verifyd"
)

// WorkerOptions tune the delivery worker. Zero values take defaults.
type WorkerOptions struct {
	ID           string        // unique per process (default random)
	Batch        int           // jobs claimed at once (default 64)
	Lease        time.Duration // how long a claim holds (default 30 s)
	Poll         time.Duration // idle poll interval (default 200 ms)
	SendTimeout  time.Duration // per send (default 15 s)
	SweepEvery   time.Duration // expiry sweep interval (default 10 s)
	RetryBase    time.Duration // first retry delay (default 1 s)
	RetryMax     time.Duration // retry delay cap (default 60 s)
	DrainTimeout time.Duration // how long Stop lets in-flight sends finish (default 10 s)
	// Handoff is how many jobs this process's triggers may hand straight to
	// the worker (default 512, so a handed-off job never waits near its lease; negative disables it). See Worker.
	Handoff int
	// RecordWindow is how long the outcomes of handed-off jobs, sent at
	// once, may wait under load to be recorded together (default 10 ms, at
	// most a quarter of Lease; negative records each batch as soon as it
	// is sent). See Worker.
	RecordWindow time.Duration
}

// Worker delivers queued messages through a Sender: it claims due jobs,
// opens their sealed payload, sends, and records the outcome. It also sweeps
// pending verifications past expiry. Start it once; Stop is idempotent.
//
// Hand-off: a trigger in the same process inserts its job already leased to
// this worker and passes the message over a channel, so the hot path costs
// no claim and no decryption. The lease still protects it: if this process
// dies, the job is reclaimed in doubt by any worker once the lease lapses
// (at once on SQLite, whose store resets leases at open); a handed-off job
// whose lease is nearly over when its turn comes is left to that path.
//
// Handed-off jobs are sent as soon as they arrive. Under load (more than
// one handed off at a time, or outcomes already held) their outcomes are
// recorded together, by a goroutine of their own (recorder): up to
// RecordWindow after the first of them, once Batch are waiting, or at
// once when a receipt for one of them is waiting (Service.Receipt; a
// carrier may hold its next responses until the receipt is answered).
// Under load this makes one delivery record of many jobs instead of one
// per handful (much of a record's cost is per statement and per commit,
// not per job). While they wait, the sends count as in flight for
// receipts, and a crash leaves them to be reclaimed in doubt, like a send
// whose record had not landed.
type Worker struct {
	svc    *Service
	sender verifyd.Sender
	opts   WorkerOptions
	slots  chan struct{}  // hand-off capacity; a trigger takes one
	hand   chan handedOff // hand-off queue, same capacity

	// held are the outcomes of handed-off sends not recorded yet, and
	// heldFlight the flight marks of their batches (under recMu). recArm
	// tells the recorder that the first of them is held, recNow to record
	// at once (each holds one signal).
	recMu      sync.Mutex
	held       []finished
	heldFlight []uint64
	recArm     chan struct{}
	recNow     chan struct{}

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	// Idle, if set, is signalled each time a poll finds no due job (tests
	// wait on it instead of sleeping).
	Idle chan struct{}
}

// NewWorker returns a delivery worker of s sending through sender.
func (s *Service) NewWorker(sender verifyd.Sender, opts WorkerOptions) *Worker {
	if opts.ID == "" {
		opts.ID = verifyd.NewID()
	}
	if opts.Batch <= 0 {
		opts.Batch = 64
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.Poll <= 0 {
		opts.Poll = 200 * time.Millisecond
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 15 * time.Second
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = 10 * time.Second
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Minute
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	if opts.Handoff == 0 {
		opts.Handoff = 512
	}
	if opts.RecordWindow == 0 {
		opts.RecordWindow = 10 * time.Millisecond
	}
	opts.RecordWindow = min(opts.RecordWindow, opts.Lease/4)
	w := &Worker{svc: s, sender: sender, opts: opts, recArm: make(chan struct{}, 1), recNow: make(chan struct{}, 1)}
	if opts.Handoff > 0 {
		w.slots = make(chan struct{}, opts.Handoff)
		w.hand = make(chan handedOff, opts.Handoff)
	}
	return w
}

// handedOff is a job inserted already leased to this worker, with its
// message in the clear (it never left the process).
type handedOff struct {
	job *verifyd.Job
	msg *verifyd.Message
}

// reserve takes a hand-off slot if one is free.
func (w *Worker) reserve() bool {
	if w == nil || w.slots == nil {
		return false
	}
	select {
	case w.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// release gives a reserved slot back (the trigger failed).
func (w *Worker) release() { <-w.slots }

// lease marks job as claimed by this worker from now.
func (w *Worker) lease(j *verifyd.Job, now time.Time) {
	j.State, j.LockedBy, j.LockedUntil, j.Attempt = verifyd.JobRunning, w.opts.ID, now.Add(w.opts.Lease), 1
}

// handOff queues a committed, leased job; it never blocks (the slot
// reserved for it guarantees room).
func (w *Worker) handOff(j *verifyd.Job, m *verifyd.Message) { w.hand <- handedOff{j, m} }

// Start runs the worker in the background until Stop or ctx ends.
func (w *Worker) Start(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done != nil {
		return
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	if w.hand != nil {
		w.svc.worker.Store(w)
	}
	go w.run(ctx)
}

// Stop stops claiming new jobs, lets in-flight sends finish (up to
// DrainTimeout) and records their outcomes; unclaimed jobs stay queued.
func (w *Worker) Stop() {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	w.svc.worker.CompareAndSwap(w, nil) // triggers stop handing off
	cancel()
	<-done
}

func (w *Worker) run(ctx context.Context) {
	defer close(w.done)
	sweep := time.NewTicker(w.opts.SweepEvery)
	defer sweep.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	recStop, recDone := make(chan struct{}), make(chan struct{})
	go w.recorder(recStop, recDone)
	for {
		select {
		case <-ctx.Done():
			// Deliver what was handed off before the stop, within the
			// drain time, and record it; anything left is reclaimed after
			// its lease.
			for len(w.hand) > 0 {
				w.passHandedOff(ctx, <-w.hand)
			}
			close(recStop)
			<-recDone
			return
		case <-sweep.C:
			w.sweep(ctx)
			continue
		case h := <-w.hand:
			w.passHandedOff(ctx, h)
			continue
		case <-w.svc.wakeCh:
		case <-timer.C:
		}
		n := w.pass(ctx)
		if n == 0 && w.Idle != nil {
			select {
			case w.Idle <- struct{}{}:
			default:
			}
		}
		if n >= w.opts.Batch {
			timer.Reset(0) // more may be due
		} else {
			timer.Reset(w.opts.Poll)
		}
	}
}

// sweep is the periodic maintenance: expiry of pending verifications past
// their time (so verify.completed fires without a read), the retention purge
// and the pruning of old check failures. It runs on one node at a time: the
// one holding the "maintenance" lease.
func (w *Worker) sweep(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, w.opts.SweepEvery)
	defer cancel()
	st, now, log := w.svc.store, w.svc.opts.Now().UTC(), w.svc.log
	if ok, err := st.TryLease(sctx, "maintenance", w.opts.ID, now, 3*w.opts.SweepEvery); err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			log.Warn("maintenance lease failed", "err", err.Error())
		}
		return
	}
	for i := 0; i < 20; i++ { // at most 10,000 a pass; the next pass goes on
		n, err := st.ExpirePending(sctx, now, 500)
		if err != nil {
			log.Warn("expiry sweep failed", "err", err.Error())
			break
		}
		if n < 500 {
			break
		}
	}
	for i := 0; i < 20; i++ {
		n, err := st.PurgeFinished(sctx, now.Add(-w.svc.opts.Retention), 500)
		if err != nil {
			log.Warn("retention purge failed", "err", err.Error())
			break
		}
		if n > 0 {
			log.Info("retention purge", "deleted", n)
		}
		if n < 500 {
			break
		}
	}
	if _, err := st.PruneCheckFailures(sctx, now.Add(-w.svc.opts.FailureWindow)); err != nil {
		log.Warn("pruning check failures failed", "err", err.Error())
	}
}

// passHandedOff delivers first, plus whatever else is already handed off
// (up to a batch), and holds their outcomes for the recorder (with a
// negative RecordWindow, records them at once).
func (w *Worker) passHandedOff(ctx context.Context, first handedOff) {
	batch := []handedOff{first}
	for len(batch) < w.opts.Batch {
		select {
		case h := <-w.hand:
			batch = append(batch, h)
			continue
		default:
		}
		break
	}
	defer func() {
		for range batch {
			w.release()
		}
	}()
	// Too close to the lease's end: the lease path will take it, in doubt.
	cutoff := w.svc.opts.Now().Add(w.opts.SendTimeout + max(w.opts.RecordWindow, 0) + time.Second)
	jobs := make([]*verifyd.Job, 0, len(batch))
	msgs := make([]*verifyd.Message, 0, len(batch))
	for _, h := range batch {
		if h.job.LockedUntil.After(cutoff) {
			jobs, msgs = append(jobs, h.job), append(msgs, h.msg)
		}
	}
	if len(jobs) == 0 {
		return
	}
	mark := w.svc.flight.begin()
	done := w.send(ctx, jobs, msgs)
	w.recMu.Lock()
	// A lone send with none held is not load: recorded at once, as a
	// carrier's receipt may follow it within milliseconds.
	arm := len(w.held) == 0
	if w.opts.RecordWindow < 0 || arm && len(done) == 1 {
		w.recMu.Unlock()
		w.record(done, []uint64{mark})
		return
	}
	w.held, w.heldFlight = append(w.held, done...), append(w.heldFlight, mark)
	full := len(w.held) >= w.opts.Batch
	w.recMu.Unlock()
	switch {
	case full:
		w.recordSoon()
	case arm:
		signal(w.recArm)
	}
}

// signal leaves one signal in ch (of capacity one) unless one is there.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// recordSoon asks the recorder to record the held outcomes at once.
func (w *Worker) recordSoon() { signal(w.recNow) }

// recorder records the held outcomes of handed-off sends RecordWindow
// after the first of them was held, or when asked (recordSoon), until
// stop is closed; then it records what is held and closes done.
func (w *Worker) recorder(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(time.Hour)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-w.recArm:
			t.Reset(w.opts.RecordWindow)
			continue
		case <-t.C:
		case <-w.recNow:
		case <-stop:
			w.recordHeld()
			return
		}
		// A stale timer or signal, left from outcomes recorded since,
		// finds none held (or records newer ones early).
		w.recordHeld()
	}
}

// recordHeld records the held outcomes, if any.
func (w *Worker) recordHeld() {
	w.recMu.Lock()
	held, flights := w.held, w.heldFlight
	w.held, w.heldFlight = nil, nil
	w.recMu.Unlock()
	if len(held) > 0 {
		w.record(held, flights)
	}
}

// record records done, the outcomes of the delivery batches marked
// flights, and ends those marks. The store write is bounded by
// DrainTimeout (it also runs after a stop); if it fails, the jobs' leases
// lapse and they come back in doubt.
func (w *Worker) record(done []finished, flights []uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.DrainTimeout)
	defer cancel()
	w.finish(ctx, done)
	for _, m := range flights {
		w.svc.flight.end(m)
	}
}

// pass claims one batch and delivers it; it returns the number claimed.
func (w *Worker) pass(ctx context.Context) int {
	jobs, err := w.svc.store.ClaimJobs(ctx, verifyd.ClaimParams{
		Worker: w.opts.ID, Now: w.svc.opts.Now().UTC(), Lease: w.opts.Lease, Limit: w.opts.Batch,
	})
	if err != nil {
		if ctx.Err() == nil {
			w.svc.log.Warn("claiming jobs failed", "err", err.Error())
		}
		return 0
	}
	w.deliverBatch(ctx, jobs)
	return len(jobs)
}

// deliverBatch sends claimed jobs concurrently and records their outcomes
// in one store write.
func (w *Worker) deliverBatch(ctx context.Context, jobs []*verifyd.Job) {
	if len(jobs) == 0 {
		return
	}
	// Until the outcomes are recorded, receipts for these sends wait.
	mark := w.svc.flight.begin()
	w.record(w.send(ctx, jobs, nil), []uint64{mark})
}

// send sends jobs concurrently and returns their outcomes, in order. msgs,
// if not nil, holds each job's message in the clear. In-flight sends
// outlive ctx (shutdown) by at most DrainTimeout.
func (w *Worker) send(ctx context.Context, jobs []*verifyd.Job, msgs []*verifyd.Message) []finished {
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(w.opts.DrainTimeout, cancel) })
	defer stop()
	done := make([]finished, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		var m *verifyd.Message
		if msgs != nil {
			m = msgs[i]
		}
		wg.Go(func() { done[i] = w.deliver(sendCtx, j, m) })
	}
	wg.Wait()
	return done
}

// finished is the outcome of one delivery, to record, and the channel the
// message went on ("" if none to count).
type finished struct {
	out verifyd.JobOutcome
	ch  verifyd.Channel
}

// deliver sends one job and returns the outcome to record. m is the job's
// message when it was handed off in the clear; otherwise the sealed payload
// is opened.
//
// Every try is recorded: a sender that tries others in turn (the router,
// verifyd.AttemptSender) reports each of them, and they all go into the
// outcome's Attempts; any other sender's send is one attempt.
func (w *Worker) deliver(ctx context.Context, j *verifyd.Job, m *verifyd.Message) finished {
	now := w.svc.opts.Now().UTC()
	out := verifyd.JobOutcome{JobID: j.ID, VerificationID: j.VerificationID, Worker: w.opts.ID, Now: now}

	var msg verifyd.Message
	var err error
	if m != nil {
		msg = *m
	} else if plain, oerr := w.svc.keys.Open(j.Payload, []byte(j.ID)); oerr != nil {
		err = oerr
	} else {
		err = json.Unmarshal(plain, &msg)
	}
	if err != nil {
		// Sealed under a key we no longer have: it can never be sent.
		return w.fail(j, out, nil, "", "payload cannot be opened: "+err.Error())
	}
	if j.InDoubt {
		if rec, ok := w.sender.(verifyd.Reconciler); ok {
			if sent, rerr := rec.Sent(ctx, j.ID); rerr == nil && sent {
				out.Attempts = w.attempts(j, now, []*verifyd.DeliveryAttempt{{Sender: "reconciled", Outcome: verifyd.DeliverySent}})
				out.DeliveryStatus = verifyd.DeliverySent
				return finished{out, msg.Channel}
			}
		}
	}
	sctx, cancel := context.WithTimeout(ctx, w.opts.SendTimeout)
	var res *verifyd.SendResult
	var tries []*verifyd.DeliveryAttempt
	if as, ok := w.sender.(verifyd.AttemptSender); ok {
		res, tries, err = as.SendAttempts(sctx, &msg)
	} else {
		res, err = w.sender.Send(sctx, &msg)
	}
	cancel()
	if err == nil && res == nil {
		err = verifyd.Errorf(verifyd.EINTERNAL, "sender returned no result")
	}
	if err == nil {
		status := cmp.Or(res.Status, verifyd.DeliverySent)
		if len(tries) == 0 {
			tries = []*verifyd.DeliveryAttempt{{Sender: res.Sender, ProviderMessageID: res.ProviderMessageID, Parts: res.Parts, Error: res.Cause}}
		}
		// The last try is the one that took the message.
		last := tries[len(tries)-1]
		last.Sender, last.Outcome = cmp.Or(res.Sender, last.Sender), status
		out.Attempts = w.attempts(j, now, tries)
		out.DeliveryStatus = status
		return finished{out, msg.Channel}
	}
	permanent := verifyd.ErrorCode(err) == verifyd.ECHANNEL
	if permanent || j.Attempt >= j.MaxAttempts {
		return w.fail(j, out, w.attempts(j, now, tries), msg.Channel, err.Error())
	}
	if len(tries) == 0 {
		tries = []*verifyd.DeliveryAttempt{{Outcome: verifyd.AttemptError, Error: err.Error()}}
	}
	out.Attempts = w.attempts(j, now, tries)
	out.Retry, out.Error = true, err.Error()
	out.RetryAt = now.Add(w.backoff(j.Attempt))
	return finished{out, ""}
}

// attempts fills in the IDs (and a missing time: now) of tries of job j.
func (w *Worker) attempts(j *verifyd.Job, now time.Time, tries []*verifyd.DeliveryAttempt) []*verifyd.DeliveryAttempt {
	for _, a := range tries {
		a.ID, a.VerificationID, a.JobID = verifyd.NewOrderedID(), j.VerificationID, j.ID
		if a.At.IsZero() {
			a.At = now
		} else {
			a.At = a.At.UTC()
		}
	}
	return tries
}

// fail finishes a job that will never be sent. The last attempt that
// reached a sender (an error) becomes sending_failed with reason; with
// none (no route, payload unreadable, every circuit open) one attempt
// without a sender records it.
func (w *Worker) fail(j *verifyd.Job, out verifyd.JobOutcome, tries []*verifyd.DeliveryAttempt, ch verifyd.Channel, reason string) finished {
	if n := len(tries); n > 0 && tries[n-1].Outcome == verifyd.AttemptError {
		tries[n-1].Outcome, tries[n-1].Error = verifyd.DeliverySendingFailed, reason
	} else {
		tries = append(tries, &verifyd.DeliveryAttempt{ID: verifyd.NewOrderedID(), VerificationID: j.VerificationID, JobID: j.ID,
			Outcome: verifyd.DeliverySendingFailed, Error: reason, At: out.Now})
	}
	out.Attempts = tries
	out.Dead, out.Error = true, reason
	out.DeliveryStatus = verifyd.DeliverySendingFailed
	out.FailVerification = true
	w.svc.log.Warn("delivery failed for good", "job", out.JobID, "err", reason)
	return finished{out, ch}
}

// finish records the outcomes of a batch.
func (w *Worker) finish(ctx context.Context, done []finished) {
	if len(done) == 0 {
		return
	}
	outs := make([]verifyd.JobOutcome, len(done))
	for i, d := range done {
		outs[i] = d.out
	}
	errs := w.svc.store.FinishJobs(ctx, outs)
	for i, d := range done {
		var err error = verifyd.Errorf(verifyd.EINTERNAL, "store returned no outcome error")
		if i < len(errs) {
			err = errs[i]
		}
		switch out := d.out; {
		case err == nil:
			if out.DeliveryStatus != "" && d.ch != "" {
				w.svc.count(d.ch, out.DeliveryStatus)
			}
		case errors.Is(err, verifyd.ErrLeaseLost) || verifyd.ErrorCode(err) == verifyd.ECONFLICT:
			w.svc.log.Warn("job lease lost; another worker owns it", "job", out.JobID)
		default:
			// The lease lapses and the job comes back in doubt.
			w.svc.log.Error("recording a delivery outcome failed", "job", out.JobID, "err", err.Error())
		}
	}
}

// backoff is exponential from RetryBase, capped at RetryMax, with ±25 % jitter.
func (w *Worker) backoff(attempt int) time.Duration {
	d := w.opts.RetryBase << min(max(attempt-1, 0), 16)
	if d > w.opts.RetryMax || d <= 0 {
		d = w.opts.RetryMax
	}
	j := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + j
}
