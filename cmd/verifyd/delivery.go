package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/console"
	"github.com/verifyd/verifyd/internal/metrics"
	"github.com/verifyd/verifyd/router"
	"github.com/verifyd/verifyd/service"
	"github.com/verifyd/verifyd/sip"
	"github.com/verifyd/verifyd/smpp"
	"github.com/verifyd/verifyd/telnyx"
	"github.com/verifyd/verifyd/twilio"
)

// defaultSendTimeout is the worker's send timeout without SIP senders.
const defaultSendTimeout = 15 * time.Second

// serviceOptions sets what the config file decides in the core: the
// channels that have a route (others answer V0009) and the flash-call
// caller-ID range of the SIP senders. Without a file the defaults stay:
// every channel, through the console sender.
func (fc *fileConfig) serviceOptions(o *service.Options) {
	if fc == nil {
		return
	}
	seen := map[verifyd.Channel]bool{}
	o.Channels = []verifyd.Channel{}
	for _, r := range fc.Routes {
		if ch := verifyd.Channel(r.Channel); !seen[ch] {
			seen[ch] = true
			o.Channels = append(o.Channels, ch)
		}
	}
	for _, r := range fc.Routes {
		if r.Channel != string(verifyd.Flashcall) {
			continue
		}
		for _, name := range r.Senders {
			if s := fc.sender(name); s.Type == typeSIP {
				o.FlashCallerPrefix = s.SIP.FlashPrefix
				o.FlashDigits = cmpOr(s.SIP.FlashDigits, sip.DefaultConfig().FlashDigits)
				return // validate: all flashcall SIP senders agree
			}
		}
	}
}

// delivery is what the worker sends through: the console sender alone (no
// config file), or a router over the configured senders; plus the
// lifecycles of those senders and their receipt endpoints.
type delivery struct {
	sender      verifyd.Sender
	router      *router.Router // nil without a config file
	names       []string
	sendTimeout time.Duration
	callbacks   map[string]http.Handler // POST pattern → handler
	starters    []func(context.Context) error
	closers     []func() error // in close order
	log         *slog.Logger
}

// openDelivery builds the senders. Without a config file it is the console
// sender writing to consoleOut (stdout when empty). Receipts go to sink.
// Nothing connects yet: start does.
func openDelivery(fc *fileConfig, cfg config, sink verifyd.ReceiptSink, reg prometheus.Registerer, log *slog.Logger, stdout io.Writer) (d *delivery, err error) {
	d = &delivery{sendTimeout: defaultSendTimeout, callbacks: map[string]http.Handler{}, log: log}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	openConsole := func(out string) (verifyd.Sender, error) {
		if console.IsStdout(out) {
			return console.New(stdout), nil
		}
		cs, err := console.Open(out)
		if err != nil {
			return nil, err
		}
		d.closers = append(d.closers, cs.Close)
		return cs, nil
	}
	if fc == nil {
		d.sender, err = openConsole(cfg.ConsoleOut)
		d.names = []string{"console"}
		return d, err
	}

	senders := map[string]verifyd.Sender{}
	var smpps []*smpp.Sender
	var sips []*sip.Sender
	for _, s := range fc.Senders {
		lg := log // the adapters name their sender in their own log lines
		switch s.Type {
		case typeConsole:
			out := s.Console.Out
			if out == "" {
				out = cfg.ConsoleOut
			}
			cs, err := openConsole(out)
			if err != nil {
				return nil, fmt.Errorf("sender %s: %w", s.Name, err)
			}
			senders[s.Name] = cs
		case typeSMPP:
			c := s.SMPP
			sc := c.config(s.Name, nil)
			if c.TLS != nil {
				host, _, _ := net.SplitHostPort(c.Address)
				if sc.TLS, err = c.TLS.config(host); err != nil {
					return nil, fmt.Errorf("sender %s: %w", s.Name, err)
				}
			}
			ss, err := smpp.New(sc, sink, lg)
			if err != nil {
				return nil, fmt.Errorf("sender %s: %w", s.Name, err)
			}
			smpps = append(smpps, ss)
			senders[s.Name] = ss
		case typeTwilio:
			tc := s.Twilio.config(s.Name)
			tc.Logger = lg
			ts, err := twilio.New(tc)
			if err != nil {
				return nil, fmt.Errorf("sender %s: %w", s.Name, err)
			}
			senders[s.Name] = ts
			d.callbacks["POST /callbacks/twilio/"+s.Name] = ts.CallbackHandler(sink)
		case typeTelnyx:
			tc := s.Telnyx.config(s.Name)
			tc.Logger = lg
			ts, err := telnyx.New(tc)
			if err != nil {
				return nil, fmt.Errorf("sender %s: %w", s.Name, err)
			}
			senders[s.Name] = ts
			d.callbacks["POST /callbacks/telnyx/"+s.Name] = ts.WebhookHandler(sink)
		case typeSIP:
			journal := s.SIP.JournalDir
			if journal == "" {
				if cfg.isPostgres() {
					return nil, &configError{fc.path, "senders (" + s.Name + ").sip.journal_dir",
						"is required with PostgreSQL (each node needs its own local journal directory)"}
				}
				journal = cfg.DB + ".sip-" + s.Name
			}
			sc, err := s.SIP.config(s.Name, journal)
			if err != nil {
				return nil, fmt.Errorf("sender %s: %w", s.Name, err)
			}
			ss, err := sip.New(sc, lg)
			if err != nil {
				return nil, fmt.Errorf("sender %s: %w", s.Name, err)
			}
			sips = append(sips, ss)
			senders[s.Name] = ss
			// A voice call takes up to CallTimeout: the worker must wait for it.
			d.sendTimeout = max(d.sendTimeout, sc.CallTimeout+5*time.Second)
		}
	}
	// Closed in reverse order of opening, after the worker stopped: calls
	// in progress end, then SMPP binds unbind (receipts of messages just
	// sent may still arrive until then).
	for _, ss := range smpps {
		d.starters = append(d.starters, ss.Start)
		d.closers = append(d.closers, ss.Close)
	}
	for _, ss := range sips {
		d.starters = append(d.starters, ss.Open)
		d.closers = append(d.closers, ss.Close)
	}

	routes := make([]router.Route, len(fc.Routes))
	for i, r := range fc.Routes {
		prefixes := make([]string, len(r.Prefixes))
		for j, p := range r.Prefixes {
			prefixes[j] = strings.TrimPrefix(p, "+")
		}
		routes[i] = router.Route{Channel: verifyd.Channel(r.Channel), Prefixes: prefixes, Senders: r.Senders}
	}
	m := newSenderMetrics(reg)
	rt, err := router.New(router.Config{Routes: routes, FailureThreshold: fc.Router.FailureThreshold,
		Cooldown: fc.Router.Cooldown, AttemptTimeout: fc.Router.AttemptTimeout, Observe: m.observe,
		Logger: log.With("component", "router")}, senders)
	if err != nil {
		return nil, &configError{fc.path, "routes", err.Error()}
	}
	d.sender, d.router = rt, rt
	d.names = slices.Sorted(maps.Keys(senders))
	m.watchCircuits(reg, rt, d.names)
	return d, nil
}

// start connects the senders: SMPP binds come up in the background (Start
// returns at once), SIP transports bind before it returns.
func (d *delivery) start(ctx context.Context) error {
	for _, start := range d.starters {
		if err := start(ctx); err != nil {
			return err
		}
	}
	return nil
}

// close stops every sender, in order; it is idempotent per sender.
func (d *delivery) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i](); err != nil && d.log != nil {
			d.log.Warn("closing a sender failed", "err", err.Error())
		}
	}
	d.closers = nil
}

// workerOptions sizes the worker for the senders: a send may take a whole
// voice call, and a job's lease must outlast its send.
func (d *delivery) workerOptions(lease time.Duration) service.WorkerOptions {
	return service.WorkerOptions{Lease: max(lease, d.sendTimeout+15*time.Second), SendTimeout: d.sendTimeout}
}

// handler mounts the providers' receipt endpoints beside the API: POST
// /callbacks/twilio/{name} and /callbacks/telnyx/{name}; everything else
// goes to api.
func (d *delivery) handler(api http.Handler) http.Handler {
	if len(d.callbacks) == 0 {
		return api
	}
	mux := http.NewServeMux()
	mux.Handle("/", api)
	for pattern, h := range d.callbacks {
		mux.Handle(pattern, h)
	}
	return mux
}

// describe names the senders for the "listening" log line.
func (d *delivery) describe() string {
	if d.router == nil {
		return "console"
	}
	return "router(" + strings.Join(d.names, ",") + ")"
}

// senderMetrics count the router's attempts per sender and outcome.
type senderMetrics struct {
	attempts *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newSenderMetrics(reg prometheus.Registerer) *senderMetrics {
	m := &senderMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_sender_attempts_total",
			Help: "Delivery attempts by sender and outcome (sent, error, permanent_error, skipped: circuit open).",
		}, []string{"sender", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "verifyd_sender_attempt_duration_seconds",
			Help:    "Duration of delivery attempts that reached a sender, by sender.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"sender"}),
	}
	if reg != nil {
		m.attempts = metrics.Register(reg, m.attempts)
		m.duration = metrics.Register(reg, m.duration)
	}
	return m
}

func (m *senderMetrics) observe(a router.Attempt) {
	outcome := a.Outcome
	if a.Outcome == router.OutcomeError && a.Permanent {
		outcome = "permanent_error"
	}
	m.attempts.WithLabelValues(a.Sender, outcome).Inc()
	if a.Outcome != router.OutcomeSkipped {
		m.duration.WithLabelValues(a.Sender).Observe(a.Duration.Seconds())
	}
}

// watchCircuits exports each sender's circuit state: 1 while it is open or
// half-open (the router skips it), else 0.
func (m *senderMetrics) watchCircuits(reg prometheus.Registerer, rt *router.Router, names []string) {
	if reg == nil {
		return
	}
	for _, name := range names {
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "verifyd_sender_circuit_open",
			Help:        "1 while the sender's circuit breaker is open or half-open, else 0.",
			ConstLabels: prometheus.Labels{"sender": name},
		}, func() float64 {
			if rt.State(name) == router.StateClosed {
				return 0
			}
			return 1
		})
		if err := reg.Register(g); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
}
