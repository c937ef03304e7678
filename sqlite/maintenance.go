package sqlite

import (
	"context"
	"strings"
	"time"

	"github.com/verifyd/verifyd"
)

// TryLease always grants: an SQLite database has one process (the lock
// file), so there is no other node to share periodic work with.
func (s *Store) TryLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	return true, nil
}

// PurgeFinished deletes the oldest finished verifications created before
// `before` (retention counts from creation; a verification finishes within
// its timeout, at most 24 h). Candidates are found on the read pool by
// walking seq (creation order) from the start, stopping at the first row
// that is young enough, so the writer only runs the deletes: the hot path
// never waits behind a scan.
func (s *Store) PurgeFinished(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	rows, err := s.query(ctx, `SELECT seq, id, status, created_at FROM verifications ORDER BY seq LIMIT ?`, limit)
	if err != nil {
		return 0, err
	}
	var seqs []int64
	var ids []string
	cutoff := tm(before)
	for rows.Next() {
		var seq, created int64
		var id, status string
		if err := rows.Scan(&seq, &id, &status, &created); err != nil {
			rows.Close()
			return 0, s.mapErr(err)
		}
		if created >= cutoff {
			break
		}
		if status != string(verifyd.StatusPending) {
			seqs, ids = append(seqs, seq), append(ids, id)
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, s.mapErr(err)
	}
	if err := rows.Close(); err != nil {
		return 0, s.mapErr(err)
	}
	if len(seqs) == 0 {
		return 0, nil
	}
	n := 0
	err = s.write(ctx, func(w *wtx) error {
		n = 0
		for start := 0; start < len(seqs); start += 500 {
			end := min(start+500, len(seqs))
			// IN lists come in a few fixed sizes (padded with repeats of the
			// last value) so the writer's statement cache stays small.
			size := 500
			for _, s := range []int{1, 10, 100} {
				if end-start <= s {
					size = s
					break
				}
			}
			seqArgs, idArgs := make([]any, 0, size), make([]any, 0, size)
			for i := start; i < start+size; i++ {
				k := min(i, end-1)
				seqArgs, idArgs = append(seqArgs, seqs[k]), append(idArgs, ids[k])
			}
			in := "(" + strings.TrimSuffix(strings.Repeat("?,", size), ",") + ")"
			for _, q := range []string{
				`DELETE FROM webhook_attempts WHERE event_id IN (SELECT id FROM events WHERE verification_seq IN ` + in + `)`,
				`DELETE FROM events WHERE verification_seq IN ` + in,
				`DELETE FROM delivery_attempts WHERE verification_seq IN ` + in,
				`DELETE FROM handoffs WHERE seq IN ` + in,
			} {
				if _, err := w.exec(q, seqArgs...); err != nil {
					return err
				}
			}
			if _, err := w.exec(`DELETE FROM jobs WHERE verification_id IN `+in, idArgs...); err != nil {
				return err
			}
			// Re-checked under the write lock: a row that went back to
			// pending cannot exist, but one deleted meanwhile is skipped.
			k, err := w.exec(`DELETE FROM verifications WHERE status != 'pending' AND seq IN `+in, seqArgs...)
			if err != nil {
				return err
			}
			n += int(k)
		}
		return nil
	})
	return n, err
}

// PruneCheckFailures deletes failure records older than before, oldest
// first, up to 10,000 a call (the caller repeats while it returns that).
func (s *Store) PruneCheckFailures(ctx context.Context, before time.Time) (int, error) {
	const batch = 10000
	rows, err := s.query(ctx, `SELECT seq, at FROM check_failures ORDER BY seq LIMIT ?`, batch)
	if err != nil {
		return 0, err
	}
	var last int64 = -1
	count := 0
	cutoff := tm(before)
	for rows.Next() {
		var seq, at int64
		if err := rows.Scan(&seq, &at); err != nil {
			rows.Close()
			return 0, s.mapErr(err)
		}
		if at >= cutoff {
			break
		}
		last, count = seq, count+1
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return 0, s.mapErr(err)
	}
	if err := rows.Close(); err != nil {
		return 0, s.mapErr(err)
	}
	if last < 0 {
		return 0, nil
	}
	n := 0
	err = s.write(ctx, func(w *wtx) error {
		k, err := w.exec(`DELETE FROM check_failures WHERE seq <= ?`, last)
		n = int(k)
		return err
	})
	return n, err
}

// SingleProcess reports that this store is used by one process only (the
// conformance suite skips cross-holder lease checks for it).
func (s *Store) SingleProcess() bool { return true }
