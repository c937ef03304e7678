package sqlite

import (
	"context"

	"github.com/verifyd/verifyd"
)

// qReceiptAttempt selects the newest attempt of (sender, provider message
// id) with its verification.
const qReceiptAttempt = `SELECT a.seq, a.outcome, ` + prefixedCols + `
	FROM delivery_attempts a JOIN verifications v ON v.seq = a.verification_seq AND v.id = a.verification_id
	WHERE a.sender = ? AND a.provider_message_id = ? ORDER BY a.at DESC, a.seq DESC LIMIT 1`

const prefixedCols = `v.id, v.account_id, v.profile_id, v.type, v.phone_number, v.code_hash, v.custom_code,
	v.extension, v.timeout_secs, v.status, v.attempts, v.completion_reason, v.delivery_status, v.created_at,
	v.updated_at, v.expires_at`

// RecordReceipt applies a carrier's receipt to the verification of the
// attempt it names, with its event, in one transaction (see
// verifyd.ReceiptStore).
func (s *Store) RecordReceipt(ctx context.Context, p verifyd.ReceiptParams) (verifyd.ReceiptResult, error) {
	if !verifyd.ReceiptStatus(p.Status) {
		return verifyd.ReceiptResult{}, verifyd.Errorf(verifyd.EINVALID, "Receipt status %q is not a delivery status.", p.Status)
	}
	if p.Sender == "" || p.ProviderMessageID == "" {
		return verifyd.ReceiptResult{}, verifyd.ErrNotFound
	}
	var res verifyd.ReceiptResult
	err := s.write(ctx, func(w *wtx) error {
		res = verifyd.ReceiptResult{}
		var attemptSeq int64
		var outcome string
		var v *verifyd.Verification
		found, err := w.queryRow(func(r rowScanner) (err error) {
			v, err = scanVerification(seqScanner{seqScanner{r, &attemptSeq}, &outcome})
			return err
		}, qReceiptAttempt, p.Sender, p.ProviderMessageID)
		if err != nil {
			return err
		}
		if !found {
			return &keep{verifyd.ErrNotFound} // nothing written
		}
		res.Verification = v
		if verifyd.ReceiptMoves(outcome, p.Status) {
			if _, err := w.exec(`UPDATE delivery_attempts SET outcome = ?, error = ? WHERE seq = ?`,
				p.Status, p.Cause, attemptSeq); err != nil {
				return err
			}
		}
		if !verifyd.ReceiptMoves(v.DeliveryStatus, p.Status) {
			return nil
		}
		v.DeliveryStatus, v.UpdatedAt = p.Status, p.Now
		if err := w.saveDelivery(v); err != nil {
			return err
		}
		if typ := verifyd.DeliveryEvent(p.Status); typ != "" {
			if err := w.event(typ, v, p.Now); err != nil {
				return err
			}
		}
		res.Moved = true
		return nil
	})
	if err != nil {
		return verifyd.ReceiptResult{}, err
	}
	return res, nil
}
