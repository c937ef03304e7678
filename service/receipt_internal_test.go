package service

import (
	"context"
	"testing"

	"github.com/verifyd/verifyd"
)

// raceStore answers the first receipt with "not found" and, before that
// answer reaches the caller, ends the delivery batch that records the
// message: the worker's commit lands just after the receipt's read.
type raceStore struct {
	verifyd.Store
	endBatch func()
	calls    int
}

func (s *raceStore) RecordReceipt(ctx context.Context, p verifyd.ReceiptParams) (verifyd.ReceiptResult, error) {
	s.calls++
	if s.calls == 1 {
		s.endBatch()
		return verifyd.ReceiptResult{}, verifyd.ErrNotFound
	}
	return verifyd.ReceiptResult{Verification: &verifyd.Verification{ID: "v", Type: verifyd.SMS}, Moved: true}, nil
}

// A receipt read while a batch was in flight is read again even when that
// batch has ended by the time the miss comes back.
func TestReceipt_BatchEndsDuringTheRead(t *testing.T) {
	st := &raceStore{}
	s := New(st, nil, Options{})
	n := s.flight.begin()
	st.endBatch = func() { s.flight.end(n) }
	err := s.Receipt(context.Background(), &verifyd.Receipt{Sender: "smsc", ProviderMessageID: "m1", Status: verifyd.DeliveryDelivered})
	if err != nil {
		t.Fatalf("Receipt: %v, want it applied on the second read", err)
	}
	if st.calls != 2 {
		t.Fatalf("store read %d times, want 2", st.calls)
	}

	// With no batch in flight, an unknown message is not found at once.
	st.calls = 0
	st.endBatch = func() {}
	err = s.Receipt(context.Background(), &verifyd.Receipt{Sender: "smsc", ProviderMessageID: "m2", Status: verifyd.DeliveryDelivered})
	if verifyd.ErrorCode(err) != verifyd.ENOTFOUND || st.calls != 1 {
		t.Fatalf("Receipt with nothing in flight: %v after %d reads, want not found after 1", err, st.calls)
	}
}
