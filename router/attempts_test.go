package router_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/router"
)

// TestRouter_SendAttempts: every try comes back, in order, for the worker
// to record: an open circuit (skipped), a failure (error), and the sender
// that took it with its message id, parts and status.
func TestRouter_SendAttempts(t *testing.T) {
	clk := newClock()
	a := &fake{name: "a", SendFn: failing(errDown)}
	b := &fake{name: "b", SendFn: func(_ context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
		if m.To == "+447700900001" {
			return &verifyd.SendResult{ProviderMessageID: "b-1", Parts: 1}, nil
		}
		clk.Advance(20 * time.Millisecond)
		return nil, errDown
	}}
	c := &fake{name: "c", SendFn: func(context.Context, *verifyd.Message) (*verifyd.SendResult, error) {
		return &verifyd.SendResult{ProviderMessageID: "c-9", Parts: 3, Status: verifyd.DeliveryDelivered}, nil
	}}
	r, _ := newRouter(t, router.Config{Now: clk.Now, FailureThreshold: 1, Cooldown: time.Hour}, a, b, c)
	// The first message opens a's circuit (b takes it).
	if _, _, err := r.SendAttempts(context.Background(), sms("+447700900001")); err != nil {
		t.Fatal(err)
	}
	start := clk.Now()
	res, tries, err := r.SendAttempts(context.Background(), sms("+447700900002"))
	if err != nil || res.Sender != "c" {
		t.Fatalf("SendAttempts = %+v, %v", res, err)
	}
	got := fmt.Sprint(render(tries))
	want := fmt.Sprint([]string{
		"a skipped circuit open  0 +0s",
		"b error " + errDown.Error() + "  0 +0s",
		"c delivered  c-9 3 +20ms",
	})
	if got != want {
		t.Fatalf("attempts =\n%s\nwant\n%s", got, want)
	}
	for _, a := range tries {
		if a.At.Before(start) {
			t.Fatalf("attempt at %v, before the send at %v", a.At, start)
		}
	}

	// A permanent refusal ends the tries; no route means no tries at all.
	c.SendFn = failing(verifyd.Errorf(verifyd.ECHANNEL, "invalid number"))
	_, tries, err = r.SendAttempts(context.Background(), sms("+447700900003"))
	if verifyd.ErrorCode(err) != verifyd.ECHANNEL || len(tries) != 3 || tries[2].Outcome != verifyd.AttemptError {
		t.Fatalf("permanent refusal: %v, %+v", err, render(tries))
	}
	_, tries, err = r.SendAttempts(context.Background(), &verifyd.Message{ID: "x", Channel: verifyd.Call, To: "+447700900004"})
	if verifyd.ErrorCode(err) != verifyd.ECHANNEL || len(tries) != 0 {
		t.Fatalf("no route: %v, %d tries", err, len(tries))
	}
}

func render(as []*verifyd.DeliveryAttempt) []string {
	out := make([]string, len(as))
	var first time.Time
	for i, a := range as {
		if i == 0 {
			first = a.At
		}
		out[i] = fmt.Sprintf("%s %s %s %s %d +%v", a.Sender, a.Outcome, a.Error, a.ProviderMessageID, a.Parts, a.At.Sub(first))
	}
	return out
}
