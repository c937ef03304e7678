package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
)

const profileCols = `id, account_id, name, webhook_url, webhook_failover_url, language,
	daily_spend_limit, daily_spend_limit_enabled, channels, created_at, updated_at`

func scanProfile(r pgx.Row, extra ...any) (*verifyd.Profile, error) {
	var p verifyd.Profile
	var channels []byte
	if err := r.Scan(append([]any{&p.ID, &p.AccountID, &p.Name, &p.WebhookURL, &p.WebhookFailoverURL, &p.Language,
		&p.DailySpendLimit, &p.DailySpendLimitEnabled, &channels, &p.CreatedAt, &p.UpdatedAt}, extra...)...); err != nil {
		return nil, err
	}
	// Decoded by encoding/json, like the SQLite store: numbers are float64.
	if err := json.Unmarshal(channels, &p.Channels); err != nil {
		return nil, fmt.Errorf("profile %s: channels: %w", p.ID, err)
	}
	p.CreatedAt, p.UpdatedAt = utc(p.CreatedAt), utc(p.UpdatedAt)
	return &p, nil
}

func encodeChannels(p *verifyd.Profile) (string, error) {
	m := p.Channels
	if m == nil {
		m = map[verifyd.Channel]map[string]any{}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", verifyd.Errorf(verifyd.EINVALID, "Channel settings cannot be stored.")
	}
	return string(b), nil
}

// CreateProfile inserts p.
func (s *Store) CreateProfile(ctx context.Context, p *verifyd.Profile) error {
	channels, err := encodeChannels(p)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO profiles (id, account_id, name, webhook_url, webhook_failover_url, language,
		daily_spend_limit, daily_spend_limit_enabled, channels, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		p.ID, p.AccountID, p.Name, p.WebhookURL, p.WebhookFailoverURL, p.Language,
		p.DailySpendLimit, p.DailySpendLimitEnabled, channels, p.CreatedAt, p.UpdatedAt)
	return err
}

// GetProfile returns a live profile of the account or ENOTFOUND.
func (s *Store) GetProfile(ctx context.Context, accountID, id string) (*verifyd.Profile, error) {
	var p *verifyd.Profile
	err := s.queryRow(ctx, func(r pgx.Row) (err error) { p, err = scanProfile(r); return err },
		`SELECT `+profileCols+` FROM profiles WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL`, id, accountID)
	return p, err
}

// ListProfiles returns live profiles, oldest first, and the total count
// matching the filter.
func (s *Store) ListProfiles(ctx context.Context, accountID string, f verifyd.ProfileFilter) ([]*verifyd.Profile, int, error) {
	var limit *int // NULL: no limit
	if f.Limit > 0 {
		limit = &f.Limit
	}
	// $2 NULL: any name.
	var total int
	list, err := queryAll(ctx, s, func(r pgx.Row) (*verifyd.Profile, error) { return scanProfile(r, &total) },
		`SELECT `+profileCols+`, count(*) OVER () FROM profiles
		WHERE account_id = $1 AND ($2::text IS NULL OR name = $2) AND deleted_at IS NULL
		ORDER BY created_at, id LIMIT $3 OFFSET $4`, accountID, f.Name, limit, max(f.Offset, 0))
	if err != nil {
		return nil, 0, err
	}
	if len(list) == 0 && f.Offset > 0 {
		// Past the end: the window count has no row to ride on.
		err := s.queryRow(ctx, func(r pgx.Row) error { return r.Scan(&total) },
			`SELECT count(*) FROM profiles
			WHERE account_id = $1 AND ($2::text IS NULL OR name = $2) AND deleted_at IS NULL`, accountID, f.Name)
		if err != nil {
			return nil, 0, err
		}
	}
	return list, total, nil
}

// UpdateProfile replaces every field of a live profile but ID, AccountID and
// CreatedAt; ENOTFOUND if there is none.
func (s *Store) UpdateProfile(ctx context.Context, p *verifyd.Profile) error {
	channels, err := encodeChannels(p)
	if err != nil {
		return err
	}
	n, err := s.exec(ctx, `UPDATE profiles SET name = $1, webhook_url = $2, webhook_failover_url = $3, language = $4,
		daily_spend_limit = $5, daily_spend_limit_enabled = $6, channels = $7, updated_at = $8
		WHERE id = $9 AND account_id = $10 AND deleted_at IS NULL`,
		p.Name, p.WebhookURL, p.WebhookFailoverURL, p.Language,
		p.DailySpendLimit, p.DailySpendLimitEnabled, channels, p.UpdatedAt, p.ID, p.AccountID)
	if err == nil && n == 0 {
		return verifyd.ErrNotFound
	}
	return err
}

// DeleteProfile marks the profile deleted and, in the same transaction,
// turns its pending verifications expired with reason profile_deleted (one
// verify.completed event each). Returns the deleted profile.
func (s *Store) DeleteProfile(ctx context.Context, accountID, id string, now time.Time) (*verifyd.Profile, error) {
	var p *verifyd.Profile
	err := s.tx(ctx, func(ctx context.Context, t *txn) error {
		p = nil
		var pending []*verifyd.Verification
		t.queue(`SELECT `+profileCols+` FROM profiles WHERE id = $1 AND account_id = $2 AND deleted_at IS NULL
			FOR UPDATE`, id, accountID).Query(func(rows pgx.Rows) error {
			if rows.Next() {
				var err error
				p, err = scanProfile(rows)
				return err
			}
			return nil
		})
		// Locked in ID order, as every multi-row lock of verifications is.
		t.queue(`SELECT `+verificationCols+` FROM verifications
			WHERE profile_id = $1 AND account_id = $2 AND status = 'pending' ORDER BY id FOR UPDATE`, id, accountID).
			Query(func(rows pgx.Rows) (err error) { pending, err = collect(rows, scanVerification); return err })
		if err := t.flush(ctx); err != nil {
			return err
		}
		if p == nil {
			return verifyd.ErrNotFound
		}
		t.queue(`UPDATE profiles SET deleted_at = $1 WHERE id = $2`, now, id)
		var events []*verifyd.Event
		for _, v := range pending {
			events = append(events, completeV(v, verifyd.StatusExpired, verifyd.ReasonProfileDeleted, now))
		}
		saveVerifications(t, pending)
		insertEvents(t, events)
		return t.commit(ctx)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

const templateCols = `id, account_id, text, created_at, updated_at`

func scanTemplate(r pgx.Row) (*verifyd.Template, error) {
	var t verifyd.Template
	if err := r.Scan(&t.ID, &t.AccountID, &t.Text, &t.CreatedAt, &t.UpdatedAt); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = utc(t.CreatedAt), utc(t.UpdatedAt)
	return &t, nil
}

// CreateTemplate inserts t.
func (s *Store) CreateTemplate(ctx context.Context, t *verifyd.Template) error {
	_, err := s.exec(ctx, `INSERT INTO templates (id, account_id, text, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
		t.ID, t.AccountID, t.Text, t.CreatedAt, t.UpdatedAt)
	return err
}

// GetTemplate returns the account's template or ENOTFOUND.
func (s *Store) GetTemplate(ctx context.Context, accountID, id string) (*verifyd.Template, error) {
	var t *verifyd.Template
	err := s.queryRow(ctx, func(r pgx.Row) (err error) { t, err = scanTemplate(r); return err },
		`SELECT `+templateCols+` FROM templates WHERE id = $1 AND account_id = $2`, id, accountID)
	return t, err
}

// ListTemplates returns the account's templates, oldest first.
func (s *Store) ListTemplates(ctx context.Context, accountID string) ([]*verifyd.Template, error) {
	return queryAll(ctx, s, scanTemplate,
		`SELECT `+templateCols+` FROM templates WHERE account_id = $1 ORDER BY created_at, id`, accountID)
}

// UpdateTemplate replaces Text and UpdatedAt; ENOTFOUND if unknown.
func (s *Store) UpdateTemplate(ctx context.Context, t *verifyd.Template) error {
	n, err := s.exec(ctx, `UPDATE templates SET text = $1, updated_at = $2 WHERE id = $3 AND account_id = $4`,
		t.Text, t.UpdatedAt, t.ID, t.AccountID)
	if err == nil && n == 0 {
		return verifyd.ErrNotFound
	}
	return err
}
