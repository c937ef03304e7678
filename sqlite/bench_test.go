package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/sqlite"
	"github.com/verifyd/verifyd/storetest"
)

// BenchmarkCreateVerification measures triggers: one CreateVerification
// (newest lookup, insert, job) each, from parallel callers so that group
// commit batches them.
func BenchmarkCreateVerification(b *testing.B) {
	ctx := context.Background()
	s := mustOpen(b)
	a := storetest.MustCreateAccount(b, s)
	p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0)
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
			// Phones spread like real ones (index inserts land on random
			// pages); one trigger in eight is a resend, which supersedes.
			ph := i
			if i%8 == 7 {
				ph = i - 1
			}
			v := storetest.NewVerification(p, fmt.Sprintf("+1%010d", ph*2654435761%10000000000), now)
			if _, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: storetest.NewJob(v, now), Now: now,
				Guard: func(*verifyd.Verification) error { return nil }}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportBatches(b, s)
}

func reportBatches(b *testing.B, s *sqlite.Store) {
	batches, ops := s.BatchStats()
	if batches > 0 {
		b.ReportMetric(float64(ops)/float64(batches), "ops/commit")
	}
}

// BenchmarkAttempt measures checks: one Attempt transaction each (a counted
// wrong code and a recorded failure) from parallel callers.
func BenchmarkAttempt(b *testing.B) {
	ctx := context.Background()
	s := mustOpen(b)
	a := storetest.MustCreateAccount(b, s)
	p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0)
	const pool = 1000
	vs := make([]*verifyd.Verification, pool)
	for i := range vs {
		vs[i] = storetest.NewVerification(p, fmt.Sprintf("+1555%07d", i), storetest.T0)
		vs[i].ExpiresAt = storetest.T0.Add(24 * time.Hour)
		storetest.MustCreateVerification(b, s, vs[i])
	}
	reject := func(*verifyd.Verification, int) (verifyd.Decision, error) { return verifyd.DecideReject, nil }
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			v := vs[i%pool]
			now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
			if _, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ID: v.ID, Now: now, MaxAttempts: 1 << 30,
				FailuresSince: now.Add(-10 * time.Minute), Decide: reject}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportBatches(b, s)
}

// BenchmarkTriggerAndDeliver measures the writer's cost per trigger plus its
// delivery: parallel callers create verifications (one in eight a resend)
// while a background worker claims jobs 64 at a time and finishes them as
// service.Worker does (attempt recorded, delivery status sent with its
// event). The timer stops once every job of the b.N triggers is finished,
// so ns/op is the cost of one trigger and one delivery.
func BenchmarkTriggerAndDeliver(b *testing.B) {
	ctx := context.Background()
	s := mustOpen(b)
	a := storetest.MustCreateAccount(b, s)
	p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0)
	claimAt := storetest.T0.Add(time.Hour) // every job is due

	var finished atomic.Int64
	stop := make(chan struct{})
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			jobs, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "bench", Now: claimAt, Lease: time.Minute, Limit: 64})
			if err != nil {
				b.Error(err)
				return
			}
			if len(jobs) == 0 {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			if err := finishBench(ctx, s, jobs, claimAt); err != nil {
				b.Error(err)
				return
			}
			finished.Add(int64(len(jobs)))
		}
	}()

	var n atomic.Int64
	b.SetParallelism(16)
	busy0 := s.WriterBusy()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
			ph := i
			if i%8 == 7 {
				ph = i - 1
			}
			v := storetest.NewVerification(p, fmt.Sprintf("+1%010d", ph*2654435761%10000000000), now)
			if _, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: storetest.NewJob(v, now), Now: now,
				Guard: func(*verifyd.Verification) error { return nil }}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	for finished.Load() < n.Load() && !b.Failed() {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	close(stop)
	<-workerDone
	reportBatches(b, s)
	b.ReportMetric(float64(s.WriterBusy()-busy0)/float64(b.N), "writer-ns/op")
}

// deliveredOutcome is the outcome service.Worker records for a job sent.
func deliveredOutcome(j *verifyd.Job, now time.Time) verifyd.JobOutcome {
	return verifyd.JobOutcome{JobID: j.ID, Worker: j.LockedBy, Now: now, DeliveryStatus: verifyd.DeliverySent,
		Attempts: []*verifyd.DeliveryAttempt{{ID: verifyd.NewID(), VerificationID: j.VerificationID, JobID: j.ID,
			Sender: "console", ProviderMessageID: "msg-" + j.ID[:8], Parts: 1, Outcome: verifyd.DeliverySent, At: now}}}
}

// finishBench finishes a claimed batch as service.Worker does: one
// FinishJobs call.
func finishBench(ctx context.Context, s *sqlite.Store, jobs []*verifyd.Job, now time.Time) error {
	outs := make([]verifyd.JobOutcome, len(jobs))
	for i, j := range jobs {
		outs[i] = deliveredOutcome(j, now)
	}
	return errors.Join(s.FinishJobs(ctx, outs)...)
}

// BenchmarkCheck measures checks as POST /v2/verifications/check makes
// them: one Attempt by (profile, phone) with the right code each, which
// accepts its pending verification and writes its verify.completed event,
// from parallel callers. The verifications (one per op, on random phones)
// are created before the timer starts.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	s := mustOpen(b)
	a := storetest.MustCreateAccount(b, s)
	p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0)
	phones := make([]string, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				phones[i] = fmt.Sprintf("+1%010d", int64(i+1)*2654435761%10000000000)
				now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
				v := storetest.NewVerification(p, phones[i], now)
				v.ExpiresAt = storetest.T0.Add(24 * time.Hour)
				if _, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v,
					Job: storetest.NewJob(v, now), Now: now}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	accept := func(v *verifyd.Verification, _ int) (verifyd.Decision, error) {
		if v == nil {
			return verifyd.DecideReject, nil
		}
		return verifyd.DecideAccept, nil
	}
	checkAt := storetest.T0.Add(time.Hour)
	var n atomic.Int64
	b.SetParallelism(16)
	busy0 := s.WriterBusy()
	b0, o0 := s.BatchStats()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1) - 1
			res, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: phones[i],
				Now: checkAt, MaxAttempts: 5, FailuresSince: checkAt.Add(-10 * time.Minute), Decide: accept})
			if err != nil {
				b.Error(err)
				return
			}
			if !res.Accepted {
				b.Errorf("check %d not accepted: %+v", i, res.Verification)
				return
			}
		}
	})
	b.StopTimer()
	if b1, o1 := s.BatchStats(); b1 > b0 {
		b.ReportMetric(float64(o1-o0)/float64(b1-b0), "ops/commit")
	}
	b.ReportMetric(float64(s.WriterBusy()-busy0)/float64(b.N), "writer-ns/op")
}
