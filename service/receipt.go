package service

import (
	"context"
	"sync"
	"time"

	"github.com/verifyd/verifyd"
)

// ReceiptGrace bounds how long a receipt for a message this process has not
// recorded yet waits for the delivery batches in flight to record theirs.
// A carrier may answer before the worker has written the attempt (an SMSC
// sends the receipt milliseconds after submit_sm_resp).
const ReceiptGrace = 5 * time.Second

// Receipt implements verifyd.ReceiptSink: it moves the delivery status of
// the verification whose message r names and writes the status's event, in
// one store transaction (verifyd.ReceiptStore; statuses only move forward,
// duplicates change nothing, the verification's status is left alone).
//
// A receipt may overtake the record of its own send. When the store does
// not know the message and this process had delivery batches in flight when
// the receipt arrived, Receipt has the worker record the outcomes it
// holds, and looks again each time one of those batches is recorded (up to
// ReceiptGrace and while ctx allows), also when they ended while the store
// was answering (their record may have landed just after the store's
// read). If the message is still unknown and some of them in flight, it returns
// EUNAVAILABLE, so the carrier offers the receipt again later (SMPP
// ESME_RX_T_APPN, HTTP 500); otherwise an unknown message is ENOTFOUND.
func (s *Service) Receipt(ctx context.Context, r *verifyd.Receipt) error {
	if r == nil || !verifyd.ReceiptStatus(r.Status) {
		return verifyd.Errorf(verifyd.EINVALID, "A receipt's status must be delivered, delivery_failed or delivery_unconfirmed.")
	}
	// Whether a batch was in flight is taken before the store is asked: a
	// batch that ends between the store's answer and a later look may have
	// recorded the message after the store read it.
	mark, inFlight := s.flight.mark()
	p := verifyd.ReceiptParams{Sender: r.Sender, ProviderMessageID: r.ProviderMessageID, Status: r.Status,
		Cause: r.Cause, Now: s.opts.Now()}
	res, err := s.store.RecordReceipt(ctx, p)
	if verifyd.ErrorCode(err) == verifyd.ENOTFOUND && inFlight {
		// The message may be one whose outcome the worker holds to record
		// with others: have it recorded now rather than at the window's end.
		if w := s.worker.Load(); w != nil {
			w.recordSoon()
		}
		// Look again each time one of those batches is recorded, not only
		// once all are: a later one may be a send waiting on the carrier,
		// which may hold its answers until this receipt is answered.
		wctx, cancel := context.WithTimeout(ctx, ReceiptGrace)
		defer cancel()
		for verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
			pending, ok := s.flight.waitOne(wctx, mark)
			if !ok {
				return verifyd.Errorf(verifyd.EUNAVAILABLE, "Message %s of %s is not recorded yet; offer the receipt again later.",
					r.ProviderMessageID, r.Sender)
			}
			p.Now = s.opts.Now()
			res, err = s.store.RecordReceipt(ctx, p)
			if !pending {
				break
			}
		}
	}
	if err != nil {
		return err
	}
	if res.Moved {
		s.count(res.Verification.Type, r.Status)
		s.log.Debug("delivery receipt", "verification", res.Verification.ID, "sender", r.Sender,
			"message", r.ProviderMessageID, "delivery_status", r.Status)
	}
	return nil
}

var _ verifyd.ReceiptSink = (*Service)(nil)

// flight tracks the delivery batches of this process between their start
// and the record of their outcomes. The zero value is ready.
type flight struct {
	mu      sync.Mutex
	next    uint64              // number of batches begun
	active  map[uint64]struct{} // batches begun and not yet recorded
	changed chan struct{}       // closed when a batch ends
}

// begin registers a batch and returns its number.
func (f *flight) begin() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.active == nil {
		f.active = map[uint64]struct{}{}
	}
	f.next++
	f.active[f.next] = struct{}{}
	return f.next
}

// end marks batch n recorded.
func (f *flight) end(n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.active, n)
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// mark returns the number of batches begun so far and whether any of them
// is still active.
func (f *flight) mark() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.next, len(f.active) > 0
}

func (f *flight) pendingLocked(mark uint64) bool {
	for n := range f.active {
		if n <= mark {
			return true
		}
	}
	return false
}

// waitOne waits, unless no batch numbered at most mark is active, until
// some batch ends, and returns whether any numbered at most mark still is
// active; ok is false if ctx ended first.
func (f *flight) waitOne(ctx context.Context, mark uint64) (pending, ok bool) {
	f.mu.Lock()
	if !f.pendingLocked(mark) {
		f.mu.Unlock()
		return false, true
	}
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	ch := f.changed
	f.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return false, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pendingLocked(mark), true
}
