package verifyd

import (
	"context"
	"encoding/json"
	"time"
)

// Event types (D32).
const (
	EventSent      = "verify.sent"
	EventDelivered = "verify.delivered"
	EventFailed    = "verify.failed"
	EventCompleted = "verify.completed"
)

// Event is one entry of the event log, written in the same transaction as
// the change that caused it. Payload is the JSON of the webhook's
// data.payload (API.md §9.3).
type Event struct {
	ID             string
	AccountID      string
	ProfileID      string
	VerificationID string
	Type           string
	OccurredAt     time.Time
	Payload        []byte
}

// EventPayload is the webhook payload of a verification event (§9.3): the
// profile key is profile_id, custom_code is always null (D12).
type EventPayload struct {
	ID               string  `json:"id"`
	RecordType       string  `json:"record_type"`
	Type             Channel `json:"type"`
	PhoneNumber      string  `json:"phone_number"`
	ProfileID        string  `json:"profile_id"`
	Status           Status  `json:"status"`
	DeliveryStatus   *string `json:"delivery_status"`
	CustomCode       *string `json:"custom_code"`
	Extension        *string `json:"extension"`
	FailedAttempts   int     `json:"failed_attempts"`
	MCCMNC           *string `json:"mccmnc"`
	TimeoutSecs      int     `json:"timeout_secs"`
	CompletionReason *string `json:"completion_reason,omitempty"`
	CreatedAt        string  `json:"created_at"`
	UpdatedAt        string  `json:"updated_at"`
}

// NewEvent builds the event of type typ for the state of v at now.
func NewEvent(typ string, v *Verification, now time.Time) *Event {
	p := EventPayload{
		ID: v.ID, RecordType: "verification", Type: v.Type, PhoneNumber: v.PhoneNumber,
		ProfileID: v.ProfileID, Status: v.Status, FailedAttempts: v.FailedAttempts(),
		TimeoutSecs: v.TimeoutSecs, CreatedAt: FormatTime(v.CreatedAt), UpdatedAt: FormatTime(v.UpdatedAt),
	}
	if v.DeliveryStatus != "" {
		p.DeliveryStatus = &v.DeliveryStatus
	}
	if v.Extension != "" {
		p.Extension = &v.Extension
	}
	if typ == EventCompleted && v.CompletionReason != "" {
		p.CompletionReason = &v.CompletionReason
	}
	b, _ := json.Marshal(p) // plain struct of strings and ints: cannot fail
	return &Event{
		ID: NewOrderedID(), AccountID: v.AccountID, ProfileID: v.ProfileID, VerificationID: v.ID,
		Type: typ, OccurredAt: now, Payload: b,
	}
}

// EventStore reads the event log (the webhook deliverer consumes it).
type EventStore interface {
	// ListEvents returns the events of one verification, oldest first.
	ListEvents(ctx context.Context, accountID, verificationID string) ([]*Event, error)
}

// DeliveryEvent returns the event a delivery status emits (D33): "" for
// delivery_unconfirmed and unknown statuses.
func DeliveryEvent(status string) string {
	switch status {
	case DeliverySent:
		return EventSent
	case DeliveryDelivered:
		return EventDelivered
	case DeliverySendingFailed, DeliveryFailed:
		return EventFailed
	}
	return ""
}
