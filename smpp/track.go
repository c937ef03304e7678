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
//
// A part is registered as soon as its submit_sm_resp is read, and a
// receipt for an unknown id waits briefly while sends are in flight
// (waitChange), so a fast SMSC's receipt never overtakes the registration.
type tracker struct {
	mu       sync.Mutex
	changed  chan struct{}
	inflight int
	max      int
	ttl      time.Duration
	now      func() time.Time
	byKey    map[string]trackEntry
	queue    []queued // insertion order == expiry order (one TTL)
	head     int
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
	return &tracker{max: max, ttl: ttl, now: now, byKey: make(map[string]trackEntry), changed: make(chan struct{})}
}

// begin starts a message of parts parts; end must follow.
func (t *tracker) begin(parts int) *trackedMessage {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.inflight++
	return &trackedMessage{parts: parts}
}

// end marks the message's sending finished (sent or not).
func (t *tracker) end() {
	t.mu.Lock()
	t.inflight--
	t.mu.Unlock()
}

// addPart records part i's id (the submit_sm_resp id, already in the
// configured IDForm); part 0's id is the message's primary id.
func (t *tracker) addPart(m *trackedMessage, i int, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if i == 0 {
		m.primary = id
	}
	t.put(normID(id), trackEntry{msg: m, part: i, added: now})
	for _, tw := range idTwins(normID(id)) {
		if e, ok := t.byKey[normID(tw)]; ok && !e.twin {
			continue // a real id beats a twin reading of another
		}
		t.put(normID(tw), trackEntry{msg: m, part: i, twin: true, added: now})
	}
	t.evict(now)
	close(t.changed)
	t.changed = make(chan struct{})
}

// add records a whole message at once.
func (t *tracker) add(primary string, ids []string) {
	m := t.begin(len(ids))
	defer t.end()
	t.addPart(m, 0, primary)
	for i, id := range ids[1:] {
		t.addPart(m, i+1, id)
	}
}

// waitChange returns a channel closed at the next registration, and
// whether any send is in flight (else there is nothing to wait for).
func (t *tracker) waitChange() (<-chan struct{}, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed, t.inflight > 0
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
// whether it should be reported at all by the multipart rule; found is
// false for an id the tracker does not hold. commit must be called after
// the sink took the report.
func (t *tracker) resolve(id, status string) (primary string, report bool, commit func(), found bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.evict(now)
	e, ok := t.byKey[normID(id)]
	if !ok {
		return id, true, func() {}, false
	}
	m := e.msg
	switch {
	case m.primary == "":
		report = false // the first part never left: no SendResult to report under
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
	return m.primary, report, commit, true
}
