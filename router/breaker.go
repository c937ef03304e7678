package router

import (
	"sync"
	"time"
)

// Breaker states, as State reports them.
const (
	StateClosed   = "closed"
	StateOpen     = "open"
	StateHalfOpen = "half-open"
)

// breaker is one sender's circuit breaker. Closed: every attempt goes
// through. After threshold consecutive failures it opens: attempts are
// skipped until the cool-down has passed. Then it is half-open: one trial
// attempt goes through (others are skipped while it runs); its success
// closes the circuit, its failure opens it for another cool-down.
type breaker struct {
	threshold int
	cooldown  time.Duration

	mu        sync.Mutex
	failures  int       // consecutive
	openUntil time.Time // meaningful when failures >= threshold
	trial     bool      // a half-open trial is in flight
}

// allow reports whether an attempt may go through at now.
func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.failures < b.threshold:
		return true
	case now.Before(b.openUntil), b.trial:
		return false
	default:
		b.trial = true
		return true
	}
}

// succeeded records an attempt the sender answered (it took the message,
// or refused it for good: either way it is up).
func (b *breaker) succeeded() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	b.failures = 0
}

// failed records a failed attempt at now and reports whether it opened
// (or re-opened) the circuit.
func (b *breaker) failed(now time.Time) (opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = now.Add(b.cooldown)
		return true
	}
	return false
}

// abandoned records an attempt that tells nothing about the sender (the
// caller gave up): a half-open trial may be made again.
func (b *breaker) abandoned() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
}

func (b *breaker) state(now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.failures < b.threshold:
		return StateClosed
	case now.Before(b.openUntil):
		return StateOpen
	default:
		return StateHalfOpen
	}
}
