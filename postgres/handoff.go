package postgres

import (
	"time"

	"github.com/verifyd/verifyd"
)

// Hand-offs. A delivery job the service hands to its local worker is
// inserted running, leased to that worker, in its trigger's transaction.
// Such a job is kept in handoffs (migration 0007) instead of in jobs: a
// heap tuple and two appended index entries instead of three entries, one
// of them at a random place, and less to vacuum. A lease that lapses is
// moved into jobs by the next claim of any node (qMoveLapsedHandoffs); a
// retry or a dead job is moved by its outcome (finishJobs); from there on
// the job is any job. FinishJobs locks a hand-off as it locks a job (by
// primary key, in job ID order, before any verification).

// insertHandoffs queues the insert of js (hand-offs: verifyd.HandedOff).
func insertHandoffs(t *txn, js []*verifyd.Job) {
	n := len(js)
	jobs, vids, accounts, payloads := make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)
	lockedBy, lockedUntil, attempt, maxAttempts := make([]string, n), make([]time.Time, n), make([]int32, n), make([]int32, n)
	at := make([]time.Time, n)
	for i, j := range js {
		jobs[i], vids[i], accounts[i], payloads[i] = j.ID, j.VerificationID, j.AccountID, j.Payload
		lockedBy[i], lockedUntil[i], attempt[i], maxAttempts[i] = j.LockedBy, j.LockedUntil, int32(j.Attempt), int32(j.MaxAttempts)
		at[i] = j.RunAt
	}
	t.queue(`INSERT INTO handoffs (job, verification_id, account_id, payload, locked_by, locked_until, attempt,
			max_attempts, at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::timestamptz[],
			$7::int4[], $8::int4[], $9::timestamptz[])`,
		jobs, vids, accounts, payloads, lockedBy, lockedUntil, attempt, maxAttempts, at)
}

// queueJobs queues the insert of js, each into handoffs or jobs.
func queueJobs(t *txn, vs []*verifyd.Verification, js []*verifyd.Job) {
	var hs, rest []*verifyd.Job
	for i, j := range js {
		if verifyd.HandedOff(vs[i], j) {
			hs = append(hs, j)
		} else {
			rest = append(rest, j)
		}
	}
	if len(hs) > 0 {
		insertHandoffs(t, hs)
	}
	if len(rest) > 0 {
		insertJobs(t, rest)
	}
}

// qMoveHandoffs moves the hand-offs it selects into jobs as the running
// jobs they are, leases as they stand. qMoveLapsedHandoffs selects up to
// $2 whose lease lapsed at $1 (SKIP LOCKED: a hand-off being finished is
// not waited for); qMoveHandoffsByJob those of the job IDs $1.
const (
	qMoveHandoffsTail = `
		INSERT INTO jobs (` + jobCols + `)
		SELECT job, 'deliver', account_id, verification_id, payload, attempt, max_attempts, 'running', at,
			locked_by, locked_until, '', at FROM moved`
	qMoveLapsedHandoffs = `WITH moved AS (
			DELETE FROM handoffs WHERE job IN (SELECT job FROM handoffs WHERE locked_until <= $1
				ORDER BY locked_until LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING *)` + qMoveHandoffsTail
	qMoveHandoffsByJob = `WITH moved AS (DELETE FROM handoffs WHERE job = ANY($1) RETURNING *)` + qMoveHandoffsTail
)
