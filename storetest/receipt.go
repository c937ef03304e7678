package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// sentVia creates a verification of p and finishes its job at T0+1s as
// taken by sender with provider message id msgID (one attempt, delivery
// status sent, event verify.sent).
func sentVia(t *testing.T, s verifyd.Store, p *verifyd.Profile, phone, sender, msgID string) *verifyd.Verification {
	t.Helper()
	v := NewVerification(p, phone, T0)
	MustCreateVerification(t, s, v)
	j := mustClaim(t, s, "w", T0, time.Minute, 1)[0]
	at := T0.Add(time.Second)
	wantNoErr(t, "FinishJob", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: at,
		DeliveryStatus: verifyd.DeliverySent,
		Attempts: []*verifyd.DeliveryAttempt{{ID: verifyd.NewOrderedID(), VerificationID: v.ID, JobID: j.ID,
			Sender: sender, ProviderMessageID: msgID, Parts: 1, Outcome: verifyd.DeliverySent, At: at}}}))
	return v
}

func mustReceipt(tb testing.TB, s verifyd.Store, sender, msgID, status string, at time.Time) verifyd.ReceiptResult {
	tb.Helper()
	res, err := s.RecordReceipt(context.Background(), verifyd.ReceiptParams{Sender: sender, ProviderMessageID: msgID,
		Status: status, Now: at})
	if err != nil {
		tb.Fatalf("RecordReceipt(%s, %s, %s): %v", sender, msgID, status, err)
	}
	return res
}

// wantDelivery checks the stored delivery status and status of v.
func wantDelivery(tb testing.TB, s verifyd.Store, v *verifyd.Verification, delivery string, updated time.Time) *verifyd.Verification {
	tb.Helper()
	got := MustGetVerification(tb, s, v.AccountID, v.ID)
	if got.DeliveryStatus != delivery || got.Status != verifyd.StatusPending || !got.UpdatedAt.Equal(updated) {
		tb.Fatalf("verification %s: delivery %q status %q updated %v, want %q pending %v",
			v.ID, got.DeliveryStatus, got.Status, got.UpdatedAt, delivery, updated)
	}
	return got
}

func testReceipt(t *testing.T, open Opener) {
	ctx := context.Background()
	setup := func(t *testing.T, s verifyd.Store) *verifyd.Profile {
		return MustCreateProfile(t, s, MustCreateAccount(t, s).ID, "Main", T0, withWebhook("https://hooks.example/a", ""))
	}
	t1, t2, t3 := T0.Add(5*time.Second), T0.Add(6*time.Second), T0.Add(7*time.Second)

	subtest(t, open, "Unknown", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sentVia(t, s, p, "+15550000001", "smsc-a", "1A2B00")
		for _, c := range []struct{ sender, id string }{
			{"smsc-a", "1A2B01"}, // unknown id
			{"smsc-b", "1A2B00"}, // the id, but another sender's
			{"smsc-a", ""},
			{"", "1A2B00"},
		} {
			_, err := s.RecordReceipt(ctx, verifyd.ReceiptParams{Sender: c.sender, ProviderMessageID: c.id,
				Status: verifyd.DeliveryDelivered, Now: t1})
			wantCode(t, "RecordReceipt("+c.sender+", "+c.id+")", err, verifyd.ENOTFOUND)
		}
		_, err := s.RecordReceipt(ctx, verifyd.ReceiptParams{Sender: "smsc-a", ProviderMessageID: "1A2B00",
			Status: verifyd.DeliverySent, Now: t1})
		wantCode(t, "RecordReceipt with status sent", err, verifyd.EINVALID)
		wantDelivery(t, s, v, verifyd.DeliverySent, T0.Add(time.Second))
		wantEvents(t, s, v, verifyd.EventSent)
	})

	subtest(t, open, "Delivered", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sentVia(t, s, p, "+15550000001", "smsc-a", "1A2B00")
		other := sentVia(t, s, p, "+15550000002", "smsc-b", "1A2B00") // same id, other sender
		res := mustReceipt(t, s, "smsc-a", "1A2B00", verifyd.DeliveryDelivered, t1)
		if !res.Moved || res.Verification == nil || res.Verification.ID != v.ID ||
			res.Verification.DeliveryStatus != verifyd.DeliveryDelivered {
			t.Fatalf("RecordReceipt = %+v (%+v), want moved to delivered", res, res.Verification)
		}
		got := wantDelivery(t, s, v, verifyd.DeliveryDelivered, t1)
		wantEqual(t, "returned verification", res.Verification, got)
		evs := wantEvents(t, s, v, verifyd.EventSent, verifyd.EventDelivered)
		e := evs[1]
		if e.AccountID != v.AccountID || e.ProfileID != p.ID || e.VerificationID != v.ID || !e.OccurredAt.Equal(t1) {
			t.Fatalf("delivered event = %+v", e)
		}
		if pl := payload(t, e); pl.DeliveryStatus == nil || *pl.DeliveryStatus != verifyd.DeliveryDelivered ||
			pl.Status != verifyd.StatusPending || pl.ID != v.ID {
			t.Fatalf("delivered payload = %s", e.Payload)
		}
		// The event is delivered as webhook like every event.
		ds := mustClaimWebhooks(t, s, "n1", t2, time.Minute, 10)
		found := false
		for _, d := range ds {
			found = found || d.Event.ID == e.ID
		}
		if !found {
			t.Fatalf("verify.delivered is not pending for webhook delivery (%d claimed)", len(ds))
		}
		// The other sender's message is untouched.
		wantDelivery(t, s, other, verifyd.DeliverySent, T0.Add(time.Second))
		wantEvents(t, s, other, verifyd.EventSent)
		if l, ok := s.(DeliveryAttemptLister); ok {
			list, err := l.ListDeliveryAttempts(ctx, v.AccountID, v.ID)
			wantNoErr(t, "ListDeliveryAttempts", err)
			if len(list) != 1 || list[0].Outcome != verifyd.DeliveryDelivered || list[0].Sender != "smsc-a" {
				t.Fatalf("attempts after the receipt: %+v", list)
			}
		}
	})

	subtest(t, open, "DuplicateAndNeverBackwards", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sentVia(t, s, p, "+15550000001", "twilio", "SM1")
		mustReceipt(t, s, "twilio", "SM1", verifyd.DeliveryDelivered, t1)
		for _, st := range []string{verifyd.DeliveryDelivered, verifyd.DeliveryFailed, verifyd.DeliveryUnconfirmed} {
			if res := mustReceipt(t, s, "twilio", "SM1", st, t2); res.Moved || res.Verification.DeliveryStatus != verifyd.DeliveryDelivered {
				t.Fatalf("receipt %s after delivered: moved %v, delivery %q", st, res.Moved, res.Verification.DeliveryStatus)
			}
		}
		wantDelivery(t, s, v, verifyd.DeliveryDelivered, t1)
		wantEvents(t, s, v, verifyd.EventSent, verifyd.EventDelivered)
	})

	subtest(t, open, "FailedThenDelivered", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sentVia(t, s, p, "+15550000001", "smsc-a", "77")
		_, err := s.RecordReceipt(ctx, verifyd.ReceiptParams{Sender: "smsc-a", ProviderMessageID: "77",
			Status: verifyd.DeliveryFailed, Cause: "UNDELIV err:001", Now: t1})
		wantNoErr(t, "RecordReceipt failed", err)
		wantDelivery(t, s, v, verifyd.DeliveryFailed, t1) // status stays pending (D7)
		if l, ok := s.(DeliveryAttemptLister); ok {
			list, err := l.ListDeliveryAttempts(ctx, v.AccountID, v.ID)
			wantNoErr(t, "ListDeliveryAttempts", err)
			if len(list) != 1 || list[0].Outcome != verifyd.DeliveryFailed || list[0].Error != "UNDELIV err:001" {
				t.Fatalf("attempts after a failure receipt: %+v", list)
			}
		}
		if res := mustReceipt(t, s, "smsc-a", "77", verifyd.DeliveryFailed, t2); res.Moved {
			t.Fatal("duplicate failure receipt moved the status")
		}
		if res := mustReceipt(t, s, "smsc-a", "77", verifyd.DeliveryUnconfirmed, t2); res.Moved {
			t.Fatal("unconfirmed after failed moved the status")
		}
		if res := mustReceipt(t, s, "smsc-a", "77", verifyd.DeliveryDelivered, t3); !res.Moved {
			t.Fatal("delivered after failed did not move the status")
		}
		wantDelivery(t, s, v, verifyd.DeliveryDelivered, t3)
		evs := wantEvents(t, s, v, verifyd.EventSent, verifyd.EventFailed, verifyd.EventDelivered)
		if pl := payload(t, evs[1]); pl.DeliveryStatus == nil || *pl.DeliveryStatus != verifyd.DeliveryFailed {
			t.Fatalf("failed payload = %s", evs[1].Payload)
		}
	})

	subtest(t, open, "UnconfirmedHasNoEvent", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sentVia(t, s, p, "+15550000001", "telnyx", "b0b0")
		if res := mustReceipt(t, s, "telnyx", "b0b0", verifyd.DeliveryUnconfirmed, t1); !res.Moved {
			t.Fatal("unconfirmed over sent did not move")
		}
		wantDelivery(t, s, v, verifyd.DeliveryUnconfirmed, t1)
		wantEvents(t, s, v, verifyd.EventSent)
		mustReceipt(t, s, "telnyx", "b0b0", verifyd.DeliveryFailed, t2)
		wantDelivery(t, s, v, verifyd.DeliveryFailed, t2)
		wantEvents(t, s, v, verifyd.EventSent, verifyd.EventFailed)
	})

	subtest(t, open, "FinishedVerification", func(t *testing.T, s verifyd.Store) {
		// A receipt after the code was accepted still records delivery;
		// the status stays accepted.
		p := setup(t, s)
		v := sentVia(t, s, p, "+15550000001", "smsc-a", "9")
		res, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: v.AccountID, ID: v.ID, Now: T0.Add(2 * time.Second),
			MaxAttempts: 5, FailuresSince: T0,
			Decide: func(*verifyd.Verification, int) (verifyd.Decision, error) { return verifyd.DecideAccept, nil }})
		wantNoErr(t, "Attempt", err)
		if !res.Accepted {
			t.Fatal("not accepted")
		}
		mustReceipt(t, s, "smsc-a", "9", verifyd.DeliveryDelivered, t1)
		got := MustGetVerification(t, s, v.AccountID, v.ID)
		if got.Status != verifyd.StatusAccepted || got.DeliveryStatus != verifyd.DeliveryDelivered {
			t.Fatalf("after receipt: status %q delivery %q", got.Status, got.DeliveryStatus)
		}
		wantEvents(t, s, v, verifyd.EventSent, verifyd.EventCompleted, verifyd.EventDelivered)
	})

	subtest(t, open, "ConcurrentDuplicatesApplyOnce", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sentVia(t, s, p, "+15550000001", "smsc-a", "42")
		const n = 8
		var wg sync.WaitGroup
		moved := make([]bool, n)
		for i := range n {
			wg.Go(func() {
				res, err := s.RecordReceipt(ctx, verifyd.ReceiptParams{Sender: "smsc-a", ProviderMessageID: "42",
					Status: verifyd.DeliveryDelivered, Now: t1})
				if err != nil {
					t.Errorf("RecordReceipt: %v", err)
				}
				moved[i] = res.Moved
			})
		}
		wg.Wait()
		k := 0
		for _, m := range moved {
			if m {
				k++
			}
		}
		if k != 1 {
			t.Fatalf("%d of %d concurrent duplicate receipts moved the status, want 1", k, n)
		}
		wantEvents(t, s, v, verifyd.EventSent, verifyd.EventDelivered)
	})
}
