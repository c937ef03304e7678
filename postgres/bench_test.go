package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/postgres"
	"github.com/verifyd/verifyd/storetest"
)

// benchConns is the pool of a benchmark store: as many connections as the
// parallel callers, so that ns/op measures the database, not the pool.
const benchConns = 16

// BenchmarkCreateVerification measures triggers: one CreateVerification
// (advisory lock, newest lookup, insert, job: two round trips) each, from
// parallel callers.
func BenchmarkCreateVerification(b *testing.B) {
	ctx := context.Background()
	s := mustOpen(b, postgres.WithMaxConns(benchConns))
	a := storetest.MustCreateAccount(b, s)
	p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0)
	var n atomic.Int64
	b.SetParallelism(benchConns / max(1, runtimeProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
			// Phones spread like real ones; one trigger in eight is a
			// resend, which supersedes.
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
}

// BenchmarkAttempt measures checks: one Attempt by ID each (a counted
// wrong code and a recorded failure: two round trips) from parallel
// callers, over a pool of pending verifications.
func BenchmarkAttempt(b *testing.B) {
	ctx := context.Background()
	s := mustOpen(b, postgres.WithMaxConns(benchConns))
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
	b.SetParallelism(benchConns / max(1, runtimeProcs()))
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
}

// BenchmarkCheck measures checks as POST /v2/verifications/check makes
// them: one Attempt by (profile, phone) with the right code each, which
// accepts its pending verification and writes its verify.completed event.
// The verifications (one per op) are created before the timer starts.
func BenchmarkCheck(b *testing.B) {
	ctx := context.Background()
	s := mustOpen(b, postgres.WithMaxConns(benchConns))
	a := storetest.MustCreateAccount(b, s)
	p := storetest.MustCreateProfile(b, s, a.ID, "Main", storetest.T0)
	phones := make([]string, b.N)
	for i := range phones {
		phones[i] = fmt.Sprintf("+1%010d", int64(i+1)*2654435761%10000000000)
		now := storetest.T0.Add(time.Duration(i) * time.Microsecond)
		v := storetest.NewVerification(p, phones[i], now)
		v.ExpiresAt = storetest.T0.Add(24 * time.Hour)
		storetest.MustCreateVerification(b, s, v)
	}
	accept := func(v *verifyd.Verification, _ int) (verifyd.Decision, error) {
		if v == nil {
			return verifyd.DecideReject, nil
		}
		return verifyd.DecideAccept, nil
	}
	checkAt := storetest.T0.Add(time.Hour)
	var n atomic.Int64
	b.SetParallelism(benchConns / max(1, runtimeProcs()))
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
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
