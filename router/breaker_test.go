package router_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/router"
)

// switchable fails while down is set.
type switchable struct {
	mu   sync.Mutex
	down bool
}

func (s *switchable) set(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

func (s *switchable) send(context.Context, *verifyd.Message) (*verifyd.SendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errDown
	}
	return &verifyd.SendResult{ProviderMessageID: "a-id", Status: verifyd.DeliverySent}, nil
}

func TestRouter_Breaker(t *testing.T) {
	clk := newClock()
	sw := &switchable{down: true}
	a := &fake{name: "a", SendFn: sw.send}
	b := &fake{name: "b"}
	r, rec := newRouter(t, router.Config{FailureThreshold: 3, Cooldown: 30 * time.Second, Now: clk.Now}, a, b)
	send := func() string {
		t.Helper()
		res, err := r.Send(context.Background(), sms("+15551234567"))
		if err != nil {
			t.Fatal(err)
		}
		_ = res
		return outcomes(rec.take())
	}

	for i := range 3 {
		if o := send(); o != "a:error b:sent" {
			t.Fatalf("send %d: attempts = %s", i, o)
		}
		clk.Advance(time.Second)
	}
	if s := r.State("a"); s != router.StateOpen {
		t.Fatalf("after 3 failures a is %s, want open", s)
	}
	if o := send(); o != "a:skipped b:sent" {
		t.Fatalf("open circuit: attempts = %s", o)
	}
	if a.Calls() != 3 {
		t.Fatalf("a called %d times, want 3", a.Calls())
	}

	// The cool-down runs from the third failure (at +2s).
	clk.Advance(30*time.Second - time.Second - time.Millisecond)
	if o := send(); o != "a:skipped b:sent" {
		t.Fatalf("just before the cool-down ends: attempts = %s", o)
	}
	clk.Advance(time.Millisecond)
	if s := r.State("a"); s != router.StateHalfOpen {
		t.Fatalf("after the cool-down a is %s, want half-open", s)
	}
	// The trial fails: open for another cool-down.
	if o := send(); o != "a:error b:sent" {
		t.Fatalf("failed trial: attempts = %s", o)
	}
	if o := send(); o != "a:skipped b:sent" {
		t.Fatalf("after a failed trial: attempts = %s", o)
	}
	// The next trial succeeds: closed.
	clk.Advance(30 * time.Second)
	sw.set(false)
	if o := send(); o != "a:sent" {
		t.Fatalf("good trial: attempts = %s", o)
	}
	if s := r.State("a"); s != router.StateClosed {
		t.Fatalf("after a good trial a is %s, want closed", s)
	}
	// Closed again means counting from zero: two failures do not open it.
	sw.set(true)
	send()
	send()
	if s := r.State("a"); s != router.StateClosed {
		t.Fatalf("after 2 new failures a is %s, want closed", s)
	}
}

func TestRouter_BreakerSuccessResets(t *testing.T) {
	sw := &switchable{}
	a := &fake{name: "a", SendFn: sw.send}
	r, _ := newRouter(t, router.Config{FailureThreshold: 2, Now: newClock().Now}, a, &fake{name: "b"})
	for _, down := range []bool{true, false, true, false, true} {
		sw.set(down)
		if _, err := r.Send(context.Background(), sms("+15551234567")); err != nil {
			t.Fatal(err)
		}
	}
	if s := r.State("a"); s != router.StateClosed {
		t.Fatalf("a is %s; failures that are not consecutive opened it", s)
	}
}

func TestRouter_PermanentDoesNotOpen(t *testing.T) {
	a := &fake{name: "a", SendFn: failing(verifyd.Errorf(verifyd.ECHANNEL, "invalid number"))}
	r, _ := newRouter(t, router.Config{FailureThreshold: 2, Now: newClock().Now}, a)
	for range 4 {
		if _, err := r.Send(context.Background(), sms("+15551234567")); verifyd.ErrorCode(err) != verifyd.ECHANNEL {
			t.Fatalf("err = %v", err)
		}
	}
	if a.Calls() != 4 || r.State("a") != router.StateClosed {
		t.Fatalf("calls = %d, state = %s; refusals of a message opened the circuit", a.Calls(), r.State("a"))
	}
}

// While the half-open trial is in flight, other messages skip the sender.
func TestRouter_HalfOpenOneTrial(t *testing.T) {
	clk := newClock()
	var trial bool
	entered, release := make(chan struct{}), make(chan struct{})
	a := &fake{name: "a", SendFn: func(context.Context, *verifyd.Message) (*verifyd.SendResult, error) {
		if !trial {
			return nil, errDown
		}
		close(entered)
		<-release
		return &verifyd.SendResult{ProviderMessageID: "a-id"}, nil
	}}
	b := &fake{name: "b"}
	r, _ := newRouter(t, router.Config{FailureThreshold: 1, Cooldown: time.Minute, Now: clk.Now}, a, b)
	if _, err := r.Send(context.Background(), sms("+15551234567")); err != nil { // opens a
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	trial = true // written before the goroutine starts

	done := make(chan *verifyd.SendResult)
	go func() {
		res, _ := r.Send(context.Background(), sms("+15551234567"))
		done <- res
	}()
	<-entered
	res, err := r.Send(context.Background(), sms("+15559876543"))
	if err != nil || res.Sender != "b" {
		t.Fatalf("during the trial: res = %+v, err = %v; want b", res, err)
	}
	close(release)
	if res := <-done; res == nil || res.Sender != "a" {
		t.Fatalf("trial result = %+v, want a", res)
	}
	if a.Calls() != 2 {
		t.Fatalf("a called %d times, want 2 (one failure, one trial)", a.Calls())
	}
	if s := r.State("a"); s != router.StateClosed {
		t.Fatalf("a is %s after a good trial", s)
	}
}

func TestRouter_AllSkipped(t *testing.T) {
	clk := newClock()
	a := &fake{name: "a", SendFn: failing(errDown)}
	r, rec := newRouter(t, router.Config{FailureThreshold: 1, Now: clk.Now}, a)
	r.Send(context.Background(), sms("+15551234567"))
	rec.take()
	_, err := r.Send(context.Background(), sms("+15551234567"))
	if err == nil || verifyd.ErrorCode(err) == verifyd.ECHANNEL {
		t.Fatalf("err = %v, want a transient error", err)
	}
	if got := rec.take(); outcomes(got) != "a:skipped" || got[0].Error != "circuit open" {
		t.Fatalf("attempts = %+v", got)
	}
	if a.Calls() != 1 {
		t.Fatalf("a called %d times during its cool-down", a.Calls())
	}
}
