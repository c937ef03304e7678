package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/verifyd/verifyd"
)

const profileCols = `id, account_id, name, webhook_url, webhook_failover_url, language,
	daily_spend_limit, daily_spend_limit_enabled, channels, created_at, updated_at`

func scanProfile(r rowScanner) (*verifyd.Profile, error) {
	var p verifyd.Profile
	var limit sql.NullFloat64
	var channels []byte
	var created, updated int64
	if err := r.Scan(&p.ID, &p.AccountID, &p.Name, &p.WebhookURL, &p.WebhookFailoverURL, &p.Language,
		&limit, &p.DailySpendLimitEnabled, &channels, &created, &updated); err != nil {
		return nil, err
	}
	if limit.Valid {
		p.DailySpendLimit = &limit.Float64
	}
	if err := json.Unmarshal(channels, &p.Channels); err != nil {
		return nil, fmt.Errorf("profile %s: channels: %w", p.ID, err)
	}
	p.CreatedAt, p.UpdatedAt = fromTM(created), fromTM(updated)
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

func nullFloat(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// CreateProfile inserts p.
func (s *Store) CreateProfile(ctx context.Context, p *verifyd.Profile) error {
	channels, err := encodeChannels(p)
	if err != nil {
		return err
	}
	return s.write(ctx, func(w *wtx) error {
		w.profileWritten()
		_, err := w.exec(`INSERT INTO profiles (id, account_id, name, webhook_url, webhook_failover_url, language,
			daily_spend_limit, daily_spend_limit_enabled, channels, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.AccountID, p.Name, p.WebhookURL, p.WebhookFailoverURL, p.Language,
			nullFloat(p.DailySpendLimit), b2i(p.DailySpendLimitEnabled), channels, tm(p.CreatedAt), tm(p.UpdatedAt))
		return err
	})
}

// GetProfile returns a live profile of the account or ENOTFOUND.
func (s *Store) GetProfile(ctx context.Context, accountID, id string) (*verifyd.Profile, error) {
	var p *verifyd.Profile
	err := s.queryRow(ctx, func(r rowScanner) (err error) { p, err = scanProfile(r); return err },
		`SELECT `+profileCols+` FROM profiles WHERE id = ? AND account_id = ? AND deleted_at IS NULL`, id, accountID)
	return p, err
}

// ListProfiles returns live profiles, oldest first, and the total count
// matching the filter.
func (s *Store) ListProfiles(ctx context.Context, accountID string, f verifyd.ProfileFilter) ([]*verifyd.Profile, int, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // no limit
	}
	var rows *sql.Rows
	var err error
	var total int
	if f.Name != nil {
		rows, err = s.query(ctx, `SELECT `+profileCols+`, count(*) OVER () FROM profiles
			WHERE account_id = ? AND name = ? AND deleted_at IS NULL
			ORDER BY created_at, id LIMIT ? OFFSET ?`, accountID, *f.Name, limit, max(f.Offset, 0))
	} else {
		rows, err = s.query(ctx, `SELECT `+profileCols+`, count(*) OVER () FROM profiles
			WHERE account_id = ? AND deleted_at IS NULL
			ORDER BY created_at, id LIMIT ? OFFSET ?`, accountID, limit, max(f.Offset, 0))
	}
	if err != nil {
		return nil, 0, err
	}
	list, err := collect(s, rows, func(r rowScanner) (*verifyd.Profile, error) {
		return scanProfile(countScanner{r, &total})
	})
	if err != nil {
		return nil, 0, err
	}
	if len(list) == 0 && f.Offset > 0 {
		// Past the end: the window count has no row to ride on.
		q := `SELECT count(*) FROM profiles WHERE account_id = ? AND deleted_at IS NULL`
		args := []any{accountID}
		if f.Name != nil {
			q += ` AND name = ?`
			args = append(args, *f.Name)
		}
		if err := s.queryRow(ctx, func(r rowScanner) error { return r.Scan(&total) }, q, args...); err != nil {
			return nil, 0, err
		}
	}
	return list, total, nil
}

// countScanner scans a trailing count(*) OVER () column into n.
type countScanner struct {
	r rowScanner
	n *int
}

func (c countScanner) Scan(dest ...any) error { return c.r.Scan(append(dest, c.n)...) }

// UpdateProfile replaces every field of a live profile but ID, AccountID and
// CreatedAt; ENOTFOUND if there is none.
func (s *Store) UpdateProfile(ctx context.Context, p *verifyd.Profile) error {
	channels, err := encodeChannels(p)
	if err != nil {
		return err
	}
	return s.write(ctx, func(w *wtx) error {
		w.profileWritten()
		n, err := w.exec(`UPDATE profiles SET name = ?, webhook_url = ?, webhook_failover_url = ?, language = ?,
			daily_spend_limit = ?, daily_spend_limit_enabled = ?, channels = ?, updated_at = ?
			WHERE id = ? AND account_id = ? AND deleted_at IS NULL`,
			p.Name, p.WebhookURL, p.WebhookFailoverURL, p.Language,
			nullFloat(p.DailySpendLimit), b2i(p.DailySpendLimitEnabled), channels, tm(p.UpdatedAt),
			p.ID, p.AccountID)
		if err == nil && n == 0 {
			return &keep{verifyd.ErrNotFound} // nothing written: no rollback
		}
		return err
	})
}

// DeleteProfile marks the profile deleted and, in the same transaction,
// turns its pending verifications expired with reason profile_deleted (one
// verify.completed event each). Returns the deleted profile.
func (s *Store) DeleteProfile(ctx context.Context, accountID, id string, now time.Time) (*verifyd.Profile, error) {
	var p *verifyd.Profile
	err := s.write(ctx, func(w *wtx) error {
		found, err := w.queryRow(func(r rowScanner) (err error) { p, err = scanProfile(r); return err },
			`SELECT `+profileCols+` FROM profiles WHERE id = ? AND account_id = ? AND deleted_at IS NULL`, id, accountID)
		if err != nil {
			return err
		}
		if !found {
			return &keep{verifyd.ErrNotFound} // nothing written: no rollback
		}
		w.profileWritten()
		if _, err := w.exec(`UPDATE profiles SET deleted_at = ? WHERE id = ?`, tm(now), id); err != nil {
			return err
		}
		rows, err := w.query(`SELECT `+verificationCols+` FROM verifications
			WHERE profile_id = ? AND status = 'pending'`, id)
		if err != nil {
			return err
		}
		pending, err := collect(s, rows, scanVerification)
		if err != nil {
			return err
		}
		for _, v := range pending {
			if err := w.complete(v, verifyd.StatusExpired, verifyd.ReasonProfileDeleted, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

const templateCols = `id, account_id, text, created_at, updated_at`

func scanTemplate(r rowScanner) (*verifyd.Template, error) {
	var t verifyd.Template
	var created, updated int64
	if err := r.Scan(&t.ID, &t.AccountID, &t.Text, &created, &updated); err != nil {
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = fromTM(created), fromTM(updated)
	return &t, nil
}

// CreateTemplate inserts t.
func (s *Store) CreateTemplate(ctx context.Context, t *verifyd.Template) error {
	return s.write(ctx, func(w *wtx) error {
		_, err := w.exec(`INSERT INTO templates (id, account_id, text, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
			t.ID, t.AccountID, t.Text, tm(t.CreatedAt), tm(t.UpdatedAt))
		return err
	})
}

// GetTemplate returns the account's template or ENOTFOUND.
func (s *Store) GetTemplate(ctx context.Context, accountID, id string) (*verifyd.Template, error) {
	var t *verifyd.Template
	err := s.queryRow(ctx, func(r rowScanner) (err error) { t, err = scanTemplate(r); return err },
		`SELECT `+templateCols+` FROM templates WHERE id = ? AND account_id = ?`, id, accountID)
	return t, err
}

// ListTemplates returns the account's templates, oldest first.
func (s *Store) ListTemplates(ctx context.Context, accountID string) ([]*verifyd.Template, error) {
	rows, err := s.query(ctx, `SELECT `+templateCols+` FROM templates WHERE account_id = ? ORDER BY created_at, id`, accountID)
	if err != nil {
		return nil, err
	}
	return collect(s, rows, scanTemplate)
}

// UpdateTemplate replaces Text and UpdatedAt; ENOTFOUND if unknown.
func (s *Store) UpdateTemplate(ctx context.Context, t *verifyd.Template) error {
	return s.write(ctx, func(w *wtx) error {
		n, err := w.exec(`UPDATE templates SET text = ?, updated_at = ? WHERE id = ? AND account_id = ?`,
			t.Text, tm(t.UpdatedAt), t.ID, t.AccountID)
		if err == nil && n == 0 {
			return &keep{verifyd.ErrNotFound} // nothing written: no rollback
		}
		return err
	})
}
