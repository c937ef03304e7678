package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/verifyd/verifyd"
)

// insertIdempotency queues r in the transaction of CreateVerification: an
// expired record of the same key is replaced, an unexpired one makes the
// INSERT fail with ECONFLICT (primary key) and the whole transaction roll
// back. Two expired records of any account go with it, so the table holds
// about one TTL of keys.
func insertIdempotency(t *txn, r *verifyd.IdempotencyRecord, now time.Time) {
	t.queue(`DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND expires_at <= $3`,
		r.AccountID, r.Key, now)
	t.queue(`DELETE FROM idempotency_keys WHERE ctid IN
		(SELECT ctid FROM idempotency_keys WHERE expires_at <= $1 ORDER BY expires_at LIMIT 2 FOR UPDATE SKIP LOCKED)`, now)
	t.queue(`INSERT INTO idempotency_keys (account_id, key, fingerprint, verification_id, response, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		r.AccountID, r.Key, r.Fingerprint, r.VerificationID, r.Response, r.CreatedAt, r.ExpiresAt)
}

// GetIdempotency implements verifyd.IdempotencyStore.
func (s *Store) GetIdempotency(ctx context.Context, accountID, key string, now time.Time) (*verifyd.IdempotencyRecord, error) {
	var r verifyd.IdempotencyRecord
	err := s.queryRow(ctx, func(row pgx.Row) error {
		return row.Scan(&r.AccountID, &r.Key, &r.Fingerprint, &r.VerificationID, &r.Response, &r.CreatedAt, &r.ExpiresAt)
	}, `SELECT account_id, key, fingerprint, verification_id, response, created_at, expires_at
		FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND expires_at > $3`, accountID, key, now)
	if err != nil {
		return nil, err
	}
	r.CreatedAt, r.ExpiresAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	return &r, nil
}
