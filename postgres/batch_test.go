package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/postgres"
	"github.com/verifyd/verifyd/storetest"
)

// The tests of group commit (writer.go). Most stage a batch: a blocker
// holds the advisory lock of one (profile, phone) on a connection of its
// own, a trigger for that number is taken by the (single) writer and waits
// in its first round trip, the operations under test queue up meanwhile,
// and when the blocker lets go the writer takes them all as one batch.

// blockPhone is the number staged batches wait on.
const blockPhone = "+15550000000"

// waitFor polls cond until it holds, failing tb after 15s.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// blocker holds the (profile, phone) advisory lock in a transaction of its
// own connection until release.
type blocker struct {
	tb  testing.TB
	c   *pgx.Conn
	pid uint32
}

func block(tb testing.TB, profileID, phone string) *blocker {
	tb.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	if _, err := c.Exec(ctx, `BEGIN`); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))`, profileID, phone); err != nil {
		tb.Fatal(err)
	}
	return &blocker{tb: tb, c: c, pid: c.PgConn().PID()}
}

// waiters waits until n sessions wait for the blocker.
func (b *blocker) waiters(n int) {
	b.tb.Helper()
	ctx := context.Background()
	waitFor(b.tb, fmt.Sprintf("%d sessions to wait for the blocker", n), func() bool {
		var k int
		// The blocker's transaction would see its first snapshot of
		// pg_stat_activity again.
		if _, err := b.c.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
			b.tb.Fatal(err)
		}
		err := b.c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1::int4 = ANY(pg_blocking_pids(pid))`,
			int32(b.pid)).Scan(&k)
		if err != nil {
			b.tb.Fatal(err)
		}
		return k >= n
	})
}

func (b *blocker) release() {
	if _, err := b.c.Exec(context.Background(), `ROLLBACK`); err != nil {
		b.tb.Fatal(err)
	}
}

// stager stages one batch on a store with one writer.
type stager struct {
	t  *testing.T
	s  *postgres.Store
	b  *blocker
	n  int
	wg sync.WaitGroup
}

// stage takes the writer: a trigger of p's blockPhone waits for a blocker.
func stage(t *testing.T, s *postgres.Store, p *verifyd.Profile) *stager {
	t.Helper()
	st := &stager{t: t, s: s, b: block(t, p.ID, blockPhone)}
	st.wg.Go(func() {
		now := storetest.T0
		v := storetest.NewVerification(p, blockPhone, now)
		if _, err := s.CreateVerification(context.Background(), verifyd.CreateParams{Verification: v,
			Job: storetest.NewJob(v, now), Now: now}); err != nil {
			t.Errorf("blocked trigger: %v", err)
		}
	})
	st.b.waiters(1)
	return st
}

// add runs op in a goroutine and waits until it is queued (so operations
// are queued in the order they are added).
func (st *stager) add(op func()) {
	st.t.Helper()
	st.n++
	st.wg.Go(op)
	waitFor(st.t, fmt.Sprintf("%d queued operations", st.n), func() bool { return st.s.Queued() >= st.n })
}

// run releases the writer and waits for every operation.
func (st *stager) run() {
	st.b.release()
	st.wg.Wait()
}

func create(s *postgres.Store, v *verifyd.Verification, now time.Time) (*verifyd.Verification, error) {
	return s.CreateVerification(context.Background(), verifyd.CreateParams{Verification: v, Job: storetest.NewJob(v, now), Now: now})
}

// claimAll claims up to limit jobs, however far in the future they are due.
func claimAll(tb testing.TB, s *postgres.Store, limit int) []*verifyd.Job {
	tb.Helper()
	jobs, err := s.ClaimJobs(context.Background(), verifyd.ClaimParams{Worker: "test", Now: storetest.T0.Add(24 * time.Hour),
		Lease: time.Minute, Limit: limit})
	if err != nil {
		tb.Fatalf("ClaimJobs: %v", err)
	}
	return jobs
}

func decideAs(d verifyd.Decision) func(*verifyd.Verification, int) (verifyd.Decision, error) {
	return func(*verifyd.Verification, int) (verifyd.Decision, error) { return d, nil }
}

// TestBatchTriggers sends 300 triggers for distinct numbers at once through
// two writers: they run in full batches, and every one is stored with its
// job.
func TestBatchTriggers(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, postgres.WithWriters(2))
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)
	// Both writers wait for the blocker with a trigger each.
	b := block(t, p.ID, blockPhone)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			v := storetest.NewVerification(p, blockPhone, storetest.T0)
			if _, err := create(s, v, storetest.T0); err != nil {
				t.Errorf("blocked trigger: %v", err)
			}
		})
		b.waiters(i + 1) // taken by a writer each
	}
	const n = 300
	vs := make([]*verifyd.Verification, n)
	for i := range vs {
		vs[i] = storetest.NewVerification(p, fmt.Sprintf("+1555100%04d", i), storetest.T0)
		wg.Go(func() {
			if _, err := create(s, vs[i], storetest.T0); err != nil {
				t.Errorf("trigger %d: %v", i, err)
			}
		})
	}
	waitFor(t, "the triggers to queue", func() bool { return s.Queued() == n })
	b.release()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	st := s.BatchStats()
	if st.MaxOps != 64 || st.Ops+st.Alone != n+2 || st.Fallbacks != 0 || st.Failed != 0 {
		t.Fatalf("batch stats %+v: want full batches (64), %d operations, no fallback", st, n+2)
	}
	jobs := claimAll(t, s, 2*n)
	byVerification := map[string]int{}
	for _, j := range jobs {
		byVerification[j.VerificationID]++
	}
	for i, v := range vs {
		got := storetest.MustGetVerification(t, s, a.ID, v.ID)
		if got.Status != verifyd.StatusPending || got.PhoneNumber != v.PhoneNumber || string(got.CodeHash) != string(v.CodeHash) {
			t.Fatalf("trigger %d stored as %+v", i, got)
		}
		if byVerification[v.ID] != 1 {
			t.Fatalf("trigger %d has %d jobs", i, byVerification[v.ID])
		}
	}
	// The two blocked triggers of one number: one superseded the other.
	list, total, err := s.ListVerificationsByPhone(ctx, a.ID, blockPhone, 0, 10)
	if err != nil || total != 2 || list[0].Status != verifyd.StatusPending || list[1].CompletionReason != verifyd.ReasonSuperseded {
		t.Fatalf("blocked triggers: %d, %v", total, err)
	}
}

// TestBatchSameNumber queues two triggers and a trigger and a check of
// each of two numbers in one batch: the second of each number is carried
// to the next batch and sees the first.
func TestBatchSameNumber(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, postgres.WithWriters(1))
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)
	now := storetest.T0.Add(time.Second)
	va := storetest.NewVerification(p, "+15552000001", now)
	vb := storetest.NewVerification(p, "+15552000001", now)
	vc := storetest.NewVerification(p, "+15552000002", now)
	var supB *verifyd.Verification
	var resD verifyd.AttemptResult
	var seenD *verifyd.Verification
	st := stage(t, s, p)
	st.add(func() {
		if _, err := create(s, va, now); err != nil {
			t.Errorf("trigger a: %v", err)
		}
	})
	st.add(func() {
		var err error
		if supB, err = create(s, vb, now); err != nil {
			t.Errorf("trigger b: %v", err)
		}
	})
	st.add(func() {
		if _, err := create(s, vc, now); err != nil {
			t.Errorf("trigger c: %v", err)
		}
	})
	st.add(func() {
		var err error
		resD, err = s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: vc.PhoneNumber,
			Now: now, MaxAttempts: 5, FailuresSince: storetest.T0,
			Decide: func(v *verifyd.Verification, _ int) (verifyd.Decision, error) {
				if v != nil {
					c := *v
					seenD = &c
				}
				return verifyd.DecideReject, nil
			}})
		if err != nil {
			t.Errorf("check d: %v", err)
		}
	})
	st.run()
	if t.Failed() {
		t.FailNow()
	}
	if st := s.BatchStats(); st.Carried != 2 || st.Batches != 2 || st.MaxOps != 2 || st.Alone != 1 {
		t.Fatalf("batch stats %+v: want 2 carried, the blocked trigger alone, then 2 batches of 2", st)
	}
	if supB == nil || supB.ID != va.ID {
		t.Fatalf("trigger b superseded %v, want a (%s)", supB, va.ID)
	}
	if !vb.CreatedAt.After(va.CreatedAt) {
		t.Fatalf("b created at %v, not after a (%v)", vb.CreatedAt, va.CreatedAt)
	}
	storetest.MustGetVerification(t, s, a.ID, va.ID)
	if got := storetest.MustGetVerification(t, s, a.ID, va.ID); got.CompletionReason != verifyd.ReasonSuperseded {
		t.Fatalf("a: %s %s, want superseded", got.Status, got.CompletionReason)
	}
	if seenD == nil || seenD.ID != vc.ID || resD.Verification.Attempts != 1 {
		t.Fatalf("check d saw %v and left %+v, want c with one attempt", seenD, resD.Verification)
	}

	// Three checks of one verification by ID in one batch, two allowed:
	// they run one batch after another.
	var mu sync.Mutex
	var attempts []int
	st = stage(t, s, p)
	for range 3 {
		st.add(func() {
			res, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ID: vb.ID, Now: now, MaxAttempts: 2,
				FailuresSince: now, Decide: decideAs(verifyd.DecideReject)})
			if err != nil {
				t.Errorf("check of b: %v", err)
				return
			}
			mu.Lock()
			attempts = append(attempts, res.Verification.Attempts)
			mu.Unlock()
		})
	}
	st.run()
	if fmt.Sprint(attempts) != "[1 2 2]" {
		t.Fatalf("attempts after each check: %v, want [1 2 2]", attempts)
	}
	if got := storetest.MustGetVerification(t, s, a.ID, vb.ID); got.Status != verifyd.StatusInvalid || got.Attempts != 2 {
		t.Fatalf("b after 3 checks: %s, %d attempts", got.Status, got.Attempts)
	}
}

// TestBatchFailingOperation queues, between two good operations, a
// trigger whose verification ID exists already: the server refuses the
// batch, every operation runs alone, and only that one fails (ECONFLICT,
// as alone).
func TestBatchFailingOperation(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, postgres.WithWriters(1))
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)
	old := storetest.NewVerification(p, "+15553000001", storetest.T0)
	storetest.MustCreateVerification(t, s, old)
	checked := storetest.NewVerification(p, "+15553000003", storetest.T0)
	storetest.MustCreateVerification(t, s, checked)
	now := storetest.T0.Add(time.Second)
	good := storetest.NewVerification(p, "+15553000002", now)
	dup := storetest.NewVerification(p, "+15553000009", now)
	dup.ID = old.ID
	var errGood, errDup, errCheck error
	var res verifyd.AttemptResult
	decides := 0
	before := s.BatchStats()
	st := stage(t, s, p)
	st.add(func() { _, errGood = create(s, good, now) })
	st.add(func() { _, errDup = create(s, dup, now) })
	st.add(func() {
		res, errCheck = s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: checked.PhoneNumber,
			Now: now, MaxAttempts: 5, FailuresSince: storetest.T0,
			Decide: func(*verifyd.Verification, int) (verifyd.Decision, error) {
				decides++ // once in the batch, once alone
				return verifyd.DecideAccept, nil
			}})
	})
	st.run()
	if errGood != nil || errCheck != nil || !res.Accepted {
		t.Fatalf("good operations: %v, %v, accepted %v", errGood, errCheck, res.Accepted)
	}
	if verifyd.ErrorCode(errDup) != verifyd.ECONFLICT {
		t.Fatalf("trigger with an existing ID: %v, want %s", errDup, verifyd.ECONFLICT)
	}
	if st := s.BatchStats(); st.Fallbacks != before.Fallbacks+1 || decides != 2 {
		t.Fatalf("batch stats %+v, Decide ran %d times: want one fallback, Decide twice", st, decides)
	}
	storetest.MustGetVerification(t, s, a.ID, good.ID)
	if got := storetest.MustGetVerification(t, s, a.ID, checked.ID); got.Status != verifyd.StatusAccepted || got.Attempts != 1 {
		t.Fatalf("checked: %s, %d attempts", got.Status, got.Attempts)
	}
	if got := storetest.MustGetVerification(t, s, a.ID, old.ID); got.PhoneNumber != old.PhoneNumber {
		t.Fatalf("the existing verification was changed: %+v", got)
	}
	if list, total, err := s.ListVerificationsByPhone(ctx, a.ID, dup.PhoneNumber, 0, 10); err != nil || total != 0 {
		t.Fatalf("refused trigger stored: %v, %d, %v", list, total, err)
	}
	jobs := claimAll(t, s, 100)
	n := 0
	for _, j := range jobs {
		if j.VerificationID == good.ID {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("good trigger has %d jobs", n)
	}

	// A callback that panics is its caller's panic; the batch commits the
	// others.
	var panicked any
	other := storetest.NewVerification(p, "+15553000004", now)
	before = s.BatchStats()
	st = stage(t, s, p)
	st.add(func() {
		defer func() { panicked = recover() }()
		v := storetest.NewVerification(p, "+15553000005", now)
		_, _ = s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: storetest.NewJob(v, now), Now: now,
			Guard: func(*verifyd.Verification) error { panic("guard") }})
	})
	st.add(func() {
		if _, err := create(s, other, now); err != nil {
			t.Errorf("trigger beside a panic: %v", err)
		}
	})
	st.run()
	if panicked != "guard" {
		t.Fatalf("recovered %v, want the Guard's panic", panicked)
	}
	storetest.MustGetVerification(t, s, a.ID, other.ID)
	if st := s.BatchStats(); st.Fallbacks != before.Fallbacks {
		t.Fatalf("a panic made the batch fall back: %+v", st)
	}
}

// TestBatchMixedChecks runs checks by ID and by phone, of known and
// unknown verifications, of this account and of another, in one batch:
// each sees what it would alone (the verification, the failures counted
// for its number) and records what it would.
func TestBatchMixedChecks(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, postgres.WithWriters(1))
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)
	a2 := storetest.MustCreateAccount(t, s)
	p2 := storetest.MustCreateProfile(t, s, a2.ID, "Other", storetest.T0)
	mk := func(p *verifyd.Profile, phone string) *verifyd.Verification {
		v := storetest.NewVerification(p, phone, storetest.T0)
		storetest.MustCreateVerification(t, s, v)
		return v
	}
	k1, k2, k3 := mk(p, "+15554000011"), mk(p, "+15554000012"), mk(p, "+15554000013")
	foreign := mk(p2, "+15554000014")
	expired := mk(p, "+15554000015")
	// A profile without a webhook: its verifications record no events,
	// in a batch as alone.
	pq := storetest.MustCreateProfile(t, s, a.ID, "Quiet", storetest.T0, func(p *verifyd.Profile) {
		p.WebhookURL, p.WebhookFailoverURL = "", ""
	})
	quiet := mk(pq, "+15554000016")
	now := storetest.T0.Add(time.Minute)
	// Two failures recorded for k1's number (and counted on k1).
	for range 2 {
		if _, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: k1.PhoneNumber,
			Now: now, MaxAttempts: 5, FailuresSince: storetest.T0, Decide: decideAs(verifyd.DecideReject)}); err != nil {
			t.Fatal(err)
		}
	}
	type seen struct {
		v      *verifyd.Verification
		recent int
	}
	type check struct {
		p    verifyd.AttemptParams
		d    verifyd.Decision
		seen seen
		res  verifyd.AttemptResult
		err  error
	}
	later := storetest.T0.Add(10 * time.Minute) // k-expired is past its expiry
	checks := []*check{
		{p: verifyd.AttemptParams{ID: k1.ID}, d: verifyd.DecideReject},                                        // 0: sees 2 failures
		{p: verifyd.AttemptParams{ProfileID: p.ID, PhoneNumber: k1.PhoneNumber}},                              // 1: carried, sees 3
		{p: verifyd.AttemptParams{ID: k2.ID}, d: verifyd.DecideAccept},                                        // 2: accepted
		{p: verifyd.AttemptParams{ProfileID: p.ID, PhoneNumber: k3.PhoneNumber}, d: verifyd.DecideAccept},     // 3: accepted
		{p: verifyd.AttemptParams{ID: verifyd.NewID()}},                                                       // 4: none
		{p: verifyd.AttemptParams{ID: foreign.ID}, d: verifyd.DecideAccept},                                   // 5: another account's: none
		{p: verifyd.AttemptParams{ProfileID: p.ID, PhoneNumber: "+15554000099"}},                              // 6: no verification
		{p: verifyd.AttemptParams{ID: expired.ID, Now: later}, d: verifyd.DecideAccept},                       // 7: expired by time
		{p: verifyd.AttemptParams{ProfileID: pq.ID, PhoneNumber: quiet.PhoneNumber}, d: verifyd.DecideAccept}, // 8: accepted, no webhook
	}
	st := stage(t, s, p)
	for _, c := range checks {
		c.p.AccountID, c.p.MaxAttempts, c.p.FailuresSince = a.ID, 5, storetest.T0
		if c.p.Now.IsZero() {
			c.p.Now = now
		}
		c.p.Decide = func(v *verifyd.Verification, recent int) (verifyd.Decision, error) {
			c.seen = seen{v, recent}
			if v == nil && c.p.ID != "" {
				return 0, verifyd.ErrNotFound
			}
			return c.d, nil
		}
		st.add(func() { c.res, c.err = s.Attempt(ctx, c.p) })
	}
	st.run()
	want := func(i int, id string, recent int, accepted bool, code string) {
		t.Helper()
		c := checks[i]
		gotID := ""
		if c.seen.v != nil {
			gotID = c.seen.v.ID
		}
		if gotID != id || c.seen.recent != recent || c.res.Accepted != accepted || verifyd.ErrorCode(c.err) != code {
			t.Errorf("check %d: saw %q with %d failures, accepted %v, error %v; want %q, %d, %v, %q",
				i, gotID, c.seen.recent, c.res.Accepted, c.err, id, recent, accepted, code)
		}
	}
	want(0, k1.ID, 2, false, "")
	want(1, k1.ID, 3, false, "")
	want(2, k2.ID, 0, true, "")
	want(3, k3.ID, 0, true, "")
	want(4, "", 0, false, verifyd.ENOTFOUND)
	want(5, "", 0, false, verifyd.ENOTFOUND)
	want(6, "", 0, false, "")
	want(7, expired.ID, 0, false, "")
	want(8, quiet.ID, 0, true, "")
	if st := s.BatchStats(); st.Carried != 1 || st.Fallbacks != 0 {
		t.Fatalf("batch stats %+v: want the check by phone of k1 carried", st)
	}
	if got := storetest.MustGetVerification(t, s, a.ID, k1.ID); got.Attempts != 4 || got.Status != verifyd.StatusPending {
		t.Fatalf("k1: %s, %d attempts", got.Status, got.Attempts)
	}
	if got := storetest.MustGetVerification(t, s, a2.ID, foreign.ID); got.Attempts != 0 {
		t.Fatalf("another account's verification was counted: %d attempts", got.Attempts)
	}
	if got := storetest.MustGetVerification(t, s, a.ID, expired.ID); got.Status != verifyd.StatusExpired ||
		got.CompletionReason != verifyd.ReasonTimedOut || got.Attempts != 0 {
		t.Fatalf("expired: %s %s, %d attempts", got.Status, got.CompletionReason, got.Attempts)
	}
	if evs := storetest.MustListEvents(t, s, a.ID, expired.ID); len(evs) != 1 {
		t.Fatalf("expired: %d events, want its completion", len(evs))
	}
	if evs := storetest.MustListEvents(t, s, a.ID, k2.ID); len(evs) != 1 || evs[0].Type != verifyd.EventCompleted {
		t.Fatalf("k2 (accepted, webhook): %d events, want its completion", len(evs))
	}
	if got := storetest.MustGetVerification(t, s, a.ID, quiet.ID); got.Status != verifyd.StatusAccepted {
		t.Fatalf("quiet: %s", got.Status)
	}
	if evs := storetest.MustListEvents(t, s, a.ID, quiet.ID); len(evs) != 0 {
		t.Fatalf("quiet (accepted, no webhook): %d events, want none", len(evs))
	}
	// The failure recorded for the number without a verification.
	var recent int
	if _, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: "+15554000099",
		Now: now, MaxAttempts: 5, FailuresSince: storetest.T0,
		Decide: func(_ *verifyd.Verification, n int) (verifyd.Decision, error) {
			recent = n
			return verifyd.DecideAccept, nil
		}}); err != nil || recent != 1 {
		t.Fatalf("failures of a number checked once without a verification: %d, %v", recent, err)
	}
}

// TestBatchAbandoned: an operation whose caller gives up while it is
// queued returns at once with the caller's error and never runs; one that
// waits in the queue past the operation timeout returns ErrUnavailable in
// time and never runs; one whose transaction is blocked past it returns
// ErrUnavailable in time too.
func TestBatchAbandoned(t *testing.T) {
	s := mustOpen(t, postgres.WithWriters(1), postgres.WithOperationTimeout(time.Second))
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)

	// Blocked in the database (an advisory lock another session holds):
	// the writer gives up at the operation's deadline.
	b := block(t, p.ID, blockPhone)
	start := time.Now()
	var errBlocked, errQueued error
	var took time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		_, errBlocked = create(s, storetest.NewVerification(p, blockPhone, storetest.T0), storetest.T0)
	})
	b.waiters(1)
	ctx, cancel := context.WithCancel(context.Background())
	v := storetest.NewVerification(p, "+15555000001", storetest.T0)
	wg.Go(func() {
		_, errQueued = s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: storetest.NewJob(v, storetest.T0),
			Now: storetest.T0})
		took = time.Since(start)
	})
	waitFor(t, "the trigger to queue", func() bool { return s.Queued() == 1 })
	cancel()
	wg.Wait() // the blocker holds on: the blocked one ends by its deadline
	b.release()
	if !errors.Is(errQueued, context.Canceled) || took > 900*time.Millisecond {
		t.Fatalf("cancelled while queued: %v after %v, want context.Canceled at once", errQueued, took)
	}
	if verifyd.ErrorCode(errBlocked) != verifyd.EUNAVAILABLE {
		t.Fatalf("blocked: %v, want %s", errBlocked, verifyd.EUNAVAILABLE)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("an operation with a 1s timeout took %v", d)
	}

	// Queued past the operation timeout: the writer is held (by a Guard
	// that waits for the test) until the queued operation has given up, so
	// that it cannot be taken before its deadline.
	held, release := make(chan struct{}), make(chan struct{})
	hv := storetest.NewVerification(p, "+15555000004", storetest.T0)
	wg.Go(func() {
		s.CreateVerification(context.Background(), verifyd.CreateParams{Verification: hv, Job: storetest.NewJob(hv, storetest.T0),
			Now: storetest.T0, Guard: func(*verifyd.Verification) error {
				close(held)
				<-release
				return nil
			}})
	})
	<-held
	timedOut := storetest.NewVerification(p, "+15555000002", storetest.T0)
	queuedAt := time.Now()
	_, errTimedOut := create(s, timedOut, storetest.T0)
	tookTimedOut := time.Since(queuedAt)
	close(release)
	wg.Wait()
	if verifyd.ErrorCode(errTimedOut) != verifyd.EUNAVAILABLE {
		t.Fatalf("timed out in the queue: %v, want %s", errTimedOut, verifyd.EUNAVAILABLE)
	}
	if tookTimedOut > 3*time.Second {
		t.Fatalf("an operation with a 1s timeout took %v in the queue", tookTimedOut)
	}
	for _, v := range []*verifyd.Verification{v, timedOut} {
		if _, err := s.GetVerification(context.Background(), a.ID, v.ID); verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
			t.Fatalf("an operation that never ran was stored: %v", err)
		}
	}
	// The store goes on.
	storetest.MustCreateVerification(t, s, storetest.NewVerification(p, "+15555000003", storetest.T0))
}

// TestBatchNodes hammers a few numbers from two stores on one schema (two
// nodes, two writers each) with triggers and right and wrong checks by
// phone and by ID, while a job worker finishes deliveries (a multi-row
// lock of verifications), receipts arrive and pending verifications are
// expired: no operation fails (a deadlock would surface as an error or, in
// a batch, run its operations alone), no verification takes more checks
// than its budget, none is accepted twice.
func TestBatchNodes(t *testing.T) {
	url := testURL(t)
	schema := newSchema(t, url)
	ctx := context.Background()
	nodes := openNodes(t, url, schema, 2, postgres.WithWriters(2))
	a := storetest.MustCreateAccount(t, nodes[0])
	profiles := []*verifyd.Profile{
		storetest.MustCreateProfile(t, nodes[0], a.ID, "One", storetest.T0),
		storetest.MustCreateProfile(t, nodes[0], a.ID, "Two", storetest.T0),
	}
	const maxAttempts, phones = 3, 4
	var (
		mu       sync.Mutex
		ids      []string           // every verification created
		accepted = map[string]int{} // accepts per verification
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	tick := func(i int) time.Time { return storetest.T0.Add(time.Duration(i) * time.Millisecond) }
	const perWorker = 150
	var workers sync.WaitGroup
	for w := range 16 {
		s := nodes[w%2]
		workers.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range perWorker {
				now := tick(i)
				p := profiles[r.IntN(len(profiles))]
				phone := fmt.Sprintf("+1555600000%d", r.IntN(phones))
				switch op := r.IntN(10); {
				case op < 3:
					v := storetest.NewVerification(p, phone, now)
					if r.IntN(4) == 0 {
						v.ExpiresAt = now.Add(50 * time.Millisecond)
					}
					if _, err := create(s, v, now); err != nil {
						t.Errorf("trigger: %v", err)
						return
					}
					mu.Lock()
					ids = append(ids, v.ID)
					mu.Unlock()
				default:
					ap := verifyd.AttemptParams{AccountID: a.ID, Now: now, MaxAttempts: maxAttempts, FailuresSince: now.Add(-time.Hour),
						Decide: decideAs(verifyd.Decision(r.IntN(2)))}
					mu.Lock()
					if op < 6 && len(ids) > 0 {
						ap.ID = ids[r.IntN(len(ids))]
					} else {
						ap.ProfileID, ap.PhoneNumber = p.ID, phone
					}
					mu.Unlock()
					res, err := s.Attempt(ctx, ap)
					if err != nil {
						t.Errorf("check: %v", err)
						return
					}
					if res.Accepted {
						mu.Lock()
						accepted[res.Verification.ID]++
						mu.Unlock()
					}
				}
			}
		})
	}
	// background runs step(0), step(1), ... until stop is closed or a
	// step fails.
	background := func(step func(i int) error) {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := step(i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// A delivery worker: claims and finishes jobs, recording the message
	// as sent (a multi-row lock of verifications, in ID order).
	var msgs []string
	background(func(i int) error {
		now := tick(i)
		jobs, err := nodes[0].ClaimJobs(ctx, verifyd.ClaimParams{Worker: "w", Now: now.Add(time.Hour), Lease: time.Minute, Limit: 20})
		if err != nil {
			return fmt.Errorf("ClaimJobs: %w", err)
		}
		outs := make([]verifyd.JobOutcome, len(jobs))
		for k, j := range jobs {
			msg := "m-" + j.ID
			outs[k] = verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: now, DeliveryStatus: verifyd.DeliverySent,
				Attempts: []*verifyd.DeliveryAttempt{{Sender: "smsc", ProviderMessageID: msg, Parts: 1, Outcome: verifyd.DeliverySent}}}
			msgs = append(msgs, msg)
		}
		for k, err := range nodes[0].FinishJobs(ctx, outs) {
			if err != nil {
				return fmt.Errorf("FinishJobs %s: %w", outs[k].JobID, err)
			}
		}
		// Receipts of some of the messages, through the other node.
		for k := 0; k < 5 && len(msgs) > 0; k++ {
			m := msgs[0]
			msgs = msgs[1:]
			if _, err := nodes[1].RecordReceipt(ctx, verifyd.ReceiptParams{Sender: "smsc", ProviderMessageID: m,
				Status: verifyd.DeliveryDelivered, Now: now}); err != nil {
				return fmt.Errorf("RecordReceipt: %w", err)
			}
		}
		return nil
	})
	background(func(i int) error {
		if _, err := nodes[1].ExpirePending(ctx, tick(i), 50); err != nil {
			return fmt.Errorf("ExpirePending: %w", err)
		}
		return nil
	})
	workers.Wait()
	close(stop)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for id, n := range accepted {
		if n > 1 {
			t.Fatalf("verification %s accepted %d times", id, n)
		}
	}
	for _, id := range ids {
		v := storetest.MustGetVerification(t, nodes[0], a.ID, id)
		if v.Attempts > maxAttempts {
			t.Fatalf("verification %s took %d checks, budget %d", id, v.Attempts, maxAttempts)
		}
		if (v.Status == verifyd.StatusAccepted) != (accepted[id] == 1) {
			t.Fatalf("verification %s is %s, accepted %d times", id, v.Status, accepted[id])
		}
	}
	for i, s := range nodes {
		st := s.BatchStats()
		t.Logf("node %d: %+v", i, st)
		// No batch fell back: none met a deadlock (nor anything else).
		if st.MaxOps < 2 || st.Failed != 0 || st.Fallbacks != 0 {
			t.Errorf("node %d: batch stats %+v: want batches of several operations, none failed or fell back", i, st)
		}
	}
}
