package ratelimit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/ratelimit"
	"github.com/verifyd/verifyd/ratelimit/limitertest"
)

func TestLimiter(t *testing.T) {
	limitertest.Run(t, limitertest.Backend{
		Open: func(t *testing.T, now func() time.Time) verifyd.Limiter {
			return ratelimit.New(ratelimit.Options{Now: now})
		},
		// One process: a second node on the same state is the same limiter.
		Peer: func(t *testing.T, l verifyd.Limiter) verifyd.Limiter { return l },
	})
}

// TestLimiter_Sweep: keys whose TAT has passed are dropped as new keys
// arrive, so idle keys do not accumulate.
func TestLimiter_Sweep(t *testing.T) {
	clk := limitertest.NewClock()
	l := ratelimit.New(ratelimit.Options{Now: clk.Now})
	ctx := context.Background()
	allow := func(i int) {
		t.Helper()
		lim := verifyd.Limit{Name: "ip", Key: fmt.Sprint("k", i), Count: 1, Period: time.Minute}
		if d, err := l.Allow(ctx, []verifyd.Limit{lim}); err != nil || !d.Allowed {
			t.Fatalf("Allow(k%d) = %+v, %v", i, d, err)
		}
	}
	const n = 20000
	for i := range n {
		allow(i)
	}
	if got := l.Len(); got != n {
		t.Fatalf("Len = %d after %d live keys, want all kept", got, n)
	}
	clk.Advance(time.Minute) // every key refilled: all expired
	for i := range n {
		allow(n + i)
	}
	// Each shard swept once its new keys matched its live ones: at most
	// about the new keys plus a sweep budget's worth of old ones remain.
	if got := l.Len(); got > n+n/2 {
		t.Fatalf("Len = %d after %d expired and %d live keys: expired keys kept", got, n, n)
	}
	if l.Evictions() != 0 {
		t.Fatalf("Evictions = %d below the cap", l.Evictions())
	}
}

// TestLimiter_Cap: at MaxEntries a new key evicts one whose TAT is soonest
// among a sample; the limiter keeps working and stays near its cap.
func TestLimiter_Cap(t *testing.T) {
	clk := limitertest.NewClock()
	const maxEntries = 64 * 16
	l := ratelimit.New(ratelimit.Options{Now: clk.Now, MaxEntries: maxEntries})
	ctx := context.Background()
	for i := range 10 * maxEntries {
		lim := verifyd.Limit{Name: "ip", Key: fmt.Sprint("k", i), Count: 1, Period: time.Hour}
		if d, err := l.Allow(ctx, []verifyd.Limit{lim}); err != nil || !d.Allowed {
			t.Fatalf("Allow(k%d) = %+v, %v", i, d, err)
		}
		clk.Advance(time.Millisecond)
	}
	if got := l.Len(); got > maxEntries+64 {
		t.Fatalf("Len = %d over a cap of %d", got, maxEntries)
	}
	if l.Evictions() == 0 {
		t.Fatal("no eviction past the cap")
	}
	// The newest key survived and still refuses.
	last := verifyd.Limit{Name: "ip", Key: fmt.Sprint("k", 10*maxEntries-1), Count: 1, Period: time.Hour}
	if d, _ := l.Allow(ctx, []verifyd.Limit{last}); d.Allowed {
		t.Fatal("the newest key was evicted")
	}
}

func TestDecision_Err(t *testing.T) {
	d := verifyd.LimitDecision{Refused: &verifyd.Limit{Name: "phone"}, RetryAfter: 1500 * time.Millisecond}
	err := d.Err()
	var e *verifyd.Error
	if !errorsAs(err, &e) || e.Code != verifyd.ERATELIMITED || e.RetryAfter != 2 {
		t.Fatalf("Err() = %#v, want V0003 retry 2 s", err)
	}
	if (verifyd.LimitDecision{Allowed: true}).Err() != nil {
		t.Fatal("allowed decision has an error")
	}
}

func errorsAs(err error, e **verifyd.Error) bool {
	v, ok := err.(*verifyd.Error)
	*e = v
	return ok
}

// BenchmarkAllow: one decision over 4 limits (phone per 10 min and per
// hour, ip, a profile limit every decision shares), over a pool of keys,
// in parallel. ns/op is per decision, ns/limit per limit. "fraud" uses the
// FRAUD.md counts (most decisions refused once the keys are warm);
// "allowed" uses counts that never refuse (every decision writes 4 keys).
func BenchmarkAllow(b *testing.B) {
	for _, mode := range []string{"allowed", "fraud"} {
		for _, keys := range []int{1000, 100_000} {
			b.Run(fmt.Sprintf("%s/keys=%d", mode, keys), func(b *testing.B) {
				benchAllow(b, mode == "allowed", keys)
			})
		}
	}
}

func benchAllow(b *testing.B, allowed bool, keys int) {
	l := ratelimit.New(ratelimit.Options{})
	c := func(n int) int {
		if allowed {
			return 1 << 29 // at least 1 µs per event over 10 min
		}
		return n
	}
	lists := make([][]verifyd.Limit, keys)
	for i := range lists {
		phone := fmt.Sprintf("acct:+1555%07d", i)
		lists[i] = []verifyd.Limit{
			{Name: "phone", Key: phone, Count: c(3), Period: 10 * time.Minute},
			{Name: "phone", Key: phone, Count: c(5), Period: time.Hour},
			{Name: "ip", Key: fmt.Sprintf("acct:10.0.%d.%d", i/256%256, i%256), Count: c(10), Period: time.Hour},
			{Name: "profile", Key: "acct:profile", Count: 1 << 30, Period: time.Hour},
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := l.Allow(ctx, lists[i%keys]); err != nil {
				b.Error(err)
				return
			}
			i += 7919
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/4, "ns/limit")
}
