package verifyd

import (
	"context"
	"time"
)

// Webhook delivery states of an event (D34). An event written while its
// profile had no webhook_url has state WebhookNone and is never delivered.
const (
	WebhookNone      = ""
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed"
)

// WebhookDelivery is an event and where its delivery stands.
type WebhookDelivery struct {
	Event *Event
	State string
	// Attempts counts every attempt ever made (meta.attempt of the next
	// one is Attempts+1); RoundStart is Attempts when the current round
	// (the first delivery, or a redelivery) began.
	Attempts   int
	RoundStart int
	NextAt     time.Time
	LastError  string
	UpdatedAt  time.Time
	// URL and FailoverURL are the profile's (a deleted profile's too: its
	// profile_deleted completions are delivered), read when the delivery
	// was claimed or listed; "" when the profile has none any more.
	URL         string
	FailoverURL string
}

// WebhookAttempt records one POST of an event to one URL.
type WebhookAttempt struct {
	EventID    string
	AccountID  string
	Attempt    int // meta.attempt
	URL        string
	StatusCode int // 0 when no response came
	Latency    time.Duration
	Error      string
	// ResponseHead holds the first bytes of the response body.
	ResponseHead string
	At           time.Time
}

// WebhookOutcome is how a deliverer finishes a claimed delivery.
type WebhookOutcome struct {
	EventID   string
	AccountID string // the event's account
	Worker    string
	Now       time.Time
	// State is WebhookPending (try again at NextAt), WebhookDelivered or
	// WebhookFailed.
	State  string
	NextAt time.Time
	Error  string
	// Attempt is the attempt made, or nil when none was (the delivery was
	// put back, e.g. because its endpoint was busy): only an attempt
	// counts towards Attempts.
	Attempt *WebhookAttempt
}

// WebhookFilter selects deliveries of one account. Zero fields match all.
type WebhookFilter struct {
	State          string
	EventType      string
	VerificationID string
	EventID        string
	// OccurredAt range, [From, To).
	From, To time.Time
	Offset   int
	Limit    int
}

// WebhookKey is one of an account's Ed25519 signing keys (D35). Exactly one
// is active (it signs); a "next" key is published ahead of a rotation so
// receivers can trust it before it signs; a retired key signed before.
type WebhookKey struct {
	ID        string
	AccountID string
	PublicKey []byte // 32 bytes
	// SealedPrivate is the 32-byte Ed25519 seed sealed with AEAD under the
	// server key (associated data: the key ID).
	SealedPrivate []byte
	State         string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Webhook key states.
const (
	KeyActive  = "active"
	KeyNext    = "next"
	KeyRetired = "retired"
)

// WebhookStore keeps the delivery state of events, the attempt log and
// the accounts' signing keys.
type WebhookStore interface {
	// ClaimWebhooks leases up to Limit pending deliveries due at Now to
	// Worker until Now+Lease (oldest due first). A lease that lapses makes
	// the delivery due again: delivery is at least once.
	ClaimWebhooks(ctx context.Context, p ClaimParams) ([]*WebhookDelivery, error)
	// FinishWebhooks applies outcomes in one transaction, each only while
	// its Worker still holds the delivery (else ErrLeaseLost for it), and
	// records their attempts.
	FinishWebhooks(ctx context.Context, outs []WebhookOutcome) []error
	// ListWebhookDeliveries returns the account's deliveries (events with a
	// state other than WebhookNone), newest first, and the total matching.
	ListWebhookDeliveries(ctx context.Context, accountID string, f WebhookFilter) ([]*WebhookDelivery, int, error)
	// GetWebhookDelivery returns one delivery and its attempts, oldest
	// first; ENOTFOUND for an event of another account or without delivery.
	GetWebhookDelivery(ctx context.Context, accountID, eventID string) (*WebhookDelivery, []*WebhookAttempt, error)
	// RedeliverWebhooks starts a new round for the account's delivered or
	// failed deliveries matching f (f.State narrows it), due at now, and
	// returns how many. Pending ones are left alone.
	RedeliverWebhooks(ctx context.Context, accountID string, f WebhookFilter, now time.Time) (int, error)
	// PauseWebhooks makes events of the profile written before until first
	// due at until instead of at once: the deliverer calls it when the
	// profile's receiver is saturated, so new events wait without costing a
	// claim each. Events already written are not moved.
	PauseWebhooks(ctx context.Context, profileID string, until time.Time) error

	// ListWebhookKeys returns the account's keys, oldest first.
	ListWebhookKeys(ctx context.Context, accountID string) ([]*WebhookKey, error)
	// AddWebhookKey stores a key. Adding an active key when the account
	// has one is ECONFLICT (use PromoteWebhookKey).
	AddWebhookKey(ctx context.Context, k *WebhookKey) error
	// PromoteWebhookKey makes a key active and retires the one that was.
	PromoteWebhookKey(ctx context.Context, accountID, keyID string, now time.Time) error
	// DeleteWebhookKey removes a retired or next key; the active one is
	// ECONFLICT.
	DeleteWebhookKey(ctx context.Context, accountID, keyID string) error
}
