package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// decide returns a Decide func that always decides d.
func decide(d verifyd.Decision) func(*verifyd.Verification, int) (verifyd.Decision, error) {
	return func(*verifyd.Verification, int) (verifyd.Decision, error) { return d, nil }
}

// mustAttempt runs Attempt and fails tb on error.
func mustAttempt(tb testing.TB, s verifyd.Store, p verifyd.AttemptParams) verifyd.AttemptResult {
	tb.Helper()
	res, err := s.Attempt(context.Background(), p)
	if err != nil {
		tb.Fatalf("Attempt: %v", err)
	}
	return res
}

// mustAccept checks v by ID with the right code at now (MaxAttempts 5) and
// fails tb unless it is accepted.
func mustAccept(tb testing.TB, s verifyd.Store, v *verifyd.Verification, now time.Time) {
	tb.Helper()
	res := mustAttempt(tb, s, verifyd.AttemptParams{AccountID: v.AccountID, ID: v.ID, Now: now, MaxAttempts: 5,
		FailuresSince: now.Add(-time.Hour), Decide: decide(verifyd.DecideAccept)})
	if !res.Accepted {
		tb.Fatalf("Attempt accept of %s not accepted: %+v", v.ID, res.Verification)
	}
}

// mustReject checks v by ID with a wrong code at now.
func mustReject(tb testing.TB, s verifyd.Store, v *verifyd.Verification, now time.Time, max int) *verifyd.Verification {
	tb.Helper()
	res := mustAttempt(tb, s, verifyd.AttemptParams{AccountID: v.AccountID, ID: v.ID, Now: now, MaxAttempts: max,
		FailuresSince: now.Add(-time.Hour), Decide: decide(verifyd.DecideReject)})
	if res.Accepted || res.Verification == nil {
		tb.Fatalf("Attempt reject of %s: %+v", v.ID, res)
	}
	return res.Verification
}

func testAttempt(t *testing.T, open Opener) {
	ctx := context.Background()
	const phone = "+15551230002"

	setup := func(t *testing.T, s verifyd.Store) (*verifyd.Profile, *verifyd.Verification) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		v := NewVerification(p, phone, T0)
		MustCreateVerification(t, s, v)
		return p, v
	}

	subtest(t, open, "AcceptByID", func(t *testing.T, s verifyd.Store) {
		_, v := setup(t, s)
		now := T0.Add(10 * time.Second)
		var seen *verifyd.Verification
		res := mustAttempt(t, s, verifyd.AttemptParams{AccountID: v.AccountID, ID: v.ID, Now: now, MaxAttempts: 5,
			FailuresSince: T0, Decide: func(x *verifyd.Verification, failures int) (verifyd.Decision, error) {
				seen = x
				if failures != 0 {
					t.Errorf("Decide saw %d failures, want 0", failures)
				}
				return verifyd.DecideAccept, nil
			}})
		if seen == nil || seen.ID != v.ID || seen.Status != verifyd.StatusPending || seen.Attempts != 0 {
			t.Fatalf("Decide saw %+v, want pending %s before counting", seen, v.ID)
		}
		if !res.Accepted || res.Verification == nil {
			t.Fatalf("Attempt = %+v, want accepted", res)
		}
		wantStatus(t, res.Verification, verifyd.StatusAccepted, verifyd.ReasonAccepted)
		if res.Verification.Attempts != 1 || !res.Verification.UpdatedAt.Equal(now) || res.Verification.FailedAttempts() != 0 {
			t.Fatalf("accepted: attempts %d updated %v", res.Verification.Attempts, res.Verification.UpdatedAt)
		}
		got := MustGetVerification(t, s, v.AccountID, v.ID)
		wantEqual(t, "accepted as stored", got, res.Verification)
		evs := wantEvents(t, s, v, verifyd.EventCompleted)
		wantCompleted(t, evs[0], got, verifyd.StatusAccepted, verifyd.ReasonAccepted, now)

		// A second right code is no accept: the verification is not pending.
		res = mustAttempt(t, s, verifyd.AttemptParams{AccountID: v.AccountID, ID: v.ID, Now: now, MaxAttempts: 5,
			FailuresSince: T0, Decide: decide(verifyd.DecideAccept)})
		if res.Accepted || res.Verification.Attempts != 1 {
			t.Fatalf("second accept = %+v, want a reject that counts nothing", res)
		}
		wantEvents(t, s, v, verifyd.EventCompleted)
	})

	subtest(t, open, "AcceptByProfilePhoneNewest", func(t *testing.T, s verifyd.Store) {
		p, v1 := setup(t, s)
		v2 := NewVerification(p, phone, T0.Add(time.Second))
		MustCreateVerification(t, s, v2)
		res := mustAttempt(t, s, verifyd.AttemptParams{AccountID: p.AccountID, ProfileID: p.ID, PhoneNumber: phone,
			Now: T0.Add(2 * time.Second), MaxAttempts: 5, FailuresSince: T0, Decide: func(x *verifyd.Verification, _ int) (verifyd.Decision, error) {
				if x == nil || x.ID != v2.ID {
					t.Errorf("Decide saw %+v, want newest %s", x, v2.ID)
				}
				return verifyd.DecideAccept, nil
			}})
		if !res.Accepted || res.Verification.ID != v2.ID {
			t.Fatalf("Attempt by profile and phone = %+v, want %s accepted", res, v2.ID)
		}
		wantStatus(t, MustGetVerification(t, s, p.AccountID, v1.ID), verifyd.StatusExpired, verifyd.ReasonSuperseded)
	})

	subtest(t, open, "RejectExhausts", func(t *testing.T, s verifyd.Store) {
		_, v := setup(t, s)
		for i := 1; i <= 2; i++ {
			got := mustReject(t, s, v, T0.Add(time.Duration(i)*time.Second), 3)
			wantStatus(t, got, verifyd.StatusPending, "")
			if got.Attempts != i || !got.UpdatedAt.Equal(T0.Add(time.Duration(i)*time.Second)) {
				t.Fatalf("reject %d: attempts %d updated %v", i, got.Attempts, got.UpdatedAt)
			}
		}
		wantEvents(t, s, v)
		now := T0.Add(3 * time.Second)
		got := mustReject(t, s, v, now, 3)
		wantStatus(t, got, verifyd.StatusInvalid, verifyd.ReasonAttemptsExhausted)
		if got.Attempts != 3 {
			t.Fatalf("exhausting reject: attempts %d, want 3", got.Attempts)
		}
		wantEqual(t, "invalid as stored", MustGetVerification(t, s, v.AccountID, v.ID), got)
		evs := wantEvents(t, s, v, verifyd.EventCompleted)
		wantCompleted(t, evs[0], got, verifyd.StatusInvalid, verifyd.ReasonAttemptsExhausted, now)
		if pl := payload(t, evs[0]); pl.FailedAttempts != 3 {
			t.Fatalf("exhausted event failed_attempts = %d", pl.FailedAttempts)
		}

		got = mustReject(t, s, v, now.Add(time.Second), 3)
		if got.Attempts != 3 || got.Status != verifyd.StatusInvalid {
			t.Fatalf("reject after exhaustion counted: %+v", got)
		}
		res := mustAttempt(t, s, verifyd.AttemptParams{AccountID: v.AccountID, ID: v.ID, Now: now.Add(time.Second),
			MaxAttempts: 3, FailuresSince: T0, Decide: decide(verifyd.DecideAccept)})
		if res.Accepted || res.Verification.Status != verifyd.StatusInvalid {
			t.Fatalf("accept after exhaustion = %+v", res)
		}
		wantEvents(t, s, v, verifyd.EventCompleted)
	})

	subtest(t, open, "AcceptNeedsBudget", func(t *testing.T, s verifyd.Store) {
		p, v1 := setup(t, s)
		mustReject(t, s, v1, T0.Add(time.Second), 5)
		mustReject(t, s, v1, T0.Add(2*time.Second), 5)
		v2 := NewVerification(p, phone, T0.Add(time.Minute))
		MustCreateVerification(t, s, v2) // carries Attempts 2
		now := T0.Add(2 * time.Minute)
		res := mustAttempt(t, s, verifyd.AttemptParams{AccountID: p.AccountID, ID: v2.ID, Now: now, MaxAttempts: 2,
			FailuresSince: T0, Decide: decide(verifyd.DecideAccept)})
		if res.Accepted {
			t.Fatalf("accepted with Attempts %d at MaxAttempts 2", res.Verification.Attempts)
		}
		if res.Verification.Status == verifyd.StatusAccepted || res.Verification.Status == verifyd.StatusPending {
			t.Fatalf("accept without budget left status %q, want a counted reject", res.Verification.Status)
		}
		wantStatus(t, res.Verification, verifyd.StatusInvalid, verifyd.ReasonAttemptsExhausted)
	})

	subtest(t, open, "RecentFailures", func(t *testing.T, s verifyd.Store) {
		a := MustCreateAccount(t, s)
		p := MustCreateProfile(t, s, a.ID, "Main", T0)
		q := MustCreateProfile(t, s, a.ID, "Other", T0)
		check := func(pr *verifyd.Profile, ph string, now, since time.Time, d verifyd.Decision) int {
			t.Helper()
			seen := -1
			res := mustAttempt(t, s, verifyd.AttemptParams{AccountID: a.ID, ProfileID: pr.ID, PhoneNumber: ph,
				Now: now, MaxAttempts: 5, FailuresSince: since, Decide: func(v *verifyd.Verification, n int) (verifyd.Decision, error) {
					if v != nil {
						t.Errorf("Decide saw %s for an unknown phone", v.ID)
					}
					seen = n
					return d, nil
				}})
			if res.Verification != nil || res.Accepted {
				t.Fatalf("Attempt on an unknown phone = %+v", res)
			}
			return seen
		}
		const unknown = "+15557770000"
		for i := range 3 {
			at := T0.Add(time.Duration(i) * time.Minute)
			if n := check(p, unknown, at, T0, verifyd.DecideReject); n != i {
				t.Fatalf("failure %d: Decide saw %d recent failures, want %d", i, n, i)
			}
		}
		now := T0.Add(10 * time.Minute)
		if n := check(p, unknown, now, T0.Add(90*time.Second), verifyd.DecideAccept); n != 1 {
			t.Fatalf("failures since T0+90s = %d, want 1 (only the one at T0+2m)", n)
		}
		// The accept above found nothing to accept: it counted as a failure.
		if n := check(p, unknown, now, T0.Add(2*time.Minute), verifyd.DecideReject); n != 2 {
			t.Fatalf("failures since T0+2m = %d, want 2 (start is inclusive)", n)
		}
		if n := check(p, unknown, now, now.Add(time.Second), verifyd.DecideReject); n != 0 {
			t.Fatalf("failures in a window after them = %d, want 0", n)
		}
		if n := check(p, "+15557770001", now, T0, verifyd.DecideReject); n != 0 {
			t.Fatalf("failures of another phone = %d, want 0", n)
		}
		if n := check(q, unknown, now, T0, verifyd.DecideReject); n != 0 {
			t.Fatalf("failures of another profile = %d, want 0", n)
		}

		// Rejects of a known verification count for its (profile, phone) too.
		v := NewVerification(p, phone, now)
		MustCreateVerification(t, s, v)
		mustReject(t, s, v, now.Add(time.Second), 5)
		mustReject(t, s, v, now.Add(2*time.Second), 5)
		res := mustAttempt(t, s, verifyd.AttemptParams{AccountID: a.ID, ID: v.ID, Now: now.Add(3 * time.Second),
			MaxAttempts: 5, FailuresSince: now, Decide: func(_ *verifyd.Verification, n int) (verifyd.Decision, error) {
				if n != 2 {
					t.Errorf("Decide saw %d failures of the verification's (profile, phone), want 2", n)
				}
				return verifyd.DecideAccept, nil
			}})
		if !res.Accepted {
			t.Fatalf("accept after two rejects: %+v", res)
		}
		if res.Verification.FailedAttempts() != 2 {
			t.Fatalf("FailedAttempts = %d, want 2", res.Verification.FailedAttempts())
		}
	})

	subtest(t, open, "DecideErrorChangesNothing", func(t *testing.T, s verifyd.Store) {
		p, v := setup(t, s)
		mustReject(t, s, v, T0.Add(time.Second), 5)
		before := MustGetVerification(t, s, p.AccountID, v.ID)
		refuse := func(*verifyd.Verification, int) (verifyd.Decision, error) {
			return verifyd.DecideReject, verifyd.Errorf(verifyd.ERATELIMITED, "Too many checks.")
		}
		_, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: p.AccountID, ID: v.ID, Now: T0.Add(2 * time.Second),
			MaxAttempts: 5, FailuresSince: T0, Decide: refuse})
		wantCode(t, "Attempt refused by Decide", err, verifyd.ERATELIMITED)
		_, err = s.Attempt(ctx, verifyd.AttemptParams{AccountID: p.AccountID, ProfileID: p.ID, PhoneNumber: "+15550000000",
			Now: T0.Add(2 * time.Second), MaxAttempts: 5, FailuresSince: T0, Decide: refuse})
		wantCode(t, "Attempt on an unknown phone refused by Decide", err, verifyd.ERATELIMITED)
		wantEqual(t, "verification after refused checks", MustGetVerification(t, s, p.AccountID, v.ID), before)
		wantEvents(t, s, v)
		for _, ph := range []string{phone, "+15550000000"} {
			mustAttempt(t, s, verifyd.AttemptParams{AccountID: p.AccountID, ProfileID: p.ID, PhoneNumber: ph,
				Now: T0.Add(3 * time.Second), MaxAttempts: 5, FailuresSince: T0,
				Decide: func(_ *verifyd.Verification, n int) (verifyd.Decision, error) {
					want := map[string]int{phone: 1, "+15550000000": 0}[ph]
					if n != want {
						t.Errorf("failures of %s after refused checks = %d, want %d", ph, n, want)
					}
					return verifyd.DecideAccept, nil
				}})
		}
	})

	subtest(t, open, "DecideErrorKeepsTimeExpiry", func(t *testing.T, s verifyd.Store) {
		p, v := setup(t, s)
		now := v.ExpiresAt
		_, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: p.AccountID, ID: v.ID, Now: now, MaxAttempts: 5,
			FailuresSince: T0, Decide: func(x *verifyd.Verification, _ int) (verifyd.Decision, error) {
				if x == nil || x.Status != verifyd.StatusExpired || x.CompletionReason != verifyd.ReasonTimedOut {
					t.Errorf("Decide saw %+v, want expired by time", x)
				}
				return verifyd.DecideReject, verifyd.Errorf(verifyd.ERATELIMITED, "Too many checks.")
			}})
		wantCode(t, "Attempt refused by Decide", err, verifyd.ERATELIMITED)
		got := MustGetVerification(t, s, p.AccountID, v.ID)
		wantStatus(t, got, verifyd.StatusExpired, verifyd.ReasonTimedOut)
		if got.Attempts != 0 {
			t.Fatalf("refused check counted: attempts %d", got.Attempts)
		}
		evs := wantEvents(t, s, v, verifyd.EventCompleted)
		wantCompleted(t, evs[0], got, verifyd.StatusExpired, verifyd.ReasonTimedOut, now)
	})

	subtest(t, open, "ExpiryBeforeDecide", func(t *testing.T, s verifyd.Store) {
		p, v := setup(t, s)
		now := v.ExpiresAt.Add(time.Second)
		res := mustAttempt(t, s, verifyd.AttemptParams{AccountID: p.AccountID, ID: v.ID, Now: now, MaxAttempts: 5,
			FailuresSince: T0, Decide: func(x *verifyd.Verification, _ int) (verifyd.Decision, error) {
				if x == nil || x.Status != verifyd.StatusExpired {
					t.Errorf("Decide saw %+v, want expired by time", x)
				}
				return verifyd.DecideAccept, nil
			}})
		if res.Accepted {
			t.Fatal("accepted a verification past its expiry")
		}
		wantStatus(t, res.Verification, verifyd.StatusExpired, verifyd.ReasonTimedOut)
		if res.Verification.Attempts != 0 {
			t.Fatalf("check of an expired verification counted: %d", res.Verification.Attempts)
		}
		wantEvents(t, s, v, verifyd.EventCompleted)
	})

	subtest(t, open, "Scoping", func(t *testing.T, s verifyd.Store) {
		p, v := setup(t, s)
		b := MustCreateAccount(t, s)
		for _, ap := range []verifyd.AttemptParams{
			{AccountID: b.ID, ID: v.ID},
			{AccountID: b.ID, ProfileID: p.ID, PhoneNumber: phone},
			{AccountID: p.AccountID, ID: verifyd.NewID()},
		} {
			ap.Now, ap.MaxAttempts, ap.FailuresSince = T0.Add(time.Second), 5, T0
			ap.Decide = func(x *verifyd.Verification, _ int) (verifyd.Decision, error) {
				if x != nil {
					t.Errorf("Decide saw %s through %+v", x.ID, ap)
				}
				return verifyd.DecideAccept, nil
			}
			if res := mustAttempt(t, s, ap); res.Verification != nil || res.Accepted {
				t.Fatalf("Attempt %+v = %+v, want nothing found", ap, res)
			}
		}
		wantStatus(t, MustGetVerification(t, s, p.AccountID, v.ID), verifyd.StatusPending, "")
	})

	subtest(t, open, "ConcurrentWrongCodesAndOneRight", func(t *testing.T, s verifyd.Store) {
		p, v := setup(t, s)
		const max = 5
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepts := 0
		for i := range 51 {
			d := verifyd.DecideReject
			if i == 25 {
				d = verifyd.DecideAccept
			}
			wg.Go(func() {
				res, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: p.AccountID, ID: v.ID,
					Now: T0.Add(time.Second), MaxAttempts: max, FailuresSince: T0,
					Decide: func(x *verifyd.Verification, _ int) (verifyd.Decision, error) {
						if x.Attempts > max {
							t.Errorf("Decide saw Attempts %d > %d", x.Attempts, max)
						}
						return d, nil
					}})
				if err != nil {
					t.Errorf("Attempt: %v", err)
					return
				}
				if res.Verification.Attempts > max {
					t.Errorf("Attempts %d > %d", res.Verification.Attempts, max)
				}
				if res.Accepted {
					mu.Lock()
					accepts++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		got := MustGetVerification(t, s, p.AccountID, v.ID)
		if got.Attempts > max || accepts > 1 {
			t.Fatalf("after 51 concurrent checks: attempts %d, accepts %d", got.Attempts, accepts)
		}
		switch got.Status {
		case verifyd.StatusAccepted:
			if accepts != 1 {
				t.Fatalf("status accepted but %d accepts reported", accepts)
			}
		case verifyd.StatusInvalid:
			if accepts != 0 || got.Attempts != max {
				t.Fatalf("status invalid with %d accepts, attempts %d", accepts, got.Attempts)
			}
		default:
			t.Fatalf("status %q after 51 checks", got.Status)
		}
		wantEvents(t, s, v, verifyd.EventCompleted)
	})

	subtest(t, open, "ConcurrentAccepts", func(t *testing.T, s verifyd.Store) {
		p, v := setup(t, s)
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepts := 0
		for range 20 {
			wg.Go(func() {
				res, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: p.AccountID, ID: v.ID,
					Now: T0.Add(time.Second), MaxAttempts: 5, FailuresSince: T0, Decide: decide(verifyd.DecideAccept)})
				if err != nil {
					t.Errorf("Attempt: %v", err)
					return
				}
				if res.Accepted {
					mu.Lock()
					accepts++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if accepts != 1 {
			t.Fatalf("20 concurrent accepts: %d accepted, want exactly 1", accepts)
		}
		got := MustGetVerification(t, s, p.AccountID, v.ID)
		wantStatus(t, got, verifyd.StatusAccepted, verifyd.ReasonAccepted)
		if got.Attempts != 1 {
			t.Fatalf("Attempts after concurrent accepts = %d, want 1", got.Attempts)
		}
		wantEvents(t, s, v, verifyd.EventCompleted)
	})
}
