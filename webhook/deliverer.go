package webhook

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/verifyd/verifyd"
)

// Keys gives the deliverer an account's current signing key.
type Keys interface {
	SigningKey(ctx context.Context, accountID string) (ed25519.PrivateKey, error)
}

// Options configure a Deliverer. Zero values take the defaults.
type Options struct {
	// Worker names this node in leases (default: a random ID).
	Worker string
	// AttemptsPerURL is how many times each URL is tried in a round
	// (default 5: ≈2, 4, 8, 16 s apart, so a receiver down for half a
	// minute loses nothing before the failover URL is tried).
	AttemptsPerURL int
	// Backoff is the first retry delay (default 2 s); each next one
	// doubles, up to MaxBackoff (default 5 min), ±20% jitter.
	Backoff, MaxBackoff time.Duration
	// Concurrency bounds the POSTs in flight on this node (default 128);
	// PerEndpoint those to one host (default 16). A delivery whose host is
	// at its limit goes back to the store for later without counting as
	// an attempt, so one slow receiver holds at most PerEndpoint slots.
	Concurrency, PerEndpoint int
	// Poll is how often the store is asked for due deliveries when there
	// were none (default 50 ms); Lease how long a claim holds (default
	// 1 min, well above the 5 s attempt timeout).
	Poll, Lease time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *Metrics
}

// Deliverer claims due deliveries from the store and POSTs them.
type Deliverer struct {
	store  verifyd.WebhookStore
	keys   Keys
	client *Client
	opts   Options

	slots chan struct{} // one per POST in flight on this node
	done  chan verifyd.WebhookOutcome

	mu        sync.Mutex
	endpoints map[string]*endpoint
	// pause holds profiles whose receiver was found saturated, with when
	// it may have room (written by run after each claim); paused what was
	// last written, so a profile is paused again only when that runs out.
	pause  map[string]time.Time
	paused map[string]time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// endpoint is one receiver host's state on this node: its POSTs in flight
// (at most PerEndpoint) and the claimed deliveries waiting for one of them
// (at most 4×PerEndpoint; beyond that they go back to the store).
type endpoint struct {
	inflight int
	queue    []*verifyd.WebhookDelivery
	latency  time.Duration // moving average of answered attempts
}

// New returns a Deliverer; Start runs it.
func New(store verifyd.WebhookStore, keys Keys, client *Client, opts Options) *Deliverer {
	if opts.Worker == "" {
		opts.Worker = verifyd.NewOrderedID()
	}
	if opts.AttemptsPerURL <= 0 {
		opts.AttemptsPerURL = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 2 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 128
	}
	if opts.PerEndpoint <= 0 {
		opts.PerEndpoint = 16
	}
	if opts.Poll <= 0 {
		opts.Poll = 50 * time.Millisecond
	}
	if opts.Lease <= 0 {
		opts.Lease = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	return &Deliverer{store: store, keys: keys, client: client, opts: opts,
		slots: make(chan struct{}, opts.Concurrency), done: make(chan verifyd.WebhookOutcome, opts.Concurrency),
		endpoints: map[string]*endpoint{}, pause: map[string]time.Time{}, paused: map[string]time.Time{}}
}

// Start runs the claim loop and the finisher until Stop.
func (d *Deliverer) Start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	finished := make(chan struct{})
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.finisher(finished) }()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.run(ctx)
		// Let the POSTs in flight end (their context is cancelled), hand
		// the queued deliveries back (due at once, for any node), then stop
		// the finisher after it wrote all their outcomes.
		for range cap(d.slots) {
			d.slots <- struct{}{}
		}
		d.mu.Lock()
		for _, ep := range d.endpoints {
			for _, w := range ep.queue {
				d.done <- verifyd.WebhookOutcome{EventID: w.Event.ID, AccountID: w.Event.AccountID, Worker: d.opts.Worker, Now: d.opts.Now(),
					State: verifyd.WebhookPending, NextAt: d.opts.Now(), Error: w.LastError}
			}
			d.opts.Metrics.queued.Sub(float64(len(ep.queue)))
			ep.queue = nil
		}
		d.mu.Unlock()
		close(finished)
	}()
}

// Stop cancels the deliveries in flight and waits for their outcomes to be
// written. Deliveries left undelivered are due again when their lease
// lapses (another node, or this one after a restart, takes them).
func (d *Deliverer) Stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
}

func (d *Deliverer) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	saturated := 0 // > 0: receivers were saturated recently; full claims left before normal mode
	probe := 0
	failures := 0 // consecutive failed claims
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		// Queued deliveries hold no slot: a slow receiver's queue must not
		// stop the others' claims (it is bounded per endpoint instead).
		free := cap(d.slots) - len(d.slots)
		n := 0
		if free > 0 {
			// While receivers are saturated, most claims take only fresh
			// events (cheap, and the ones most likely to go to receivers with
			// room); every 8th also looks at retries, paused and put-back
			// deliveries, in a small batch, so a backlog costs the store
			// little while it cannot be sent anyway.
			p := verifyd.ClaimParams{Worker: d.opts.Worker, Now: d.opts.Now(), Lease: d.opts.Lease, Limit: min(free, 256)}
			if saturated > 0 {
				probe++
				if p.FreshOnly = probe%8 != 0; !p.FreshOnly {
					p.Limit = min(p.Limit, 32)
				}
			}
			ds, err := d.store.ClaimWebhooks(ctx, p)
			if err != nil {
				// The store is down or failing: back off (up to 5 s) and log
				// the first failure and every 20th, not every poll.
				if failures++; failures == 1 || failures%20 == 0 {
					if ctx.Err() == nil {
						d.opts.Logger.Warn("webhook claim failed", "error", err.Error(), "failures", failures)
					}
				}
				timer.Reset(min(d.opts.Poll<<min(failures, 7), 5*time.Second))
				continue
			}
			failures = 0
			n = len(ds)
			left := 0
			for _, w := range ds {
				if !d.dispatch(ctx, w) {
					left++
				}
			}
			if left > 0 {
				d.pauseProfiles(ctx)
				saturated = 8 // claims until the mode ends, unless deliveries are left again
			} else if saturated > 0 && !p.FreshOnly {
				saturated-- // a full claim that left nothing behind
			}
			if n == p.Limit && left == 0 {
				timer.Reset(0) // there may be more
				continue
			}
		}
		timer.Reset(d.opts.Poll)
	}
}

// pauseProfiles writes the pauses dispatch asked for, each profile at most
// once per pause it is under.
func (d *Deliverer) pauseProfiles(ctx context.Context) {
	d.mu.Lock()
	todo := map[string]time.Time{}
	for p, until := range d.pause {
		if last, ok := d.paused[p]; !ok || !last.After(d.opts.Now()) {
			todo[p] = until
			d.paused[p] = until
		}
	}
	clear(d.pause)
	if len(d.paused) > 10000 {
		clear(d.paused)
	}
	d.mu.Unlock()
	for p, until := range todo {
		if err := d.store.PauseWebhooks(ctx, p, until); err != nil && ctx.Err() == nil {
			d.opts.Logger.Warn("webhook pause not recorded", "profile_id", p, "error", err.Error())
		}
	}
}

// target returns the URL the next attempt of w goes to and how many
// attempts that URL already had in this round, or "" when the round is
// over: AttemptsPerURL to the webhook_url, then as many to the failover.
func (d *Deliverer) target(w *verifyd.WebhookDelivery) (string, int) {
	urls := make([]string, 0, 2)
	if w.URL != "" {
		urls = append(urls, w.URL)
	}
	if w.FailoverURL != "" && w.FailoverURL != w.URL {
		urls = append(urls, w.FailoverURL)
	}
	n := w.Attempts - w.RoundStart // attempts made in this round
	if i := n / d.opts.AttemptsPerURL; i < len(urls) {
		return urls[i], n % d.opts.AttemptsPerURL
	}
	return "", 0
}

// dispatch starts one delivery or queues it behind its endpoint's POSTs in
// flight; it returns false when that queue is full and the delivery was left
// to come due again after its lease.
func (d *Deliverer) dispatch(ctx context.Context, w *verifyd.WebhookDelivery) bool {
	now := d.opts.Now()
	target, _ := d.target(w)
	if target == "" {
		out := verifyd.WebhookOutcome{EventID: w.Event.ID, AccountID: w.Event.AccountID, Worker: d.opts.Worker, Now: now,
			State: verifyd.WebhookFailed, Error: w.LastError}
		if w.URL == "" && w.FailoverURL == "" {
			out.Error = "the profile has no webhook_url"
		}
		d.opts.Metrics.outcome("failed")
		d.done <- out
		return true
	}
	host := hostOf(target)
	d.mu.Lock()
	ep := d.endpoints[host]
	if ep == nil {
		ep = &endpoint{}
		d.endpoints[host] = ep
	}
	switch {
	case ep.inflight < d.opts.PerEndpoint:
		ep.inflight++
		d.mu.Unlock()
		d.slots <- struct{}{}
		d.opts.Metrics.inflight.Inc()
		go d.post(ctx, w, host)
	case len(ep.queue) < d.queueCap(ep):
		ep.queue = append(ep.queue, w)
		d.opts.Metrics.queued.Inc()
		d.mu.Unlock()
	case ep.latency < slowEndpoint:
		// A fast receiver with a full queue (a burst): it drains within
		// about a second, so put the delivery back due shortly.
		d.mu.Unlock()
		d.opts.Metrics.deferred.Inc()
		d.done <- verifyd.WebhookOutcome{EventID: w.Event.ID, AccountID: w.Event.AccountID, Worker: d.opts.Worker,
			Now: now, State: verifyd.WebhookPending, NextAt: now.Add(200 * time.Millisecond), Error: w.LastError}
	default:
		// A slow receiver, saturated: leave the delivery with its lease, so
		// it comes due again when the lease lapses. No write at all: a slow
		// receiver's backlog costs the store one claim per lease period,
		// not a claim and a put-back each time it is looked at. And pause
		// the profile, so its new events are born due when the endpoint
		// may have room instead of being claimed at once.
		drain := time.Duration(len(ep.queue)+ep.inflight) * ep.latency / time.Duration(d.opts.PerEndpoint)
		d.pause[w.Event.ProfileID] = now.Add(min(max(drain, 5*time.Second), time.Minute))
		d.mu.Unlock()
		d.opts.Metrics.deferred.Inc()
		return false
	}
	return true
}

// slowEndpoint is the mean answer time from which a receiver counts as
// slow: its excess deliveries are left for later and its profile paused.
// Until a receiver has answered, it counts as fast (its excess is put back
// for 200 ms: a burst to a new receiver is not held for a lease).
const slowEndpoint = 250 * time.Millisecond

// queueCap is how many claimed deliveries may wait for ep: about a second
// of its work (4×PerEndpoint at least, 1024 at most), so a fast receiver
// absorbs bursts and a slow one holds few claimed deliveries.
func (d *Deliverer) queueCap(ep *endpoint) int {
	c := 4 * d.opts.PerEndpoint
	if ep.latency > 0 {
		c = max(c, min(1024, int(time.Duration(d.opts.PerEndpoint)*time.Second/ep.latency)))
	}
	return c
}

// post delivers w, then the deliveries queued behind its endpoint, holding
// one slot throughout.
func (d *Deliverer) post(ctx context.Context, w *verifyd.WebhookDelivery, host string) {
	defer func() {
		d.opts.Metrics.inflight.Dec()
		<-d.slots
	}()
	for w != nil {
		target, _ := d.target(w)
		d.done <- d.deliver(ctx, w, target, host)
		d.mu.Lock()
		ep := d.endpoints[host]
		w = nil
		if len(ep.queue) > 0 && ctx.Err() == nil {
			w, ep.queue = ep.queue[0], ep.queue[1:]
			d.opts.Metrics.queued.Dec()
		} else {
			ep.inflight--
			if ep.inflight == 0 && len(ep.queue) == 0 {
				delete(d.endpoints, host)
			}
		}
		d.mu.Unlock()
	}
}

func hostOf(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.Host
}

// deliver makes one attempt and returns its outcome.
func (d *Deliverer) deliver(ctx context.Context, w *verifyd.WebhookDelivery, target, host string) verifyd.WebhookOutcome {
	attempt := w.Attempts + 1
	start := d.opts.Now()
	body := Body(w.Event, attempt, target)
	var res Result
	key, err := d.keys.SigningKey(ctx, w.Event.AccountID)
	if err != nil {
		res.Err = err
	} else {
		ts, sig := Sign(key, time.Now(), body)
		h := http.Header{}
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		res = d.client.Post(ctx, target, h, body)
	}
	now := d.opts.Now()

	if res.Err == nil {
		d.mu.Lock()
		if ep := d.endpoints[host]; ep != nil {
			ep.latency = (3*ep.latency + res.Latency) / 4
		}
		d.mu.Unlock()
	}

	out := verifyd.WebhookOutcome{EventID: w.Event.ID, AccountID: w.Event.AccountID, Worker: d.opts.Worker, Now: now,
		Attempt: &verifyd.WebhookAttempt{EventID: w.Event.ID, AccountID: w.Event.AccountID, Attempt: attempt,
			URL: target, StatusCode: res.StatusCode, Latency: res.Latency, Error: res.ErrorText(),
			ResponseHead: res.Head, At: start}}
	d.opts.Metrics.latency.Observe(res.Latency.Seconds())
	if res.OK() {
		out.State = verifyd.WebhookDelivered
		d.opts.Metrics.outcome("delivered")
		d.opts.Metrics.lag.Observe(now.Sub(w.Event.OccurredAt).Seconds())
		return out
	}
	out.Error = res.ErrorText()
	if ctx.Err() != nil {
		// Shutting down: not the receiver's fault; due again at once.
		out.State, out.NextAt, out.Attempt = verifyd.WebhookPending, now, nil
		return out
	}
	next := *w
	next.Attempts++
	nextTarget, k := d.target(&next)
	if nextTarget == "" {
		out.State = verifyd.WebhookFailed
		d.opts.Metrics.outcome("failed")
		return out
	}
	d.opts.Metrics.outcome("retry")
	out.State = verifyd.WebhookPending
	if nextTarget != target && k == 0 {
		out.NextAt = now // on to the failover URL at once
	} else {
		out.NextAt = now.Add(d.backoff(k))
	}
	return out
}

// backoff returns the delay before the k-th retry (k ≥ 1) of one URL.
func (d *Deliverer) backoff(k int) time.Duration {
	b := d.opts.Backoff << min(max(k-1, 0), 20)
	if b > d.opts.MaxBackoff || b <= 0 {
		b = d.opts.MaxBackoff
	}
	return time.Duration(float64(b) * (0.8 + 0.4*rand.Float64()))
}

// finisher writes outcomes in batches: one store transaction for all the
// outcomes that arrived while the previous one ran.
func (d *Deliverer) finisher(finished <-chan struct{}) {
	batch := make([]verifyd.WebhookOutcome, 0, 256)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		// Not the deliverer's context: outcomes of a stopping node are
		// still written, so their attempts are not lost.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		errs := d.store.FinishWebhooks(ctx, batch)
		cancel()
		for i, err := range errs {
			if err != nil && err != verifyd.ErrLeaseLost {
				d.opts.Logger.Warn("webhook outcome not recorded", "event_id", batch[i].EventID, "error", err.Error())
			}
		}
		batch = batch[:0]
	}
	for {
		select {
		case o := <-d.done:
			batch = append(batch, o)
		drain:
			for len(batch) < cap(batch) {
				select {
				case o := <-d.done:
					batch = append(batch, o)
				default:
					break drain
				}
			}
			flush()
		case <-finished:
			for {
				select {
				case o := <-d.done:
					batch = append(batch, o)
				default:
					flush()
					return
				}
			}
		}
	}
}
