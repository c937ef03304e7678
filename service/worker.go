package service

import (
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
}

// Worker delivers queued messages through a Sender: it claims due jobs,
// opens their sealed payload, sends, and records the outcome. It also sweeps
// pending verifications past expiry. Start it once; Stop is idempotent.
type Worker struct {
	svc    *Service
	sender verifyd.Sender
	opts   WorkerOptions

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
	return &Worker{svc: s, sender: sender, opts: opts}
}

// Start runs the worker in the background until Stop or ctx ends.
func (w *Worker) Start(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done != nil {
		return
	}
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
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
	cancel()
	<-done
}

func (w *Worker) run(ctx context.Context) {
	defer close(w.done)
	sweep := time.NewTicker(w.opts.SweepEvery)
	defer sweep.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sweep.C:
			w.sweep(ctx)
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

func (w *Worker) sweep(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := w.svc.store.ExpirePending(sctx, w.svc.opts.Now().UTC(), 500); err != nil && ctx.Err() == nil {
		w.svc.log.Warn("expiry sweep failed", "err", verifyd.ErrorMessage(err), "code", verifyd.ErrorCode(err))
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
	// In-flight sends outlive ctx (shutdown) by at most DrainTimeout.
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(w.opts.DrainTimeout, cancel) })
	defer stop()
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.deliver(sendCtx, j)
		}()
	}
	wg.Wait()
	return len(jobs)
}

// deliver sends one job and records the outcome.
func (w *Worker) deliver(ctx context.Context, j *verifyd.Job) {
	now := w.svc.opts.Now().UTC()
	out := verifyd.JobOutcome{JobID: j.ID, Worker: w.opts.ID, Now: now}
	attempt := &verifyd.DeliveryAttempt{ID: verifyd.NewID(), VerificationID: j.VerificationID, JobID: j.ID, At: now}
	out.Attempt = attempt

	var msg verifyd.Message
	plain, err := w.svc.keys.Open(j.Payload, []byte(j.ID))
	if err == nil {
		err = json.Unmarshal(plain, &msg)
	}
	if err != nil {
		// Sealed under a key we no longer have: it can never be sent.
		w.fail(ctx, out, attempt, "", "payload cannot be opened: "+err.Error())
		return
	}
	if j.InDoubt {
		if rec, ok := w.sender.(verifyd.Reconciler); ok {
			if sent, rerr := rec.Sent(ctx, j.ID); rerr == nil && sent {
				attempt.Outcome, attempt.Sender = verifyd.DeliverySent, "reconciled"
				out.DeliveryStatus = verifyd.DeliverySent
				w.finish(ctx, out, msg.Channel)
				return
			}
		}
	}
	sctx, cancel := context.WithTimeout(ctx, w.opts.SendTimeout)
	res, err := w.sender.Send(sctx, &msg)
	cancel()
	if err == nil {
		attempt.Sender, attempt.ProviderMessageID, attempt.Parts = res.Sender, res.ProviderMessageID, res.Parts
		attempt.Outcome = res.Status
		if attempt.Outcome == "" {
			attempt.Outcome = verifyd.DeliverySent
		}
		out.DeliveryStatus = attempt.Outcome
		w.finish(ctx, out, msg.Channel)
		return
	}
	permanent := verifyd.ErrorCode(err) == verifyd.ECHANNEL
	if permanent || j.Attempt >= j.MaxAttempts {
		w.fail(ctx, out, attempt, msg.Channel, err.Error())
		return
	}
	attempt.Outcome, attempt.Error = "error", err.Error()
	out.Retry, out.Error = true, err.Error()
	out.RetryAt = now.Add(w.backoff(j.Attempt))
	w.finish(ctx, out, "")
}

func (w *Worker) fail(ctx context.Context, out verifyd.JobOutcome, attempt *verifyd.DeliveryAttempt, ch verifyd.Channel, reason string) {
	attempt.Outcome, attempt.Error = verifyd.DeliverySendingFailed, reason
	out.Dead, out.Error = true, reason
	out.DeliveryStatus = verifyd.DeliverySendingFailed
	out.FailVerification = true
	w.svc.log.Warn("delivery failed for good", "job", out.JobID, "err", reason)
	w.finish(ctx, out, ch)
}

func (w *Worker) finish(ctx context.Context, out verifyd.JobOutcome, ch verifyd.Channel) {
	err := w.svc.store.FinishJob(ctx, out)
	switch {
	case err == nil:
		if out.DeliveryStatus != "" && ch != "" {
			w.svc.count(ch, out.DeliveryStatus)
		}
	case errors.Is(err, verifyd.ErrLeaseLost) || verifyd.ErrorCode(err) == verifyd.ECONFLICT:
		w.svc.log.Warn("job lease lost; another worker owns it", "job", out.JobID)
	default:
		// The lease lapses and the job comes back in doubt.
		w.svc.log.Error("recording a delivery outcome failed", "job", out.JobID, "err", err.Error())
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
