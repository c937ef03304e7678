package sqlite

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/verifyd/verifyd"
)

// An event is written (with wh_state pending) only when its profile has a
// webhook_url at that moment, and is first due (wh_next_at) at
// once (0) unless the deliverer paused the profile's receiver
// (PauseWebhooks), so a saturated receiver's new events cost no claim until
// it may have room: one lookup of the profile (insertEventHead,
// insertEventsHead).

const (
	eventDeliveryCols = `e.id, e.account_id, e.profile_id, e.verification_id, e.type, e.occurred_at, e.payload,
	e.wh_state, e.wh_attempts, e.wh_round_start, e.wh_next_at, e.wh_last_error, e.wh_updated_at`
	deliveryCols = eventDeliveryCols + `, coalesce(p.webhook_url, ''), coalesce(p.webhook_failover_url, '')`
)

// urlScanner scans a delivery without the profile's URLs (left "").
type urlScanner struct{ r rowScanner }

func (u urlScanner) Scan(dest ...any) error { return u.r.Scan(dest[:len(dest)-2]...) }

func scanDelivery(r rowScanner) (*verifyd.WebhookDelivery, error) {
	var e verifyd.Event
	var d verifyd.WebhookDelivery
	var occurred, next, updated int64
	if err := r.Scan(&e.ID, &e.AccountID, &e.ProfileID, &e.VerificationID, &e.Type, &occurred, &e.Payload,
		&d.State, &d.Attempts, &d.RoundStart, &next, &d.LastError, &updated, &d.URL, &d.FailoverURL); err != nil {
		return nil, err
	}
	e.OccurredAt, d.NextAt, d.UpdatedAt = fromTM(occurred), fromTM(next), fromTM(updated)
	d.Event = &e
	return &d, nil
}

// ClaimWebhooks leases up to Limit due pending deliveries to Worker: their
// wh_next_at moves to the end of the lease.
func (s *Store) ClaimWebhooks(ctx context.Context, p verifyd.ClaimParams) ([]*verifyd.WebhookDelivery, error) {
	if p.Limit <= 0 {
		return []*verifyd.WebhookDelivery{}, nil
	}
	// Most polls find nothing: ask the read pool first, so an idle
	// deliverer never queues behind the writer.
	due := tm(p.Now)
	if p.FreshOnly {
		due = 0 // new events are due at 0 unless born paused
	}
	var one int
	err := s.queryRow(ctx, func(r rowScanner) error { return r.Scan(&one) },
		`SELECT 1 FROM events INDEXED BY events_webhook_due WHERE wh_state = 'pending' AND wh_next_at <= ? LIMIT 1`,
		due)
	if verifyd.ErrorCode(err) == verifyd.ENOTFOUND {
		return []*verifyd.WebhookDelivery{}, nil
	}
	if err != nil {
		return nil, err
	}
	var ds []*verifyd.WebhookDelivery
	err = s.write(ctx, func(w *wtx) error {
		rows, err := w.query(`UPDATE events SET wh_next_at = ?3, wh_locked_by = ?4
			WHERE seq IN (SELECT seq FROM events INDEXED BY events_webhook_due
				WHERE wh_state = 'pending' AND wh_next_at <= ?1 ORDER BY wh_next_at, seq LIMIT ?2)
			RETURNING `+strings.ReplaceAll(eventDeliveryCols, "e.", ""), due, p.Limit, tm(p.Now.Add(p.Lease)), p.Worker)
		if err != nil {
			return err
		}
		ds, err = collect(s, rows, func(r rowScanner) (*verifyd.WebhookDelivery, error) {
			return scanDelivery(urlScanner{r})
		})
		return err
	})
	if err != nil || len(ds) == 0 {
		return []*verifyd.WebhookDelivery{}, err
	}
	// The profiles' URLs, read on the read pool (a claim holds few).
	urls := map[string][2]string{}
	for _, d := range ds {
		u, ok := urls[d.Event.ProfileID]
		if !ok {
			err := s.queryRow(ctx, func(r rowScanner) error { return r.Scan(&u[0], &u[1]) },
				`SELECT webhook_url, webhook_failover_url FROM profiles WHERE id = ?`, d.Event.ProfileID)
			if err != nil && verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
				return nil, err
			}
			urls[d.Event.ProfileID] = u
		}
		d.URL, d.FailoverURL = u[0], u[1]
	}
	slices.SortFunc(ds, func(a, b *verifyd.WebhookDelivery) int {
		return cmp.Or(a.Event.OccurredAt.Compare(b.Event.OccurredAt), strings.Compare(a.Event.ID, b.Event.ID))
	})
	return ds, nil
}

// FinishWebhooks applies outcomes in one transaction, each only while its
// Worker holds the delivery.
func (s *Store) FinishWebhooks(ctx context.Context, outs []verifyd.WebhookOutcome) []error {
	errs := make([]error, len(outs))
	err := s.write(ctx, func(w *wtx) error {
		for i := range errs {
			errs[i] = nil
		}
		for i, o := range outs {
			counted := 0
			if o.Attempt != nil {
				counted = 1
			}
			// wh_state != '' lets SQLite use the partial index on id (it does
			// not infer it from wh_state = 'pending'): without it every
			// outcome scanned the event log.
			n, err := w.exec(`UPDATE events INDEXED BY events_webhook_account_id SET wh_state = ?, wh_next_at = ?,
				wh_attempts = wh_attempts + ?, wh_last_error = ?, wh_updated_at = ?, wh_locked_by = ''
				WHERE account_id = ? AND id = ? AND wh_state != '' AND wh_state = 'pending' AND wh_locked_by = ?`,
				o.State, tm(o.NextAt), counted, o.Error, tm(o.Now), o.AccountID, o.EventID, o.Worker)
			if err != nil {
				return err
			}
			if n == 0 {
				errs[i] = verifyd.ErrLeaseLost
				continue
			}
			if a := o.Attempt; a != nil {
				if _, err := w.exec(`INSERT INTO webhook_attempts (event_id, account_id, attempt, url, status_code,
					latency_us, error, response_head, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
					o.EventID, a.AccountID, a.Attempt, a.URL, a.StatusCode, a.Latency.Microseconds(), a.Error,
					a.ResponseHead, tm(a.At)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// webhookWhere builds the WHERE clause of a filter over events e of one
// account (the first argument).
func webhookWhere(accountID string, f verifyd.WebhookFilter) (string, []any) {
	where := []string{`e.account_id = ?`, `e.wh_state != ''`}
	args := []any{accountID}
	if f.State != "" {
		where, args = append(where, `e.wh_state = ?`), append(args, f.State)
	}
	if f.EventType != "" {
		where, args = append(where, `e.type = ?`), append(args, f.EventType)
	}
	if f.EventID != "" {
		where, args = append(where, `e.id = ?`), append(args, f.EventID)
	}
	if f.VerificationID != "" {
		where, args = append(where, `e.verification_id = ?`), append(args, f.VerificationID)
	}
	if !f.From.IsZero() {
		where, args = append(where, `e.occurred_at >= ?`), append(args, tm(f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, `e.occurred_at < ?`), append(args, tm(f.To))
	}
	return strings.Join(where, " AND "), args
}

// ListWebhookDeliveries returns the account's deliveries, newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, accountID string, f verifyd.WebhookFilter) ([]*verifyd.WebhookDelivery, int, error) {
	where, args := webhookWhere(accountID, f)
	var total int
	if err := s.queryRow(ctx, func(r rowScanner) error { return r.Scan(&total) },
		`SELECT count(*) FROM events e INDEXED BY events_webhook_account_id WHERE `+where, args...); err != nil {
		return nil, 0, err
	}
	// The index finds the account's events; seq orders them exactly (a sort
	// of the matching rows, which the count reads anyway).
	rows, err := s.query(ctx, `SELECT `+deliveryCols+` FROM events e INDEXED BY events_webhook_account_id
		LEFT JOIN profiles p ON p.id = e.profile_id
		WHERE `+where+` ORDER BY e.seq DESC LIMIT ? OFFSET ?`, append(args, f.Limit, f.Offset)...)
	if err != nil {
		return nil, 0, err
	}
	ds, err := collect(s, rows, scanDelivery)
	return ds, total, err
}

// GetWebhookDelivery returns one delivery of the account and its attempts.
func (s *Store) GetWebhookDelivery(ctx context.Context, accountID, eventID string) (*verifyd.WebhookDelivery, []*verifyd.WebhookAttempt, error) {
	var d *verifyd.WebhookDelivery
	err := s.queryRow(ctx, func(r rowScanner) (err error) { d, err = scanDelivery(r); return err },
		`SELECT `+deliveryCols+` FROM events e INDEXED BY events_webhook_account_id
		LEFT JOIN profiles p ON p.id = e.profile_id
		WHERE e.account_id = ? AND e.id = ? AND e.wh_state != ''`, accountID, eventID)
	if err != nil {
		return nil, nil, err
	}
	rows, err := s.query(ctx, `SELECT event_id, account_id, attempt, url, status_code, latency_us, error,
		response_head, at FROM webhook_attempts WHERE event_id = ? ORDER BY seq`, eventID)
	if err != nil {
		return nil, nil, err
	}
	as, err := collect(s, rows, func(r rowScanner) (*verifyd.WebhookAttempt, error) {
		var a verifyd.WebhookAttempt
		var lat, at int64
		if err := r.Scan(&a.EventID, &a.AccountID, &a.Attempt, &a.URL, &a.StatusCode, &lat, &a.Error,
			&a.ResponseHead, &at); err != nil {
			return nil, err
		}
		a.Latency, a.At = time.Duration(lat)*time.Microsecond, fromTM(at)
		return &a, nil
	})
	return d, as, err
}

// RedeliverWebhooks starts a new round for finished deliveries matching f.
func (s *Store) RedeliverWebhooks(ctx context.Context, accountID string, f verifyd.WebhookFilter, now time.Time) (int, error) {
	if f.State == verifyd.WebhookPending {
		return 0, nil
	}
	where, args := webhookWhere(accountID, f)
	var n int64
	err := s.write(ctx, func(w *wtx) (err error) {
		n, err = w.exec(`UPDATE events SET wh_state = 'pending', wh_round_start = wh_attempts, wh_next_at = ?,
			wh_locked_by = '', wh_updated_at = ?
			WHERE seq IN (SELECT e.seq FROM events e INDEXED BY events_webhook_account_id
				WHERE `+where+` AND e.wh_state IN ('delivered', 'failed'))`,
			append([]any{tm(now), tm(now)}, args...)...)
		return err
	})
	return int(n), err
}

const webhookKeyCols = `id, account_id, public_key, sealed_private, state, created_at, updated_at`

// ListWebhookKeys returns the account's signing keys, oldest first.
func (s *Store) ListWebhookKeys(ctx context.Context, accountID string) ([]*verifyd.WebhookKey, error) {
	rows, err := s.query(ctx, `SELECT `+webhookKeyCols+` FROM webhook_keys WHERE account_id = ?
		ORDER BY created_at, id`, accountID)
	if err != nil {
		return nil, err
	}
	return collect(s, rows, func(r rowScanner) (*verifyd.WebhookKey, error) {
		var k verifyd.WebhookKey
		var created, updated int64
		if err := r.Scan(&k.ID, &k.AccountID, &k.PublicKey, &k.SealedPrivate, &k.State, &created, &updated); err != nil {
			return nil, err
		}
		k.CreatedAt, k.UpdatedAt = fromTM(created), fromTM(updated)
		return &k, nil
	})
}

// AddWebhookKey stores a key; a second active key of an account is
// ECONFLICT (unique partial index).
func (s *Store) AddWebhookKey(ctx context.Context, k *verifyd.WebhookKey) error {
	return s.write(ctx, func(w *wtx) error {
		_, err := w.exec(`INSERT INTO webhook_keys (`+webhookKeyCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.AccountID, k.PublicKey, k.SealedPrivate, k.State, tm(k.CreatedAt), tm(k.UpdatedAt))
		return err
	})
}

// webhookKeyState returns the state of one of the account's keys, or
// ErrNotFound (kept: nothing was written).
func (w *wtx) webhookKeyState(accountID, keyID string) (string, error) {
	var state string
	found, err := w.queryRow(func(r rowScanner) error { return r.Scan(&state) },
		`SELECT state FROM webhook_keys WHERE id = ? AND account_id = ?`, keyID, accountID)
	if err == nil && !found {
		err = &keep{verifyd.ErrNotFound}
	}
	return state, err
}

// PromoteWebhookKey makes keyID active and retires the previous active key.
func (s *Store) PromoteWebhookKey(ctx context.Context, accountID, keyID string, now time.Time) error {
	return s.write(ctx, func(w *wtx) error {
		state, err := w.webhookKeyState(accountID, keyID)
		if err != nil {
			return err
		}
		if state == verifyd.KeyActive {
			return nil
		}
		if _, err := w.exec(`UPDATE webhook_keys SET state = 'retired', updated_at = ?
			WHERE account_id = ? AND state = 'active'`, tm(now), accountID); err != nil {
			return err
		}
		_, err = w.exec(`UPDATE webhook_keys SET state = 'active', updated_at = ? WHERE id = ?`, tm(now), keyID)
		return err
	})
}

// DeleteWebhookKey removes a key that is not active.
func (s *Store) DeleteWebhookKey(ctx context.Context, accountID, keyID string) error {
	return s.write(ctx, func(w *wtx) error {
		state, err := w.webhookKeyState(accountID, keyID)
		if err != nil {
			return err
		}
		if state == verifyd.KeyActive {
			return &keep{verifyd.Errorf(verifyd.ECONFLICT, "The active signing key cannot be deleted; promote another key first.")}
		}
		_, err = w.exec(`DELETE FROM webhook_keys WHERE id = ?`, keyID)
		return err
	})
}

// PauseWebhooks makes the profile's events written before until first due
// at until (events already written are left as they are).
func (s *Store) PauseWebhooks(ctx context.Context, profileID string, until time.Time) error {
	return s.write(ctx, func(w *wtx) error {
		_, err := w.exec(`UPDATE profiles SET wh_paused_until = ? WHERE id = ?`, tm(until), profileID)
		return err
	})
}
