package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/fraud"
)

// DefaultFraudPrefix starts every key the fraud store writes.
const DefaultFraudPrefix = "verifyd:fraud:"

// FraudOptions configures a FraudStore. Zero values take defaults.
type FraudOptions struct {
	// Prefix starts every key (default DefaultFraudPrefix); nodes sharing
	// fraud state share it. Keys: Prefix+"m:"+prefix and Prefix+"h:"+prefix
	// (hashes of minute and hour buckets, fields "<bucket>:s" and
	// "<bucket>:c"), Prefix+"blocks" (a hash: prefix → block as JSON),
	// Prefix+"spend:"+profile+":"+day (an integer of fraud.Money).
	Prefix string
	// Timeout bounds one operation (default 500 ms).
	Timeout time.Duration
}

// FraudStore is fraud.Store and fraud.Ledger on Redis: the per-prefix
// statistics, the blocks and the spend ledger shared by every node. Incr is
// one round trip (a script), the reads one each; AddSpend is atomic
// (INCRBY), so a spend threshold is crossed by exactly one node.
type FraudStore struct {
	client  goredis.UniversalClient
	opts    FraudOptions
	ownsCli bool
}

var (
	_ fraud.Store  = (*FraudStore)(nil)
	_ fraud.Ledger = (*FraudStore)(nil)
)

// OpenFraud opens a FraudStore on the Redis named by url (as New).
func OpenFraud(url string, opts FraudOptions) (*FraudStore, error) {
	ro, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	ro.ContextTimeoutEnabled = true
	if !strings.Contains(url, "dialer_retries=") {
		ro.DialerRetries = 1
	}
	s := NewFraudStore(goredis.NewClient(ro), opts)
	s.ownsCli = true
	return s, nil
}

// NewFraudStore returns a FraudStore on an existing client (not closed by
// Close).
func NewFraudStore(c goredis.UniversalClient, opts FraudOptions) *FraudStore {
	if opts.Prefix == "" {
		opts.Prefix = DefaultFraudPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 500 * time.Millisecond
	}
	return &FraudStore{client: c, opts: opts}
}

// Close closes the client if OpenFraud opened it.
func (s *FraudStore) Close() error {
	if !s.ownsCli {
		return nil
	}
	return s.client.Close()
}

func (s *FraudStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.Timeout)
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("redis: fraud %s: %v: %w", op, err, ErrUnavailable)
}

const (
	minuteSlots = int64(fraud.MinuteRetention / time.Minute)
	hourSlots   = int64(fraud.HourRetention / time.Hour)
)

// incrScript adds one to a counter in the minute and the hour hash, keeps
// both alive for the hour retention, and drops old buckets once a hash
// holds more fields than its retention needs. KEYS: minute hash, hour
// hash. ARGV: minute bucket, hour bucket, kind ("s"/"c"), oldest minute to
// keep, oldest hour to keep, TTL in ms, field caps (minutes, hours).
var incrScript = goredis.NewScript(`
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':' .. ARGV[3], 1)
redis.call('HINCRBY', KEYS[2], ARGV[2] .. ':' .. ARGV[3], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
local function prune(key, oldest, cap)
  if redis.call('HLEN', key) <= cap then return end
  for _, f in ipairs(redis.call('HKEYS', key)) do
    local b = tonumber(string.match(f, '^(%d+):'))
    if b == nil or b < oldest then redis.call('HDEL', key, f) end
  end
end
prune(KEYS[1], tonumber(ARGV[4]), tonumber(ARGV[7]))
prune(KEYS[2], tonumber(ARGV[5]), tonumber(ARGV[8]))
return 1
`)

// Incr implements fraud.Store.
func (s *FraudStore) Incr(ctx context.Context, prefix string, kind fraud.Kind, at time.Time) error {
	mi, hi := at.Unix()/60, at.Unix()/3600
	k := "s"
	if kind == fraud.KindCompleted {
		k = "c"
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	err := incrScript.Run(ctx, s.client, []string{s.opts.Prefix + "m:" + prefix, s.opts.Prefix + "h:" + prefix},
		mi, hi, k, mi-minuteSlots, hi-hourSlots, (fraud.HourRetention + time.Hour).Milliseconds(),
		2*minuteSlots+8, 2*hourSlots+8).Err()
	return wrap("incr", err)
}

// Counts implements fraud.Store.
func (s *FraudStore) Counts(ctx context.Context, prefix string, minutesSince, hoursSince time.Time) (minutes, hours []fraud.Bucket, err error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	pipe := s.client.Pipeline()
	m := pipe.HGetAll(ctx, s.opts.Prefix+"m:"+prefix)
	h := pipe.HGetAll(ctx, s.opts.Prefix+"h:"+prefix)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return nil, nil, wrap("counts", err)
	}
	minutes = buckets(m.Val(), 60, ceilDiv(minutesSince.Unix(), 60))
	hours = buckets(h.Val(), 3600, ceilDiv(hoursSince.Unix(), 3600))
	return minutes, hours, nil
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}

// buckets turns a hash of "<bucket>:<kind>" counters into sorted buckets
// from bucket index from on.
func buckets(fields map[string]string, width, from int64) []fraud.Bucket {
	if len(fields) == 0 {
		return nil
	}
	by := map[int64]*fraud.Bucket{}
	for f, v := range fields {
		idxS, kind, ok := strings.Cut(f, ":")
		idx, err1 := strconv.ParseInt(idxS, 10, 64)
		n, err2 := strconv.ParseInt(v, 10, 64)
		if !ok || err1 != nil || err2 != nil || idx < from || n == 0 {
			continue
		}
		b := by[idx]
		if b == nil {
			b = &fraud.Bucket{Start: time.Unix(idx*width, 0).UTC()}
			by[idx] = b
		}
		if kind == "s" {
			b.Sent += n
		} else {
			b.Completed += n
		}
	}
	if len(by) == 0 {
		return nil
	}
	out := make([]fraud.Bucket, 0, len(by))
	for _, b := range by {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b fraud.Bucket) int { return a.Start.Compare(b.Start) })
	return out
}

func (s *FraudStore) blocksKey() string { return s.opts.Prefix + "blocks" }

// PutBlock implements fraud.Store.
func (s *FraudStore) PutBlock(ctx context.Context, b fraud.Block) error {
	j, err := json.Marshal(b)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return wrap("put block", s.client.HSet(ctx, s.blocksKey(), b.Prefix, j).Err())
}

func decodeBlock(v string) (fraud.Block, error) {
	var b fraud.Block
	err := json.Unmarshal([]byte(v), &b)
	return b, err
}

// LiftBlock implements fraud.Store: an optimistic transaction on the
// blocks hash (an admin operation, rare).
func (s *FraudStore) LiftBlock(ctx context.Context, prefix string, at time.Time) (fraud.Block, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var out fraud.Block
	key := s.blocksKey()
	for try := 0; try < 5; try++ {
		err := s.client.Watch(ctx, func(tx *goredis.Tx) error {
			v, err := tx.HGet(ctx, key, prefix).Result()
			if errors.Is(err, goredis.Nil) {
				return verifyd.Errorf(verifyd.ENOTFOUND, "No block is in force on %s.", prefix)
			}
			if err != nil {
				return err
			}
			b, err := decodeBlock(v)
			if err != nil {
				return err
			}
			if !b.Active(at) {
				return verifyd.Errorf(verifyd.ENOTFOUND, "No block is in force on %s.", prefix)
			}
			b.LiftedAt = at
			j, err := json.Marshal(b)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.HSet(ctx, key, prefix, j)
				return nil
			})
			out = b
			return err
		}, key)
		if errors.Is(err, goredis.TxFailedErr) {
			continue
		}
		var de *verifyd.Error
		if errors.As(err, &de) {
			return fraud.Block{}, err
		}
		return out, wrap("lift block", err)
	}
	return fraud.Block{}, wrap("lift block", errors.New("too much contention"))
}

// LastBlock implements fraud.Store.
func (s *FraudStore) LastBlock(ctx context.Context, prefix string) (fraud.Block, bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	v, err := s.client.HGet(ctx, s.blocksKey(), prefix).Result()
	if errors.Is(err, goredis.Nil) {
		return fraud.Block{}, false, nil
	}
	if err != nil {
		return fraud.Block{}, false, wrap("last block", err)
	}
	b, err := decodeBlock(v)
	if err != nil {
		return fraud.Block{}, false, err
	}
	return b, true, nil
}

// MatchBlocks implements fraud.Store: one HMGET of every prefix of number.
func (s *FraudStore) MatchBlocks(ctx context.Context, number string, now time.Time) ([]fraud.Block, error) {
	if len(number) < 2 {
		return nil, nil
	}
	fields := make([]string, 0, len(number)-1)
	for i := len(number); i >= 2; i-- {
		fields = append(fields, number[:i])
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	vals, err := s.client.HMGet(ctx, s.blocksKey(), fields...).Result()
	if err != nil {
		return nil, wrap("match blocks", err)
	}
	var out []fraud.Block
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		b, err := decodeBlock(str)
		if err != nil {
			return nil, err
		}
		if b.Active(now) {
			out = append(out, b)
		}
	}
	return out, nil
}

// ListBlocks implements fraud.Store; it deletes blocks that ended longer
// than the hour retention ago.
func (s *FraudStore) ListBlocks(ctx context.Context, now time.Time) ([]fraud.Block, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	all, err := s.client.HGetAll(ctx, s.blocksKey()).Result()
	if err != nil {
		return nil, wrap("list blocks", err)
	}
	var out []fraud.Block
	var stale []string
	for p, v := range all {
		b, err := decodeBlock(v)
		if err != nil {
			return nil, err
		}
		switch {
		case b.Active(now):
			out = append(out, b)
		case now.Sub(b.Until) > fraud.HourRetention:
			stale = append(stale, p)
		}
	}
	if len(stale) > 0 {
		_ = s.client.HDel(ctx, s.blocksKey(), stale...).Err() // best effort
	}
	slices.SortFunc(out, func(a, b fraud.Block) int { return strings.Compare(a.Prefix, b.Prefix) })
	return out, nil
}

func (s *FraudStore) spendKey(profileID string, day time.Time) string {
	return s.opts.Prefix + "spend:" + profileID + ":" + strconv.FormatInt(day.Unix()/86400, 10)
}

// AddSpend implements fraud.Ledger (INCRBY: atomic across nodes; the key
// lives two days).
func (s *FraudStore) AddSpend(ctx context.Context, profileID string, day time.Time, amount fraud.Money) (fraud.Money, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	key := s.spendKey(profileID, day)
	var incr *goredis.IntCmd
	_, err := s.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		incr = p.IncrBy(ctx, key, int64(amount))
		p.Expire(ctx, key, 49*time.Hour)
		return nil
	})
	if err != nil {
		return 0, wrap("add spend", err)
	}
	return fraud.Money(incr.Val()), nil
}

// Spend implements fraud.Ledger.
func (s *FraudStore) Spend(ctx context.Context, profileID string, day time.Time) (fraud.Money, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := s.client.Get(ctx, s.spendKey(profileID, day)).Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, wrap("spend", err)
	}
	return fraud.Money(n), nil
}
