package service

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/fraud"
)

// TriggerRequest is a decoded trigger body (POST /verifications/{channel}).
// Pointers are nil when the field was absent or null.
type TriggerRequest struct {
	Channel     verifyd.Channel
	PhoneNumber string
	ProfileID   string
	TimeoutSecs *int
	CustomCode  *string
	Extension   *string
}

var (
	reCustomCode = regexp.MustCompile(`^[0-9]{4,10}$`)
	reExtension  = regexp.MustCompile(`^[0-9A-D*#wW]{0,50}$`)
)

func invalid(pointer, format string, args ...any) error {
	return &verifyd.Error{Code: verifyd.EINVALID, Message: fmt.Sprintf(format, args...), Pointer: pointer}
}

// Trigger starts a verification: it validates the request, draws (or takes)
// the code, and in one transaction supersedes the pending verification for
// (profile, phone), stores the new one and enqueues its delivery job with the
// message sealed inside. Delivery happens in the background. With Guards,
// the abuse and fraud controls run first (checkTrigger); a marked SDK retry
// (EndUser.Retry) of a trigger accepted in the last 60 s returns that
// verification instead of sending again (D13).
func (s *Service) Trigger(ctx context.Context, acct *verifyd.Account, r TriggerRequest) (*verifyd.Verification, error) {
	v, _, err := s.TriggerReplayable(ctx, acct, r, nil)
	return v, err
}

// TriggerReplayable is Trigger with an Idempotency-Key (rp, may be nil): a
// repeat of the key returns the stored response in replay (v is nil then).
func (s *Service) TriggerReplayable(ctx context.Context, acct *verifyd.Account, r TriggerRequest, rp *Replay) (v *verifyd.Verification, replay []byte, err error) {
	if !s.channelEnabled(r.Channel) {
		return nil, nil, &verifyd.Error{Code: verifyd.ECHANNEL, Message: fmt.Sprintf("No sender is configured for the %s channel.", r.Channel)}
	}
	class, err := classifyPhone(r.PhoneNumber)
	if err != nil {
		return nil, nil, err.(*verifyd.Error).At("/phone_number")
	}
	v, replay, err = s.trigger(ctx, acct, r, rp, class)
	return v, replay, err
}

func (s *Service) trigger(ctx context.Context, acct *verifyd.Account, r TriggerRequest, rp *Replay, class fraud.Classification) (*verifyd.Verification, []byte, error) {
	if r.ProfileID == "" {
		return nil, nil, (&verifyd.Error{Code: verifyd.EREQUIRED, Message: "verify_profile_id is required."}).At("/verify_profile_id")
	}
	profile, err := s.referencedProfile(ctx, acct.ID, r.ProfileID)
	if err != nil {
		return nil, nil, err
	}
	settings := profile.Settings(r.Channel)
	timeout := settings.TimeoutSecs
	if r.TimeoutSecs != nil {
		if *r.TimeoutSecs < 30 || *r.TimeoutSecs > 86400 {
			return nil, nil, invalid("/timeout_secs", "timeout_secs must be between 30 and 86400.")
		}
		timeout = *r.TimeoutSecs
	}
	now := s.opts.Now().UTC()
	var idem *verifyd.IdempotencyRecord
	if rp != nil {
		if !validIdempotencyKey(rp.Key) {
			return nil, nil, (&verifyd.Error{Code: verifyd.EINVALID, Message: "Idempotency-Key must be 1 to 255 printable ASCII characters."}).Param("Idempotency-Key")
		}
		fp := fingerprint(r)
		replay, err := s.storedReplay(ctx, acct, rp.Key, fp, now)
		if verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
			return nil, replay, err
		}
		idem = &verifyd.IdempotencyRecord{AccountID: acct.ID, Key: rp.Key, Fingerprint: fp, CreatedAt: now, ExpiresAt: now.Add(verifyd.IdempotencyTTL)}
	}
	retry := rp == nil && endUserOf(ctx).Retry
	if retry {
		if prev, err := s.retriedTrigger(ctx, acct, r, timeout, now); prev != nil || err != nil {
			return prev, nil, err
		}
	}
	fixed, test := testCode(profile, r.Channel, r.PhoneNumber)
	var tg triggerGuard
	if !test {
		if tg, err = s.checkTrigger(ctx, acct, profile, r.Channel, r.PhoneNumber, class); err != nil {
			return nil, nil, err
		}
	}
	var code, callerID, extension string
	custom := false
	switch {
	case test:
		code = fixed
	case r.Channel == verifyd.Flashcall:
		callerID, code, err = s.flashCallerID()
	case r.CustomCode != nil:
		if !reCustomCode.MatchString(*r.CustomCode) {
			return nil, nil, invalid("/custom_code", "custom_code must be 4 to 10 digits.")
		}
		code, custom = *r.CustomCode, true
	default:
		code, err = s.opts.Codes(settings.CodeLength)
	}
	if err != nil {
		return nil, nil, err
	}
	if r.Extension != nil && r.Channel == verifyd.Call {
		if !reExtension.MatchString(*r.Extension) {
			return nil, nil, invalid("/extension", "extension may hold only 0-9, A-D, *, #, w and W (at most 50).")
		}
		extension = *r.Extension
	}

	v := &verifyd.Verification{
		ID: verifyd.NewVerificationID(), AccountID: acct.ID, ProfileID: profile.ID, Type: r.Channel,
		PhoneNumber: r.PhoneNumber, CustomCode: custom, Extension: extension, TimeoutSecs: timeout,
		Status: verifyd.StatusPending, CreatedAt: now, UpdatedAt: now,
		ExpiresAt: now.Add(time.Duration(timeout) * time.Second),
	}
	v.CodeHash = s.keys.HashCode(v.ID, code)
	if test {
		v.DeliveryStatus = DeliveryTest
	}
	msg, err := s.render(ctx, profile, settings, v, code, callerID)
	if err != nil {
		return nil, nil, err
	}
	plain, err := json.Marshal(msg)
	if err != nil {
		return nil, nil, err
	}
	job := &verifyd.Job{
		ID: msg.ID, Kind: verifyd.JobDeliver, AccountID: acct.ID, VerificationID: v.ID,
		MaxAttempts: 8, State: verifyd.JobAvailable, RunAt: now, CreatedAt: now,
	}
	job.Payload = s.keys.Seal(plain, []byte(job.ID))
	if test {
		testJob(job)
	}
	w := s.worker.Load()
	handOff := !test && w.reserve()
	if handOff {
		w.lease(job, now)
	}
	_, err = s.store.CreateVerification(ctx, verifyd.CreateParams{
		Verification: v, Job: job, Now: now, Idempotency: idem, Respond: respondFunc(rp),
		Guard: func(newest *verifyd.Verification) error {
			if retry && s.sameTrigger(newest, r, timeout, now) {
				return &replayNewest{newest}
			}
			if newest != nil && newest.Status == verifyd.StatusInvalid && now.Before(newest.ExpiresAt) {
				return &verifyd.Error{Code: verifyd.EMAXATTEMPTS,
					Message:    "The attempt budget for this number is used up; a new code can be sent after the last one expires.",
					RetryAfter: ceilSeconds(newest.ExpiresAt.Sub(now))}
			}
			return nil
		},
	})
	if err != nil {
		if handOff {
			w.release()
		}
		if prev, ok := asReplayNewest(err); ok {
			return prev, nil, nil
		}
		if idem != nil && verifyd.ErrorCode(err) == verifyd.ECONFLICT {
			// A concurrent request with the same key committed first.
			replay, rerr := s.storedReplay(ctx, acct, idem.Key, idem.Fingerprint, now)
			if rerr == nil || verifyd.ErrorCode(rerr) != verifyd.ENOTFOUND {
				return nil, replay, rerr
			}
		}
		return nil, nil, err
	}
	if test {
		s.count(r.Channel, "test_triggered")
		return v, nil, nil
	}
	s.count(r.Channel, "triggered")
	s.sentTrigger(ctx, tg, v)
	if handOff {
		w.handOff(job, msg)
	} else {
		s.wake()
	}
	return v, nil, nil
}

func respondFunc(rp *Replay) func(*verifyd.Verification) ([]byte, error) {
	if rp == nil {
		return nil
	}
	return rp.Respond
}

func ceilSeconds(d time.Duration) int {
	n := int((d + time.Second - 1) / time.Second)
	return max(n, 1)
}

func (s *Service) channelEnabled(ch verifyd.Channel) bool {
	for _, c := range s.opts.Channels {
		if c == ch {
			return true
		}
	}
	return false
}

// referencedProfile loads a profile named in a request body: a malformed or
// unknown ID is a reference error (10017) at /verify_profile_id.
func (s *Service) referencedProfile(ctx context.Context, accountID, id string) (*verifyd.Profile, error) {
	notFound := (&verifyd.Error{Code: verifyd.EREFERENCE, Message: "The verify profile does not exist."}).At("/verify_profile_id")
	if !verifyd.ValidID(id) {
		return nil, notFound
	}
	key, now := accountID+"/"+id, s.opts.Now()
	if p, ok := s.profiles.get(key, now); ok {
		return p, nil
	}
	p, err := s.store.GetProfile(ctx, accountID, id)
	if verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	s.profiles.put(key, p, now)
	return p, nil
}

// flashCallerID draws the number a flash call presents; its trailing
// FlashDigits digits are the code (D19).
func (s *Service) flashCallerID() (callerID, code string, err error) {
	const total = 11 // digits after '+' in the presented number
	n := total - (len(s.opts.FlashCallerPrefix) - 1)
	if n < s.opts.FlashDigits {
		n = s.opts.FlashDigits
	}
	lim := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	r, err := rand.Int(rand.Reader, lim)
	if err != nil {
		return "", "", err
	}
	callerID = s.opts.FlashCallerPrefix + fmt.Sprintf("%0*s", n, r.String())
	return callerID, callerID[len(callerID)-s.opts.FlashDigits:], nil
}

// GetVerification returns a verification of the account, expired first if
// it is pending past expiry (time-correct read, D11).
func (s *Service) GetVerification(ctx context.Context, acct *verifyd.Account, id string) (*verifyd.Verification, error) {
	v, err := s.store.GetVerification(ctx, acct.ID, id)
	if err != nil {
		return nil, err
	}
	if now := s.opts.Now(); v.PendingExpired(now) {
		return s.store.ExpireVerification(ctx, acct.ID, id, now.UTC())
	}
	return v, nil
}

// ListByPhone returns a page of the account's verifications for phone, newest
// first, and the total.
func (s *Service) ListByPhone(ctx context.Context, acct *verifyd.Account, phone string, offset, limit int) ([]*verifyd.Verification, int, error) {
	if err := CheckPhoneFormat(phone); err != nil {
		return nil, 0, err.(*verifyd.Error).Param("phone_number")
	}
	list, total, err := s.store.ListVerificationsByPhone(ctx, acct.ID, phone, offset, limit)
	if err != nil {
		return nil, 0, err
	}
	now := s.opts.Now()
	for i, v := range list {
		if v.PendingExpired(now) {
			if list[i], err = s.store.ExpireVerification(ctx, acct.ID, v.ID, now.UTC()); err != nil {
				return nil, 0, err
			}
		}
	}
	return list, total, nil
}
