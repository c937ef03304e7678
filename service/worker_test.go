package service_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/service"
)

// fakeSender is a function-field sender for worker tests (real carriers
// are tested in their own packages).
type fakeSender struct {
	mu     sync.Mutex
	sent   []*verifyd.Message
	SendFn func(m *verifyd.Message) error
	SentFn func(id string) bool
	got    chan *verifyd.Message
}

func newFakeSender() *fakeSender { return &fakeSender{got: make(chan *verifyd.Message, 100)} }

func (s *fakeSender) Send(_ context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	s.mu.Lock()
	fn := s.SendFn
	s.mu.Unlock()
	if fn != nil {
		if err := fn(m); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.sent = append(s.sent, m)
	s.mu.Unlock()
	s.got <- m
	return &verifyd.SendResult{Sender: "fake", ProviderMessageID: "p-" + m.ID, Parts: 1, Status: verifyd.DeliverySent}, nil
}

func (s *fakeSender) Sent(_ context.Context, id string) (bool, error) {
	if s.SentFn != nil {
		return s.SentFn(id), nil
	}
	return false, nil
}

func waitMsg(t *testing.T, ch <-chan *verifyd.Message) *verifyd.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message delivered within 10 s")
		return nil
	}
}

// waitFor polls cond with a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWorker_DeliversRenderedMessage(t *testing.T) {
	f := newFixture(t, service.Options{})
	tpl := "Code {{code}} for {{ app_name }}"
	tp, err := f.svc.CreateTemplate(f.ctx, f.acct, &tpl)
	if err != nil {
		t.Fatal(err)
	}
	p := f.mustProfile(t, f.acct, map[string]any{"name": "Shop", "sms": map[string]any{"messaging_template_id": tp.ID, "app_name": "Acme"}})
	s := newFakeSender()
	w := f.svc.NewWorker(s, service.WorkerOptions{Poll: 10 * time.Millisecond})
	w.Start(f.ctx)
	defer w.Stop()

	f.codes.Push("314159")
	v, err := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: p.ID})
	if err != nil {
		t.Fatal(err)
	}
	m := waitMsg(t, s.got)
	if m.Text != "Code 314159 for Acme" || m.Code != "314159" || m.VerificationID != v.ID || m.To != phone {
		t.Fatalf("message %+v", m)
	}
	waitFor(t, "delivery status sent", func() bool { return f.get(t, v.ID).DeliveryStatus == verifyd.DeliverySent })

	// The default text puts the code first; a call speaks it digit by digit.
	f.codes.Push("2718")
	f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: "+447400123457", ProfileID: f.profile.ID})
	if m := waitMsg(t, s.got); !strings.HasPrefix(m.Text, "2718 ") {
		t.Fatalf("default sms text %q", m.Text)
	}
	f.codes.Push("2718")
	f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.Call, PhoneNumber: "+447400123458", ProfileID: f.profile.ID})
	if m := waitMsg(t, s.got); !strings.Contains(m.Text, "2 7 1 8") {
		t.Fatalf("call text %q", m.Text)
	}
	fv, _ := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.Flashcall, PhoneNumber: "+447400123459", ProfileID: f.profile.ID})
	m = waitMsg(t, s.got)
	if len(m.CallerID) < 8 || !strings.HasSuffix(m.CallerID, m.Code) || len(m.Code) != 4 {
		t.Fatalf("flash call caller %q code %q", m.CallerID, m.Code)
	}
	if _, ok, err := f.svc.CheckByID(f.ctx, f.acct, fv.ID, &m.Code, nil); err != nil || !ok {
		t.Fatalf("flash code from caller ID: ok=%v err=%v", ok, err)
	}
}

func TestWorker_RetriesThenFailsVerification(t *testing.T) {
	f := newFixture(t, service.Options{})
	// A webhook, so that the verification records its events.
	f.profile = f.mustProfile(t, f.acct, map[string]any{"name": "hooked", "webhook_url": "https://hooks.example/a"})
	s := newFakeSender()
	var calls int
	var mu sync.Mutex
	s.SendFn = func(*verifyd.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return errors.New("carrier hiccup")
		}
		return &verifyd.Error{Code: verifyd.ECHANNEL, Message: "no route"}
	}
	w := f.svc.NewWorker(s, service.WorkerOptions{Poll: 5 * time.Millisecond, RetryBase: time.Second, RetryMax: time.Second})
	w.Start(f.ctx)
	defer w.Stop()
	v := f.trigger(t, phone, "12345")
	waitFor(t, "first attempt", func() bool { mu.Lock(); defer mu.Unlock(); return calls == 1 })
	f.clock.Add(2 * time.Second) // the retry comes due
	waitFor(t, "verification error", func() bool { return f.get(t, v.ID).Status == verifyd.StatusError })
	got := f.get(t, v.ID)
	if got.DeliveryStatus != verifyd.DeliverySendingFailed || got.CompletionReason != verifyd.ReasonSendingFailed {
		t.Fatalf("delivery %s reason %s", got.DeliveryStatus, got.CompletionReason)
	}
	events, err := f.store.ListEvents(f.ctx, f.acct.ID, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "verify.failed,verify.completed" {
		t.Fatalf("events %v", types)
	}
}

func TestWorker_SealedPayloadHoldsNoPlainCode(t *testing.T) {
	f := newFixture(t, service.Options{})
	v := f.trigger(t, phone, "8675309")
	jobs, err := f.store.ClaimJobs(f.ctx, verifyd.ClaimParams{Worker: "t", Now: f.clock.Now(), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs %d err %v", len(jobs), err)
	}
	if strings.Contains(string(jobs[0].Payload), "8675309") || jobs[0].VerificationID != v.ID {
		t.Fatal("job payload holds the plaintext code")
	}
	stored, _ := f.store.GetVerification(f.ctx, f.acct.ID, v.ID)
	if strings.Contains(string(stored.CodeHash), "8675309") || len(stored.CodeHash) != 32 {
		t.Fatal("stored code is not a 32-byte HMAC")
	}
}

func TestWorker_InDoubtJobReconciled(t *testing.T) {
	f := newFixture(t, service.Options{})
	v := f.trigger(t, phone, "12345")
	// A worker that died after claiming: its lease lapses.
	if _, err := f.store.ClaimJobs(f.ctx, verifyd.ClaimParams{Worker: "dead", Now: f.clock.Now(), Lease: time.Second, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(2 * time.Second)
	s := newFakeSender()
	s.SentFn = func(string) bool { return true } // the dead worker's message did leave
	w := f.svc.NewWorker(s, service.WorkerOptions{Poll: 5 * time.Millisecond})
	w.Idle = make(chan struct{}, 1)
	w.Start(f.ctx)
	defer w.Stop()
	waitFor(t, "reconciled delivery", func() bool { return f.get(t, v.ID).DeliveryStatus == verifyd.DeliverySent })
	if len(s.sent) != 0 {
		t.Fatalf("in-doubt job sent again (%d)", len(s.sent))
	}
	if n, _ := f.store.QueueDepth(f.ctx); n != 0 {
		t.Fatalf("queue depth %d", n)
	}
}

// burst has the worker take the triggers of phones as one hand-off batch
// after the first (which is sent alone): the first send waits until the
// others are handed off. It returns the verifications and the messages
// sent, by verification ID.
func burst(t *testing.T, f *fixture, s *fakeSender, phones ...string) ([]*verifyd.Verification, map[string]*verifyd.Message) {
	t.Helper()
	gate, started := make(chan struct{}), make(chan struct{}, 1)
	var once sync.Once
	s.mu.Lock()
	s.SendFn = func(*verifyd.Message) error {
		once.Do(func() {
			started <- struct{}{}
			<-gate
		})
		return nil
	}
	s.mu.Unlock()
	vs := make([]*verifyd.Verification, len(phones))
	for i, ph := range phones {
		v, err := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: ph, ProfileID: f.profile.ID})
		if err != nil {
			t.Fatal(err)
		}
		vs[i] = v
		if i == 0 {
			<-started
		}
	}
	close(gate)
	msgs := map[string]*verifyd.Message{}
	for range phones {
		m := waitMsg(t, s.got)
		msgs[m.VerificationID] = m
	}
	return vs, msgs
}

// Under load, handed-off sends go out at once but their outcomes wait to
// be recorded together: until a batch of them is held, a receipt for one
// of them arrives, the record window ends or the worker stops. A lone send
// with none held is recorded at once.
func TestWorker_HeldOutcomesRecordedTogether(t *testing.T) {
	f := newFixture(t, service.Options{})
	s := newFakeSender()
	// No window end in this test: only a full batch, a receipt or Stop records.
	w := f.svc.NewWorker(s, service.WorkerOptions{Batch: 3, Lease: 4 * time.Hour, RecordWindow: time.Hour, Poll: time.Hour})
	w.Start(f.ctx)
	stopped := false
	defer func() {
		if !stopped {
			w.Stop()
		}
	}()
	depth := func() int {
		t.Helper()
		n, err := f.store.QueueDepth(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	status := func(v *verifyd.Verification) string { t.Helper(); return f.get(t, v.ID).DeliveryStatus }

	// The first is sent alone and recorded at once; the next two, handed
	// off together, are held.
	vs, msgs := burst(t, f, s, "+447400123451", "+447400123452", "+447400123453")
	waitFor(t, "the lone send recorded", func() bool { return status(vs[0]) == verifyd.DeliverySent })
	if a, b := status(vs[1]), status(vs[2]); a != "" || b != "" {
		t.Fatalf("delivery statuses %q, %q while the outcomes are held, want none yet", a, b)
	}
	if n := depth(); n != 2 {
		t.Fatalf("queue depth %d with two sends held, want 2", n)
	}
	// A receipt for a held send has the held outcomes recorded at once,
	// then applies.
	if err := f.svc.Receipt(f.ctx, &verifyd.Receipt{Sender: "fake", ProviderMessageID: "p-" + msgs[vs[1].ID].ID, Status: verifyd.DeliveryDelivered}); err != nil {
		t.Fatalf("receipt for a held send: %v", err)
	}
	if a, b := status(vs[1]), status(vs[2]); a != verifyd.DeliveryDelivered || b != verifyd.DeliverySent {
		t.Fatalf("delivery statuses %q, %q after the receipt, want delivered, sent", a, b)
	}

	// Two held again; a third send, alone but with outcomes held, fills the
	// batch: all three are recorded.
	vs, _ = burst(t, f, s, "+447400123454", "+447400123455", "+447400123456")
	waitFor(t, "the lone send recorded", func() bool { return status(vs[0]) == verifyd.DeliverySent })
	if n := depth(); n != 2 {
		t.Fatalf("queue depth %d with two sends held, want 2", n)
	}
	s.mu.Lock()
	s.SendFn = nil
	s.mu.Unlock()
	v7, err := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: "+447400123457", ProfileID: f.profile.ID})
	if err != nil {
		t.Fatal(err)
	}
	waitMsg(t, s.got)
	waitFor(t, "the batch recorded", func() bool { return depth() == 0 })
	for _, v := range []*verifyd.Verification{vs[1], vs[2], v7} {
		if got := status(v); got != verifyd.DeliverySent {
			t.Fatalf("delivery status %q after the batch was recorded, want sent", got)
		}
	}

	// Stop records what is held.
	vs, _ = burst(t, f, s, "+447400123458", "+447400123459", "+447400123460")
	waitFor(t, "the lone send recorded", func() bool { return status(vs[0]) == verifyd.DeliverySent })
	w.Stop()
	stopped = true
	for _, v := range vs {
		if got := status(v); got != verifyd.DeliverySent {
			t.Fatalf("delivery status %q after Stop, want sent", got)
		}
	}
	if n := depth(); n != 0 {
		t.Fatalf("queue depth %d after Stop, want 0", n)
	}
}

// Held outcomes are recorded once the record window ends, with no further
// send to fill a batch.
func TestWorker_HeldOutcomesRecordedAfterWindow(t *testing.T) {
	f := newFixture(t, service.Options{})
	s := newFakeSender()
	w := f.svc.NewWorker(s, service.WorkerOptions{RecordWindow: 20 * time.Millisecond, Poll: time.Hour})
	w.Start(f.ctx)
	defer w.Stop()
	vs, _ := burst(t, f, s, "+447400123451", "+447400123452", "+447400123453")
	for _, v := range vs {
		waitFor(t, "delivery status sent", func() bool { return f.get(t, v.ID).DeliveryStatus == verifyd.DeliverySent })
	}
}
