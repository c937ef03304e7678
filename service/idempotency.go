package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"time"

	"github.com/verifyd/verifyd"
)

// retryWindow is how far back a marked SDK retry looks for the trigger it
// repeats (D13).
const retryWindow = 60 * time.Second

// Replay asks Trigger for duplicate-POST protection (D13) with an
// Idempotency-Key: the first answer is stored with its verification, in one
// transaction, and replayed for 24 h to the same account and key; the same
// key with another request is refused (422 10015).
type Replay struct {
	// Key is the Idempotency-Key header (1–255 printable ASCII).
	Key string
	// Respond renders the response body of a verification, as the API
	// answers the first request (stored, then replayed as is).
	Respond func(v *verifyd.Verification) ([]byte, error)
}

// replayNewest is the Guard's signal that a marked SDK retry repeats the
// newest verification.
type replayNewest struct{ v *verifyd.Verification }

func (r *replayNewest) Error() string { return "retry of verification " + r.v.ID }

// fingerprint hashes what identifies a trigger request: the channel and
// every body field.
func fingerprint(r TriggerRequest) []byte {
	h := sha256.New()
	field := func(present bool, s string) {
		var n [9]byte
		if present {
			n[0] = 1
		}
		binary.BigEndian.PutUint64(n[1:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(true, string(r.Channel))
	field(true, r.PhoneNumber)
	field(true, r.ProfileID)
	if r.TimeoutSecs != nil {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(*r.TimeoutSecs))
		field(true, string(b[:]))
	} else {
		field(false, "")
	}
	field(r.CustomCode != nil, deref(r.CustomCode))
	field(r.Extension != nil, deref(r.Extension))
	return h.Sum(nil)
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// storedReplay answers a key that has a record: its stored response, or a
// refusal when the request differs.
func (s *Service) storedReplay(ctx context.Context, acct *verifyd.Account, key string, fp []byte, now time.Time) ([]byte, error) {
	rec, err := s.store.GetIdempotency(ctx, acct.ID, key, now)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(rec.Fingerprint, fp) {
		return nil, (&verifyd.Error{Code: verifyd.EINVALID,
			Message: "This Idempotency-Key was used with a different request in the last 24 hours; send a new key for a new request."}).Param("Idempotency-Key")
	}
	return rec.Response, nil
}

// sameTrigger reports whether v (the newest verification of the profile
// and phone) was created by a request with the same body as r, less than
// retryWindow before now (D13, SDK retries without a key).
func (s *Service) sameTrigger(v *verifyd.Verification, r TriggerRequest, timeout int, now time.Time) bool {
	if v == nil || now.Sub(v.CreatedAt) > retryWindow || v.Type != r.Channel || v.TimeoutSecs != timeout ||
		v.Extension != deref(r.Extension) && r.Channel == verifyd.Call || v.CustomCode != (r.CustomCode != nil) {
		return false
	}
	if r.CustomCode != nil {
		return s.keys.MatchCode(v.CodeHash, v.ID, *r.CustomCode)
	}
	return true
}

// retriedTrigger finds, for a marked SDK retry, the verification the first
// request created (read before the guards, so a retry spends no limiter
// tokens; the same test runs again inside the transaction).
func (s *Service) retriedTrigger(ctx context.Context, acct *verifyd.Account, r TriggerRequest, timeout int, now time.Time) (*verifyd.Verification, error) {
	list, _, err := s.store.ListVerificationsByPhone(ctx, acct.ID, r.PhoneNumber, 0, 10)
	if err != nil {
		return nil, err
	}
	for _, v := range list {
		if v.ProfileID == r.ProfileID {
			if s.sameTrigger(v, r, timeout, now) {
				return v, nil
			}
			return nil, nil // only the newest of the profile counts
		}
	}
	return nil, nil
}

func asReplayNewest(err error) (*verifyd.Verification, bool) {
	var rn *replayNewest
	if errors.As(err, &rn) {
		return rn.v, true
	}
	return nil, false
}
