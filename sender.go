package verifyd

import (
	"context"
	"time"
)

// Message is what a sender hands to a carrier. ID is the delivery job's ID:
// stable across retries, so senders can use it as an idempotency key.
type Message struct {
	ID             string  `json:"id"`
	VerificationID string  `json:"verification_id"`
	AccountID      string  `json:"account_id"`
	ProfileID      string  `json:"profile_id"`
	Channel        Channel `json:"channel"`
	To             string  `json:"to"`
	Text           string  `json:"text"` // SMS text, or the words a call speaks
	Code           string  `json:"code"`
	CallerID       string  `json:"caller_id,omitempty"` // flash call: the number presented
	Extension      string  `json:"extension,omitempty"`
	Language       string  `json:"language"`
	AppName        string  `json:"app_name,omitempty"`
	AlphaSender    string  `json:"alpha_sender,omitempty"`
}

// SendResult describes a message a sender took.
type SendResult struct {
	Sender            string
	ProviderMessageID string
	Parts             int
	Status            string // DeliverySent, DeliveryDelivered, or DeliveryFailed (a call the callee refused)
	// Cause says why a message the sender took failed (Status
	// DeliveryFailed), e.g. the SIP answer; safe to show to the account.
	Cause string
}

// Sender hands messages to a carrier. An error means the sender did not
// take the message; a *Error with code ECHANNEL means it never will
// (permanent), anything else may be retried.
type Sender interface {
	Send(ctx context.Context, m *Message) (*SendResult, error)
}

// AttemptSender is an optional Sender capability of a sender that tries
// other senders in turn (the router): SendAttempts is Send, plus every try
// it made, in order, so the worker records each one (sender, provider
// message id, parts, outcome) and not only the last. Attempts carry
// Sender, ProviderMessageID, Parts, Outcome, Error and At; the caller fills
// in the IDs. A result or error is as from Send; the attempts may be empty
// (no route).
type AttemptSender interface {
	Sender
	SendAttempts(ctx context.Context, m *Message) (*SendResult, []*DeliveryAttempt, error)
}

// Attempt outcomes besides the delivery statuses (DeliveryAttempt.Outcome).
const (
	AttemptError   = "error"
	AttemptSkipped = "skipped"
)

// Reconciler is an optional Sender capability: after a worker died between
// sending and recording, it tells whether message id already left.
type Reconciler interface {
	Sent(ctx context.Context, id string) (bool, error)
}

// Receipt is a carrier's later word on a message a sender took: an SMPP
// delivery receipt, or an HTTP provider's status callback.
type Receipt struct {
	// Sender and ProviderMessageID are as in the SendResult of the message.
	Sender            string
	ProviderMessageID string
	// Status is DeliveryDelivered, DeliveryFailed or DeliveryUnconfirmed.
	Status string
	// Cause is the carrier's reason for a failure (error code, state
	// name), safe to show to the account; "" when there is none.
	Cause string
	At    time.Time
}

// ReceiptSink takes receipts. The core service implements it: it moves the
// verification's delivery status and writes the event in one transaction.
// A receipt for an unknown message returns a *Error with code ENOTFOUND.
type ReceiptSink interface {
	Receipt(ctx context.Context, r *Receipt) error
}
