package fraud

import (
	"context"
	"sync"
	"time"

	"github.com/verifyd/verifyd"
)

// Kind is what a statistics counter counts.
type Kind uint8

// The counter kinds of a prefix.
const (
	KindSent      Kind = iota // a verification handed to a carrier
	KindCompleted             // a verification completed with the right code, counted in the bucket of its send
)

// Retention a Store must honour at least: minute buckets for MinuteRetention,
// hour buckets for HourRetention. The Guard refuses windows longer than
// these.
const (
	MinuteRetention = 3 * time.Hour
	HourRetention   = 49 * time.Hour
)

// Bucket is one time bucket of a prefix's counters.
type Bucket struct {
	Start     time.Time
	Sent      int64
	Completed int64
}

// Block is a fraud block on a destination prefix (an E.164 prefix such as
// "+44791"; a full number blocks one number).
type Block struct {
	Prefix      string
	Start       time.Time
	Until       time.Time
	LiftedAt    time.Time // zero unless lifted by an operator
	Level       int       // escalation step, 1-based; 0 for a manual block
	Manual      bool
	MonitorOnly bool   // recorded in monitor mode: reported, never enforced
	Reason      string // human-readable rule and figures, for operators
	Evidence    Evidence
}

// Active reports whether the block is in force at now (monitor-only blocks
// count as active: they are in force for reporting).
func (b Block) Active(now time.Time) bool {
	return b.LiftedAt.IsZero() && now.Before(b.Until)
}

// RetryAfter returns the whole seconds from now to the end of the block, at
// least 1.
func (b Block) RetryAfter(now time.Time) int {
	return ceilSeconds(b.Until.Sub(now))
}

// Evidence is what an automatic block was decided on.
type Evidence struct {
	Rule       string        // "window" or "long_window"
	Window     time.Duration // the window the figures cover
	Floor      float64       // the floor the sends reached
	Sends      float64       // maturity-weighted sends in the window
	Completed  int64         // completions of those sends
	Conversion float64       // Completed / Sends
}

// Store holds the per-prefix statistics and the blocks. Implementations must
// be safe for concurrent use; a cluster backend (Redis, SQL) shares them
// between nodes. Times are UTC instants; buckets are aligned on the Unix
// epoch (minute and hour boundaries).
type Store interface {
	// Incr adds 1 to counter kind of prefix in the minute bucket and in the
	// hour bucket containing at. Buckets older than the retention may be
	// dropped at any time.
	Incr(ctx context.Context, prefix string, kind Kind, at time.Time) error
	// Counts returns the prefix's minute buckets starting at or after
	// minutesSince and its hour buckets starting at or after hoursSince,
	// each sorted by Start; buckets with no counts may be left out.
	Counts(ctx context.Context, prefix string, minutesSince, hoursSince time.Time) (minutes, hours []Bucket, err error)

	// PutBlock records b as the newest block of b.Prefix, replacing any
	// earlier record for that prefix.
	PutBlock(ctx context.Context, b Block) error
	// LiftBlock marks the newest block of prefix lifted at at and returns
	// it; ENOTFOUND if no block is in force.
	LiftBlock(ctx context.Context, prefix string, at time.Time) (Block, error)
	// LastBlock returns the newest block of exactly prefix, in force,
	// expired or lifted; ok is false if there was none within HourRetention.
	LastBlock(ctx context.Context, prefix string) (b Block, ok bool, err error)
	// MatchBlocks returns the blocks in force at now whose Prefix is a
	// prefix of number (usually none, so nil without allocating).
	MatchBlocks(ctx context.Context, number string, now time.Time) ([]Block, error)
	// ListBlocks returns every block in force at now, ordered by Prefix.
	ListBlocks(ctx context.Context, now time.Time) ([]Block, error)
}

// Ledger accumulates spend per profile per UTC day. AddSpend is atomic: two
// nodes adding at once both see their own addition in the returned total, so
// a threshold is crossed by exactly one call.
type Ledger interface {
	// AddSpend adds amount to the profile's spend of the UTC day starting at
	// day and returns the new total.
	AddSpend(ctx context.Context, profileID string, day time.Time, amount Money) (Money, error)
	// Spend returns the profile's spend of the UTC day starting at day.
	Spend(ctx context.Context, profileID string, day time.Time) (Money, error)
}

const (
	minuteSlots = int64(MinuteRetention / time.Minute)
	hourSlots   = int64(HourRetention / time.Hour)
)

type slot struct {
	start     int64 // bucket index (Unix minutes or hours); 0 = empty
	sent      int64
	completed int64
}

type series struct {
	minutes [minuteSlots]slot
	hours   [hourSlots]slot
	last    int64 // Unix hour of the last Incr, for pruning
}

type ledgerKey struct {
	profile string
	day     int64
}

// MemStore is the in-process Store and Ledger: right for one node, lost on
// restart. Ring buffers of fixed size per prefix; idle prefixes are pruned.
type MemStore struct {
	mu     sync.Mutex
	series map[string]*series
	blocks map[string]Block
	spend  map[ledgerKey]Money
	incrs  int
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore {
	return &MemStore{series: map[string]*series{}, blocks: map[string]Block{}, spend: map[ledgerKey]Money{}}
}

func bump(s *slot, idx int64, kind Kind) {
	if s.start > idx {
		return // older than the ring holds: dropped
	}
	if s.start != idx {
		*s = slot{start: idx}
	}
	if kind == KindSent {
		s.sent++
	} else {
		s.completed++
	}
}

// Incr implements Store.
func (m *MemStore) Incr(_ context.Context, prefix string, kind Kind, at time.Time) error {
	mi := at.Unix() / 60
	hi := at.Unix() / 3600
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[prefix]
	if s == nil {
		s = &series{}
		m.series[prefix] = s
	}
	bump(&s.minutes[mi%minuteSlots], mi, kind)
	bump(&s.hours[hi%hourSlots], hi, kind)
	s.last = max(s.last, hi)
	if m.incrs++; m.incrs%4096 == 0 {
		m.prune(hi)
	}
	return nil
}

// prune drops the series of prefixes idle for longer than HourRetention and
// spend of days before yesterday.
func (m *MemStore) prune(nowHour int64) {
	for p, s := range m.series {
		if nowHour-s.last > hourSlots {
			delete(m.series, p)
		}
	}
	for k := range m.spend {
		if nowHour/24-k.day > 1 {
			delete(m.spend, k)
		}
	}
}

func collect(ring []slot, from, to, width int64) []Bucket {
	from = max(from, to-int64(len(ring))+1)
	n := 0
	for i := from; i <= to; i++ {
		if s := &ring[i%int64(len(ring))]; s.start == i && (s.sent != 0 || s.completed != 0) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Bucket, 0, n)
	for i := from; i <= to; i++ {
		if s := &ring[i%int64(len(ring))]; s.start == i && (s.sent != 0 || s.completed != 0) {
			out = append(out, Bucket{Start: time.Unix(i*width, 0).UTC(), Sent: s.sent, Completed: s.completed})
		}
	}
	return out
}

// Counts implements Store.
func (m *MemStore) Counts(_ context.Context, prefix string, minutesSince, hoursSince time.Time) (minutes, hours []Bucket, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.series[prefix]
	if s == nil {
		return nil, nil, nil
	}
	// The newest bucket is the one of the last Incr; a completion for an
	// older send never moves it forward.
	top := s.last
	minutes = collect(s.minutes[:], ceilDiv(minutesSince.Unix(), 60), top*60+59, 60)
	hours = collect(s.hours[:], ceilDiv(hoursSince.Unix(), 3600), top, 3600)
	return minutes, hours, nil
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}

// PutBlock implements Store.
func (m *MemStore) PutBlock(_ context.Context, b Block) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blocks[b.Prefix] = b
	return nil
}

// LiftBlock implements Store.
func (m *MemStore) LiftBlock(_ context.Context, prefix string, at time.Time) (Block, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blocks[prefix]
	if !ok || !b.Active(at) {
		return Block{}, verifyd.Errorf(verifyd.ENOTFOUND, "No block is in force on %s.", prefix)
	}
	b.LiftedAt = at
	m.blocks[prefix] = b
	return b, nil
}

// LastBlock implements Store.
func (m *MemStore) LastBlock(_ context.Context, prefix string) (Block, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blocks[prefix]
	return b, ok, nil
}

// MatchBlocks implements Store.
func (m *MemStore) MatchBlocks(_ context.Context, number string, now time.Time) ([]Block, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.blocks) == 0 {
		return nil, nil
	}
	var out []Block
	for i := len(number); i >= 2; i-- {
		if b, ok := m.blocks[number[:i]]; ok && b.Active(now) {
			out = append(out, b)
		}
	}
	return out, nil
}

// ListBlocks implements Store.
func (m *MemStore) ListBlocks(_ context.Context, now time.Time) ([]Block, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Block
	for p, b := range m.blocks {
		switch {
		case b.Active(now):
			out = append(out, b)
		case now.Sub(b.Until) > HourRetention:
			delete(m.blocks, p)
		}
	}
	sortBlocks(out)
	return out, nil
}

// AddSpend implements Ledger.
func (m *MemStore) AddSpend(_ context.Context, profileID string, day time.Time, amount Money) (Money, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := ledgerKey{profileID, day.Unix() / 86400}
	m.spend[k] += amount
	return m.spend[k], nil
}

// Spend implements Ledger.
func (m *MemStore) Spend(_ context.Context, profileID string, day time.Time) (Money, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.spend[ledgerKey{profileID, day.Unix() / 86400}], nil
}
