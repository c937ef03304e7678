package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func testVerification(t *testing.T, open Opener) {
	ctx := context.Background()
	const phone = "+15551230001"

	subtest(t, open, "CreateGet", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v := NewVerification(p, phone, T0)
		v.Type, v.CustomCode, v.Extension, v.TimeoutSecs = verifyd.Call, true, "1234", 60
		v.ExpiresAt = T0.Add(60 * time.Second)
		want := *v
		if sup := MustCreateVerification(t, s, v); sup != nil {
			t.Fatalf("CreateVerification superseded %s with nothing pending", sup.ID)
		}
		wantEqual(t, "GetVerification", MustGetVerification(t, s, a.ID, v.ID), &want)
		wantEvents(t, s, v)
		depth, err := s.QueueDepth(ctx)
		wantNoErr(t, "QueueDepth", err)
		if depth != 1 {
			t.Fatalf("QueueDepth after one trigger = %d, want 1", depth)
		}
		jobs, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "w", Now: T0, Lease: time.Minute, Limit: 10})
		wantNoErr(t, "ClaimJobs", err)
		if len(jobs) != 1 || jobs[0].VerificationID != v.ID || string(jobs[0].Payload) != "sealed "+v.ID {
			t.Fatalf("ClaimJobs after one trigger = %+v, want the verification's job", jobs)
		}
	})

	subtest(t, open, "SameMicrosecondStaysOrdered", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		for i := 0; i < 10; i++ {
			v := NewVerification(p, phone, T0)
			MustCreateVerification(t, s, v)
			if !v.CreatedAt.After(T0.Add(time.Duration(i-1)*time.Microsecond)) || !v.ExpiresAt.Equal(v.CreatedAt.Add(300*time.Second)) {
				t.Fatalf("verification %d: created %v expires %v", i, v.CreatedAt, v.ExpiresAt)
			}
			res, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: phone,
				Now: T0, MaxAttempts: 5, Decide: func(got *verifyd.Verification, _ int) (verifyd.Decision, error) {
					if got == nil || got.ID != v.ID {
						t.Errorf("newest for (profile, phone) is not the one created last") // not Fatal: runs on the store's goroutine
					}
					return verifyd.DecideReject, nil
				}})
			wantNoErr(t, "Attempt", err)
			if res.Verification.ID != v.ID {
				t.Fatalf("Attempt hit %s, want %s", res.Verification.ID, v.ID)
			}
		}
	})

	subtest(t, open, "GetScoping", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		v := NewVerification(MustCreateProfile(t, s, a.ID, "Main", T0), phone, T0)
		MustCreateVerification(t, s, v)
		_, err := s.GetVerification(ctx, b.ID, v.ID)
		wantCode(t, "GetVerification of another account", err, verifyd.ENOTFOUND)
		_, err = s.GetVerification(ctx, a.ID, verifyd.NewID())
		wantCode(t, "GetVerification unknown", err, verifyd.ENOTFOUND)
		_, err = s.ExpireVerification(ctx, b.ID, v.ID, T0.Add(time.Hour))
		wantCode(t, "ExpireVerification of another account", err, verifyd.ENOTFOUND)
		wantStatus(t, MustGetVerification(t, s, a.ID, v.ID), verifyd.StatusPending, "")
		if evs := MustListEvents(t, s, b.ID, v.ID); len(evs) != 0 {
			t.Fatalf("ListEvents of another account's verification: %d events", len(evs))
		}
	})

	subtest(t, open, "SupersedeCarriesAttempts", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v1 := NewVerification(p, phone, T0)
		MustCreateVerification(t, s, v1)
		mustReject(t, s, v1, T0.Add(time.Second), 5)
		mustReject(t, s, v1, T0.Add(2*time.Second), 5)

		now := T0.Add(time.Minute)
		v2 := NewVerification(p, phone, now)
		sup := MustCreateVerification(t, s, v2)
		if sup == nil || sup.ID != v1.ID {
			t.Fatalf("CreateVerification superseded %+v, want %s", sup, v1.ID)
		}
		wantStatus(t, sup, verifyd.StatusExpired, verifyd.ReasonSuperseded)
		if sup.Attempts != 2 || !sup.UpdatedAt.Equal(now) {
			t.Fatalf("superseded: attempts %d updated %v, want 2 at %v", sup.Attempts, sup.UpdatedAt, now)
		}
		old := MustGetVerification(t, s, a.ID, v1.ID)
		wantEqual(t, "superseded as stored", old, sup)
		evs := wantEvents(t, s, v1, verifyd.EventCompleted)
		wantCompleted(t, evs[0], old, verifyd.StatusExpired, verifyd.ReasonSuperseded, now)
		if pl := payload(t, evs[0]); pl.FailedAttempts != 2 {
			t.Fatalf("superseded event failed_attempts = %d, want 2", pl.FailedAttempts)
		}

		got := MustGetVerification(t, s, a.ID, v2.ID)
		wantStatus(t, got, verifyd.StatusPending, "")
		if got.Attempts != 2 {
			t.Fatalf("new verification Attempts = %d, want 2 carried over", got.Attempts)
		}

		// And once more: the budget keeps shrinking across resends.
		mustReject(t, s, v2, now.Add(time.Second), 5)
		v3 := NewVerification(p, phone, now.Add(time.Minute))
		MustCreateVerification(t, s, v3)
		if got := MustGetVerification(t, s, a.ID, v3.ID); got.Attempts != 3 {
			t.Fatalf("third verification Attempts = %d, want 3", got.Attempts)
		}
	})

	subtest(t, open, "SupersedeOnlySameProfilePhone", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p, q := MustCreateProfile(t, s, a.ID, "P", T0), MustCreateProfile(t, s, a.ID, "Q", T0)
		otherPhone := NewVerification(p, "+15559990000", T0)
		MustCreateVerification(t, s, otherPhone)
		otherProfile := NewVerification(q, phone, T0)
		MustCreateVerification(t, s, otherProfile)
		if sup := MustCreateVerification(t, s, NewVerification(p, phone, T0.Add(time.Second))); sup != nil {
			t.Fatalf("CreateVerification superseded %s of another (profile, phone)", sup.ID)
		}
		wantStatus(t, MustGetVerification(t, s, a.ID, otherPhone.ID), verifyd.StatusPending, "")
		wantStatus(t, MustGetVerification(t, s, a.ID, otherProfile.ID), verifyd.StatusPending, "")
	})

	subtest(t, open, "NoSupersedeOfTerminal", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v1 := NewVerification(p, phone, T0)
		MustCreateVerification(t, s, v1)
		mustAccept(t, s, v1, T0.Add(time.Second))
		v2 := NewVerification(p, phone, T0.Add(time.Minute))
		if sup := MustCreateVerification(t, s, v2); sup != nil {
			t.Fatalf("CreateVerification superseded accepted %s", sup.ID)
		}
		wantStatus(t, MustGetVerification(t, s, a.ID, v1.ID), verifyd.StatusAccepted, verifyd.ReasonAccepted)
		if got := MustGetVerification(t, s, a.ID, v2.ID); got.Attempts != 0 {
			t.Fatalf("Attempts carried from an accepted verification: %d", got.Attempts)
		}
	})

	subtest(t, open, "GuardSeesNilWhenNone", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		MustCreateVerification(t, s, NewVerification(p, "+15559990000", T0)) // another phone
		v := NewVerification(p, phone, T0)
		calls := 0
		_, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: NewJob(v, T0), Now: T0,
			Guard: func(newest *verifyd.Verification) error {
				calls++
				if newest != nil {
					t.Errorf("Guard saw %s, want nil", newest.ID)
				}
				return nil
			}})
		wantNoErr(t, "CreateVerification", err)
		if calls != 1 {
			t.Fatalf("Guard called %d times, want 1", calls)
		}
	})

	subtest(t, open, "GuardSeesNewest", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v1 := NewVerification(p, phone, T0)
		MustCreateVerification(t, s, v1)
		// Same created_at: the later one is moved 1 µs after the other and
		// is the newest, whatever the IDs.
		v2 := NewVerification(p, phone, T0.Add(time.Second))
		v3 := NewVerification(p, phone, T0.Add(time.Second))
		MustCreateVerification(t, s, v2)
		MustCreateVerification(t, s, v3)
		newest := v3
		now := T0.Add(2 * time.Second)
		v := NewVerification(p, phone, now)
		var seen *verifyd.Verification
		_, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: NewJob(v, now), Now: now,
			Guard: func(n *verifyd.Verification) error { seen = n; return nil }})
		wantNoErr(t, "CreateVerification", err)
		if seen == nil || seen.ID != newest.ID {
			t.Fatalf("Guard saw %+v, want newest %s", seen, newest.ID)
		}
	})

	subtest(t, open, "GuardErrorRollsBack", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v1 := NewVerification(p, phone, T0)
		MustCreateVerification(t, s, v1)
		now := T0.Add(time.Minute)
		v2 := NewVerification(p, phone, now)
		refusal := verifyd.Errorf(verifyd.ERATELIMITED, "Too many requests.")
		sup, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v2, Job: NewJob(v2, now), Now: now,
			Guard: func(n *verifyd.Verification) error {
				if n == nil || n.ID != v1.ID || n.Status != verifyd.StatusPending {
					t.Errorf("Guard saw %+v, want pending %s", n, v1.ID)
				}
				return refusal
			}})
		wantCode(t, "CreateVerification refused by Guard", err, verifyd.ERATELIMITED)
		if sup != nil {
			t.Fatalf("refused CreateVerification returned superseded %s", sup.ID)
		}
		_, err = s.GetVerification(ctx, a.ID, v2.ID)
		wantCode(t, "GetVerification of a refused trigger", err, verifyd.ENOTFOUND)
		wantStatus(t, MustGetVerification(t, s, a.ID, v1.ID), verifyd.StatusPending, "")
		wantEvents(t, s, v1)
		depth, err := s.QueueDepth(ctx)
		wantNoErr(t, "QueueDepth", err)
		if depth != 1 {
			t.Fatalf("QueueDepth after a refused trigger = %d, want 1 (no job)", depth)
		}
	})

	subtest(t, open, "GuardErrorKeepsTimeExpiry", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v1 := NewVerification(p, phone, T0)
		MustCreateVerification(t, s, v1)
		now := v1.ExpiresAt // expiry is inclusive: at ExpiresAt it has expired
		v2 := NewVerification(p, phone, now)
		_, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v2, Job: NewJob(v2, now), Now: now,
			Guard: func(n *verifyd.Verification) error {
				if n == nil || n.ID != v1.ID || n.Status != verifyd.StatusExpired || n.CompletionReason != verifyd.ReasonTimedOut {
					t.Errorf("Guard saw %+v, want %s expired by time", n, v1.ID)
				}
				return verifyd.Errorf(verifyd.ESPENDLIMIT, "Spend limit reached.")
			}})
		wantCode(t, "CreateVerification refused by Guard", err, verifyd.ESPENDLIMIT)
		got := MustGetVerification(t, s, a.ID, v1.ID)
		wantStatus(t, got, verifyd.StatusExpired, verifyd.ReasonTimedOut)
		evs := wantEvents(t, s, v1, verifyd.EventCompleted)
		wantCompleted(t, evs[0], got, verifyd.StatusExpired, verifyd.ReasonTimedOut, now)
		_, err = s.GetVerification(ctx, a.ID, v2.ID)
		wantCode(t, "GetVerification of a refused trigger", err, verifyd.ENOTFOUND)
	})

	subtest(t, open, "ExpiredNewestIsNotSuperseded", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v1 := NewVerification(p, phone, T0)
		MustCreateVerification(t, s, v1)
		now := v1.ExpiresAt.Add(time.Second)
		if sup := MustCreateVerification(t, s, NewVerification(p, phone, now)); sup != nil {
			t.Fatalf("CreateVerification superseded %s, which had expired by time", sup.ID)
		}
		got := MustGetVerification(t, s, a.ID, v1.ID)
		wantStatus(t, got, verifyd.StatusExpired, verifyd.ReasonTimedOut)
		evs := wantEvents(t, s, v1, verifyd.EventCompleted)
		wantCompleted(t, evs[0], got, verifyd.StatusExpired, verifyd.ReasonTimedOut, now)
	})

	subtest(t, open, "ListByPhone", func(t *testing.T, s verifyd.Store) {
		a, b := MustCreateAccount(t, s), MustCreateAccount(t, s)
		p, q := MustCreateProfile(t, s, a.ID, "P", T0), MustCreateProfile(t, s, a.ID, "Q", T0)
		pb := MustCreateProfile(t, s, b.ID, "B", T0)
		mk := func(pr *verifyd.Profile, ph string, at time.Time) *verifyd.Verification {
			v := NewVerification(pr, ph, at)
			MustCreateVerification(t, s, v)
			return v
		}
		v0 := mk(p, phone, T0)
		v1 := mk(q, phone, T0.Add(time.Second))
		v2a := mk(p, phone, T0.Add(2*time.Second))
		v2b := mk(q, phone, T0.Add(2*time.Second))
		v3 := mk(p, phone, T0.Add(3*time.Second))
		mk(p, "+15559990000", T0.Add(4*time.Second))
		mk(pb, phone, T0.Add(5*time.Second))
		if v2a.ID < v2b.ID {
			v2a, v2b = v2b, v2a
		}
		want := []string{v3.ID, v2a.ID, v2b.ID, v1.ID, v0.ID}
		vid := func(v *verifyd.Verification) string { return v.ID }

		list, total, err := s.ListVerificationsByPhone(ctx, a.ID, phone, 0, 10)
		wantNoErr(t, "ListVerificationsByPhone", err)
		wantIDs(t, "ListVerificationsByPhone", ids(list, vid), want)
		if total != 5 {
			t.Fatalf("ListVerificationsByPhone total = %d, want 5", total)
		}
		wantEqual(t, "listed verification", list[0], MustGetVerification(t, s, a.ID, v3.ID))

		list, total, err = s.ListVerificationsByPhone(ctx, a.ID, phone, 2, 2)
		wantNoErr(t, "ListVerificationsByPhone page", err)
		wantIDs(t, "ListVerificationsByPhone offset 2 limit 2", ids(list, vid), want[2:4])
		if total != 5 {
			t.Fatalf("ListVerificationsByPhone page total = %d, want 5", total)
		}
		list, total, err = s.ListVerificationsByPhone(ctx, a.ID, phone, 20, 2)
		wantNoErr(t, "ListVerificationsByPhone past the end", err)
		if len(list) != 0 || total != 5 {
			t.Fatalf("ListVerificationsByPhone past the end = %d, total %d; want 0, 5", len(list), total)
		}
		list, total, err = s.ListVerificationsByPhone(ctx, a.ID, "+15550000000", 0, 10)
		wantNoErr(t, "ListVerificationsByPhone unknown phone", err)
		if len(list) != 0 || total != 0 {
			t.Fatalf("ListVerificationsByPhone unknown phone = %d, total %d", len(list), total)
		}
		list, total, err = s.ListVerificationsByPhone(ctx, b.ID, phone, 0, 10)
		wantNoErr(t, "ListVerificationsByPhone(b)", err)
		if len(list) != 1 || total != 1 || list[0].AccountID != b.ID {
			t.Fatalf("ListVerificationsByPhone(b) = %d, total %d; want b's one", len(list), total)
		}
	})

	subtest(t, open, "ExpireVerification", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v := NewVerification(p, phone, T0)
		MustCreateVerification(t, s, v)
		stored := MustGetVerification(t, s, a.ID, v.ID)

		got, err := s.ExpireVerification(ctx, a.ID, v.ID, v.ExpiresAt.Add(-time.Microsecond))
		wantNoErr(t, "ExpireVerification before expiry", err)
		wantEqual(t, "ExpireVerification before expiry", got, stored)
		wantEvents(t, s, v)

		now := v.ExpiresAt.Add(time.Minute)
		got, err = s.ExpireVerification(ctx, a.ID, v.ID, now)
		wantNoErr(t, "ExpireVerification", err)
		wantStatus(t, got, verifyd.StatusExpired, verifyd.ReasonTimedOut)
		if !got.UpdatedAt.Equal(now) {
			t.Fatalf("UpdatedAt = %v, want %v", got.UpdatedAt, now)
		}
		wantEqual(t, "expired as stored", MustGetVerification(t, s, a.ID, v.ID), got)
		evs := wantEvents(t, s, v, verifyd.EventCompleted)
		wantCompleted(t, evs[0], got, verifyd.StatusExpired, verifyd.ReasonTimedOut, now)

		again, err := s.ExpireVerification(ctx, a.ID, v.ID, now.Add(time.Minute))
		wantNoErr(t, "ExpireVerification twice", err)
		wantEqual(t, "ExpireVerification twice", again, got)
		wantEvents(t, s, v, verifyd.EventCompleted)

		acc := NewVerification(p, "+15559990000", T0)
		MustCreateVerification(t, s, acc)
		mustAccept(t, s, acc, T0.Add(time.Second))
		got, err = s.ExpireVerification(ctx, a.ID, acc.ID, now)
		wantNoErr(t, "ExpireVerification accepted", err)
		wantStatus(t, got, verifyd.StatusAccepted, verifyd.ReasonAccepted)

		_, err = s.ExpireVerification(ctx, a.ID, verifyd.NewID(), now)
		wantCode(t, "ExpireVerification unknown", err, verifyd.ENOTFOUND)
	})

	subtest(t, open, "ExpirePending", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		var due []*verifyd.Verification
		for i, ph := range []string{"+15550000001", "+15550000002", "+15550000003"} {
			v := NewVerification(p, ph, T0.Add(time.Duration(i)*time.Second))
			MustCreateVerification(t, s, v)
			due = append(due, v)
		}
		later := NewVerification(p, "+15550000004", T0.Add(time.Hour))
		MustCreateVerification(t, s, later)
		acc := NewVerification(p, "+15550000005", T0)
		MustCreateVerification(t, s, acc)
		mustAccept(t, s, acc, T0.Add(time.Second))

		now := T0.Add(10 * time.Minute)
		n, err := s.ExpirePending(ctx, now, 2)
		wantNoErr(t, "ExpirePending", err)
		if n != 2 {
			t.Fatalf("ExpirePending limit 2 = %d", n)
		}
		n, err = s.ExpirePending(ctx, now, 2)
		wantNoErr(t, "ExpirePending", err)
		if n != 1 {
			t.Fatalf("ExpirePending second pass = %d, want 1", n)
		}
		n, err = s.ExpirePending(ctx, now, 2)
		wantNoErr(t, "ExpirePending", err)
		if n != 0 {
			t.Fatalf("ExpirePending third pass = %d, want 0", n)
		}
		for _, v := range due {
			got := MustGetVerification(t, s, a.ID, v.ID)
			wantStatus(t, got, verifyd.StatusExpired, verifyd.ReasonTimedOut)
			evs := wantEvents(t, s, v, verifyd.EventCompleted)
			wantCompleted(t, evs[0], got, verifyd.StatusExpired, verifyd.ReasonTimedOut, now)
		}
		wantStatus(t, MustGetVerification(t, s, a.ID, later.ID), verifyd.StatusPending, "")
		wantStatus(t, MustGetVerification(t, s, a.ID, acc.ID), verifyd.StatusAccepted, verifyd.ReasonAccepted)
	})
}
