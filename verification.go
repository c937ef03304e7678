package verifyd

import (
	"context"
	"time"
)

// Status is the lifecycle status of a verification (API.md D7).
type Status string

// Verification statuses. All but Pending are terminal.
const (
	StatusPending  Status = "pending"
	StatusAccepted Status = "accepted"
	StatusInvalid  Status = "invalid"
	StatusExpired  Status = "expired"
	StatusError    Status = "error"
)

// Completion reasons, reported in verify.completed (D32).
const (
	ReasonAccepted          = "accepted"
	ReasonAttemptsExhausted = "attempts_exhausted"
	ReasonTimedOut          = "timed_out"
	ReasonSuperseded        = "superseded"
	ReasonProfileDeleted    = "profile_deleted"
	ReasonSendingFailed     = "sending_failed"
)

// Delivery statuses (D33).
const (
	DeliverySent          = "sent"
	DeliveryDelivered     = "delivered"
	DeliverySendingFailed = "sending_failed"
	DeliveryFailed        = "delivery_failed"
	DeliveryUnconfirmed   = "delivery_unconfirmed"
)

// Verification is one code sent to one phone. The code itself is never
// stored: CodeHash is its HMAC under the server key.
type Verification struct {
	ID               string
	AccountID        string
	ProfileID        string
	Type             Channel
	PhoneNumber      string // E.164 with +
	CodeHash         []byte
	CustomCode       bool // the caller supplied the code (status checks allowed)
	Extension        string
	TimeoutSecs      int
	Status           Status
	Attempts         int // checks counted against the budget, inherited across resends
	CompletionReason string
	DeliveryStatus   string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	ExpiresAt        time.Time
}

// CompletedDeliveryStatus is the delivery status a verification keeps when
// it leaves pending with delivery status cur (D33): a message that is still
// only sent (no receipt came, whatever the outcome) becomes
// delivery_unconfirmed, shown in verify.completed with no event of its own;
// every other status stays. A later receipt still moves it (ReceiptMoves).
func CompletedDeliveryStatus(cur string) string {
	if cur == DeliverySent {
		return DeliveryUnconfirmed
	}
	return cur
}

// PendingExpired reports whether v is still recorded pending but its expiry
// has passed at now.
func (v *Verification) PendingExpired(now time.Time) bool {
	return v.Status == StatusPending && !now.Before(v.ExpiresAt)
}

// FailedAttempts is the number of counted checks that did not accept.
func (v *Verification) FailedAttempts() int {
	if v.Status == StatusAccepted && v.CompletionReason == ReasonAccepted && v.Attempts > 0 {
		return v.Attempts - 1
	}
	return v.Attempts
}

// Decision is what a check decides about one verification, inside the
// store's transaction (see AttemptParams).
type Decision int

const (
	// DecideReject counts one failed attempt (if the verification is
	// pending) and records one failure for (profile, phone).
	DecideReject Decision = iota
	// DecideAccept counts one attempt and accepts a pending verification.
	DecideAccept
)

// CreateParams are the inputs of VerificationStore.CreateVerification.
type CreateParams struct {
	Verification *Verification
	Job          *Job
	Now          time.Time
	// Guard, if set, is called inside the transaction with the newest
	// verification for (profile, phone) (nil if none; already expired by
	// time if it was pending past expiry). An error refuses the trigger and
	// rolls everything back except that expiry.
	Guard func(newest *Verification) error
	// Idempotency, if set, is inserted in the same transaction, its
	// Response set by Respond from the verification row as inserted. An
	// unexpired record of the same (AccountID, Key) refuses the trigger
	// with ECONFLICT (nothing written); an expired one is replaced. Each
	// insert also deletes a few expired records of any account.
	Idempotency *IdempotencyRecord
	Respond     func(v *Verification) ([]byte, error)
}

// AttemptParams are the inputs of VerificationStore.Attempt. Exactly one of
// ID or (ProfileID, PhoneNumber) selects the verification.
type AttemptParams struct {
	AccountID   string
	ID          string
	ProfileID   string
	PhoneNumber string
	Now         time.Time
	MaxAttempts int
	// FailuresSince starts the window over which failures of (profile,
	// phone) are counted and passed to Decide.
	FailuresSince time.Time
	// Decide is called inside the transaction with the selected verification
	// (nil if none; expired by time already if it was pending past expiry)
	// and the number of failures recorded for (profile, phone) since
	// FailuresSince. An error refuses the check without counting it.
	Decide func(v *Verification, recentFailures int) (Decision, error)
}

// DecideOn calls Decide with a copy of v (nil if v is nil), so that Decide
// cannot change the verification the store goes on to write.
func (p AttemptParams) DecideOn(v *Verification, recentFailures int) (Decision, error) {
	if v == nil {
		return p.Decide(nil, recentFailures)
	}
	c := *v
	return p.Decide(&c, recentFailures)
}

// AttemptResult is the outcome of VerificationStore.Attempt.
type AttemptResult struct {
	Verification *Verification // state after the attempt; nil if none was found
	Accepted     bool
}

// VerificationStore persists verifications. All reads are scoped to an
// account; an ID of another account is ENOTFOUND.
type VerificationStore interface {
	// CreateVerification, in ONE transaction: expires by time the newest
	// verification for (profile, phone) if it is pending past expiry; calls
	// Guard; supersedes a pending one (status expired, reason superseded,
	// with its verify.completed event) and adds its Attempts to the new
	// verification's; inserts the verification and its delivery job.
	// CreatedAt strictly increases per (profile, phone): a verification
	// created in the same microsecond as the newest is moved 1 µs after it
	// (ExpiresAt with it). The stored state is written back into
	// p.Verification and p.Job. Returns the superseded verification, if any.
	CreateVerification(ctx context.Context, p CreateParams) (superseded *Verification, err error)
	// GetVerification returns the verification as stored (the caller
	// resolves expiry with ExpireVerification).
	GetVerification(ctx context.Context, accountID, id string) (*Verification, error)
	// ListVerificationsByPhone returns the account's verifications for the
	// phone over every profile, newest first (created_at, id), and the total.
	ListVerificationsByPhone(ctx context.Context, accountID, phone string, offset, limit int) ([]*Verification, int, error)
	// ExpireVerification records a pending verification past its expiry at
	// now as expired (reason timed_out, with its event). A verification
	// that is not pending or not past expiry is left alone. Returns the
	// verification as stored afterwards.
	ExpireVerification(ctx context.Context, accountID, id string, now time.Time) (*Verification, error)
	// Attempt checks a code, atomically: it selects the verification,
	// resolves expiry, calls Decide and applies the decision. A reject
	// increments Attempts of a pending verification and turns it invalid
	// (reason attempts_exhausted) when Attempts reaches MaxAttempts; it also
	// records one failure for (profile, phone) whether or not a verification
	// exists. An accept is applied only to a pending verification with
	// Attempts < MaxAttempts; otherwise it is a reject.
	Attempt(ctx context.Context, p AttemptParams) (AttemptResult, error)
	// ExpirePending records up to limit pending verifications past expiry
	// at now as expired (with events); returns how many.
	ExpirePending(ctx context.Context, now time.Time, limit int) (int, error)
}

// Rows returns the verification and job rows CreateVerification inserts, the
// same for every store: p's values with defaults filled in, times truncated
// to the microsecond stores keep, Attempts carried over from superseded (the
// pending verification it replaces, or nil), and CreatedAt moved just after
// newest's if it would not be later (created_at strictly increases per
// (profile, phone), so "newest" never depends on the random ID).
func (p CreateParams) Rows(newest, superseded *Verification) (Verification, Job) {
	v, j, now := *p.Verification, *p.Job, p.Now
	if superseded != nil {
		v.Attempts += superseded.Attempts
	}
	if v.ID == "" {
		v.ID = NewVerificationID()
	}
	if v.Status == "" {
		v.Status = StatusPending
	}
	if v.CreatedAt.IsZero() {
		v.CreatedAt = now
	}
	us := func(t time.Time) time.Time { return t.Truncate(time.Microsecond) }
	v.CreatedAt, v.UpdatedAt, v.ExpiresAt = us(v.CreatedAt), us(v.UpdatedAt), us(v.ExpiresAt)
	if newest != nil && !v.CreatedAt.After(newest.CreatedAt) {
		shift := newest.CreatedAt.Add(time.Microsecond).Sub(v.CreatedAt)
		v.CreatedAt, v.ExpiresAt = v.CreatedAt.Add(shift), v.ExpiresAt.Add(shift)
		if !v.UpdatedAt.IsZero() {
			v.UpdatedAt = v.UpdatedAt.Add(shift)
		}
	}
	if v.UpdatedAt.IsZero() {
		v.UpdatedAt = v.CreatedAt
	}
	if j.ID == "" {
		j.ID = NewOrderedID()
	}
	if j.Kind == "" {
		j.Kind = JobDeliver
	}
	if j.AccountID == "" {
		j.AccountID = v.AccountID
	}
	if j.VerificationID == "" {
		j.VerificationID = v.ID
	}
	if j.State == "" {
		j.State = JobAvailable
	}
	if j.RunAt.IsZero() {
		j.RunAt = now
	}
	if j.CreatedAt.IsZero() {
		j.CreatedAt = now
	}
	j.RunAt, j.CreatedAt, j.LockedUntil = us(j.RunAt), us(j.CreatedAt), us(j.LockedUntil)
	return v, j
}
