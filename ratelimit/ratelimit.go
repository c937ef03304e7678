// Package ratelimit is the in-process verifyd.Limiter (the embedded default):
// GCRA state, one timestamp per key, in sharded maps. It is exact within one
// process; a cluster shares the redis Limiter instead.
//
// Memory is bounded. An entry whose theoretical arrival time (TAT) is in the
// past holds no information (the key is fully refilled) and is dropped by an
// amortised sweep: a shard is swept after as many new keys as it held live
// ones after its last sweep, so a shard holds at most about twice its live
// keys and a sweep costs O(1) per insert, with no background goroutine.
// MaxEntries is a hard cap on live keys; see Options.
package ratelimit

import (
	"context"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verifyd/verifyd"
)

const (
	shardCount = 64 // a power of two
	minSweep   = 64 // new keys a shard takes before its first sweep
	evictScan  = 8  // entries sampled to choose one to evict
)

// DefaultMaxEntries is the default hard cap on keys (about 150 bytes each
// with a 40-byte key: some 75 MiB at the cap).
const DefaultMaxEntries = 1 << 19

// Options configures a Limiter. Zero values take defaults.
type Options struct {
	// Now is the clock (default time.Now); tests inject a fake one.
	Now func() time.Time
	// MaxEntries caps the number of keys held (default DefaultMaxEntries),
	// split evenly over the shards. When a shard is full of live keys and
	// a decision needs a new key there, it evicts one: of a small random
	// sample, the key whose TAT is soonest (the one that remembers the
	// least). An evicted key starts afresh, so at the cap the limiter errs
	// towards allowing a few more events on some keys rather than refusing
	// everybody; Evictions counts it (export it as a metric and raise the
	// cap if it moves).
	MaxEntries int
}

// Limiter is the in-process verifyd.Limiter. It is safe for concurrent use.
type Limiter struct {
	now       func() time.Time
	base      time.Time // TATs are nanoseconds since base
	seed      maphash.Seed
	shardCap  int
	evictions atomic.Uint64
	shards    [shardCount]shard
}

var _ verifyd.Limiter = (*Limiter)(nil)

type stateKey struct {
	name   string
	period time.Duration
	key    string
}

type shard struct {
	mu sync.Mutex
	m  map[stateKey]int64 // TAT, ns since Limiter.base
	// inserts counts new keys since the last sweep; the shard is swept
	// when it reaches budget (the live keys left by that sweep).
	inserts, budget int
	_               [32]byte // keep hot shards off one cache line
}

// New returns an in-process Limiter.
func New(opts Options) *Limiter {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	l := &Limiter{now: opts.Now, seed: maphash.MakeSeed(),
		shardCap: max((opts.MaxEntries+shardCount-1)/shardCount, 1)}
	l.base = l.now()
	for i := range l.shards {
		l.shards[i].m = make(map[stateKey]int64)
		l.shards[i].budget = minSweep
	}
	return l
}

// Allow implements verifyd.Limiter. It does no I/O and never blocks on
// anything but its own shard locks.
func (l *Limiter) Allow(_ context.Context, limits []verifyd.Limit) (verifyd.LimitDecision, error) {
	if len(limits) == 0 {
		return verifyd.LimitDecision{Allowed: true}, nil
	}
	if err := verifyd.ValidateLimits(limits); err != nil {
		return verifyd.LimitDecision{}, err
	}
	var shardBuf, lockBuf [8]uint8
	var tatBuf [8]int64
	var keyBuf [8]stateKey
	idx, locks, tats, keys := shardBuf[:0], lockBuf[:0], tatBuf[:0], keyBuf[:0]
	for _, lim := range limits {
		k := stateKey{lim.Name, lim.Period, lim.Key}
		keys = append(keys, k)
		s := uint8((maphash.String(l.seed, lim.Key) ^ uint64(lim.Period)) & (shardCount - 1))
		idx = append(idx, s)
		if !slices.Contains(locks, s) {
			locks = append(locks, s)
		}
	}
	// Lock in ascending shard order, so that decisions sharing shards
	// cannot deadlock; the decision is atomic over all its keys.
	slices.Sort(locks)
	for _, s := range locks {
		l.shards[s].mu.Lock()
	}
	defer func() {
		for _, s := range locks {
			l.shards[s].mu.Unlock()
		}
	}()

	now := int64(l.now().Sub(l.base))
	var d verifyd.LimitDecision
	var retry int64
	for i, lim := range limits {
		tat, ok := l.shards[idx[i]].m[keys[i]]
		if !ok || tat < now {
			tat = now
		}
		tat += int64(lim.Interval())
		tats = append(tats, tat)
		if wait := tat - int64(lim.Period) - now; wait > 0 {
			if d.Refused == nil {
				r := lim
				d.Refused = &r
			}
			retry = max(retry, wait)
		}
	}
	if d.Refused != nil {
		d.RetryAfter = time.Duration(retry)
		return d, nil
	}
	for i := range limits {
		l.shards[idx[i]].put(l, keys[i], tats[i], now, keys)
	}
	d.Allowed = true
	return d, nil
}

// put stores the TAT of k, sweeping or evicting first when k is new.
// keep lists the keys of the running decision, never evicted.
func (s *shard) put(l *Limiter, k stateKey, tat, now int64, keep []stateKey) {
	if _, ok := s.m[k]; ok {
		s.m[k] = tat
		return
	}
	s.inserts++
	if s.inserts >= s.budget {
		for key, t := range s.m {
			if t <= now {
				delete(s.m, key)
			}
		}
		s.inserts, s.budget = 0, max(len(s.m), minSweep)
	}
	if len(s.m) >= l.shardCap {
		s.evict(keep)
		l.evictions.Add(1)
	}
	s.m[k] = tat
}

// evict deletes, among a few entries drawn by map iteration (which starts
// at a random place), the one with the earliest TAT.
func (s *shard) evict(keep []stateKey) {
	var victim stateKey
	found, seen := false, 0
	var best int64
	for key, t := range s.m {
		if slices.Contains(keep, key) {
			continue
		}
		if !found || t < best {
			victim, best, found = key, t, true
		}
		if seen++; seen == evictScan {
			break
		}
	}
	if found {
		delete(s.m, victim)
	}
}

// Len returns the number of keys held, expired ones not yet swept included.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Evictions returns how many live keys the MaxEntries cap has evicted.
func (l *Limiter) Evictions() uint64 { return l.evictions.Load() }
