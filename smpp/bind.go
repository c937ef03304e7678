package smpp

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"
)

// stableLink is how long a link must have lived for its end to reset the
// reconnect backoff; a link that dies sooner (an SMSC that accepts the bind
// and drops it at once) is redialled with growing waits.
const stableLink = 30 * time.Second

// bind keeps one bind (one TCP session) up: it dials, binds, and after a
// failure or a drop rebinds with exponential backoff, until its context
// ends. Its token bucket outlives the links, so reconnecting never resets
// the TPS budget.
type bind struct {
	s      *Sender
	index  int
	mode   CommandID // BindTransceiver, BindTransmitter or BindReceiver
	bucket *bucket

	mu  sync.Mutex
	cur *link
}

// transmits reports whether the bind can submit.
func (b *bind) transmits() bool { return b.mode != BindReceiver }

// link returns the bound link, or nil.
func (b *bind) link() *link {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cur
}

func (b *bind) set(l *link) {
	b.mu.Lock()
	b.cur = l
	b.mu.Unlock()
	b.s.notify()
}

// run is the bind's loop; it returns when ctx ends, after unbinding.
func (b *bind) run(ctx context.Context) {
	cfg := &b.s.cfg
	log := b.s.log.With("bind", b.index, "mode", b.mode.String())
	backoff := cfg.ReconnectMin
	wait := func() bool {
		d := backoff/2 + rand.N(backoff/2+1) // jitter: [backoff/2, backoff]
		backoff = min(backoff*2, cfg.ReconnectMax)
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for {
		l, err := dialLink(ctx, b.s.linkConfig(b.mode, log))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var se *StatusError
			if errors.As(err, &se) {
				log.Error("smpp: bind refused", "addr", cfg.Addr, "system_id", cfg.SystemID, "status", se.Status.String())
			} else {
				log.Warn("smpp: bind failed", "addr", cfg.Addr, "err", err)
			}
			if !wait() {
				return
			}
			continue
		}
		up := time.Now()
		log.Info("smpp: bound", "addr", cfg.Addr, "smsc", l.smsc)
		b.set(l)
		select {
		case <-l.done:
		case <-ctx.Done():
			b.set(nil)
			l.unbind()
			l.wait()
			return
		}
		b.set(nil)
		l.wait()
		log.Warn("smpp: link lost, rebinding", "err", l.closedErr())
		if time.Since(up) >= stableLink {
			backoff = cfg.ReconnectMin
			continue
		}
		if !wait() {
			return
		}
	}
}
