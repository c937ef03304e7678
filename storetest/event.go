package storetest

import (
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func testEvent(t *testing.T, open Opener) {
	subtest(t, open, "ListOldestFirstScoped", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v := NewVerification(p, "+15550000000", T0)
		MustCreateVerification(t, s, v)
		j := mustClaim(t, s, "w", T0, time.Minute, 1)[0]
		sent := T0.Add(time.Second)
		wantNoErr(t, "FinishJob", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: sent,
			DeliveryStatus: verifyd.DeliverySent}))
		accepted := T0.Add(2 * time.Second)
		mustAccept(t, s, v, accepted)

		evs := wantEvents(t, s, v, verifyd.EventSent, verifyd.EventCompleted)
		for i, at := range []time.Time{sent, accepted} {
			e := evs[i]
			if !verifyd.ValidID(e.ID) || e.AccountID != a.ID || e.ProfileID != p.ID || e.VerificationID != v.ID ||
				!e.OccurredAt.Equal(at) || e.OccurredAt.Location() != time.UTC {
				t.Fatalf("event %d = %+v", i, e)
			}
			pl := payload(t, e)
			if pl.ID != v.ID || pl.RecordType != "verification" || pl.PhoneNumber != v.PhoneNumber || pl.ProfileID != p.ID {
				t.Fatalf("event %d payload = %s", i, e.Payload)
			}
		}
		if evs[0].ID == evs[1].ID {
			t.Fatal("two events share an ID")
		}
		if evs := MustListEvents(t, s, b.ID, v.ID); len(evs) != 0 {
			t.Fatalf("ListEvents through another account: %d events", len(evs))
		}
		if evs := MustListEvents(t, s, a.ID, verifyd.NewID()); len(evs) != 0 {
			t.Fatalf("ListEvents of an unknown verification: %d events", len(evs))
		}
	})
}
