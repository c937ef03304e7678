package router_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/router"
)

// clock is an injected, hand-moved clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fake is a function-field sender that counts its calls. With SendFn nil
// it takes every message.
type fake struct {
	name   string
	SendFn func(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, error)

	mu    sync.Mutex
	calls int
}

func (f *fake) Send(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.SendFn != nil {
		return f.SendFn(ctx, m)
	}
	return &verifyd.SendResult{Sender: f.name, ProviderMessageID: f.name + "-id", Parts: 1, Status: verifyd.DeliverySent}, nil
}

func (f *fake) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

var errDown = errors.New("HTTP 503: unavailable")

func failing(err error) func(context.Context, *verifyd.Message) (*verifyd.SendResult, error) {
	return func(context.Context, *verifyd.Message) (*verifyd.SendResult, error) { return nil, err }
}

// recorder collects observed attempts.
type recorder struct {
	mu sync.Mutex
	a  []router.Attempt
}

func (r *recorder) Observe(a router.Attempt) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.a = append(r.a, a)
}

func (r *recorder) take() []router.Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.a
	r.a = nil
	return a
}

// outcomes renders attempts as "sender:outcome" for compact comparison.
func outcomes(as []router.Attempt) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, a.Sender+":"+a.Outcome)
	}
	return strings.Join(parts, " ")
}

func senders(fs ...*fake) map[string]verifyd.Sender {
	m := make(map[string]verifyd.Sender, len(fs))
	for _, f := range fs {
		m[f.name] = f
	}
	return m
}

func sms(to string) *verifyd.Message {
	return &verifyd.Message{ID: "job-" + to, Channel: verifyd.SMS, To: to, Text: "code 1234"}
}

func TestRouter_Route(t *testing.T) {
	anyS, uk, ukMobile, us, call, nanp := &fake{name: "any"}, &fake{name: "uk"}, &fake{name: "uk-mobile"},
		&fake{name: "us"}, &fake{name: "call"}, &fake{name: "nanp"}
	r, err := router.New(router.Config{Routes: []router.Route{
		{Channel: verifyd.SMS, Prefixes: []string{"*"}, Senders: []string{"any"}},
		{Channel: verifyd.SMS, Prefixes: []string{"447"}, Senders: []string{"uk-mobile"}},
		{Channel: verifyd.SMS, Prefixes: []string{"44"}, Senders: []string{"uk"}},
		{Channel: verifyd.SMS, Prefixes: []string{"1"}, Senders: []string{"nanp"}},
		{Channel: verifyd.SMS, Prefixes: []string{"1555", "1212"}, Senders: []string{"us"}},
		{Channel: verifyd.Call, Senders: []string{"call"}},
	}}, senders(anyS, uk, ukMobile, us, call, nanp))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		channel verifyd.Channel
		to      string
		want    string // sender, or "" for no route
	}{
		{"Fallback", verifyd.SMS, "+33612345678", "any"},
		{"Country", verifyd.SMS, "+441632960000", "uk"},
		{"LongestPrefix", verifyd.SMS, "+447700900123", "uk-mobile"},
		{"SecondPrefixOfRoute", verifyd.SMS, "+12125550100", "us"},
		{"FirstPrefixOfRoute", verifyd.SMS, "+15551234567", "us"},
		{"ShorterPrefix", verifyd.SMS, "+13125550100", "nanp"},
		{"NoPlus", verifyd.SMS, "447700900123", "uk-mobile"},
		{"EmptyChannelIsSMS", "", "+441632960000", "uk"},
		{"OtherChannel", verifyd.Call, "+447700900123", "call"},
		{"NoRoute", verifyd.Flashcall, "+447700900123", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sms(tc.to)
			m.Channel = tc.channel
			res, err := r.Send(context.Background(), m)
			if tc.want == "" {
				if verifyd.ErrorCode(err) != verifyd.ECHANNEL {
					t.Fatalf("err = %v, want ECHANNEL", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Sender != tc.want {
				t.Fatalf("sent by %q, want %q", res.Sender, tc.want)
			}
		})
	}
}

func TestNew_Invalid(t *testing.T) {
	ss := senders(&fake{name: "a"}, &fake{name: "b"})
	for _, tc := range []struct {
		name   string
		routes []router.Route
		want   string
	}{
		{"UnknownSender", []router.Route{{Channel: verifyd.SMS, Senders: []string{"a", "c"}}}, `unknown sender "c"`},
		{"PlusInPrefix", []router.Route{{Channel: verifyd.SMS, Prefixes: []string{"+44"}, Senders: []string{"a"}}}, "not E.164 digits"},
		{"LetterInPrefix", []router.Route{{Channel: verifyd.SMS, Prefixes: []string{"4a"}, Senders: []string{"a"}}}, "not E.164 digits"},
		{"Twice", []router.Route{
			{Channel: verifyd.SMS, Prefixes: []string{"44"}, Senders: []string{"a"}},
			{Channel: verifyd.SMS, Prefixes: []string{"1", "44"}, Senders: []string{"b"}},
		}, "routed twice"},
		{"StarAndEmptyAreOne", []router.Route{
			{Channel: verifyd.SMS, Prefixes: []string{"*"}, Senders: []string{"a"}},
			{Channel: verifyd.SMS, Senders: []string{"b"}},
		}, "routed twice"},
		{"NoSenders", []router.Route{{Channel: verifyd.SMS}}, "no senders"},
		{"NoChannel", []router.Route{{Senders: []string{"a"}}}, "no channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := router.New(router.Config{Routes: tc.routes}, ss)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func newRouter(t *testing.T, cfg router.Config, fs ...*fake) (*router.Router, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg.Observe = rec.Observe
	if cfg.Routes == nil {
		var names []string
		for _, f := range fs {
			names = append(names, f.name)
		}
		cfg.Routes = []router.Route{{Channel: verifyd.SMS, Prefixes: []string{"*"}, Senders: names}}
	}
	r, err := router.New(cfg, senders(fs...))
	if err != nil {
		t.Fatal(err)
	}
	return r, rec
}

func TestRouter_Failover(t *testing.T) {
	clk := newClock()
	a := &fake{name: "a", SendFn: func(context.Context, *verifyd.Message) (*verifyd.SendResult, error) {
		clk.Advance(150 * time.Millisecond)
		return nil, errDown
	}}
	b := &fake{name: "b", SendFn: func(context.Context, *verifyd.Message) (*verifyd.SendResult, error) {
		clk.Advance(40 * time.Millisecond)
		return &verifyd.SendResult{ProviderMessageID: "b-1", Parts: 3, Status: verifyd.DeliverySent}, nil
	}}
	r, rec := newRouter(t, router.Config{Now: clk.Now}, a, b)
	res, err := r.Send(context.Background(), sms("+447700900123"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Sender != "b" || res.ProviderMessageID != "b-1" || res.Parts != 3 {
		t.Fatalf("result = %+v", res)
	}
	got := rec.take()
	want := []router.Attempt{
		{MessageID: "job-+447700900123", Channel: verifyd.SMS, Route: "sms/*", Sender: "a", Outcome: router.OutcomeError, Error: errDown.Error(), Duration: 150 * time.Millisecond},
		{MessageID: "job-+447700900123", Channel: verifyd.SMS, Route: "sms/*", Sender: "b", ProviderMessageID: "b-1", Parts: 3, Outcome: router.OutcomeSent, Duration: 40 * time.Millisecond},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("attempts =\n%+v\nwant\n%+v", got, want)
	}
}

func TestRouter_PermanentStops(t *testing.T) {
	refusal := verifyd.Errorf(verifyd.ECHANNEL, "Twilio refused the message: 21211 invalid To")
	a := &fake{name: "a", SendFn: failing(refusal)}
	b := &fake{name: "b"}
	r, rec := newRouter(t, router.Config{}, a, b)
	_, err := r.Send(context.Background(), sms("+15551234567"))
	if err != refusal {
		t.Fatalf("err = %v, want the sender's refusal", err)
	}
	if b.Calls() != 0 {
		t.Fatal("the next sender was tried after a permanent refusal")
	}
	got := rec.take()
	if outcomes(got) != "a:error" || !got[0].Permanent {
		t.Fatalf("attempts = %+v", got)
	}
}

func TestRouter_AllFail(t *testing.T) {
	a := &fake{name: "a", SendFn: failing(errDown)}
	b := &fake{name: "b", SendFn: failing(errors.New("dial tcp: connection refused"))}
	r, rec := newRouter(t, router.Config{}, a, b)
	_, err := r.Send(context.Background(), sms("+15551234567"))
	if err == nil || verifyd.ErrorCode(err) == verifyd.ECHANNEL {
		t.Fatalf("err = %v, want a transient error", err)
	}
	for _, s := range []string{"a: HTTP 503", "b: dial tcp"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if o := outcomes(rec.take()); o != "a:error b:error" {
		t.Fatalf("attempts = %s", o)
	}
}

func TestRouter_NilResult(t *testing.T) {
	a := &fake{name: "a", SendFn: func(context.Context, *verifyd.Message) (*verifyd.SendResult, error) { return nil, nil }}
	b := &fake{name: "b"}
	r, _ := newRouter(t, router.Config{}, a, b)
	res, err := r.Send(context.Background(), sms("+15551234567"))
	if err != nil || res.Sender != "b" {
		t.Fatalf("res = %+v, err = %v; want b to take it", res, err)
	}
}

func TestRouter_CanceledStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	a := &fake{name: "a", SendFn: func(ctx context.Context, _ *verifyd.Message) (*verifyd.SendResult, error) {
		cancel()
		return nil, ctx.Err()
	}}
	b := &fake{name: "b"}
	r, _ := newRouter(t, router.Config{FailureThreshold: 1}, a, b)
	if _, err := r.Send(ctx, sms("+15551234567")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if b.Calls() != 0 {
		t.Fatal("the next sender was tried after the caller gave up")
	}
	if s := r.State("a"); s != router.StateClosed {
		t.Fatalf("state of a = %s: a cancellation counted as a failure", s)
	}
}

func TestRouter_AttemptTimeout(t *testing.T) {
	a := &fake{name: "a", SendFn: func(ctx context.Context, _ *verifyd.Message) (*verifyd.SendResult, error) {
		<-ctx.Done() // hangs until the router's per-attempt deadline
		return nil, ctx.Err()
	}}
	b := &fake{name: "b"}
	r, rec := newRouter(t, router.Config{AttemptTimeout: 20 * time.Millisecond}, a, b)
	res, err := r.Send(context.Background(), sms("+15551234567"))
	if err != nil || res.Sender != "b" {
		t.Fatalf("res = %+v, err = %v; want b to take it", res, err)
	}
	if o := outcomes(rec.take()); o != "a:error b:sent" {
		t.Fatalf("attempts = %s", o)
	}
}

type reconciler struct {
	fake
	sent bool
	err  error
}

func (r *reconciler) Sent(context.Context, string) (bool, error) { return r.sent, r.err }

func TestRouter_Sent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		recs    []*reconciler
		want    bool
		wantErr bool
	}{
		{"NoReconcilers", nil, false, false},
		{"NotSent", []*reconciler{{fake: fake{name: "x"}}}, false, false},
		{"SentByOne", []*reconciler{{fake: fake{name: "x"}, err: errDown}, {fake: fake{name: "y"}, sent: true}}, true, false},
		{"Unknown", []*reconciler{{fake: fake{name: "x"}, err: errDown}, {fake: fake{name: "y"}}}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := map[string]verifyd.Sender{"plain": &fake{name: "plain"}}
			for _, rc := range tc.recs {
				ss[rc.name] = rc
			}
			r, err := router.New(router.Config{Routes: []router.Route{{Channel: verifyd.SMS, Senders: []string{"plain"}}}}, ss)
			if err != nil {
				t.Fatal(err)
			}
			sent, err := r.Sent(context.Background(), "job-1")
			if sent != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("Sent = %v, %v; want %v, error %v", sent, err, tc.want, tc.wantErr)
			}
		})
	}
}
