package verifyd

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Limit is one rate limit applied to one event: "at most Count events per
// Period for this Key", enforced with GCRA (the generic cell rate algorithm,
// a token bucket kept as one timestamp per key).
//
// Precisely: a key holds a bucket of Count tokens that refills one token
// every T = Period/Count; an event takes one token. So:
//   - a fresh (or long idle) key allows Count events at once;
//   - after that, one more event every T;
//   - in any interval of length W, at most Count + ceil(W/T) − 1 events are
//     allowed: in a window of one Period that is up to 2·Count − 1 (a full
//     burst at its start, then the refills). "3 per 10 min" therefore means
//     3 at once, then one every 200 s; to also cap a longer window, add a
//     second, slower limit on the same key (e.g. 5 per hour).
//
// State is identified by (Name, Period, Key): two limits on the same Key
// with different Periods (3 per 10 min and 5 per hour per phone) keep
// separate state; changing Count keeps it. Count must be ≥ 1, Period > 0,
// Period/Count ≥ 1 µs, Name non-empty without ':', Key non-empty.
type Limit struct {
	// Name says what is limited ("phone", "ip", "session", "profile",
	// "prefix", "account_check", ...). It is shown in errors and metrics,
	// so it never holds the key itself.
	Name string
	// Key is the limited value, scoped by the caller (for example
	// "<account id>:+15551234567"). It may hold any bytes.
	Key string
	// Count events per Period.
	Count  int
	Period time.Duration
}

// Interval returns T = Period/Count, the time one token takes to refill.
func (l Limit) Interval() time.Duration { return l.Period / time.Duration(l.Count) }

// Validate reports a malformed limit (a programming or configuration error,
// never a client error).
func (l Limit) Validate() error {
	switch {
	case l.Name == "" || strings.ContainsRune(l.Name, ':'):
		return fmt.Errorf("verifyd: limit name %q: empty or holds ':'", l.Name)
	case l.Key == "":
		return fmt.Errorf("verifyd: limit %s: empty key", l.Name)
	case l.Count < 1 || l.Period <= 0:
		return fmt.Errorf("verifyd: limit %s: count %d per %s", l.Name, l.Count, l.Period)
	case l.Period/time.Duration(l.Count) < time.Microsecond:
		return fmt.Errorf("verifyd: limit %s: %d per %s is finer than 1 µs per event", l.Name, l.Count, l.Period)
	}
	return nil
}

// ValidateLimits validates every limit and refuses two limits with the same
// state (Name, Period, Key) in one decision. Limiters call it first.
func ValidateLimits(limits []Limit) error {
	for i, l := range limits {
		if err := l.Validate(); err != nil {
			return err
		}
		for _, o := range limits[:i] {
			if o.Name == l.Name && o.Period == l.Period && o.Key == l.Key {
				return fmt.Errorf("verifyd: limit %s per %s given twice for one key", l.Name, l.Period)
			}
		}
	}
	return nil
}

// LimitDecision is the outcome of one Limiter.Allow.
type LimitDecision struct {
	// Allowed is true when every limit allowed the event and each consumed
	// one token.
	Allowed bool
	// Refused is the first limit, in the order given, that refused (nil when
	// Allowed). It is a copy; the caller's slice is not retained.
	Refused *Limit
	// RetryAfter is, when refused, the wait until every limit of the same
	// decision would allow it (the longest wait among the refusing limits;
	// nothing else consumed, the others keep allowing). Zero when Allowed.
	RetryAfter time.Duration
}

// Err returns nil when d is allowed, else the domain error ERATELIMITED (429
// V0003) naming the refusing limit, with RetryAfter in whole seconds
// (rounded up, at least 1).
func (d LimitDecision) Err() error {
	if d.Allowed {
		return nil
	}
	secs := max(int((d.RetryAfter+time.Second-1)/time.Second), 1)
	name := "rate"
	if d.Refused != nil {
		name = d.Refused.Name
	}
	return &Error{Code: ERATELIMITED, RetryAfter: secs,
		Message: fmt.Sprintf("Too many requests (%s limit); retry in %d s.", name, secs)}
}

// Limiter decides whether one event may pass a set of rate limits.
// Implementations: ratelimit (in-process, embedded default) and redis
// (exact across nodes); both pass the ratelimit/limitertest suite.
type Limiter interface {
	// Allow takes one token from every limit, all or nothing: when any
	// limit would be exceeded, no key is changed and the LimitDecision says
	// which limit refused and how long to wait. Concurrent decisions on
	// shared keys are atomic with respect to each other (on every node
	// sharing the backend). An empty list is allowed. A malformed limit
	// (Limit.Validate) is an error. A backend that cannot decide returns an
	// error with code EUNAVAILABLE (or, configured to fail open, allows).
	Allow(ctx context.Context, limits []Limit) (LimitDecision, error)
}
