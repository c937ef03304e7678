package smpp

import (
	"context"
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens a second, holding at most burst.
// Callers take a token and wait the returned time before sending, so sends
// are spread evenly and never exceed the rate. A zero rate is unlimited.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newBucket(rate float64, burst int, now func() time.Time) *bucket {
	if burst < 1 {
		burst = 1
	}
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), now: now}
}

// reserve takes one token and returns how long the caller must wait before
// using it (0 when one was available). Tokens may go negative: later
// callers queue behind earlier ones.
func (b *bucket) reserve() time.Duration {
	if b == nil || b.rate <= 0 {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * b.rate
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	b.tokens--
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}

// cancel gives back a token reserved by a caller that will not send.
func (b *bucket) cancel() {
	if b == nil || b.rate <= 0 {
		return
	}
	b.mu.Lock()
	b.tokens++
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	b.mu.Unlock()
}

// wait takes a token and sleeps until it may be used, or until ctx ends.
func (b *bucket) wait(ctx context.Context) error {
	d := b.reserve()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		b.cancel()
		return ctx.Err()
	}
}
