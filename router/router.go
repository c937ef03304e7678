// Package router is a verifyd.Sender that picks, for each message, a route
// by channel and longest matching destination prefix, and tries the route's
// senders in order: a transient failure or an open circuit moves on to the
// next sender, a permanent refusal (ECHANNEL) stops. Each sender has a
// circuit breaker shared by every route that names it.
package router

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/verifyd/verifyd"
)

// Defaults of Config.
const (
	DefaultFailureThreshold = 5
	DefaultCooldown         = 30 * time.Second
)

// Route sends one channel's messages to some destinations through an
// ordered list of senders.
type Route struct {
	Channel verifyd.Channel
	// Prefixes are E.164 digits after the '+' ("44", "4477"); "" or "*"
	// matches any destination, and so does an empty list.
	Prefixes []string
	// Senders are names of the senders map given to New, tried in order.
	Senders []string
}

// Attempt is one try of one sender for one message, reported to
// Config.Observe.
type Attempt struct {
	MessageID         string
	Channel           verifyd.Channel
	Route             string // "sms/44", "call/*"
	Sender            string
	ProviderMessageID string
	Parts             int
	Outcome           string // OutcomeSent, OutcomeError or OutcomeSkipped
	Error             string // the sender's error text, or why it was skipped
	Permanent         bool   // the error was a permanent (ECHANNEL) refusal
	Duration          time.Duration
}

// Attempt outcomes.
const (
	OutcomeSent    = "sent"
	OutcomeError   = "error"
	OutcomeSkipped = "skipped"
)

// Config configures a Router.
type Config struct {
	Routes []Route
	// FailureThreshold is how many consecutive failures open a sender's
	// circuit; default DefaultFailureThreshold.
	FailureThreshold int
	// Cooldown is how long an open circuit skips its sender before one
	// trial; default DefaultCooldown.
	Cooldown time.Duration
	// AttemptTimeout, if set, bounds each sender's attempt, so a hanging
	// sender leaves time for the next one; otherwise attempts share the
	// caller's deadline.
	AttemptTimeout time.Duration
	// Now is the clock of breakers and durations; default time.Now.
	Now func() time.Time
	// Observe, if set, is called synchronously with every attempt (metrics,
	// attempt records). It must be quick and safe for concurrent use.
	Observe func(Attempt)
	Logger  *slog.Logger
}

// Router is a verifyd.Sender, verifyd.AttemptSender and verifyd.Reconciler
// over named senders. It
// is safe for concurrent use.
type Router struct {
	routes   []route
	senders  map[string]verifyd.Sender
	breakers map[string]*breaker
	timeout  time.Duration
	now      func() time.Time
	observe  func(Attempt)
	log      *slog.Logger
}

// route is a Route with one prefix.
type route struct {
	channel verifyd.Channel
	prefix  string
	name    string
	senders []string
}

// New returns a router over senders (by name) for cfg. It refuses routes
// naming unknown senders, prefixes that are not digits, a channel and
// prefix given twice, and routes without senders.
func New(cfg Config, senders map[string]verifyd.Sender) (*Router, error) {
	r := &Router{
		senders:  senders,
		breakers: make(map[string]*breaker, len(senders)),
		timeout:  cfg.AttemptTimeout,
		now:      cfg.Now,
		observe:  cfg.Observe,
		log:      cfg.Logger,
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	threshold, cooldown := cfg.FailureThreshold, cfg.Cooldown
	if threshold <= 0 {
		threshold = DefaultFailureThreshold
	}
	if cooldown <= 0 {
		cooldown = DefaultCooldown
	}
	for name, s := range senders {
		if s == nil {
			return nil, fmt.Errorf("router: sender %q is nil", name)
		}
		r.breakers[name] = &breaker{threshold: threshold, cooldown: cooldown}
	}
	seen := map[string]bool{}
	for i, rt := range cfg.Routes {
		if rt.Channel == "" {
			return nil, fmt.Errorf("router: route %d has no channel", i)
		}
		if len(rt.Senders) == 0 {
			return nil, fmt.Errorf("router: route %d (%s) has no senders", i, rt.Channel)
		}
		for _, name := range rt.Senders {
			if _, ok := senders[name]; !ok {
				return nil, fmt.Errorf("router: route %d (%s) names unknown sender %q", i, rt.Channel, name)
			}
		}
		prefixes := rt.Prefixes
		if len(prefixes) == 0 {
			prefixes = []string{""}
		}
		for _, p := range prefixes {
			if p == "*" {
				p = ""
			}
			if strings.Trim(p, "0123456789") != "" {
				return nil, fmt.Errorf("router: route %d (%s): prefix %q is not E.164 digits", i, rt.Channel, p)
			}
			key := string(rt.Channel) + "/" + p
			if seen[key] {
				return nil, fmt.Errorf("router: channel %s, prefix %q is routed twice", rt.Channel, p)
			}
			seen[key] = true
			name := cmp.Or(p, "*")
			r.routes = append(r.routes, route{channel: rt.Channel, prefix: p, name: string(rt.Channel) + "/" + name, senders: rt.Senders})
		}
	}
	return r, nil
}

// match returns the route of m's channel with the longest prefix of m.To,
// or nil. A message without a channel is an SMS.
func (r *Router) match(m *verifyd.Message) *route {
	ch := m.Channel
	if ch == "" {
		ch = verifyd.SMS
	}
	digits := strings.TrimPrefix(m.To, "+")
	var best *route
	for i := range r.routes {
		rt := &r.routes[i]
		if rt.channel == ch && strings.HasPrefix(digits, rt.prefix) && (best == nil || len(rt.prefix) > len(best.prefix)) {
			best = rt
		}
	}
	return best
}

// Send sends m through the first sender of its route that takes it. With
// no route it returns ECHANNEL; with a sender's permanent refusal, that
// refusal; when every sender failed or was skipped, a transient error
// naming each of them.
func (r *Router) Send(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	res, _, err := r.SendAttempts(ctx, m)
	return res, err
}

// SendAttempts is Send, returning also each sender's try, in order (see
// verifyd.AttemptSender): "error" for a failure, "skipped" for an open
// circuit, the result's status (sent) for the sender that took it. Each
// try is also reported to Config.Observe as it ends.
func (r *Router) SendAttempts(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, []*verifyd.DeliveryAttempt, error) {
	rt := r.match(m)
	if rt == nil {
		return nil, nil, verifyd.Errorf(verifyd.ECHANNEL, "No route for %s messages to this destination.", cmp.Or(string(m.Channel), string(verifyd.SMS)))
	}
	var failures []string
	var tries []*verifyd.DeliveryAttempt
	report := func(a Attempt, at time.Time, status string) {
		r.report(a)
		outcome := a.Outcome
		switch a.Outcome {
		case OutcomeSent:
			outcome = cmp.Or(status, verifyd.DeliverySent)
		case OutcomeError:
			outcome = verifyd.AttemptError
		case OutcomeSkipped:
			outcome = verifyd.AttemptSkipped
		}
		tries = append(tries, &verifyd.DeliveryAttempt{Sender: a.Sender, ProviderMessageID: a.ProviderMessageID,
			Parts: a.Parts, Outcome: outcome, Error: a.Error, At: at})
	}
	for _, name := range rt.senders {
		a := Attempt{MessageID: m.ID, Channel: m.Channel, Route: rt.name, Sender: name}
		b := r.breakers[name]
		at := r.now()
		if !b.allow(at) {
			a.Outcome, a.Error = OutcomeSkipped, "circuit open"
			report(a, at, "")
			failures = append(failures, name+": circuit open")
			continue
		}
		res, err := r.attempt(ctx, name, m, &a)
		switch {
		case err == nil:
			b.succeeded()
			a.Outcome, a.ProviderMessageID, a.Parts, a.Error = OutcomeSent, res.ProviderMessageID, res.Parts, res.Cause
			report(a, at, res.Status)
			if res.Sender == "" {
				res.Sender = name
			}
			return res, tries, nil
		case verifyd.ErrorCode(err) == verifyd.ECHANNEL:
			// The sender is up and refused the message for good.
			b.succeeded()
			a.Outcome, a.Error, a.Permanent = OutcomeError, err.Error(), true
			report(a, at, "")
			return nil, tries, err
		case errors.Is(ctx.Err(), context.Canceled):
			// The caller gave up (shutdown): no word on the sender.
			b.abandoned()
			a.Outcome, a.Error = OutcomeError, err.Error()
			report(a, at, "")
			return nil, tries, fmt.Errorf("router: %s message %s: %s: %w", rt.name, m.ID, name, err)
		default:
			if b.failed(r.now()) {
				r.log.WarnContext(ctx, "sender circuit open", "sender", name, "until", r.now().Add(b.cooldown))
			}
			a.Outcome, a.Error = OutcomeError, err.Error()
			report(a, at, "")
			failures = append(failures, name+": "+err.Error())
			r.log.WarnContext(ctx, "sender failed; trying the next", "route", rt.name, "sender", name, "message", m.ID, "err", err.Error())
			if ctx.Err() != nil {
				return nil, tries, fmt.Errorf("router: %s message %s: no time left after %s", rt.name, m.ID, strings.Join(failures, "; "))
			}
		}
	}
	return nil, tries, fmt.Errorf("router: no sender of route %s took message %s: %s", rt.name, m.ID, strings.Join(failures, "; "))
}

// attempt runs one sender's Send, timing it into a.
func (r *Router) attempt(ctx context.Context, name string, m *verifyd.Message, a *Attempt) (*verifyd.SendResult, error) {
	if r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	start := r.now()
	res, err := r.senders[name].Send(ctx, m)
	a.Duration = r.now().Sub(start)
	if err == nil && res == nil {
		err = errors.New("sender returned no result")
	}
	return res, err
}

func (r *Router) report(a Attempt) {
	if r.observe != nil {
		r.observe(a)
	}
}

// Sent asks every sender that implements verifyd.Reconciler whether message
// id left through it: true as soon as one says so; otherwise false, with
// the senders' errors joined if any failed to answer. With no such sender
// it is false, nil: the message is sent again.
func (r *Router) Sent(ctx context.Context, id string) (bool, error) {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(r.senders)) {
		rec, ok := r.senders[name].(verifyd.Reconciler)
		if !ok {
			continue
		}
		sent, err := rec.Sent(ctx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("router: %s: %w", name, err))
			continue
		}
		if sent {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

// State returns the circuit state of sender name (StateClosed, StateOpen or
// StateHalfOpen), or "" for an unknown name; for health pages and gauges.
func (r *Router) State(name string) string {
	b, ok := r.breakers[name]
	if !ok {
		return ""
	}
	return b.state(r.now())
}

var (
	_ verifyd.AttemptSender = (*Router)(nil)
	_ verifyd.Reconciler    = (*Router)(nil)
)
