package smpp

import (
	"sync"
	"time"

	"github.com/verifyd/verifyd"
)

// tracker remembers, for a bounded time and number of ids, which message a
// submitted part's id belongs to, so receipts of every part map back to the
// id SendResult returned (the first part's), and so a receipt id in the
// hex/decimal twin form of a submitted id still matches.
//
// The multipart rule: a message is reported delivered when its FIRST
// part's receipt says delivered; it is reported failed as soon as ANY
// part's receipt says failed (once, even after a delivered report: the
// later word is the more specific one). Receipts of other parts that say
// delivered or unconfirmed are absorbed. A single-part message reports
// every receipt. Ids the tracker no longer holds (evicted, or sent before
// a restart) are reported as given.
type tracker struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	byKey map[string]trackEntry
	queue []queued // insertion order == expiry order (one TTL)
	head  int
}

type trackedMessage struct {
	primary   string // the ProviderMessageID of the SendResult
	parts     int
	delivered bool
	failed    bool
}

type trackEntry struct {
	msg   *trackedMessage
	part  int // 0 for the first part
	twin  bool
	added time.Time
}

type queued struct {
	key   string
	added time.Time
}

func newTracker(max int, ttl time.Duration, now func() time.Time) *tracker {
	return &tracker{max: max, ttl: ttl, now: now, byKey: make(map[string]trackEntry)}
}

// add records the part ids of one message; primary is what SendResult
// reports, ids[i] are the submit_sm_resp ids as given (already in the
// configured IDForm).
func (t *tracker) add(primary string, ids []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	m := &trackedMessage{primary: primary, parts: len(ids)}
	for i, id := range ids {
		t.put(normID(id), trackEntry{msg: m, part: i, added: now})
		for _, tw := range idTwins(normID(id)) {
			if e, ok := t.byKey[normID(tw)]; ok && !e.twin {
				continue // a real id beats a twin reading of another
			}
			t.put(normID(tw), trackEntry{msg: m, part: i, twin: true, added: now})
		}
	}
	t.evict(now)
}

func (t *tracker) put(key string, e trackEntry) {
	t.byKey[key] = e
	t.queue = append(t.queue, queued{key: key, added: e.added})
}

// evict drops expired entries and the oldest ones over the cap.
func (t *tracker) evict(now time.Time) {
	for t.head < len(t.queue) {
		q := t.queue[t.head]
		if now.Sub(q.added) < t.ttl && len(t.byKey) <= t.max {
			break
		}
		if e, ok := t.byKey[q.key]; ok && e.added.Equal(q.added) {
			delete(t.byKey, q.key)
		}
		t.queue[t.head] = queued{}
		t.head++
	}
	if t.head > 1024 && t.head*2 > len(t.queue) {
		t.queue = append([]queued(nil), t.queue[t.head:]...)
		t.head = 0
	}
}

// len is the number of keys held (for tests).
func (t *tracker) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byKey)
}

// resolve says which id a receipt for id should be reported under and
// whether it should be reported at all by the multipart rule. commit must
// be called after the sink took the report.
func (t *tracker) resolve(id, status string) (primary string, report bool, commit func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.evict(now)
	e, ok := t.byKey[normID(id)]
	if !ok {
		return id, true, func() {}
	}
	m := e.msg
	switch {
	case m.parts <= 1:
		report = true
	case status == verifyd.DeliveryFailed:
		report = !m.failed
	default:
		report = e.part == 0 && !m.failed && !m.delivered
	}
	commit = func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		switch status {
		case verifyd.DeliveryFailed:
			m.failed = true
		case verifyd.DeliveryDelivered:
			if e.part == 0 {
				m.delivered = true
			}
		}
	}
	return m.primary, report, commit
}
