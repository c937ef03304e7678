package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
)

// Attempt checks a code atomically: it selects and locks the verification
// (FOR UPDATE: concurrent checks of one verification run one after the
// other, so the counter is incremented before the compare and at most one
// accepts), resolves its expiry (kept even if Decide refuses), counts
// recent failures of (profile, phone), calls Decide and applies the
// decision.
//
// With writers (WithWriters) concurrent triggers and checks share
// transactions (writer.go); every operation of a batch the server refused
// runs alone (attemptAlone).
func (s *Store) Attempt(ctx context.Context, p verifyd.AttemptParams) (verifyd.AttemptResult, error) {
	if p.Decide == nil {
		return verifyd.AttemptResult{}, verifyd.Errorf(verifyd.EINTERNAL, "Decide is required.")
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	if s.wq == nil {
		return s.attemptAlone(ctx, octx, p)
	}
	out, err := s.submit(&wop{ctx: ctx, octx: octx, attempt: &p})
	if out.fallback {
		return s.attemptAlone(ctx, octx, p)
	}
	if err != nil {
		return verifyd.AttemptResult{}, err
	}
	return out.attempt, nil
}

// attemptStep is the logic of a check, run on v (the verification
// selected, read and locked in the transaction, or nil; it may be changed)
// and the failures counted for its (profile, phone): it returns the writes
// and the outcome. A refused check returns its error and only the writes
// it keeps (a time expiry before Decide). Decide may thus run more than
// once for one check (a transaction that failed runs again).
//
// hooked tells whether v's profile has a webhook; false when it is known
// to have none, so that no event payload is built (insertEvents writes
// events only for a profile with a webhook).
func attemptStep(p verifyd.AttemptParams, v *verifyd.Verification, failures int, hooked bool) (w writes, res verifyd.AttemptResult, err error) {
	profileID, phone := p.ProfileID, p.PhoneNumber
	if v != nil {
		profileID, phone = v.ProfileID, v.PhoneNumber
	}
	if profileID == "" {
		failures = 0 // by ID and not found: no (profile, phone) to count for
	}
	if v != nil && v.PendingExpired(p.Now) {
		w.complete(hooked, v, verifyd.StatusExpired, verifyd.ReasonTimedOut, p.Now)
		w.save = v
	}
	d, derr := p.DecideOn(v, failures)
	if derr != nil {
		return w, verifyd.AttemptResult{}, derr
	}

	pending := v != nil && v.Status == verifyd.StatusPending
	switch {
	case d == verifyd.DecideAccept && pending && v.Attempts < p.MaxAttempts:
		v.Attempts++
		w.complete(hooked, v, verifyd.StatusAccepted, verifyd.ReasonAccepted, p.Now)
		w.save = v
		res.Accepted = true
	default: // a reject, or an accept that cannot apply
		if pending {
			v.Attempts++
			v.UpdatedAt = p.Now
			if v.Attempts >= p.MaxAttempts {
				w.complete(hooked, v, verifyd.StatusInvalid, verifyd.ReasonAttemptsExhausted, p.Now)
			}
			w.save = v
		}
		if profileID != "" {
			w.failure = &checkFailure{profileID: profileID, phone: phone, at: p.Now}
		}
	}
	res.Verification = v
	return w, res, nil
}

// attemptAlone is Attempt as its own transaction, under octx.
//
// Two round trips: BEGIN, (by phone) the (profile, phone) advisory lock,
// the verification and the failure count go in one; the writes and COMMIT
// in the other. The count is its own statement after the lock, so it sees
// every failure committed before the lock was granted.
func (s *Store) attemptAlone(ctx, octx context.Context, p verifyd.AttemptParams) (verifyd.AttemptResult, error) {
	var res verifyd.AttemptResult
	err := s.txIn(ctx, octx, func(ctx context.Context, t *txn) error {
		res = verifyd.AttemptResult{}
		var v *verifyd.Verification
		var failures int
		countInto := func(row pgx.Row) error { return row.Scan(&failures) }
		if p.ID != "" {
			t.queue(qVerificationByID+` FOR UPDATE`, p.ID, p.AccountID).Query(scanOne(&v))
			// The row subquery runs once (an InitPlan), so the count is one
			// range of check_failures_profile_phone.
			t.queue(`SELECT count(*) FROM check_failures
				WHERE (profile_id, phone_number) = (SELECT profile_id, phone_number FROM verifications
					WHERE id = $1 AND account_id = $2) AND at >= $3`, p.ID, p.AccountID, p.FailuresSince).
				QueryRow(countInto)
		} else {
			t.queue(qLockProfilePhone, p.ProfileID, p.PhoneNumber)
			t.queue(qNewestVerification+` FOR UPDATE`, p.ProfileID, p.PhoneNumber, p.AccountID).Query(scanOne(&v))
			t.queue(`SELECT count(*) FROM check_failures WHERE profile_id = $1 AND phone_number = $2 AND at >= $3`,
				p.ProfileID, p.PhoneNumber, p.FailuresSince).QueryRow(countInto)
		}
		if err := t.flush(ctx); err != nil {
			return err
		}
		w, out, serr := attemptStep(p, v, failures, true)
		if err := commitWrites(ctx, t, &w, serr); err != nil {
			return err
		}
		res = out
		return nil
	})
	if err != nil {
		return verifyd.AttemptResult{}, err
	}
	return res, nil
}
