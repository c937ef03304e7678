package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
)

// RecordReceipt applies a carrier's receipt to the verification of the
// attempt it names, with its event, in one transaction (see
// verifyd.ReceiptStore). The verification row is locked (FOR UPDATE), so
// duplicate receipts arriving at once on two nodes apply once.
func (s *Store) RecordReceipt(ctx context.Context, p verifyd.ReceiptParams) (verifyd.ReceiptResult, error) {
	if !verifyd.ReceiptStatus(p.Status) {
		return verifyd.ReceiptResult{}, verifyd.Errorf(verifyd.EINVALID, "Receipt status %q is not a delivery status.", p.Status)
	}
	if p.Sender == "" || p.ProviderMessageID == "" {
		return verifyd.ReceiptResult{}, verifyd.ErrNotFound
	}
	now := p.Now.UTC().Truncate(time.Microsecond)
	var res verifyd.ReceiptResult
	err := s.tx(ctx, func(ctx context.Context, t *txn) error {
		res = verifyd.ReceiptResult{}
		var attemptSeq int64
		var outcome string
		var v *verifyd.Verification
		t.queue(`SELECT `+prefixed("v.", verificationCols)+`, a.seq, a.outcome
			FROM delivery_attempts a JOIN verifications v ON v.id = a.verification_id
			WHERE a.sender = $1 AND a.provider_message_id = $2
			ORDER BY a.at DESC, a.seq DESC LIMIT 1 FOR UPDATE OF v`, p.Sender, p.ProviderMessageID).Query(
			func(rows pgx.Rows) error {
				if !rows.Next() {
					return rows.Err()
				}
				var err error
				v, err = scanVerificationExtra(rows, &attemptSeq, &outcome)
				return err
			})
		if err := t.flush(ctx); err != nil {
			return err
		}
		if v == nil {
			return verifyd.ErrNotFound // rolled back: nothing was written
		}
		res.Verification = v
		if verifyd.ReceiptMoves(outcome, p.Status) {
			t.queue(`UPDATE delivery_attempts SET outcome = $2, error = $3 WHERE seq = $1`, attemptSeq, p.Status, p.Cause)
		}
		if verifyd.ReceiptMoves(v.DeliveryStatus, p.Status) {
			v.DeliveryStatus, v.UpdatedAt = p.Status, now
			t.queue(`UPDATE verifications SET delivery_status = $2, updated_at = $3 WHERE id = $1`,
				v.ID, v.DeliveryStatus, v.UpdatedAt)
			if typ := verifyd.DeliveryEvent(p.Status); typ != "" {
				insertEvents(t, []*verifyd.Event{verifyd.NewEvent(typ, v, now)})
			}
			res.Moved = true
		}
		return t.commit(ctx)
	})
	if err != nil {
		return verifyd.ReceiptResult{}, err
	}
	return res, nil
}
