package sqlite

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var scanOK = regexp.MustCompile(`^SCAN (x|\(subquery-\d+\)|CONSTANT ROW|\d+ CONSTANT ROWS|\d+-ROW VALUES CLAUSE)$`)

// TestHotQueriesUseIndexes checks with EXPLAIN QUERY PLAN that the queries
// of the hot paths (triggers, checks, deliveries, the expiry sweep) seek an
// index instead of scanning a table.
func TestHotQueriesUseIndexes(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	qs := map[string]string{
		"attemptByID":   qAttemptByID,
		"attemptNewest": qAttemptNewest,
		"byID":          qVerificationByID,
		"newest":        qNewestVerification,
		"wbyID":         wqVerificationByID,
		"wnewest":       wqNewestVerification,
		"expirePending": `SELECT ` + verificationCols + ` FROM verifications WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at LIMIT ?`,
		"listByPhone": `SELECT ` + verificationCols + `, count(*) OVER () FROM verifications
		WHERE profile_id IN (SELECT id FROM profiles WHERE account_id = ?1) AND phone_number = ?2 AND account_id = ?1
		ORDER BY created_at DESC, id DESC LIMIT ?3 OFFSET ?4`,
		"failures":      `SELECT count(*) FROM check_failures WHERE profile_id = ? AND phone_number = ? AND at >= ?`,
		"deleteProfile": `SELECT ` + verificationCols + ` FROM verifications WHERE profile_id = ? AND status = 'pending'`,
		"claim": `UPDATE jobs SET in_doubt = state = 'running', state = 'running', attempt = attempt + 1,
				locked_by = ?3, locked_until = ?4
			WHERE id IN (SELECT id FROM (
				SELECT id, run_at FROM (SELECT id, run_at FROM jobs
					WHERE state = 'available' AND run_at <= ?1 ORDER BY run_at, id LIMIT ?2)
				UNION ALL
				SELECT id, run_at FROM (SELECT id, run_at FROM jobs INDEXED BY jobs_running_lease
					WHERE state = 'running' AND locked_until <= ?1 ORDER BY locked_until LIMIT ?2)
			) ORDER BY run_at, id LIMIT ?2)
			RETURNING ` + jobCols + `, in_doubt`,
		"finishDelete": `DELETE FROM jobs WHERE +state = 'running' AND locked_by = ? AND id IN (?, ?, ?) RETURNING id, verification_id, account_id`,
		"finishUpdate": `WITH x(vid, acc, ds, at) AS (VALUES ` + placeholders(3, 4) + `)
		UPDATE verifications SET delivery_status = x.ds, updated_at = x.at FROM x
		WHERE verifications.id = x.vid AND verifications.account_id = x.acc
		RETURNING seq, ` + verificationCols,
		"finishAttempts":  insertAttempts(2),
		"finishEvents":    insertEventsHead + placeholders(3, 8) + insertEventsTail,
		"insertEventSeq":  qInsertEventSeq,
		"insertEventByID": qInsertEventByID,
		"listEvents": `SELECT id, account_id, profile_id, verification_id, type, occurred_at, payload
		FROM events WHERE verification_seq = (SELECT seq FROM verifications WHERE id = ?1 AND account_id = ?2)
		AND account_id = ?2 ORDER BY seq`,
		"webhookDue": `SELECT 1 FROM events INDEXED BY events_webhook_due WHERE wh_state = 'pending' AND wh_next_at <= ? LIMIT 1`,
		"webhookClaim": `UPDATE events SET wh_next_at = ?3, wh_locked_by = ?4
			WHERE seq IN (SELECT seq FROM events INDEXED BY events_webhook_due
				WHERE wh_state = 'pending' AND wh_next_at <= ?1 ORDER BY wh_next_at, seq LIMIT ?2)`,
		"webhookFinish": `UPDATE events INDEXED BY events_webhook_account_id SET wh_state = ?, wh_next_at = ?,
				wh_attempts = wh_attempts + ?, wh_last_error = ?, wh_updated_at = ?, wh_locked_by = ''
				WHERE account_id = ? AND id = ? AND wh_state != '' AND wh_state = 'pending' AND wh_locked_by = ?`,
		"webhookGet": `SELECT ` + deliveryCols + ` FROM events e INDEXED BY events_webhook_account_id
			LEFT JOIN profiles p ON p.id = e.profile_id WHERE e.account_id = ? AND e.id = ? AND e.wh_state != ''`,
		"webhookAttempts": `SELECT event_id FROM webhook_attempts WHERE event_id = ? ORDER BY seq`,
		"webhookList": `SELECT ` + deliveryCols + ` FROM events e INDEXED BY events_webhook_account_id
			LEFT JOIN profiles p ON p.id = e.profile_id WHERE e.account_id = ? AND e.wh_state != '' ORDER BY e.seq DESC LIMIT ? OFFSET ?`,
		"finishHandoffs": finishHandoffsQuery(3),
		"handoffStatus":  handoffStatusQuery(3),
		"moveHandoff":    `SELECT h.job FROM handoffs AS h JOIN verifications AS v ON v.seq = h.seq WHERE h.seq = (SELECT seq FROM verifications WHERE id = ?) AND h.job = ?`,
		"finishJob":      `SELECT verification_id, account_id FROM jobs WHERE id = ? AND state = 'running' AND locked_by = ?`,
		"saveCompletion": `UPDATE verifications SET status = ?, attempts = ?, completion_reason = ?, updated_at = ? WHERE id = ?`,
	}
	for name, q := range qs {
		args := make([]any, 40)
		for i := range args {
			args[i] = int64(1)
		}
		rows, err := s.rdb.Query(`EXPLAIN QUERY PLAN `+q, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Close(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, d := range plan {
			// Scans of constants, CTEs and subqueries are fine; of tables not,
			// nor a finish walking every running job.
			if strings.HasPrefix(d, "SCAN ") && !scanOK.MatchString(d) ||
				strings.HasPrefix(name, "finish") && strings.Contains(d, "(state=?)") {
				t.Errorf("%s: plan step %q:\n%s", name, d, strings.Join(plan, "\n"))
			}
		}
		// Jobs are inserted running (hand-off): the lapsed-lease branch of
		// the claim must seek the lease index, not walk every running job.
		if name == "claim" && !strings.Contains(strings.Join(plan, "\n"), "jobs_running_lease") {
			t.Errorf("claim does not use jobs_running_lease:\n%s", strings.Join(plan, "\n"))
		}
	}
}
