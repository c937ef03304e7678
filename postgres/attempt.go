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
// Two round trips: BEGIN, (by phone) the (profile, phone) advisory lock,
// the verification and the failure count go in one; the writes and COMMIT
// in the other. The count is its own statement after the lock, so it sees
// every failure committed before the lock was granted.
func (s *Store) Attempt(ctx context.Context, p verifyd.AttemptParams) (verifyd.AttemptResult, error) {
	if p.Decide == nil {
		return verifyd.AttemptResult{}, verifyd.Errorf(verifyd.EINTERNAL, "Decide is required.")
	}
	var res verifyd.AttemptResult
	err := s.tx(ctx, func(ctx context.Context, t *txn) error {
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
		profileID, phone := p.ProfileID, p.PhoneNumber
		if v != nil {
			profileID, phone = v.ProfileID, v.PhoneNumber
		}
		if profileID == "" {
			failures = 0 // by ID and not found: no (profile, phone) to count for
		}

		var events []*verifyd.Event
		changed := false
		if v != nil && v.PendingExpired(p.Now) {
			events = append(events, completeV(v, verifyd.StatusExpired, verifyd.ReasonTimedOut, p.Now))
			changed = true
		}
		var arg *verifyd.Verification
		if v != nil {
			c := *v
			arg = &c
		}
		d, derr := p.Decide(arg, failures)
		if derr != nil {
			if !changed {
				return derr // nothing written: rolled back
			}
			saveVerifications(t, []*verifyd.Verification{v})
			insertEvents(t, events)
			if err := t.commit(ctx); err != nil {
				return err
			}
			return derr
		}

		pending := v != nil && v.Status == verifyd.StatusPending
		switch {
		case d == verifyd.DecideAccept && pending && v.Attempts < p.MaxAttempts:
			v.Attempts++
			events = append(events, completeV(v, verifyd.StatusAccepted, verifyd.ReasonAccepted, p.Now))
			changed = true
			res.Accepted = true
		default: // a reject, or an accept that cannot apply
			if pending {
				v.Attempts++
				v.UpdatedAt = p.Now
				if v.Attempts >= p.MaxAttempts {
					events = append(events, completeV(v, verifyd.StatusInvalid, verifyd.ReasonAttemptsExhausted, p.Now))
				}
				changed = true
			}
			if profileID != "" {
				t.queue(`INSERT INTO check_failures (profile_id, phone_number, at) VALUES ($1, $2, $3)`,
					profileID, phone, p.Now)
			}
		}
		if changed {
			saveVerifications(t, []*verifyd.Verification{v})
			insertEvents(t, events)
		}
		if err := t.commit(ctx); err != nil {
			return err
		}
		res.Verification = v
		return nil
	})
	if err != nil {
		return verifyd.AttemptResult{}, err
	}
	return res, nil
}
