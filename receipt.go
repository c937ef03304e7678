package verifyd

import (
	"context"
	"time"
)

// ReceiptParams are the inputs of ReceiptStore.RecordReceipt.
type ReceiptParams struct {
	// Sender and ProviderMessageID select the delivery attempt, as recorded
	// from the SendResult of the message.
	Sender            string
	ProviderMessageID string
	// Status is DeliveryDelivered, DeliveryFailed or DeliveryUnconfirmed.
	Status string
	// Cause is the carrier's reason for a failure ("" if none); it is kept
	// on the delivery attempt.
	Cause string
	Now   time.Time
}

// ReceiptResult is the outcome of ReceiptStore.RecordReceipt.
type ReceiptResult struct {
	// Verification is the verification of the message, as stored after the
	// receipt.
	Verification *Verification
	// Moved reports whether the receipt changed its delivery status (and
	// so wrote the status's event, if it has one). A duplicate, or a
	// receipt that ReceiptMoves refuses, changes nothing.
	Moved bool
}

// ReceiptStore records carriers' receipts.
type ReceiptStore interface {
	// RecordReceipt, in ONE transaction: finds the newest delivery attempt
	// recorded for (Sender, ProviderMessageID) — ENOTFOUND if there is none
	// — and, when ReceiptMoves(its verification's delivery status, Status),
	// sets the verification's delivery status (and updated_at) and writes
	// the status's event (DeliveryEvent), and records Status and Cause as
	// the attempt's outcome and error. The verification's status is left
	// alone (D7: a carrier-reported failure does not make it error). An
	// unknown Status is EINVALID.
	RecordReceipt(ctx context.Context, p ReceiptParams) (ReceiptResult, error)
}

// ReceiptStatus reports whether s is a status a receipt may carry.
func ReceiptStatus(s string) bool {
	switch s {
	case DeliveryDelivered, DeliveryFailed, DeliveryUnconfirmed:
		return true
	}
	return false
}

// ReceiptMoves reports whether a receipt saying next moves a delivery status
// cur. Statuses only move forward, in the order
//
//	"" / sent  <  delivery_unconfirmed  <  delivery_failed / sending_failed  <  delivered
//
// so a terminal receipt wins over sent and over "no indication", a delivery
// confirmation wins over an earlier failure (the code reached the phone; a
// failure receipt for another try or part came first), nothing moves a
// delivered message back, and a duplicate receipt changes nothing.
func ReceiptMoves(cur, next string) bool {
	return ReceiptStatus(next) && deliveryRank(next) > deliveryRank(cur)
}

func deliveryRank(s string) int {
	switch s {
	case DeliveryUnconfirmed:
		return 1
	case DeliveryFailed, DeliverySendingFailed:
		return 2
	case DeliveryDelivered:
		return 3
	}
	return 0
}
