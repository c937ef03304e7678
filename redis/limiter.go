// Package redis holds what verifyd nodes must share through Redis: the
// cluster-wide rate limiter and the fraud state (FraudStore: per-prefix
// statistics, blocks, the spend ledger). Every node that points at the same
// Redis (and prefix) enforces the same limits, exactly.
//
// Supported: one Redis server, or a primary behind Sentinel. Not Redis
// Cluster: a decision touches all its keys in one script, and Cluster
// would need them in one hash slot.
package redis

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/verifyd/verifyd"
)

// DefaultPrefix starts every key the limiter writes.
const DefaultPrefix = "verifyd:rl:"

// ErrUnavailable is returned, wrapped with the cause, when Redis cannot
// decide and the limiter fails closed. Its code is EUNAVAILABLE (503): the
// client may retry; nothing was consumed that the failure would hide.
var ErrUnavailable = &verifyd.Error{Code: verifyd.EUNAVAILABLE,
	Message: "Rate limiter temporarily unavailable; retry shortly."}

// Options configures a Limiter. Zero values take defaults.
type Options struct {
	// Prefix starts every key (default DefaultPrefix); nodes sharing limits
	// share it. A key is Prefix + Name + ":" + Period + ":" + Key, e.g.
	// "verifyd:rl:phone:10m0s:<account>:+15551234567"; it holds the TAT in
	// µs since the epoch and expires when the TAT passes.
	Prefix string
	// Timeout bounds one decision, retries included (default 500 ms).
	Timeout time.Duration
	// FailOpen allows every event while Redis cannot answer (each failure
	// goes to OnError). The default, fail closed, returns ErrUnavailable
	// instead: a verification that cannot be rate limited is not sent, so
	// a Redis outage costs availability, never money. Fail open suits an
	// operator whose other guards (allowlist, spend cap) bound the cost.
	FailOpen bool
	// OnError, if set, sees every error a decision met talking to Redis,
	// whether it failed open or closed (to log and count).
	OnError func(error)
	// Now is for tests only: when set, decisions read the time from it
	// instead of Redis TIME. In production leave it nil, so that every node
	// reads one clock (the server's) whatever the skew between nodes.
	Now func() time.Time
}

// Limiter is the Redis verifyd.Limiter: one round trip per decision, a Lua
// script that reads every key, and only if all allow writes them all. It
// is safe for concurrent use.
type Limiter struct {
	client  goredis.UniversalClient
	opts    Options
	ownsCli bool
}

var _ verifyd.Limiter = (*Limiter)(nil)

// New opens a Limiter on the Redis named by url (redis://[:password@]host:port/db,
// rediss:// for TLS; go-redis query options such as dial_timeout or
// pool_size apply). It does not connect: the first decision (or Ping)
// does. Close releases the connections.
func New(url string, opts Options) (*Limiter, error) {
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	ro.ContextTimeoutEnabled = true // Options.Timeout bounds each decision
	if !strings.Contains(url, "dialer_retries=") {
		// One dial per attempt: a down Redis answers within Timeout
		// instead of after five dials.
		ro.DialerRetries = 1
	}
	l := NewWithClient(goredis.NewClient(ro), opts)
	l.ownsCli = true
	return l, nil
}

// NewWithClient returns a Limiter over an existing client (a Sentinel
// failover client, a client shared with other users). Close leaves the
// client open.
func NewWithClient(c goredis.UniversalClient, opts Options) *Limiter {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 500 * time.Millisecond
	}
	return &Limiter{client: c, opts: opts}
}

// Close closes the client if New opened it.
func (l *Limiter) Close() error {
	if !l.ownsCli {
		return nil
	}
	return l.client.Close()
}

// Ping reports whether Redis answers (for health checks and start-up).
func (l *Limiter) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	if err := l.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %v: %w", err, ErrUnavailable)
	}
	return nil
}

// allowScript is one decision. KEYS are the limits' keys; ARGV[1] is "now"
// in µs or "" for Redis TIME; then per key its interval T and its period,
// in µs. It returns {0, 0} when allowed, else {index of the first refusing
// key (1-based), wait in µs until every key would allow}.
//
//go:embed allow.lua
var allowLua string

var allowScript = goredis.NewScript(allowLua)

// Allow implements verifyd.Limiter.
func (l *Limiter) Allow(ctx context.Context, limits []verifyd.Limit) (verifyd.LimitDecision, error) {
	if len(limits) == 0 {
		return verifyd.LimitDecision{Allowed: true}, nil
	}
	if err := verifyd.ValidateLimits(limits); err != nil {
		return verifyd.LimitDecision{}, err
	}
	keys := make([]string, len(limits))
	args := make([]any, 1, 1+2*len(limits))
	args[0] = ""
	if l.opts.Now != nil {
		args[0] = l.opts.Now().UnixMicro()
	}
	for i, lim := range limits {
		keys[i] = l.key(lim)
		args = append(args, lim.Interval().Microseconds(), lim.Period.Microseconds())
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	res, err := allowScript.Run(ctx, l.client, keys, args...).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("allow script returned %d values", len(res))
	}
	if err != nil {
		return l.fail(err)
	}
	if res[0] == 0 {
		return verifyd.LimitDecision{Allowed: true}, nil
	}
	if res[0] < 1 || int(res[0]) > len(limits) || res[1] <= 0 {
		return l.fail(fmt.Errorf("allow script returned %v", res))
	}
	r := limits[res[0]-1]
	return verifyd.LimitDecision{Refused: &r, RetryAfter: time.Duration(res[1]) * time.Microsecond}, nil
}

func (l *Limiter) fail(err error) (verifyd.LimitDecision, error) {
	if l.opts.OnError != nil {
		l.opts.OnError(err)
	}
	if l.opts.FailOpen {
		return verifyd.LimitDecision{Allowed: true}, nil
	}
	if errors.Is(err, ErrUnavailable) {
		return verifyd.LimitDecision{}, err
	}
	return verifyd.LimitDecision{}, fmt.Errorf("redis limiter: %v: %w", err, ErrUnavailable)
}

// key is Prefix + Name + ":" + Period + ":" + Key (Name holds no ':'), e.g.
// "verifyd:rl:phone:10m0s:<account>:+15551234567".
func (l *Limiter) key(lim verifyd.Limit) string {
	var b strings.Builder
	b.Grow(len(l.opts.Prefix) + len(lim.Name) + len(lim.Key) + 24)
	b.WriteString(l.opts.Prefix)
	b.WriteString(lim.Name)
	b.WriteByte(':')
	b.WriteString(lim.Period.String())
	b.WriteByte(':')
	b.WriteString(lim.Key)
	return b.String()
}
