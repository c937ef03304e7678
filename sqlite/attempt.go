package sqlite

import (
	"context"

	"github.com/verifyd/verifyd"
)

// The verification an attempt selects, by ID or newest of (profile, phone),
// after its seq (wtx.scanSeq), with the count of failures of its (profile, phone) since the last
// parameter: one statement instead of two.
const (
	qAttemptByID = `SELECT seq, ` + verificationCols + `, (SELECT count(*) FROM check_failures f
		WHERE f.profile_id = v.profile_id AND f.phone_number = v.phone_number AND f.at >= ?3)
		FROM verifications v WHERE id = ?1 AND account_id = ?2`
	qAttemptNewest = `SELECT seq, ` + verificationCols + `, (SELECT count(*) FROM check_failures f
		WHERE f.profile_id = v.profile_id AND f.phone_number = v.phone_number AND f.at >= ?4)
		FROM verifications v WHERE profile_id = ?1 AND phone_number = ?2 AND account_id = ?3
		ORDER BY created_at DESC, id DESC LIMIT 1`
)

// Attempt checks a code atomically: it selects the verification, resolves
// its expiry (kept even if Decide refuses), counts recent failures of
// (profile, phone) (in the same statement), calls Decide and applies the decision.
func (s *Store) Attempt(ctx context.Context, p verifyd.AttemptParams) (verifyd.AttemptResult, error) {
	if p.Decide == nil {
		return verifyd.AttemptResult{}, verifyd.Errorf(verifyd.EINTERNAL, "Decide is required.")
	}
	var res verifyd.AttemptResult
	err := s.write(ctx, func(w *wtx) error {
		res = verifyd.AttemptResult{}
		var v *verifyd.Verification
		var failures int
		scan := w.scanSeq(&v, &failures)
		var err error
		if p.ID != "" {
			_, err = w.queryRow(scan, qAttemptByID, p.ID, p.AccountID, tm(p.FailuresSince))
		} else {
			_, err = w.queryRow(scan, qAttemptNewest, p.ProfileID, p.PhoneNumber, p.AccountID, tm(p.FailuresSince))
		}
		if err != nil {
			return err
		}
		if err := w.expireByTime(v, p.Now); err != nil {
			return err
		}
		profileID, phone := p.ProfileID, p.PhoneNumber
		if v != nil {
			profileID, phone = v.ProfileID, v.PhoneNumber
		} else if profileID != "" {
			if _, err := w.queryRow(func(r rowScanner) error { return r.Scan(&failures) },
				`SELECT count(*) FROM check_failures WHERE profile_id = ? AND phone_number = ? AND at >= ?`,
				profileID, phone, tm(p.FailuresSince)); err != nil {
				return err
			}
		}
		d, err := p.DecideOn(v, failures)
		if err != nil {
			res.Verification = v
			return &keep{err}
		}

		pending := v != nil && v.Status == verifyd.StatusPending
		switch {
		case d == verifyd.DecideAccept && pending && v.Attempts < p.MaxAttempts:
			v.Attempts++
			if err := w.complete(v, verifyd.StatusAccepted, verifyd.ReasonAccepted, p.Now); err != nil {
				return err
			}
			res.Accepted = true
		default: // a reject, or an accept that cannot apply
			if pending {
				v.Attempts++
				v.UpdatedAt = p.Now
				if v.Attempts >= p.MaxAttempts {
					if err := w.complete(v, verifyd.StatusInvalid, verifyd.ReasonAttemptsExhausted, p.Now); err != nil {
						return err
					}
				} else if err := w.saveAttempts(v); err != nil {
					return err
				}
			}
			if profileID != "" {
				if _, err := w.exec(`INSERT INTO check_failures (profile_id, phone_number, at) VALUES (?, ?, ?)`,
					profileID, phone, tm(p.Now)); err != nil {
					return err
				}
			}
		}
		res.Verification = v
		return nil
	})
	if err != nil {
		return verifyd.AttemptResult{}, err
	}
	return res, nil
}
