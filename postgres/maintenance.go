package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// TryLease takes the named lease for holder until now+ttl, or renews it if
// holder already has it: one upsert on the lease row, which another holder
// can take only once the lease has lapsed (now reached its end, as a job
// lease does).
func (s *Store) TryLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	var got bool
	err := s.run(ctx, func(ctx context.Context) error {
		got = false
		rows, err := s.pool.Query(ctx, `INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
			WHERE leases.until <= $4 OR leases.holder = excluded.holder
			RETURNING true`, name, holder, now.Add(ttl), now)
		if err != nil {
			return err
		}
		defer rows.Close()
		got = rows.Next()
		rows.Close()
		return rows.Err()
	})
	return got && err == nil, err
}

// purgeChunk bounds the verifications one PurgeFinished statement deletes
// (and so the row locks it holds and the time it holds them).
const purgeChunk = 500

// PurgeFinished deletes the oldest finished verifications created before
// `before`, with their events (and those events' webhook attempts),
// delivery attempts and jobs, in statements of at most purgeChunk
// verifications, each its own short transaction.
// Candidates come from the verifications_finished index (oldest first);
// rows another transaction holds are skipped (SKIP LOCKED), so the purge
// never waits for, nor holds up, the hot path. That goes for their jobs
// too: a verification whose job another transaction holds (FinishJobs
// locks a job, then its verification) is left for a later purge instead of
// waited for, so a purge and a delivery's finish never wait for each other
// in a cycle (they could deadlock before).
func (s *Store) PurgeFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	total := 0
	for total < limit {
		want := min(purgeChunk, limit-total)
		var n int
		err := s.queryRow(ctx, func(r pgx.Row) error { return r.Scan(&n) },
			`WITH candidates AS (
				SELECT id FROM verifications WHERE status <> 'pending' AND created_at < $1
				ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
			), held AS (
				SELECT id, verification_id FROM jobs WHERE verification_id IN (SELECT id FROM candidates)
				ORDER BY id FOR UPDATE SKIP LOCKED
			), doomed AS (
				SELECT c.id FROM candidates c WHERE NOT EXISTS (SELECT 1 FROM jobs j
					WHERE j.verification_id = c.id AND j.id NOT IN (SELECT id FROM held))
				-- A hand-off still in flight (or lapsed and not yet moved into
				-- jobs) keeps its verification for a later purge.
				AND NOT EXISTS (SELECT 1 FROM handoffs h WHERE h.verification_id = c.id)
			), w AS (
				DELETE FROM webhook_attempts WHERE event_id IN (
					SELECT id FROM events WHERE verification_id IN (SELECT id FROM doomed))
			), e AS (
				DELETE FROM events WHERE verification_id IN (SELECT id FROM doomed)
			), d AS (
				DELETE FROM delivery_attempts WHERE verification_id IN (SELECT id FROM doomed)
			), j AS (
				DELETE FROM jobs WHERE id IN (SELECT id FROM held WHERE verification_id IN (SELECT id FROM doomed))
			), v AS (
				DELETE FROM verifications WHERE id IN (SELECT id FROM doomed) RETURNING 1
			)
			SELECT count(*) FROM v`, before, want)
		if err != nil {
			return total, err
		}
		total += n
		if n < want {
			break
		}
	}
	return total, nil
}

// pruneChunk bounds the failure records one statement deletes; pruneMax
// bounds one call (the caller repeats while it returns that).
const (
	pruneChunk = 5000
	pruneMax   = 10 * pruneChunk
)

// PruneCheckFailures deletes failure records older than before, oldest
// first (check_failures_at), in statements of at most pruneChunk rows, up
// to pruneMax a call.
func (s *Store) PruneCheckFailures(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for total < pruneMax {
		n, err := s.exec(ctx, `DELETE FROM check_failures WHERE ctid = ANY (ARRAY(
			SELECT ctid FROM check_failures WHERE at < $1 ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED))`,
			before, pruneChunk)
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < pruneChunk {
			break
		}
	}
	return total, nil
}
