// Package limitertest is the conformance suite every verifyd.Limiter must
// pass: ratelimit (in-process) and redis run it from their tests.
//
//	limitertest.Run(t, limitertest.Backend{Open: func(t *testing.T, now func() time.Time) verifyd.Limiter {...}})
package limitertest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// T0 is the fake clock's start.
var T0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Backend opens limiters of one implementation.
type Backend struct {
	// Open returns a fresh limiter with no state, reading time from now;
	// a nil now means the backend's own clock (the one production uses).
	// Everything it creates is cleaned up with t.Cleanup.
	Open func(t *testing.T, now func() time.Time) verifyd.Limiter
	// Peer, when set, returns another limiter sharing l's state the way a
	// second verifyd node does (for redis, a second client). The
	// concurrency tests then spread their calls over both.
	Peer func(t *testing.T, l verifyd.Limiter) verifyd.Limiter
}

// Clock is a fake clock safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at T0.
func NewClock() *Clock { return &Clock{t: T0} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Run runs the whole suite against b.
func Run(t *testing.T, b Backend) {
	t.Run("BurstThenRefuse", func(t *testing.T) { testBurstThenRefuse(t, b) })
	t.Run("RetryAfterShrinks", func(t *testing.T) { testRetryAfterShrinks(t, b) })
	t.Run("AllOrNothing", func(t *testing.T) { testAllOrNothing(t, b) })
	t.Run("RefusedFirstWaitLongest", func(t *testing.T) { testRefusedFirstWaitLongest(t, b) })
	t.Run("KeysIndependent", func(t *testing.T) { testKeysIndependent(t, b) })
	t.Run("Refill", func(t *testing.T) { testRefill(t, b) })
	t.Run("EmptyAndInvalid", func(t *testing.T) { testEmptyAndInvalid(t, b) })
	t.Run("RealClock", func(t *testing.T) { testRealClock(t, b) })
	t.Run("ConcurrentExact", func(t *testing.T) { testConcurrentExact(t, b) })
	t.Run("ConcurrentAllOrNothing", func(t *testing.T) { testConcurrentAllOrNothing(t, b) })
}

// fixture is one test's limiter and fake clock.
type fixture struct {
	t   *testing.T
	l   verifyd.Limiter
	clk *Clock
}

func open(t *testing.T, b Backend) *fixture {
	clk := NewClock()
	return &fixture{t: t, l: b.Open(t, clk.Now), clk: clk}
}

func (f *fixture) allow(limits ...verifyd.Limit) verifyd.LimitDecision {
	f.t.Helper()
	d, err := f.l.Allow(context.Background(), limits)
	if err != nil {
		f.t.Fatalf("Allow: %v", err)
	}
	if d.Allowed != (d.Refused == nil) || (d.Allowed && d.RetryAfter != 0) || (!d.Allowed && d.RetryAfter <= 0) {
		f.t.Fatalf("Allow: inconsistent decision %s", show(d))
	}
	return d
}

// wantAllowed asserts n allowed decisions in a row.
func (f *fixture) wantAllowed(n int, limits ...verifyd.Limit) {
	f.t.Helper()
	for i := range n {
		if d := f.allow(limits...); !d.Allowed {
			f.t.Fatalf("decision %d of %d: %s, want allowed", i+1, n, show(d))
		}
	}
}

// wantRefused asserts a refusal by the limit named name after wait.
func (f *fixture) wantRefused(name string, wait time.Duration, limits ...verifyd.Limit) {
	f.t.Helper()
	d := f.allow(limits...)
	if d.Allowed || d.Refused.Name != name || d.RetryAfter != wait {
		f.t.Fatalf("got %s, want refused by %s, retry after %s", show(d), name, wait)
	}
}

func show(d verifyd.LimitDecision) string {
	if d.Refused == nil {
		return fmt.Sprintf("{allowed=%v retry=%s}", d.Allowed, d.RetryAfter)
	}
	return fmt.Sprintf("{allowed=%v refused=%s/%s %d per %s retry=%s}",
		d.Allowed, d.Refused.Name, d.Refused.Key, d.Refused.Count, d.Refused.Period, d.RetryAfter)
}

var runID atomic.Int64

// key returns a key unique to this test run, so backends that keep state
// outside the process never see another test's keys.
func key(t *testing.T, s string) string {
	return fmt.Sprintf("%s/%d/%d/%s", t.Name(), time.Now().UnixNano(), runID.Add(1), s)
}

func testBurstThenRefuse(t *testing.T, b Backend) {
	f := open(t, b)
	phone := verifyd.Limit{Name: "phone", Key: key(t, "+15551234567"), Count: 3, Period: 10 * time.Minute}
	f.wantAllowed(3, phone)
	f.wantRefused("phone", 200*time.Second, phone)
	f.wantRefused("phone", 200*time.Second, phone) // a refusal consumes nothing
	f.clk.Advance(200 * time.Second)
	f.wantAllowed(1, phone)
	f.wantRefused("phone", 200*time.Second, phone)
	if d := f.allow(phone); d.Refused.Key != phone.Key || d.Refused.Count != 3 || d.Refused.Period != phone.Period {
		t.Fatalf("Refused = %+v, want a copy of %+v", *d.Refused, phone)
	}
}

func testRetryAfterShrinks(t *testing.T, b Backend) {
	f := open(t, b)
	ip := verifyd.Limit{Name: "ip", Key: key(t, "192.0.2.1"), Count: 10, Period: time.Hour}
	f.wantAllowed(10, ip)
	f.clk.Advance(100 * time.Second)
	f.wantRefused("ip", 260*time.Second, ip)
	f.clk.Advance(259*time.Second + 999*time.Millisecond)
	f.wantRefused("ip", time.Millisecond, ip)
	f.clk.Advance(time.Millisecond)
	f.wantAllowed(1, ip)
	f.wantRefused("ip", 360*time.Second, ip)
}

func testAllOrNothing(t *testing.T, b Backend) {
	f := open(t, b)
	a := verifyd.Limit{Name: "profile", Key: key(t, "a"), Count: 5, Period: time.Minute}
	s := verifyd.Limit{Name: "session", Key: key(t, "s"), Count: 1, Period: time.Minute}
	f.wantAllowed(1, a, s)
	for range 3 {
		f.wantRefused("session", time.Minute, a, s)
	}
	// The refusals took nothing from profile: 4 of its 5 are left.
	f.wantAllowed(4, a)
	f.wantRefused("profile", 12*time.Second, a)
	// Refused by profile, the session limit (refilled by now) keeps its token.
	f.clk.Advance(time.Minute)
	f.wantAllowed(5, a)
	f.wantRefused("profile", 12*time.Second, s, a)
	f.wantAllowed(1, s)
}

func testRefusedFirstWaitLongest(t *testing.T, b Backend) {
	f := open(t, b)
	short := verifyd.Limit{Name: "ip", Key: key(t, "ip"), Count: 1, Period: 10 * time.Second}
	long := verifyd.Limit{Name: "phone", Key: key(t, "phone"), Count: 1, Period: time.Minute}
	open := verifyd.Limit{Name: "profile", Key: key(t, "p"), Count: 100, Period: time.Minute}
	f.wantAllowed(1, short, long)
	// Both refuse: the first in order is named, the wait is the longest.
	f.wantRefused("ip", time.Minute, open, short, long)
	f.wantRefused("phone", time.Minute, open, long, short)
	f.clk.Advance(10 * time.Second)
	f.wantRefused("phone", 50*time.Second, open, short, long)
	f.clk.Advance(50 * time.Second)
	f.wantAllowed(1, open, short, long)
	// open took one token per allowed decision only: 99 left.
	f.wantAllowed(99, open)
	f.wantRefused("profile", 600*time.Millisecond, open)
}

func testKeysIndependent(t *testing.T, b Backend) {
	f := open(t, b)
	base := verifyd.Limit{Name: "phone", Key: key(t, "k"), Count: 2, Period: time.Hour}
	f.wantAllowed(2, base)
	f.wantRefused("phone", 30*time.Minute, base)

	otherKey := base
	otherKey.Key = key(t, "k2")
	otherName := base
	otherName.Name = "prefix"
	otherPeriod := base
	otherPeriod.Period = 10 * time.Minute
	for _, l := range []verifyd.Limit{otherKey, otherName, otherPeriod} {
		f.wantAllowed(2, l)
		f.wantRefused(l.Name, l.Interval(), l)
	}
	// Same state (name, period, key), another count: the state is kept
	// (TAT one hour ahead), read at the new rate of one per 15 min.
	more := base
	more.Count = 4
	f.wantRefused("phone", 15*time.Minute, more)
	f.clk.Advance(15 * time.Minute)
	f.wantAllowed(1, more)
	f.wantRefused("phone", 15*time.Minute, more)
}

func testRefill(t *testing.T, b Backend) {
	f := open(t, b)
	l := verifyd.Limit{Name: "session", Key: key(t, "s"), Count: 4, Period: 20 * time.Minute}
	f.wantAllowed(4, l)
	f.clk.Advance(10 * time.Minute) // two tokens back
	f.wantAllowed(2, l)
	f.wantRefused("session", 5*time.Minute, l)
	// A long idle time refills to Count, never beyond.
	f.clk.Advance(24 * time.Hour)
	f.wantAllowed(4, l)
	f.wantRefused("session", 5*time.Minute, l)
	// Steady traffic at the rate always passes.
	for range 10 {
		f.clk.Advance(5 * time.Minute)
		f.wantAllowed(1, l)
	}
}

func testEmptyAndInvalid(t *testing.T, b Backend) {
	f := open(t, b)
	if d := f.allow(); !d.Allowed {
		t.Fatalf("empty limit list: %s, want allowed", show(d))
	}
	good := verifyd.Limit{Name: "phone", Key: key(t, "k"), Count: 1, Period: time.Minute}
	for _, bad := range []verifyd.Limit{
		{Name: "", Key: "k", Count: 1, Period: time.Minute},
		{Name: "a:b", Key: "k", Count: 1, Period: time.Minute},
		{Name: "phone", Key: "", Count: 1, Period: time.Minute},
		{Name: "phone", Key: "k", Count: 0, Period: time.Minute},
		{Name: "phone", Key: "k", Count: 1, Period: 0},
		{Name: "phone", Key: "k", Count: 1_000_000, Period: time.Millisecond},
		good, // twice in one decision
	} {
		if _, err := f.l.Allow(context.Background(), []verifyd.Limit{good, bad}); err == nil {
			t.Fatalf("Allow(%+v): no error", bad)
		}
	}
	// Nothing was consumed by the invalid calls.
	f.wantAllowed(1, good)

	// Many limits in one decision.
	var many []verifyd.Limit
	for i := range 12 {
		many = append(many, verifyd.Limit{Name: "prefix", Key: key(t, fmt.Sprint(i)), Count: 2, Period: time.Minute})
	}
	f.wantAllowed(2, many...)
	f.wantRefused("prefix", 30*time.Second, many...)
}

// testRealClock runs on the backend's own clock (for redis, Redis TIME):
// a short period, and a poll with a deadline for the refill.
func testRealClock(t *testing.T, b Backend) {
	l := b.Open(t, nil)
	f := &fixture{t: t, l: l}
	lim := verifyd.Limit{Name: "phone", Key: key(t, "k"), Count: 2, Period: 400 * time.Millisecond}
	f.wantAllowed(2, lim)
	start := time.Now()
	d := f.allow(lim)
	if d.Allowed || d.RetryAfter > lim.Interval() {
		t.Fatalf("third decision: %s, want refused within %s", show(d), lim.Interval())
	}
	wait := d.RetryAfter
	deadline := time.Now().Add(5 * time.Second)
	for {
		if d = f.allow(lim); d.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused %s after the refusal (retry after %s)", time.Since(start), wait)
		}
		time.Sleep(min(d.RetryAfter, 20*time.Millisecond))
	}
	// The backend's clock and ours both ran at least the announced wait.
	if el := time.Since(start); el < wait {
		t.Fatalf("allowed %s after a refusal announcing %s", el, wait)
	}
}

// nodes returns l and, when the backend has peers, a second node.
func nodes(t *testing.T, b Backend, l verifyd.Limiter) []verifyd.Limiter {
	if b.Peer == nil {
		return []verifyd.Limiter{l}
	}
	return []verifyd.Limiter{l, b.Peer(t, l)}
}

// hammer runs workers goroutines, each calling Allow calls times on its
// node (alternating over nodes); it returns the allowed decisions per
// limit list.
func hammer(t *testing.T, ls []verifyd.Limiter, workers, calls int, lists ...[]verifyd.Limit) []int64 {
	allowed := make([]int64, len(lists))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			l := ls[w%len(ls)]
			for i := range calls {
				list := lists[(w+i)%len(lists)]
				d, err := l.Allow(context.Background(), list)
				if err != nil {
					errs <- err
					return
				}
				if d.Allowed {
					atomic.AddInt64(&allowed[(w+i)%len(lists)], 1)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Allow: %v", err)
	}
	return allowed
}

// testConcurrentExact: many callers on one key, over two nodes when the
// backend has them, on the backend's own clock, never pass more than Count
// (the period is long enough that nothing refills during the test).
func testConcurrentExact(t *testing.T, b Backend) {
	l := b.Open(t, nil)
	lim := verifyd.Limit{Name: "phone", Key: key(t, "hot"), Count: 50, Period: 24 * time.Hour}
	start := time.Now()
	got := hammer(t, nodes(t, b, l), 16, 25, []verifyd.Limit{lim})[0]
	if el := time.Since(start); el >= lim.Interval() {
		t.Skipf("the test took %s, longer than a refill (%s)", el, lim.Interval())
	}
	if got != int64(lim.Count) {
		t.Fatalf("%d decisions allowed out of 400 on a limit of %d", got, lim.Count)
	}
}

// testConcurrentAllOrNothing: decisions on {a, b} race decisions on {b}
// alone. b is used up exactly, and {a, b} never passes more than a allows.
func testConcurrentAllOrNothing(t *testing.T, b Backend) {
	l := b.Open(t, nil)
	a := verifyd.Limit{Name: "ip", Key: key(t, "a"), Count: 20, Period: 24 * time.Hour}
	s := verifyd.Limit{Name: "profile", Key: key(t, "b"), Count: 30, Period: 24 * time.Hour}
	got := hammer(t, nodes(t, b, l), 16, 20, []verifyd.Limit{a, s}, []verifyd.Limit{s})
	if got[0] > int64(a.Count) || got[0]+got[1] != int64(s.Count) {
		t.Fatalf("allowed {a,b}=%d {b}=%d; want {a,b} ≤ %d and a sum of %d", got[0], got[1], a.Count, s.Count)
	}
	// a consumed exactly got[0]: the rest of it is still there.
	f := &fixture{t: t, l: l}
	f.wantAllowed(a.Count-int(got[0]), a)
	if d := f.allow(a); d.Allowed {
		t.Fatalf("a allowed beyond its count: %s", show(d))
	}
}
