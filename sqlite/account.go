package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/verifyd/verifyd"
)

// CreateAccount inserts a. ECONFLICT if the ID exists.
func (s *Store) CreateAccount(ctx context.Context, a *verifyd.Account) error {
	return s.write(ctx, func(w *wtx) error {
		_, err := w.exec(`INSERT INTO accounts (id, name, disabled, created_at) VALUES (?, ?, ?, ?)`,
			a.ID, a.Name, b2i(a.Disabled), tm(a.CreatedAt))
		return err
	})
}

const accountCols = `id, name, disabled, created_at`

func scanAccount(r rowScanner) (*verifyd.Account, error) {
	var a verifyd.Account
	var created int64
	if err := r.Scan(&a.ID, &a.Name, &a.Disabled, &created); err != nil {
		return nil, err
	}
	a.CreatedAt = fromTM(created)
	return &a, nil
}

// GetAccount returns the account or ENOTFOUND.
func (s *Store) GetAccount(ctx context.Context, id string) (*verifyd.Account, error) {
	var a *verifyd.Account
	err := s.queryRow(ctx, func(r rowScanner) (err error) { a, err = scanAccount(r); return err },
		`SELECT `+accountCols+` FROM accounts WHERE id = ?`, id)
	return a, err
}

// ListAccounts returns every account, oldest first.
func (s *Store) ListAccounts(ctx context.Context) ([]*verifyd.Account, error) {
	rows, err := s.query(ctx, `SELECT `+accountCols+` FROM accounts ORDER BY created_at, id`)
	if err != nil {
		return nil, err
	}
	return collect(s, rows, scanAccount)
}

// CreateAPIKey inserts k. ECONFLICT if the ID or hash exists, EREFERENCE if
// the account does not.
func (s *Store) CreateAPIKey(ctx context.Context, k *verifyd.APIKey) error {
	return s.write(ctx, func(w *wtx) error {
		_, err := w.exec(`INSERT INTO api_keys (id, account_id, name, prefix, hash, created_at, revoked_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.AccountID, k.Name, k.Prefix, k.Hash, tm(k.CreatedAt), nullTime(k.RevokedAt))
		return err
	})
}

const apiKeyCols = `k.id, k.account_id, k.name, k.prefix, k.hash, k.created_at, k.revoked_at`

func scanAPIKey(r rowScanner, extra ...any) (*verifyd.APIKey, error) {
	var k verifyd.APIKey
	var created int64
	var revoked sql.NullInt64
	if err := r.Scan(append([]any{&k.ID, &k.AccountID, &k.Name, &k.Prefix, &k.Hash, &created, &revoked}, extra...)...); err != nil {
		return nil, err
	}
	k.CreatedAt = fromTM(created)
	if revoked.Valid {
		t := fromTM(revoked.Int64)
		k.RevokedAt = &t
	}
	return &k, nil
}

// FindAPIKey returns the unrevoked key whose hash is hash, with its
// account; ENOTFOUND if none.
func (s *Store) FindAPIKey(ctx context.Context, hash []byte) (*verifyd.APIKey, *verifyd.Account, error) {
	var k *verifyd.APIKey
	var a verifyd.Account
	var created int64
	err := s.queryRow(ctx, func(r rowScanner) (err error) {
		k, err = scanAPIKey(r, &a.ID, &a.Name, &a.Disabled, &created)
		return err
	}, `SELECT `+apiKeyCols+`, a.id, a.name, a.disabled, a.created_at
		FROM api_keys k JOIN accounts a ON a.id = k.account_id
		WHERE k.hash = ? AND k.revoked_at IS NULL`, hash)
	if err != nil {
		return nil, nil, err
	}
	a.CreatedAt = fromTM(created)
	return k, &a, nil
}

// ListAPIKeys returns all keys (revoked too) of accountID, or of every
// account when accountID is "", oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, accountID string) ([]*verifyd.APIKey, error) {
	rows, err := s.query(ctx, `SELECT `+apiKeyCols+` FROM api_keys k
		WHERE ?1 = '' OR k.account_id = ?1 ORDER BY k.created_at, k.id`, accountID)
	if err != nil {
		return nil, err
	}
	return collect(s, rows, func(r rowScanner) (*verifyd.APIKey, error) { return scanAPIKey(r) })
}

// RevokeAPIKey marks the key revoked at `at`; ENOTFOUND if unknown or
// already revoked.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.exec(`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, tm(at), id)
		if err == nil && n == 0 {
			return &keep{verifyd.ErrNotFound} // nothing written: no rollback
		}
		return err
	})
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return tm(*t)
}

// rowIter is a *sql.Rows (readers) or a *rawRows (the writer).
type rowIter interface {
	rowScanner
	Next() bool
	Err() error
	Close() error
}

// collect scans every row with scan and closes rows.
func collect[T any](s *Store, rows rowIter, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.mapErr(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.mapErr(err)
	}
	return out, nil
}
