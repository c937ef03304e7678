package service

import (
	"context"

	"github.com/verifyd/verifyd"
)

// maxCodeInput bounds the code a client may send; anything longer is simply
// wrong, but we never hash unbounded input.
const maxCodeInput = 64

// dummyHash is compared against when no verification exists, so an unknown
// number takes the same path and time as a wrong code (D18).
var dummyHash = make([]byte, 32)

// CheckByID checks a verification by ID with exactly one of code or status
// (D16, D17). It returns the verification's phone number and whether the
// check was accepted.
func (s *Service) CheckByID(ctx context.Context, acct *verifyd.Account, id string, code, status *string) (phone string, accepted bool, err error) {
	switch {
	case code == nil && status == nil:
		return "", false, (&verifyd.Error{Code: verifyd.EREQUIRED, Message: "code is required."}).At("/code")
	case code != nil && status != nil:
		return "", false, invalid("/status", "Send either code or status, not both.")
	case status != nil && *status != "accepted" && *status != "rejected":
		return "", false, invalid("/status", "status must be accepted or rejected.")
	}
	if !verifyd.ValidID(id) {
		return "", false, verifyd.ErrNotFound
	}
	if err := s.checkLimits(ctx, acct); err != nil {
		return "", false, err
	}
	now := s.opts.Now().UTC()
	res, err := s.store.Attempt(ctx, verifyd.AttemptParams{
		AccountID: acct.ID, ID: id, Now: now, MaxAttempts: s.opts.MaxAttempts,
		FailuresSince: now.Add(-s.opts.FailureWindow),
		Decide: func(v *verifyd.Verification, recent int) (verifyd.Decision, error) {
			if v == nil {
				return 0, verifyd.ErrNotFound
			}
			if status != nil {
				return decideStatus(v, *status)
			}
			return s.decideCode(v, *code, recent)
		},
	})
	if err != nil {
		return "", false, err
	}
	s.countCheck(ctx, res)
	return res.Verification.PhoneNumber, res.Accepted, nil
}

func decideStatus(v *verifyd.Verification, status string) (verifyd.Decision, error) {
	if !v.CustomCode {
		return 0, invalid("/status", "status may be sent only for a verification created with custom_code.")
	}
	switch v.Status {
	case verifyd.StatusPending:
	case verifyd.StatusExpired:
		return 0, &verifyd.Error{Code: verifyd.EEXPIRED, Message: "The verification has expired."}
	default:
		return 0, &verifyd.Error{Code: verifyd.ENOTPENDING, Message: "The verification is " + string(v.Status) + ", not pending."}
	}
	if status == "accepted" {
		return verifyd.DecideAccept, nil
	}
	return verifyd.DecideReject, nil
}

// decideCode compares code with the verification's HMAC in constant time.
// Non-pending verifications are compared too (same work), then rejected.
func (s *Service) decideCode(v *verifyd.Verification, code string, recent int) (verifyd.Decision, error) {
	if recent >= s.opts.MaxFailures && (v == nil || v.DeliveryStatus != DeliveryTest) {
		return 0, &verifyd.Error{Code: verifyd.ERATELIMITED,
			Message:    "Too many failed checks for this number; try again later.",
			RetryAfter: int(s.opts.FailureWindow.Seconds())}
	}
	hash, id := dummyHash, ""
	if v != nil {
		hash, id = v.CodeHash, v.ID
	}
	if len(code) > maxCodeInput {
		code = code[:maxCodeInput]
	}
	if s.keys.MatchCode(hash, id, code) && v != nil && v.Status == verifyd.StatusPending {
		return verifyd.DecideAccept, nil
	}
	return verifyd.DecideReject, nil
}

// CheckByPhone checks the newest verification for (profile, phone) (D18).
// An unknown number is rejected through the same path as a wrong code.
func (s *Service) CheckByPhone(ctx context.Context, acct *verifyd.Account, phone, profileID, code string) (bool, error) {
	if err := CheckPhoneFormat(phone); err != nil {
		return false, err.(*verifyd.Error).Param("phone_number")
	}
	if code == "" {
		return false, (&verifyd.Error{Code: verifyd.EREQUIRED, Message: "code is required."}).At("/code")
	}
	if profileID == "" {
		return false, (&verifyd.Error{Code: verifyd.EREQUIRED, Message: "verify_profile_id is required."}).At("/verify_profile_id")
	}
	if _, err := s.referencedProfile(ctx, acct.ID, profileID); err != nil {
		return false, err
	}
	if err := s.checkLimits(ctx, acct); err != nil {
		return false, err
	}
	now := s.opts.Now().UTC()
	res, err := s.store.Attempt(ctx, verifyd.AttemptParams{
		AccountID: acct.ID, ProfileID: profileID, PhoneNumber: phone, Now: now,
		MaxAttempts: s.opts.MaxAttempts, FailuresSince: now.Add(-s.opts.FailureWindow),
		Decide: func(v *verifyd.Verification, recent int) (verifyd.Decision, error) {
			return s.decideCode(v, code, recent)
		},
	})
	if err != nil {
		return false, err
	}
	s.countCheck(ctx, res)
	return res.Accepted, nil
}

func (s *Service) countCheck(ctx context.Context, res verifyd.AttemptResult) {
	ch := verifyd.Channel("none") // a check of a number with no verification
	prefix := ""
	if res.Verification != nil {
		ch = res.Verification.Type
		if res.Verification.DeliveryStatus == DeliveryTest {
			prefix = "test_"
		}
	}
	if res.Accepted {
		s.count(ch, prefix+"accepted")
		s.completed(ctx, res.Verification)
	} else {
		s.count(ch, prefix+"rejected")
	}
}
