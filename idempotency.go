package verifyd

import (
	"context"
	"time"
)

// IdempotencyTTL is how long a trigger's response is replayed for its
// Idempotency-Key (API.md D13).
const IdempotencyTTL = 24 * time.Hour

// IdempotencyRecord is the stored response of a trigger POST that carried an
// Idempotency-Key: a repeat of the key by the same account within the TTL
// gets Response again, a repeat with another request (Fingerprint) is
// refused. It is written in the same transaction as its verification
// (CreateParams.Idempotency), so there is never a verification without its
// replayable response, nor a second verification for one key.
type IdempotencyRecord struct {
	AccountID      string
	Key            string
	Fingerprint    []byte // hash of the request (channel and body fields)
	VerificationID string
	Response       []byte // the response body as first answered
	CreatedAt      time.Time
	ExpiresAt      time.Time
}

// IdempotencyStore reads stored trigger responses.
type IdempotencyStore interface {
	// GetIdempotency returns the record of (accountID, key) unexpired at
	// now, or ENOTFOUND.
	GetIdempotency(ctx context.Context, accountID, key string, now time.Time) (*IdempotencyRecord, error)
}

// IdempotencyRow returns the idempotency record CreateVerification inserts
// with the verification row v (nil if p has none): p.Idempotency with
// VerificationID and Response (p.Respond(v)) filled in. The same for every
// store.
func (p CreateParams) IdempotencyRow(v *Verification) (*IdempotencyRecord, error) {
	if p.Idempotency == nil {
		return nil, nil
	}
	r := *p.Idempotency
	r.VerificationID = v.ID
	if p.Respond != nil {
		b, err := p.Respond(v)
		if err != nil {
			return nil, err
		}
		r.Response = b
	}
	if r.Response == nil {
		r.Response = []byte{}
	}
	if r.Fingerprint == nil {
		r.Fingerprint = []byte{}
	}
	us := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
	r.CreatedAt, r.ExpiresAt = us(r.CreatedAt), us(r.ExpiresAt)
	return &r, nil
}
