package service_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/router"
	"github.com/verifyd/verifyd/service"
	"github.com/verifyd/verifyd/sqlite"
)

// senderFunc is a Sender made of a function.
type senderFunc func(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, error)

func (f senderFunc) Send(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	return f(ctx, m)
}

// TestWorker_RecordsEveryAttempt: through a router whose first sender is
// down, the worker records both tries (the failure and the sender that
// took the message), then, when every sender fails for good, each try with
// the last one sending_failed.
func TestWorker_RecordsEveryAttempt(t *testing.T) {
	f := newFixture(t, service.Options{})
	down := senderFunc(func(context.Context, *verifyd.Message) (*verifyd.SendResult, error) {
		return nil, errors.New("bind refused")
	})
	up := senderFunc(func(_ context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
		if m.To == "+447400123499" {
			return nil, verifyd.Errorf(verifyd.ECHANNEL, "invalid destination")
		}
		return &verifyd.SendResult{ProviderMessageID: "up-" + m.To, Parts: 2}, nil
	})
	rt, err := router.New(router.Config{Routes: []router.Route{{Channel: verifyd.SMS, Senders: []string{"down", "up"}}}},
		map[string]verifyd.Sender{"down": down, "up": up})
	if err != nil {
		t.Fatal(err)
	}
	w := f.svc.NewWorker(rt, service.WorkerOptions{Poll: 5 * time.Millisecond})
	w.Start(f.ctx)
	defer w.Stop()

	list := func(id string) []*verifyd.DeliveryAttempt {
		as, err := f.store.(*sqlite.Store).ListDeliveryAttempts(f.ctx, f.acct.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
	check := func(a *verifyd.DeliveryAttempt, v *verifyd.Verification, sender, msgID string, parts int, outcome, errText string) {
		t.Helper()
		if a.Sender != sender || a.ProviderMessageID != msgID || a.Parts != parts || a.Outcome != outcome ||
			!strings.Contains(a.Error, errText) || (errText == "") != (a.Error == "") || a.VerificationID != v.ID || a.JobID == "" || a.ID == "" || a.At.IsZero() {
			t.Fatalf("attempt = %+v, want %s %q %d %s %q", a, sender, msgID, parts, outcome, errText)
		}
	}

	v := f.trigger(t, phone, "123456")
	waitFor(t, "delivery status sent", func() bool { return f.get(t, v.ID).DeliveryStatus == verifyd.DeliverySent })
	as := list(v.ID)
	if len(as) != 2 {
		t.Fatalf("%d attempts recorded, want 2: %+v", len(as), as)
	}
	check(as[0], v, "down", "", 0, verifyd.AttemptError, "bind refused")
	check(as[1], v, "up", "up-"+phone, 2, verifyd.DeliverySent, "")
	if as[0].JobID != as[1].JobID {
		t.Fatalf("attempts of one run name two jobs: %s, %s", as[0].JobID, as[1].JobID)
	}
	// The receipt finds the attempt that took the message.
	if err := f.svc.Receipt(f.ctx, &verifyd.Receipt{Sender: "up", ProviderMessageID: "up-" + phone,
		Status: verifyd.DeliveryDelivered, At: f.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := f.get(t, v.ID).DeliveryStatus; got != verifyd.DeliveryDelivered {
		t.Fatalf("after the receipt: %s", got)
	}

	bad := f.trigger(t, "+447400123499", "654321")
	waitFor(t, "verification error", func() bool { return f.get(t, bad.ID).Status == verifyd.StatusError })
	as = list(bad.ID)
	if len(as) != 2 {
		t.Fatalf("%d attempts recorded, want 2: %+v", len(as), as)
	}
	check(as[0], bad, "down", "", 0, verifyd.AttemptError, "bind refused")
	check(as[1], bad, "up", "", 0, verifyd.DeliverySendingFailed, "invalid destination")
}
