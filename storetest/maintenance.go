package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func testMaintenance(t *testing.T, open Opener) {
	ctx := context.Background()

	subtest(t, open, "PurgeFinished", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		// Three old verifications: one finished (accepted), one pending
		// (kept: not finished), one expired; and a young finished one.
		old := make([]*verifyd.Verification, 3)
		for i := range old {
			old[i] = NewVerification(p, "+1555000000"+string(rune('1'+i)), T0.Add(time.Duration(i)*time.Second))
			MustCreateVerification(t, s, old[i])
		}
		young := NewVerification(p, "+15550000009", T0.Add(48*time.Hour))
		MustCreateVerification(t, s, young)
		accept := func(v *verifyd.Verification, at time.Time) {
			_, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ID: v.ID, Now: at, MaxAttempts: 5,
				Decide: func(*verifyd.Verification, int) (verifyd.Decision, error) { return verifyd.DecideAccept, nil }})
			wantNoErr(t, "Attempt", err)
		}
		accept(old[0], T0.Add(10*time.Second))
		_, err := s.ExpireVerification(ctx, a.ID, old[2].ID, T0.Add(time.Hour))
		wantNoErr(t, "ExpireVerification", err)
		accept(young, T0.Add(48*time.Hour+time.Second))

		n, err := s.PurgeFinished(ctx, T0.Add(24*time.Hour), 100)
		wantNoErr(t, "PurgeFinished", err)
		if n != 2 {
			t.Fatalf("PurgeFinished deleted %d, want 2 (the old finished ones)", n)
		}
		for _, v := range []*verifyd.Verification{old[0], old[2]} {
			_, err := s.GetVerification(ctx, a.ID, v.ID)
			wantCode(t, "GetVerification of a purged verification", err, verifyd.ENOTFOUND)
			if evs := MustListEvents(t, s, a.ID, v.ID); len(evs) != 0 {
				t.Fatalf("purged verification still has %d events", len(evs))
			}
		}
		list, total, err := s.ListVerificationsByPhone(ctx, a.ID, old[0].PhoneNumber, 0, 10)
		wantNoErr(t, "ListVerificationsByPhone", err)
		if total != 0 || len(list) != 0 {
			t.Fatalf("the purged phone number is still listed (%d)", total)
		}
		MustGetVerification(t, s, a.ID, old[1].ID)
		MustGetVerification(t, s, a.ID, young.ID)
		if n, _ := s.PurgeFinished(ctx, T0.Add(24*time.Hour), 100); n != 0 {
			t.Fatalf("a second purge deleted %d more", n)
		}
	})

	subtest(t, open, "PurgeFinishedLimit", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		for i := 0; i < 5; i++ {
			v := NewVerification(p, "+1555000010"+string(rune('0'+i)), T0.Add(time.Duration(i)*time.Millisecond))
			MustCreateVerification(t, s, v)
			_, err := s.ExpireVerification(ctx, a.ID, v.ID, T0.Add(time.Hour))
			wantNoErr(t, "ExpireVerification", err)
		}
		total := 0
		for {
			n, err := s.PurgeFinished(ctx, T0.Add(24*time.Hour), 2)
			wantNoErr(t, "PurgeFinished", err)
			if n > 2 {
				t.Fatalf("PurgeFinished(limit 2) deleted %d", n)
			}
			total += n
			if n < 2 {
				break
			}
		}
		if total != 5 {
			t.Fatalf("purged %d in batches, want 5", total)
		}
	})

	subtest(t, open, "PruneCheckFailures", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		reject := func(at time.Time) int {
			var seen int
			_, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: "+15550001111",
				Now: at, MaxAttempts: 5, FailuresSince: T0,
				Decide: func(_ *verifyd.Verification, recent int) (verifyd.Decision, error) {
					seen = recent
					return verifyd.DecideReject, nil
				}})
			wantNoErr(t, "Attempt", err)
			return seen
		}
		reject(T0)
		reject(T0.Add(time.Minute))
		reject(T0.Add(2 * time.Hour))
		n, err := s.PruneCheckFailures(ctx, T0.Add(time.Hour))
		wantNoErr(t, "PruneCheckFailures", err)
		if n != 2 {
			t.Fatalf("PruneCheckFailures deleted %d, want 2", n)
		}
		if seen := reject(T0.Add(3 * time.Hour)); seen != 1 {
			t.Fatalf("after pruning, %d failures remain, want 1", seen)
		}
	})

	subtest(t, open, "TryLease", func(t *testing.T, s verifyd.Store) {
		ok, err := s.TryLease(ctx, "maintenance", "node-a", T0, time.Minute)
		wantNoErr(t, "TryLease", err)
		if !ok {
			t.Fatal("a free lease was not granted")
		}
		ok, err = s.TryLease(ctx, "maintenance", "node-a", T0.Add(30*time.Second), time.Minute)
		wantNoErr(t, "TryLease renew", err)
		if !ok {
			t.Fatal("the holder could not renew its lease")
		}
		if single, _ := s.(interface{ SingleProcess() bool }); single != nil && single.SingleProcess() {
			return // one process: no other holder can exist
		}
		if ok, _ := s.TryLease(ctx, "maintenance", "node-b", T0.Add(time.Minute), time.Minute); ok {
			t.Fatal("another node took a lease that has not lapsed")
		}
		if ok, _ := s.TryLease(ctx, "maintenance", "node-b", T0.Add(2*time.Minute), time.Minute); !ok {
			t.Fatal("a lapsed lease was not granted to another node")
		}
	})
}
