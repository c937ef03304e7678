package sqlite_test

import (
	"context"
	"fmt"
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
