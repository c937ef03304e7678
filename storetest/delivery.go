package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// testDelivery checks what a delivery leaves on the verification: every
// attempt of a job's run (router failover), and D33's delivery_unconfirmed
// for a verification that leaves pending with its message still only sent.
func testDelivery(t *testing.T, open Opener) {
	ctx := context.Background()
	const lease = 30 * time.Second

	setup := func(t *testing.T, s verifyd.Store) *verifyd.Profile {
		return MustCreateProfile(t, s, MustCreateAccount(t, s).ID, "Main", T0)
	}
	attempt := func(v *verifyd.Verification, j *verifyd.Job, sender, msgID string, parts int, outcome, errText string, at time.Time) *verifyd.DeliveryAttempt {
		return &verifyd.DeliveryAttempt{ID: verifyd.NewOrderedID(), VerificationID: v.ID, JobID: j.ID, Sender: sender,
			ProviderMessageID: msgID, Parts: parts, Outcome: outcome, Error: errText, At: at}
	}

	// Outcomes of one batch, one per kind of finish (done alone, done in a
	// chunk, retried, dead): each records all its attempts, in order.
	subtest(t, open, "EveryAttemptRecorded", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		var vs []*verifyd.Verification
		for _, phone := range []string{"+15550000010", "+15550000011", "+15550000012", "+15550000013"} {
			v, _ := mustCreateDue(t, s, p, phone, T0)
			vs = append(vs, v)
		}
		claimed := mustClaim(t, s, "w", T0, lease, 10)
		if len(claimed) != 4 {
			t.Fatalf("claimed %d jobs, want 4", len(claimed))
		}
		byV := map[string]*verifyd.Job{}
		for _, j := range claimed {
			byV[j.VerificationID] = j
		}
		at := func(ms int) time.Time { return T0.Add(time.Second + time.Duration(ms)*time.Millisecond) }
		now := at(900)
		j0, j1, j2, j3 := byV[vs[0].ID], byV[vs[1].ID], byV[vs[2].ID], byV[vs[3].ID]
		// Failover: primary skipped (circuit open), secondary failed, third took it.
		failover := []*verifyd.DeliveryAttempt{
			attempt(vs[0], j0, "smsc-a", "", 0, verifyd.AttemptSkipped, "circuit open", at(0)),
			attempt(vs[0], j0, "smsc-b", "", 0, verifyd.AttemptError, "bind refused", at(1)),
			attempt(vs[0], j0, "twilio", "SM0001", 2, verifyd.DeliverySent, "", at(250)),
		}
		plain := []*verifyd.DeliveryAttempt{attempt(vs[1], j1, "smsc-a", "1f", 1, verifyd.DeliverySent, "", at(5))}
		retried := []*verifyd.DeliveryAttempt{
			attempt(vs[2], j2, "smsc-a", "", 0, verifyd.AttemptError, "timeout", at(0)),
			attempt(vs[2], j2, "smsc-b", "", 0, verifyd.AttemptError, "throttled", at(600)),
		}
		dead := []*verifyd.DeliveryAttempt{
			attempt(vs[3], j3, "smsc-a", "", 0, verifyd.AttemptError, "timeout", at(0)),
			attempt(vs[3], j3, "smsc-b", "", 0, verifyd.DeliverySendingFailed, "invalid destination", at(300)),
		}
		errs := s.FinishJobs(ctx, []verifyd.JobOutcome{
			{JobID: j0.ID, Worker: "w", Now: now, DeliveryStatus: verifyd.DeliverySent, Attempts: failover},
			{JobID: j1.ID, Worker: "w", Now: now, DeliveryStatus: verifyd.DeliverySent, Attempts: plain},
			{JobID: j2.ID, Worker: "w", Now: now, Retry: true, RetryAt: now.Add(time.Second), Error: "throttled", Attempts: retried},
			{JobID: j3.ID, Worker: "w", Now: now, Dead: true, Error: "invalid destination",
				DeliveryStatus: verifyd.DeliverySendingFailed, FailVerification: true, Attempts: dead},
		})
		for _, err := range errs {
			wantNoErr(t, "FinishJobs outcome", err)
		}
		if _, ok := s.(DeliveryAttemptLister); !ok {
			t.Skip("store has no ListDeliveryAttempts")
		}
		wantAttempts(t, s, vs[0], failover...)
		wantAttempts(t, s, vs[1], plain...)
		wantAttempts(t, s, vs[2], retried...)
		wantAttempts(t, s, vs[3], dead...)

		// The retried job's next run adds its attempts after the first's.
		j2b := mustClaim(t, s, "w", now.Add(time.Second), lease, 10)
		if len(j2b) != 1 || j2b[0].ID != j2.ID {
			t.Fatalf("second claim = %v, want %s", ids(j2b, jobID), j2.ID)
		}
		later := now.Add(2 * time.Second)
		second := attempt(vs[2], j2, "smsc-a", "2a", 1, verifyd.DeliverySent, "", later)
		wantNoErr(t, "FinishJob second run", finishJob(s, verifyd.JobOutcome{JobID: j2.ID, Worker: "w", Now: later,
			DeliveryStatus: verifyd.DeliverySent, Attempts: []*verifyd.DeliveryAttempt{second}}))
		wantAttempts(t, s, vs[2], append(retried, second)...)

		// A receipt names the attempt that took the message; only it moves.
		res, err := s.RecordReceipt(ctx, verifyd.ReceiptParams{Sender: "twilio", ProviderMessageID: "SM0001",
			Status: verifyd.DeliveryDelivered, Now: later})
		wantNoErr(t, "RecordReceipt", err)
		if !res.Moved || res.Verification.ID != vs[0].ID {
			t.Fatalf("receipt for the failover's attempt: %+v", res)
		}
		delivered := *failover[2]
		delivered.Outcome = verifyd.DeliveryDelivered
		wantAttempts(t, s, vs[0], failover[0], failover[1], &delivered)
	})

	// A lost lease records none of the outcome's attempts.
	subtest(t, open, "LostLeaseRecordsNoAttempts", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v, j := mustCreateDue(t, s, p, "+15550000020", T0)
		mustClaim(t, s, "w1", T0, lease, 1)
		mustClaim(t, s, "w2", T0.Add(lease), lease, 1)
		err := finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w1", Now: T0.Add(lease), DeliveryStatus: verifyd.DeliverySent,
			Attempts: []*verifyd.DeliveryAttempt{
				attempt(v, j, "a", "", 0, verifyd.AttemptError, "down", T0.Add(lease)),
				attempt(v, j, "b", "m1", 1, verifyd.DeliverySent, "", T0.Add(lease)),
			}})
		wantCode(t, "FinishJob after losing the lease", err, verifyd.ECONFLICT)
		wantAttempts(t, s, v)
	})

	// sent is claimed and finished as sent at T0+1s.
	sent := func(t *testing.T, s verifyd.Store, p *verifyd.Profile, phone, msgID string) *verifyd.Verification {
		t.Helper()
		return sentVia(t, s, p, phone, "smsc", msgID)
	}
	wantUnconfirmed := func(t *testing.T, s verifyd.Store, v *verifyd.Verification, status verifyd.Status, reason string, at time.Time, before ...string) {
		t.Helper()
		got := MustGetVerification(t, s, v.AccountID, v.ID)
		wantStatus(t, got, status, reason)
		if got.DeliveryStatus != verifyd.DeliveryUnconfirmed {
			t.Fatalf("delivery status after %s: %q, want delivery_unconfirmed", reason, got.DeliveryStatus)
		}
		// No event of its own: verify.completed shows it.
		evs := wantEvents(t, s, v, append(before, verifyd.EventCompleted)...)
		done := evs[len(evs)-1]
		wantCompleted(t, done, got, status, reason, at)
		if pl := payload(t, done); pl.DeliveryStatus == nil || *pl.DeliveryStatus != verifyd.DeliveryUnconfirmed {
			t.Fatalf("verify.completed payload = %s, want delivery_status delivery_unconfirmed", done.Payload)
		}
	}

	subtest(t, open, "UnconfirmedOnExpirySweep", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sent(t, s, p, "+15550000030", "m30")
		// One delivered before expiry keeps delivered; one never sent keeps "".
		d := sent(t, s, p, "+15550000031", "m31")
		mustReceipt(t, s, "smsc", "m31", verifyd.DeliveryDelivered, T0.Add(2*time.Second))
		never := NewVerification(p, "+15550000032", T0)
		MustCreateVerification(t, s, never)

		exp := v.ExpiresAt
		n, err := s.ExpirePending(ctx, exp, 100)
		wantNoErr(t, "ExpirePending", err)
		if n != 3 {
			t.Fatalf("ExpirePending = %d, want 3", n)
		}
		wantUnconfirmed(t, s, v, verifyd.StatusExpired, verifyd.ReasonTimedOut, exp, verifyd.EventSent)
		if got := MustGetVerification(t, s, d.AccountID, d.ID); got.DeliveryStatus != verifyd.DeliveryDelivered {
			t.Fatalf("delivered verification expired with delivery status %q", got.DeliveryStatus)
		}
		if got := MustGetVerification(t, s, never.AccountID, never.ID); got.DeliveryStatus != "" {
			t.Fatalf("never-sent verification expired with delivery status %q", got.DeliveryStatus)
		}

		// A receipt after expiry still moves it forward (the code arrived late).
		late := exp.Add(time.Minute)
		if res := mustReceipt(t, s, "smsc", "m30", verifyd.DeliveryDelivered, late); !res.Moved {
			t.Fatalf("late delivered receipt did not move delivery_unconfirmed")
		}
		if got := MustGetVerification(t, s, v.AccountID, v.ID); got.DeliveryStatus != verifyd.DeliveryDelivered ||
			got.Status != verifyd.StatusExpired || !got.UpdatedAt.Equal(late) {
			t.Fatalf("after a late receipt: delivery %q status %q updated %v", got.DeliveryStatus, got.Status, got.UpdatedAt)
		}
		wantEvents(t, s, v, verifyd.EventSent, verifyd.EventCompleted, verifyd.EventDelivered)
	})

	subtest(t, open, "UnconfirmedOnExpiryRead", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sent(t, s, p, "+15550000040", "m40")
		exp := v.ExpiresAt.Add(time.Second)
		got, err := s.ExpireVerification(ctx, v.AccountID, v.ID, exp)
		wantNoErr(t, "ExpireVerification", err)
		if got.DeliveryStatus != verifyd.DeliveryUnconfirmed {
			t.Fatalf("returned delivery status %q", got.DeliveryStatus)
		}
		wantUnconfirmed(t, s, v, verifyd.StatusExpired, verifyd.ReasonTimedOut, exp, verifyd.EventSent)
	})

	subtest(t, open, "UnconfirmedOnAccept", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sent(t, s, p, "+15550000050", "m50")
		now := T0.Add(30 * time.Second)
		mustAccept(t, s, v, now)
		wantUnconfirmed(t, s, v, verifyd.StatusAccepted, verifyd.ReasonAccepted, now, verifyd.EventSent)
	})

	subtest(t, open, "UnconfirmedOnSupersede", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v := sent(t, s, p, "+15550000060", "m60")
		next := NewVerification(p, v.PhoneNumber, T0.Add(time.Minute))
		if sup := MustCreateVerification(t, s, next); sup == nil || sup.ID != v.ID {
			t.Fatalf("superseded = %+v, want %s", sup, v.ID)
		}
		wantUnconfirmed(t, s, v, verifyd.StatusExpired, verifyd.ReasonSuperseded, next.CreatedAt, verifyd.EventSent)
	})
}
