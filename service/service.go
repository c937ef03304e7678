// Package service is the core of verifyd: it starts verifications, checks
// codes, manages profiles and templates, and delivers messages through a
// durable queue. It knows no HTTP and no SQL: it talks to a verifyd.Store and
// to verifyd.Senders, and returns *verifyd.Error values the API maps.
package service

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/verifyd/verifyd"
)

// Options are the operator settings of the core. Zero values take defaults.
type Options struct {
	// MaxAttempts is the number of checks per verification (1–10, default 5; D8).
	MaxAttempts int
	// FailureWindow and MaxFailures cap failed checks per (profile, phone)
	// over a rolling window (default 1 h, 10; D10).
	FailureWindow time.Duration
	MaxFailures   int
	// Retention is how long finished verifications (and their events and
	// phone numbers) are kept (default 30 days).
	Retention time.Duration
	// DefaultDestinations is the operator default for a channel's
	// whitelisted_destinations (D24); shipped empty.
	DefaultDestinations []string
	// FlashDigits is the number of trailing caller-ID digits that form a
	// flash-call code (D19, default 4).
	FlashDigits int
	// FlashCallerPrefix is the number prefix flash-call caller IDs are
	// drawn under (console default +1555).
	FlashCallerPrefix string
	// Channels lists the channels a sender is configured for; others
	// answer V0009 (D6).
	Channels []verifyd.Channel
	// Now and Codes are injected for tests; defaults time.Now and
	// crypto/rand.
	Now   func() time.Time
	Codes CodeSource
	// AuthCacheTTL bounds how long an API key lookup, and a profile read by
	// the trigger and check paths, are cached (default 2 s): a revoked key
	// stops working, and a change made on another node is seen, within it.
	AuthCacheTTL time.Duration
	// Guards are the abuse and fraud controls (guard.go); nil: none.
	Guards *Guards
	// Observer receives counters; nil discards them. An Observer that is
	// also a GuardObserver sees the guards' refusals.
	Observer Observer
	Logger   *slog.Logger
}

// Observer receives the core's counters (the API layer exports them).
type Observer interface {
	// Count counts one event of a verification on channel ch: outcome is
	// triggered, accepted, rejected, or a delivery status.
	Count(ch verifyd.Channel, outcome string)
}

// Service is the core. It is safe for concurrent use.
type Service struct {
	store verifyd.Store
	keys  *Keys
	opts  Options
	log   *slog.Logger
	auth  *ttlCache[[32]byte, *verifyd.Account]
	// profiles caches live profiles for the hot paths, for AuthCacheTTL;
	// local updates and deletes drop their entry at once.
	profiles *ttlCache[string, *verifyd.Profile]
	// wakeCh nudges this process's delivery worker when a job is enqueued.
	wakeCh chan struct{}
	// worker is this process's running delivery worker, which triggers hand
	// their jobs to (nil: none; jobs wait for any worker's claim).
	worker atomic.Pointer[Worker]
	// signing caches the accounts' active webhook signing keys.
	signing *ttlCache[string, ed25519.PrivateKey]
	// flight tracks this process's delivery batches until their outcomes
	// are recorded (receipts that overtake their send wait on it).
	flight flight
}

// New returns a Service over store, sealing codes with keys.
func New(store verifyd.Store, keys *Keys, opts Options) *Service {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.FailureWindow <= 0 {
		opts.FailureWindow = time.Hour
	}
	if opts.MaxFailures <= 0 {
		opts.MaxFailures = 10
	}
	if opts.Retention <= 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	if opts.FlashDigits <= 0 {
		opts.FlashDigits = 4
	}
	if opts.FlashCallerPrefix == "" {
		opts.FlashCallerPrefix = "+1555"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Stores keep microseconds: work in what they keep, so a value compared
	// before a write is the value read back after it.
	now := opts.Now
	opts.Now = func() time.Time { return now().UTC().Truncate(time.Microsecond) }
	if opts.Codes == nil {
		opts.Codes = RandomCode
	}
	if opts.AuthCacheTTL <= 0 {
		opts.AuthCacheTTL = 2 * time.Second
	}
	if opts.Channels == nil {
		opts.Channels = []verifyd.Channel{verifyd.SMS, verifyd.Call, verifyd.Flashcall}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DefaultDestinations == nil {
		opts.DefaultDestinations = []string{}
	}
	return &Service{store: store, keys: keys, opts: opts, log: opts.Logger, auth: newTTLCache[[32]byte, *verifyd.Account](opts.AuthCacheTTL, 10000),
		profiles: newTTLCache[string, *verifyd.Profile](opts.AuthCacheTTL, 10000),
		wakeCh:   make(chan struct{}, 1), signing: newTTLCache[string, ed25519.PrivateKey](signingKeyTTL, 10000)}
}

// DefaultDestinations is the operator default for whitelisted_destinations.
func (s *Service) DefaultDestinations() []string { return s.opts.DefaultDestinations }

// Ready reports whether the store answers.
func (s *Service) Ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return verifyd.ErrUnavailable
	}
	return nil
}

// QueueDepth returns the number of unfinished delivery jobs.
func (s *Service) QueueDepth(ctx context.Context) (int, error) { return s.store.QueueDepth(ctx) }

func (s *Service) wake() {
	select {
	case s.wakeCh <- struct{}{}:
	default:
	}
}

func (s *Service) count(ch verifyd.Channel, outcome string) {
	if s.opts.Observer != nil {
		s.opts.Observer.Count(ch, outcome)
	}
}
