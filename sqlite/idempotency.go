package sqlite

import (
	"context"
	"time"

	"github.com/verifyd/verifyd"
)

// insertIdempotency writes r in the batch transaction (CreateVerification):
// an expired record of the same key is replaced, an unexpired one makes the
// insert fail with ECONFLICT (primary key). Two expired records of any
// account go with it, so the table holds about one TTL of keys.
func (w *wtx) insertIdempotency(r *verifyd.IdempotencyRecord, now time.Time) error {
	if _, err := w.exec(`DELETE FROM idempotency_keys WHERE account_id = ? AND key = ? AND expires_at <= ?`,
		r.AccountID, r.Key, tm(now)); err != nil {
		return err
	}
	if _, err := w.exec(`DELETE FROM idempotency_keys WHERE (account_id, key) IN
		(SELECT account_id, key FROM idempotency_keys WHERE expires_at <= ? ORDER BY expires_at LIMIT 2)`, tm(now)); err != nil {
		return err
	}
	_, err := w.exec(`INSERT INTO idempotency_keys (account_id, key, fingerprint, verification_id, response,
		created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.AccountID, r.Key, r.Fingerprint, r.VerificationID, r.Response, tm(r.CreatedAt), tm(r.ExpiresAt))
	return err
}

// GetIdempotency implements verifyd.IdempotencyStore.
func (s *Store) GetIdempotency(ctx context.Context, accountID, key string, now time.Time) (*verifyd.IdempotencyRecord, error) {
	var r verifyd.IdempotencyRecord
	var created, expires int64
	err := s.queryRow(ctx, func(row rowScanner) error {
		return row.Scan(&r.AccountID, &r.Key, &r.Fingerprint, &r.VerificationID, &r.Response, &created, &expires)
	}, `SELECT account_id, key, fingerprint, verification_id, response, created_at, expires_at
		FROM idempotency_keys WHERE account_id = ? AND key = ? AND expires_at > ?`, accountID, key, tm(now))
	if err != nil {
		return nil, err
	}
	r.CreatedAt, r.ExpiresAt = fromTM(created), fromTM(expires)
	return &r, nil
}
