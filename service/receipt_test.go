package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/service"
)

// missStore signals the first receipt that finds no attempt.
type missStore struct {
	verifyd.Store
	missed chan struct{}
}

func (s *missStore) RecordReceipt(ctx context.Context, p verifyd.ReceiptParams) (verifyd.ReceiptResult, error) {
	res, err := s.Store.RecordReceipt(ctx, p)
	if verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
		select {
		case s.missed <- struct{}{}:
		default:
		}
	}
	return res, err
}

type receiptFixture struct {
	svc     *service.Service
	store   *missStore
	acct    *verifyd.Account
	profile *verifyd.Profile
	ctx     context.Context
}

func newReceiptFixture(t *testing.T) *receiptFixture {
	t.Helper()
	ctx := context.Background()
	st, keys := newStoreKeys(t)
	f := &receiptFixture{store: &missStore{Store: st, missed: make(chan struct{}, 1)}, ctx: ctx}
	f.svc = service.New(f.store, keys, service.Options{})
	var err error
	if f.acct, err = f.svc.CreateAccount(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	// A webhook, so that the verifications record their events.
	if f.profile, err = f.svc.CreateProfile(ctx, f.acct, map[string]any{"name": "p", "webhook_url": "https://hooks.example/a"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *receiptFixture) trigger(t *testing.T) *verifyd.Verification {
	t.Helper()
	v, err := f.svc.Trigger(f.ctx, f.acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: f.profile.ID})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *receiptFixture) events(t *testing.T, id string) []string {
	t.Helper()
	evs, err := f.store.ListEvents(f.ctx, f.acct.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	return types
}

// A receipt that arrives while its own send is still being recorded waits
// for the record and is applied.
func TestReceipt_OvertakesItsSend(t *testing.T) {
	f := newReceiptFixture(t)
	s := newFakeSender()
	errc := make(chan error, 1)
	s.SendFn = func(m *verifyd.Message) error {
		go func() {
			errc <- f.svc.Receipt(f.ctx, &verifyd.Receipt{Sender: "fake", ProviderMessageID: "p-" + m.ID,
				Status: verifyd.DeliveryDelivered})
		}()
		// Return only once the receipt has looked and found nothing.
		select {
		case <-f.store.missed:
		case <-time.After(10 * time.Second):
			t.Error("the receipt never looked for its message")
		}
		return nil
	}
	w := f.svc.NewWorker(s, service.WorkerOptions{Poll: 10 * time.Millisecond})
	w.Start(f.ctx)
	defer w.Stop()

	v := f.trigger(t)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Receipt: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Receipt did not return")
	}
	got, err := f.svc.GetVerification(f.ctx, f.acct, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.DeliveryStatus != verifyd.DeliveryDelivered || got.Status != verifyd.StatusPending {
		t.Fatalf("after the receipt: delivery %q status %q", got.DeliveryStatus, got.Status)
	}
	if evs := f.events(t, v.ID); len(evs) != 2 || evs[0] != verifyd.EventSent || evs[1] != verifyd.EventDelivered {
		t.Fatalf("events %v, want sent, delivered", evs)
	}
	// A later failure receipt for the message changes nothing (never
	// backwards from delivered).
	m := <-s.got
	if err := f.svc.Receipt(f.ctx, &verifyd.Receipt{Sender: "fake", ProviderMessageID: "p-" + m.ID,
		Status: verifyd.DeliveryFailed}); err != nil {
		t.Fatalf("late failure receipt: %v", err)
	}
	if evs := f.events(t, v.ID); len(evs) != 2 {
		t.Fatalf("events after a late failure receipt: %v", evs)
	}
}

// While the send a receipt may belong to is still in flight past the
// receipt's deadline, the carrier is asked to offer it again.
func TestReceipt_SendStillInFlight(t *testing.T) {
	f := newReceiptFixture(t)
	s := newFakeSender()
	started, release := make(chan *verifyd.Message, 1), make(chan struct{})
	s.SendFn = func(m *verifyd.Message) error {
		started <- m
		<-release
		return nil
	}
	w := f.svc.NewWorker(s, service.WorkerOptions{Poll: 10 * time.Millisecond})
	w.Start(f.ctx)
	defer w.Stop()
	defer close(release)

	f.trigger(t)
	m := <-started
	ctx, cancel := context.WithTimeout(f.ctx, 100*time.Millisecond)
	defer cancel()
	err := f.svc.Receipt(ctx, &verifyd.Receipt{Sender: "fake", ProviderMessageID: "p-" + m.ID, Status: verifyd.DeliveryDelivered})
	if verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE {
		t.Fatalf("Receipt while the send is in flight: %v, want EUNAVAILABLE", err)
	}
}

func TestReceipt_UnknownAndInvalid(t *testing.T) {
	f := newReceiptFixture(t)
	err := f.svc.Receipt(f.ctx, &verifyd.Receipt{Sender: "smsc", ProviderMessageID: "nope", Status: verifyd.DeliveryDelivered})
	if verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
		t.Fatalf("unknown message: %v, want ENOTFOUND", err)
	}
	err = f.svc.Receipt(f.ctx, &verifyd.Receipt{Sender: "smsc", ProviderMessageID: "x", Status: verifyd.DeliverySent})
	if verifyd.ErrorCode(err) != verifyd.EINVALID {
		t.Fatalf("status sent: %v, want EINVALID", err)
	}
}
