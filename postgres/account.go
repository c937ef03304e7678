package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
)

// CreateAccount inserts a. ECONFLICT if the ID exists.
func (s *Store) CreateAccount(ctx context.Context, a *verifyd.Account) error {
	_, err := s.exec(ctx, `INSERT INTO accounts (id, name, disabled, created_at) VALUES ($1, $2, $3, $4)`,
		a.ID, a.Name, a.Disabled, a.CreatedAt)
	return err
}

const accountCols = `id, name, disabled, created_at`

func scanAccount(r pgx.Row) (*verifyd.Account, error) {
	var a verifyd.Account
	if err := r.Scan(&a.ID, &a.Name, &a.Disabled, &a.CreatedAt); err != nil {
		return nil, err
	}
	a.CreatedAt = utc(a.CreatedAt)
	return &a, nil
}

// GetAccount returns the account or ENOTFOUND.
func (s *Store) GetAccount(ctx context.Context, id string) (*verifyd.Account, error) {
	var a *verifyd.Account
	err := s.queryRow(ctx, func(r pgx.Row) (err error) { a, err = scanAccount(r); return err },
		`SELECT `+accountCols+` FROM accounts WHERE id = $1`, id)
	return a, err
}

// ListAccounts returns every account, oldest first.
func (s *Store) ListAccounts(ctx context.Context) ([]*verifyd.Account, error) {
	return queryAll(ctx, s, scanAccount, `SELECT `+accountCols+` FROM accounts ORDER BY created_at, id`)
}

// CreateAPIKey inserts k. ECONFLICT if the ID or hash exists, EREFERENCE if
// the account does not.
func (s *Store) CreateAPIKey(ctx context.Context, k *verifyd.APIKey) error {
	_, err := s.exec(ctx, `INSERT INTO api_keys (id, account_id, name, prefix, hash, created_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, k.AccountID, k.Name, k.Prefix, k.Hash, k.CreatedAt, k.RevokedAt)
	return err
}

const apiKeyCols = `k.id, k.account_id, k.name, k.prefix, k.hash, k.created_at, k.revoked_at`

func scanAPIKey(r pgx.Row, extra ...any) (*verifyd.APIKey, error) {
	var k verifyd.APIKey
	var revoked *time.Time
	if err := r.Scan(append([]any{&k.ID, &k.AccountID, &k.Name, &k.Prefix, &k.Hash, &k.CreatedAt, &revoked}, extra...)...); err != nil {
		return nil, err
	}
	k.CreatedAt = utc(k.CreatedAt)
	if revoked != nil {
		t := revoked.UTC()
		k.RevokedAt = &t
	}
	return &k, nil
}

// FindAPIKey returns the unrevoked key whose hash is hash, with its
// account; ENOTFOUND if none.
func (s *Store) FindAPIKey(ctx context.Context, hash []byte) (*verifyd.APIKey, *verifyd.Account, error) {
	var k *verifyd.APIKey
	var a verifyd.Account
	err := s.queryRow(ctx, func(r pgx.Row) (err error) {
		k, err = scanAPIKey(r, &a.ID, &a.Name, &a.Disabled, &a.CreatedAt)
		return err
	}, `SELECT `+apiKeyCols+`, a.id, a.name, a.disabled, a.created_at
		FROM api_keys k JOIN accounts a ON a.id = k.account_id
		WHERE k.hash = $1 AND k.revoked_at IS NULL`, hash)
	if err != nil {
		return nil, nil, err
	}
	a.CreatedAt = utc(a.CreatedAt)
	return k, &a, nil
}

// ListAPIKeys returns all keys (revoked too) of accountID, or of every
// account when accountID is "", oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, accountID string) ([]*verifyd.APIKey, error) {
	if accountID == "" {
		return queryAll(ctx, s, func(r pgx.Row) (*verifyd.APIKey, error) { return scanAPIKey(r) },
			`SELECT `+apiKeyCols+` FROM api_keys k ORDER BY k.created_at, k.id`)
	}
	return queryAll(ctx, s, func(r pgx.Row) (*verifyd.APIKey, error) { return scanAPIKey(r) },
		`SELECT `+apiKeyCols+` FROM api_keys k WHERE k.account_id = $1 ORDER BY k.created_at, k.id`, accountID)
}

// RevokeAPIKey marks the key revoked at `at`; ENOTFOUND if unknown or
// already revoked.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	n, err := s.exec(ctx, `UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, at, id)
	if err == nil && n == 0 {
		return verifyd.ErrNotFound
	}
	return err
}
