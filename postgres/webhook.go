package postgres

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
)

// Webhook delivery state lives on the events rows (the event log is the
// outbox: see migrations/0002_webhooks.sql); insertEvents sets it when an
// event is written.

// deliveryCols are the columns of a WebhookDelivery, of events e LEFT
// JOINed with their profile p (a deleted profile's URLs too).
const deliveryCols = `e.id, e.account_id, e.profile_id, e.verification_id, e.type, e.occurred_at, e.payload,
	e.wh_state, e.wh_attempts, e.wh_round_start, e.wh_next_at, e.wh_last_error, e.wh_updated_at,
	coalesce(p.webhook_url, ''), coalesce(p.webhook_failover_url, '')`

func scanDelivery(r pgx.Row, extra ...any) (*verifyd.WebhookDelivery, error) {
	var e verifyd.Event
	var d verifyd.WebhookDelivery
	if err := r.Scan(append([]any{&e.ID, &e.AccountID, &e.ProfileID, &e.VerificationID, &e.Type, &e.OccurredAt,
		&e.Payload, &d.State, &d.Attempts, &d.RoundStart, &d.NextAt, &d.LastError, &d.UpdatedAt, &d.URL,
		&d.FailoverURL}, extra...)...); err != nil {
		return nil, err
	}
	e.OccurredAt, d.NextAt, d.UpdatedAt = utc(e.OccurredAt), utc(d.NextAt), utc(d.UpdatedAt)
	d.Event = &e
	return &d, nil
}

// ClaimWebhooks leases up to Limit due pending deliveries to Worker until
// Now+Lease: their wh_next_at moves to the end of the lease, so one that
// is not finished by then is due again. One statement: the due rows are
// read from events_webhook_due and locked with FOR UPDATE SKIP LOCKED, so
// nodes claiming at once take disjoint deliveries without waiting for each
// other. Oldest occurred first.
func (s *Store) ClaimWebhooks(ctx context.Context, p verifyd.ClaimParams) ([]*verifyd.WebhookDelivery, error) {
	if p.Limit <= 0 {
		return []*verifyd.WebhookDelivery{}, nil
	}
	due := p.Now
	if p.FreshOnly {
		due = time.Time{} // new events are due at the zero time unless born paused
	}
	ds, err := queryAll(ctx, s, func(r pgx.Row) (*verifyd.WebhookDelivery, error) { return scanDelivery(r) },
		`WITH picked AS (
			SELECT id, profile_id FROM events WHERE wh_state = 'pending' AND wh_next_at <= $1
			ORDER BY wh_next_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED
		)
		UPDATE events e SET wh_next_at = $3, wh_locked_by = $4
		FROM picked LEFT JOIN profiles p ON p.id = picked.profile_id
		WHERE e.id = picked.id AND e.wh_state = 'pending'
		RETURNING `+deliveryCols, due, p.Limit, p.Now.Add(p.Lease), p.Worker)
	if err != nil {
		return nil, err
	}
	// RETURNING has no order.
	slices.SortFunc(ds, func(a, b *verifyd.WebhookDelivery) int {
		return cmp.Or(a.Event.OccurredAt.Compare(b.Event.OccurredAt), strings.Compare(a.Event.ID, b.Event.ID))
	})
	return ds, nil
}

// FinishWebhooks applies the outcomes in one statement (so one
// transaction and one round trip), each only while its Worker holds the
// delivery (it is pending and locked by Worker; a lapsed lease nobody took
// over still counts): otherwise that outcome's error is ErrLeaseLost and it
// changes nothing. The held rows are locked in ID order first, so batches
// finishing the same deliveries cannot deadlock. An outcome with an
// Attempt counts it (wh_attempts) and records it in webhook_attempts.
func (s *Store) FinishWebhooks(ctx context.Context, outs []verifyd.WebhookOutcome) []error {
	errs := make([]error, len(outs))
	if len(outs) == 0 {
		return errs
	}
	var (
		ids, workers, states, lastErrs []string
		nextAt, now                    []time.Time
		counted                        []int32
		aEvent, aAccount, aURL, aErr   []string
		aHead                          []string
		aAttempt, aStatus              []int32
		aLatency                       []int64
		aAt                            []time.Time
	)
	// The first outcome of a delivery is the one that may apply; a second
	// one finds the delivery no longer held.
	first := make(map[string]bool, len(outs))
	for i, o := range outs {
		if first[o.EventID] {
			errs[i] = verifyd.ErrLeaseLost
			continue
		}
		first[o.EventID] = true
		c := int32(0)
		if a := o.Attempt; a != nil {
			c = 1
			at := a.At
			if at.IsZero() {
				at = o.Now
			}
			aEvent, aAccount, aURL, aErr = append(aEvent, o.EventID), append(aAccount, a.AccountID), append(aURL, a.URL), append(aErr, a.Error)
			aHead, aAttempt, aStatus = append(aHead, a.ResponseHead), append(aAttempt, int32(a.Attempt)), append(aStatus, int32(a.StatusCode))
			aLatency, aAt = append(aLatency, a.Latency.Microseconds()), append(aAt, at)
		}
		ids, workers, states, lastErrs = append(ids, o.EventID), append(workers, o.Worker), append(states, o.State), append(lastErrs, o.Error)
		nextAt, now, counted = append(nextAt, o.NextAt), append(now, o.Now), append(counted, c)
	}

	var done map[string]bool
	err := s.run(ctx, func(ctx context.Context) error {
		done = make(map[string]bool, len(ids))
		rows, err := s.pool.Query(ctx, `WITH o AS (
				SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int4[], $6::text[],
					$7::timestamptz[]) AS o(id, worker, state, next_at, counted, error, now)
			), held AS (
				SELECT e.id FROM events e JOIN o ON e.id = o.id AND e.wh_locked_by = o.worker
				WHERE e.wh_state = 'pending' ORDER BY e.id FOR UPDATE OF e
			), u AS (
				UPDATE events e SET wh_state = o.state, wh_next_at = o.next_at, wh_attempts = e.wh_attempts + o.counted,
					wh_last_error = o.error, wh_updated_at = o.now, wh_locked_by = ''
				FROM o WHERE e.id = o.id AND e.wh_state = 'pending' AND e.id IN (SELECT id FROM held)
				RETURNING e.id, e.account_id
			), a AS (
				INSERT INTO webhook_attempts (event_id, account_id, attempt, url, status_code, latency_us, error,
					response_head, at)
				SELECT x.event_id, coalesce(nullif(x.account_id, ''), u.account_id), x.attempt, x.url, x.status,
					x.latency, x.error, x.head, x.at
				FROM unnest($8::text[], $9::text[], $10::int4[], $11::text[], $12::int4[], $13::int8[], $14::text[],
					$15::text[], $16::timestamptz[])
					WITH ORDINALITY AS x(event_id, account_id, attempt, url, status, latency, error, head, at, n)
				JOIN u ON u.id = x.event_id
				ORDER BY x.n
			)
			SELECT id FROM u`,
			ids, workers, states, nextAt, counted, lastErrs, now,
			aEvent, aAccount, aAttempt, aURL, aStatus, aLatency, aErr, aHead, aAt)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			done[id] = true
		}
		return rows.Err()
	})
	for i, o := range outs {
		switch {
		case err != nil:
			errs[i] = err
		case errs[i] == nil && !done[o.EventID]:
			errs[i] = verifyd.ErrLeaseLost
		}
	}
	return errs
}

// sqlArgs collects the arguments of a statement built on the fly.
type sqlArgs []any

// add appends v and returns its placeholder.
func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// webhookWhere is the condition of a filter over the events e of one
// account (only those with a delivery); it adds its arguments to args.
// Only the filters given are in it, so each shape of filter gets its own
// plan (one event from events_webhook_id, a verification's deliveries
// from events_verification, the rest from events_webhook_account).
func webhookWhere(args *sqlArgs, accountID string, f verifyd.WebhookFilter) string {
	where := []string{`e.account_id = ` + args.add(accountID), `e.wh_state <> ''`}
	if f.State != "" {
		where = append(where, `e.wh_state = `+args.add(f.State))
	}
	if f.EventType != "" {
		where = append(where, `e.type = `+args.add(f.EventType))
	}
	if f.EventID != "" {
		where = append(where, `e.id = `+args.add(f.EventID))
	}
	if f.VerificationID != "" {
		where = append(where, `e.verification_id = `+args.add(f.VerificationID))
	}
	if !f.From.IsZero() {
		where = append(where, `e.occurred_at >= `+args.add(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, `e.occurred_at < `+args.add(f.To))
	}
	return strings.Join(where, " AND ")
}

// ListWebhookDeliveries returns the account's deliveries matching f, newest
// first, and the total matching.
func (s *Store) ListWebhookDeliveries(ctx context.Context, accountID string, f verifyd.WebhookFilter) ([]*verifyd.WebhookDelivery, int, error) {
	var limit *int // NULL: no limit
	if f.Limit > 0 {
		limit = &f.Limit
	}
	var args sqlArgs
	where := webhookWhere(&args, accountID, f)
	var total int
	list, err := queryAll(ctx, s, func(r pgx.Row) (*verifyd.WebhookDelivery, error) { return scanDelivery(r, &total) },
		`SELECT `+deliveryCols+`, count(*) OVER () FROM events e LEFT JOIN profiles p ON p.id = e.profile_id
		WHERE `+where+` ORDER BY e.seq DESC LIMIT `+args.add(limit)+` OFFSET `+args.add(max(f.Offset, 0)), args...)
	if err != nil {
		return nil, 0, err
	}
	if len(list) == 0 && f.Offset > 0 {
		// Past the end: the window count has no row to ride on.
		var cargs sqlArgs
		where := webhookWhere(&cargs, accountID, f)
		if err := s.queryRow(ctx, func(r pgx.Row) error { return r.Scan(&total) },
			`SELECT count(*) FROM events e WHERE `+where, cargs...); err != nil {
			return nil, 0, err
		}
	}
	return list, total, nil
}

// GetWebhookDelivery returns one delivery of the account and its attempts,
// oldest first: both reads ride in one round trip.
func (s *Store) GetWebhookDelivery(ctx context.Context, accountID, eventID string) (*verifyd.WebhookDelivery, []*verifyd.WebhookAttempt, error) {
	var d *verifyd.WebhookDelivery
	var as []*verifyd.WebhookAttempt
	err := s.tx(ctx, func(ctx context.Context, t *txn) error {
		d, as = nil, nil
		t.queue(`SELECT `+deliveryCols+` FROM events e LEFT JOIN profiles p ON p.id = e.profile_id
			WHERE e.id = $1 AND e.wh_state <> '' AND e.account_id = $2`, eventID, accountID).
			Query(func(rows pgx.Rows) error {
				if !rows.Next() {
					return rows.Err()
				}
				var err error
				d, err = scanDelivery(rows)
				return err
			})
		t.queue(`SELECT a.event_id, a.account_id, a.attempt, a.url, a.status_code, a.latency_us, a.error,
				a.response_head, a.at
			FROM webhook_attempts a
			WHERE a.event_id = $1 AND EXISTS (SELECT 1 FROM events e WHERE e.id = $1 AND e.wh_state <> '' AND e.account_id = $2)
			ORDER BY a.seq`, eventID, accountID).
			Query(func(rows pgx.Rows) (err error) { as, err = collect(rows, scanWebhookAttempt); return err })
		return t.commit(ctx)
	})
	if err != nil {
		return nil, nil, err
	}
	if d == nil {
		return nil, nil, verifyd.ErrNotFound
	}
	return d, as, nil
}

func scanWebhookAttempt(r pgx.Row) (*verifyd.WebhookAttempt, error) {
	var a verifyd.WebhookAttempt
	var latency int64
	if err := r.Scan(&a.EventID, &a.AccountID, &a.Attempt, &a.URL, &a.StatusCode, &latency, &a.Error,
		&a.ResponseHead, &a.At); err != nil {
		return nil, err
	}
	a.Latency, a.At = time.Duration(latency)*time.Microsecond, utc(a.At)
	return &a, nil
}

// RedeliverWebhooks starts a new round, due at now, for the account's
// delivered or failed deliveries matching f; returns how many. One
// statement: pending deliveries (claimed ones included) are left alone.
func (s *Store) RedeliverWebhooks(ctx context.Context, accountID string, f verifyd.WebhookFilter, now time.Time) (int, error) {
	if f.State == verifyd.WebhookPending {
		return 0, nil
	}
	var args sqlArgs
	at := args.add(now)
	where := webhookWhere(&args, accountID, f)
	n, err := s.exec(ctx, `UPDATE events e SET wh_state = 'pending', wh_round_start = e.wh_attempts,
			wh_next_at = `+at+`, wh_locked_by = '', wh_updated_at = `+at+`
		WHERE `+where+` AND e.wh_state IN ('delivered', 'failed')`, args...)
	return int(n), err
}

const webhookKeyCols = `id, account_id, public_key, sealed_private, state, created_at, updated_at`

// qLockWebhookKeys serializes the changes of one account's signing keys
// (held until the transaction ends), so a promotion always sees the key
// it retires. The key space is the two-int4 one of qLockProfilePhone,
// under a name no profile ID has.
const qLockWebhookKeys = `SELECT pg_advisory_xact_lock(hashtext('verifyd.webhook_keys'), hashtext($1))`

// ListWebhookKeys returns the account's signing keys, oldest first.
func (s *Store) ListWebhookKeys(ctx context.Context, accountID string) ([]*verifyd.WebhookKey, error) {
	return queryAll(ctx, s, func(r pgx.Row) (*verifyd.WebhookKey, error) {
		var k verifyd.WebhookKey
		if err := r.Scan(&k.ID, &k.AccountID, &k.PublicKey, &k.SealedPrivate, &k.State, &k.CreatedAt,
			&k.UpdatedAt); err != nil {
			return nil, err
		}
		k.CreatedAt, k.UpdatedAt = utc(k.CreatedAt), utc(k.UpdatedAt)
		return &k, nil
	}, `SELECT `+webhookKeyCols+` FROM webhook_keys WHERE account_id = $1 ORDER BY created_at, id`, accountID)
}

// AddWebhookKey stores a key; a second active key of an account is
// ECONFLICT (the unique partial index webhook_keys_active), an unknown
// account EREFERENCE. One round trip.
func (s *Store) AddWebhookKey(ctx context.Context, k *verifyd.WebhookKey) error {
	return s.tx(ctx, func(ctx context.Context, t *txn) error {
		t.queue(qLockWebhookKeys, k.AccountID)
		t.queue(`INSERT INTO webhook_keys (`+webhookKeyCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			k.ID, k.AccountID, k.PublicKey, k.SealedPrivate, k.State, k.CreatedAt, k.UpdatedAt)
		return t.commit(ctx)
	})
}

// PromoteWebhookKey makes keyID active and retires the key that was; a
// no-op when it is active already. One round trip: the writes are
// conditional on the key being the account's, so the state read with them
// only decides the result. Retiring goes first: the unique index is
// checked row by row.
func (s *Store) PromoteWebhookKey(ctx context.Context, accountID, keyID string, now time.Time) error {
	var found bool
	err := s.tx(ctx, func(ctx context.Context, t *txn) error {
		found = false
		t.queue(qLockWebhookKeys, accountID)
		t.queue(`SELECT true FROM webhook_keys WHERE id = $1 AND account_id = $2`, keyID, accountID).
			Query(func(rows pgx.Rows) error { found = rows.Next(); return rows.Err() })
		t.queue(`UPDATE webhook_keys SET state = 'retired', updated_at = $3
			WHERE account_id = $2 AND state = 'active' AND id <> $1
				AND EXISTS (SELECT 1 FROM webhook_keys WHERE id = $1 AND account_id = $2)`, keyID, accountID, now)
		t.queue(`UPDATE webhook_keys SET state = 'active', updated_at = $3
			WHERE id = $1 AND account_id = $2 AND state <> 'active'`, keyID, accountID, now)
		return t.commit(ctx)
	})
	if err == nil && !found {
		return verifyd.ErrNotFound
	}
	return err
}

// DeleteWebhookKey removes a retired or next key; the active one is
// ECONFLICT. One round trip, as PromoteWebhookKey.
func (s *Store) DeleteWebhookKey(ctx context.Context, accountID, keyID string) error {
	var state string
	err := s.tx(ctx, func(ctx context.Context, t *txn) error {
		state = ""
		t.queue(qLockWebhookKeys, accountID)
		t.queue(`SELECT state FROM webhook_keys WHERE id = $1 AND account_id = $2`, keyID, accountID).
			Query(func(rows pgx.Rows) error {
				if rows.Next() {
					return rows.Scan(&state)
				}
				return rows.Err()
			})
		t.queue(`DELETE FROM webhook_keys WHERE id = $1 AND account_id = $2 AND state <> 'active'`, keyID, accountID)
		return t.commit(ctx)
	})
	switch {
	case err != nil:
		return err
	case state == "":
		return verifyd.ErrNotFound
	case state == verifyd.KeyActive:
		return verifyd.Errorf(verifyd.ECONFLICT, "The active signing key cannot be deleted; promote another key first.")
	}
	return nil
}

// PauseWebhooks makes the profile's events written before until first due
// at until (events already written are left as they are).
func (s *Store) PauseWebhooks(ctx context.Context, profileID string, until time.Time) error {
	_, err := s.exec(ctx, `UPDATE profiles SET wh_paused_until = $1 WHERE id = $2`, until, profileID)
	return err
}
