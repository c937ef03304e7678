package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// DeliveryAttemptLister is an optional Store capability the suite checks
// when a store has it: the delivery attempts of one verification, oldest
// first.
type DeliveryAttemptLister interface {
	ListDeliveryAttempts(ctx context.Context, accountID, verificationID string) ([]*verifyd.DeliveryAttempt, error)
}

// mustCreateDue creates a verification of p whose job runs at runAt.
func mustCreateDue(tb testing.TB, s verifyd.Store, p *verifyd.Profile, phone string, runAt time.Time) (*verifyd.Verification, *verifyd.Job) {
	tb.Helper()
	v := NewVerification(p, phone, T0)
	j := NewJob(v, T0)
	j.RunAt = runAt
	want := *j
	if _, err := s.CreateVerification(context.Background(), verifyd.CreateParams{Verification: v, Job: j, Now: T0}); err != nil {
		tb.Fatalf("CreateVerification: %v", err)
	}
	return v, &want
}

// mustClaim claims jobs and fails tb on error.
func mustClaim(tb testing.TB, s verifyd.Store, worker string, now time.Time, lease time.Duration, limit int) []*verifyd.Job {
	tb.Helper()
	jobs, err := s.ClaimJobs(context.Background(), verifyd.ClaimParams{Worker: worker, Now: now, Lease: lease, Limit: limit})
	if err != nil {
		tb.Fatalf("ClaimJobs: %v", err)
	}
	return jobs
}

func mustDepth(tb testing.TB, s verifyd.Store, want int) {
	tb.Helper()
	n, err := s.QueueDepth(context.Background())
	if err != nil {
		tb.Fatalf("QueueDepth: %v", err)
	}
	if n != want {
		tb.Fatalf("QueueDepth = %d, want %d", n, want)
	}
}

func jobID(j *verifyd.Job) string { return j.ID }

// finishJob finishes one job alone (a batch of one).
func finishJob(s verifyd.Store, o verifyd.JobOutcome) error {
	errs := s.FinishJobs(context.Background(), []verifyd.JobOutcome{o})
	if len(errs) != 1 {
		return fmt.Errorf("FinishJobs of one outcome returned %d errors", len(errs))
	}
	return errs[0]
}

// wantAttempts checks the delivery attempts of v (when s lists them).
func wantAttempts(tb testing.TB, s verifyd.Store, v *verifyd.Verification, want ...*verifyd.DeliveryAttempt) {
	tb.Helper()
	l, ok := s.(DeliveryAttemptLister)
	if !ok {
		return
	}
	list, err := l.ListDeliveryAttempts(context.Background(), v.AccountID, v.ID)
	wantNoErr(tb, "ListDeliveryAttempts", err)
	if len(list) != len(want) {
		tb.Fatalf("delivery attempts of %s: %d, want %d", v.ID, len(list), len(want))
	}
	for i := range want {
		wantEqual(tb, "delivery attempt", list[i], want[i])
	}
}

func testJob(t *testing.T, open Opener) {
	ctx := context.Background()
	const lease = 30 * time.Second

	setup := func(t *testing.T, s verifyd.Store) *verifyd.Profile {
		return MustCreateProfile(t, s, MustCreateAccount(t, s).ID, "Main", T0)
	}

	subtest(t, open, "ClaimDueInRunAtOrder", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		_, j2 := mustCreateDue(t, s, p, "+15550000002", T0.Add(2*time.Minute))
		_, j0 := mustCreateDue(t, s, p, "+15550000000", T0)
		_, j1 := mustCreateDue(t, s, p, "+15550000001", T0.Add(time.Minute))
		mustCreateDue(t, s, p, "+15550000003", T0.Add(3*time.Minute))
		mustDepth(t, s, 4)

		now := T0.Add(2 * time.Minute)
		jobs := mustClaim(t, s, "w1", now, lease, 10)
		wantIDs(t, "ClaimJobs", ids(jobs, jobID), []string{j0.ID, j1.ID, j2.ID})
		want := *j0
		want.Attempt, want.State, want.LockedBy, want.LockedUntil = 1, verifyd.JobRunning, "w1", now.Add(lease)
		wantEqual(t, "claimed job", jobs[0], &want)
		for _, j := range jobs {
			if j.InDoubt || j.Attempt != 1 || j.State != verifyd.JobRunning {
				t.Fatalf("first claim of %s: %+v", j.ID, j)
			}
		}
		mustDepth(t, s, 4) // running jobs are not finished
		if jobs := mustClaim(t, s, "w2", now.Add(lease-time.Microsecond), lease, 10); len(jobs) != 0 {
			t.Fatalf("ClaimJobs while leased and none due: %v", ids(jobs, jobID))
		}
	})

	subtest(t, open, "ClaimLimit", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		var want []string
		for i := range 5 {
			_, j := mustCreateDue(t, s, p, "+1555000000"+string(rune('0'+i)), T0.Add(time.Duration(i)*time.Second))
			want = append(want, j.ID)
		}
		now := T0.Add(time.Minute)
		wantIDs(t, "ClaimJobs limit 2", ids(mustClaim(t, s, "w", now, lease, 2), jobID), want[:2])
		wantIDs(t, "ClaimJobs next 2", ids(mustClaim(t, s, "w", now, lease, 2), jobID), want[2:4])
		wantIDs(t, "ClaimJobs rest", ids(mustClaim(t, s, "w", now, lease, 2), jobID), want[4:])
		if jobs := mustClaim(t, s, "w", now, lease, 2); len(jobs) != 0 {
			t.Fatalf("ClaimJobs with all leased: %d", len(jobs))
		}
	})

	subtest(t, open, "LapsedLeaseInDoubt", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v, j := mustCreateDue(t, s, p, "+15550000000", T0)
		first := mustClaim(t, s, "w1", T0, lease, 10)
		if len(first) != 1 {
			t.Fatalf("first claim: %d jobs", len(first))
		}
		now := T0.Add(lease)
		again := mustClaim(t, s, "w2", now, lease, 10)
		if len(again) != 1 || again[0].ID != j.ID {
			t.Fatalf("claim after the lease lapsed = %v, want %s", ids(again, jobID), j.ID)
		}
		if !again[0].InDoubt || again[0].Attempt != 2 || again[0].LockedBy != "w2" || !again[0].LockedUntil.Equal(now.Add(lease)) {
			t.Fatalf("reclaimed job = %+v, want in doubt, attempt 2, locked by w2", again[0])
		}

		// w1 lost its lease: its outcome changes nothing.
		err := finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w1", Now: now, DeliveryStatus: verifyd.DeliverySent,
			Attempts: []*verifyd.DeliveryAttempt{{ID: verifyd.NewID(), VerificationID: v.ID, JobID: j.ID, Sender: "console", Outcome: "sent", At: now}}})
		wantCode(t, "FinishJob after losing the lease", err, verifyd.ECONFLICT)
		if verifyd.ErrorMessage(err) != verifyd.ErrorMessage(verifyd.ErrLeaseLost) {
			t.Fatalf("FinishJob after losing the lease: %v, want ErrLeaseLost", err)
		}
		mustDepth(t, s, 1)
		if got := MustGetVerification(t, s, v.AccountID, v.ID); got.DeliveryStatus != "" {
			t.Fatalf("lost-lease outcome recorded delivery status %q", got.DeliveryStatus)
		}
		wantEvents(t, s, v)
		if l, ok := s.(DeliveryAttemptLister); ok {
			list, err := l.ListDeliveryAttempts(ctx, v.AccountID, v.ID)
			wantNoErr(t, "ListDeliveryAttempts", err)
			if len(list) != 0 {
				t.Fatalf("lost-lease outcome recorded %d delivery attempts", len(list))
			}
		}
		wantNoErr(t, "FinishJob by the lease holder", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w2", Now: now}))
		mustDepth(t, s, 0)
	})

	subtest(t, open, "ConcurrentClaimsDisjoint", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		const n = 60
		for i := range n {
			mustCreateDue(t, s, p, "+1555000"+string(rune('a'+i%26))+string(rune('a'+i/26)), T0.Add(time.Duration(i)*time.Millisecond))
		}
		var mu sync.Mutex
		seen := map[string]string{}
		var wg sync.WaitGroup
		for w := range 8 {
			worker := "w" + string(rune('0'+w))
			wg.Go(func() {
				for {
					jobs, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: worker, Now: T0.Add(time.Second), Lease: lease, Limit: 3})
					if err != nil {
						t.Errorf("ClaimJobs: %v", err)
						return
					}
					if len(jobs) == 0 {
						return
					}
					mu.Lock()
					for _, j := range jobs {
						if other, dup := seen[j.ID]; dup {
							t.Errorf("job %s claimed by %s and %s", j.ID, other, worker)
						}
						seen[j.ID] = worker
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != n {
			t.Fatalf("claimed %d distinct jobs, want %d", len(seen), n)
		}
	})

	subtest(t, open, "FinishDone", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		mustCreateDue(t, s, p, "+15550000000", T0)
		j := mustClaim(t, s, "w", T0, lease, 1)[0]
		wantNoErr(t, "FinishJob", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Second)}))
		mustDepth(t, s, 0)
		if jobs := mustClaim(t, s, "w", T0.Add(time.Hour), lease, 10); len(jobs) != 0 {
			t.Fatalf("a finished job was claimed again")
		}
		err := finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Second)})
		wantCode(t, "FinishJob twice", err, verifyd.ECONFLICT)
		err = finishJob(s, verifyd.JobOutcome{JobID: verifyd.NewID(), Worker: "w", Now: T0})
		wantCode(t, "FinishJob unknown", err, verifyd.ECONFLICT)
	})

	subtest(t, open, "FinishRetry", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		mustCreateDue(t, s, p, "+15550000000", T0)
		j := mustClaim(t, s, "w", T0, lease, 1)[0]
		retryAt := T0.Add(5 * time.Minute)
		wantNoErr(t, "FinishJob retry", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Second),
			Retry: true, RetryAt: retryAt, Error: "smsc busy"}))
		mustDepth(t, s, 1)
		if jobs := mustClaim(t, s, "w", retryAt.Add(-time.Microsecond), lease, 10); len(jobs) != 0 {
			t.Fatalf("a retried job was claimed before RetryAt")
		}
		jobs := mustClaim(t, s, "w2", retryAt, lease, 10)
		if len(jobs) != 1 || jobs[0].ID != j.ID {
			t.Fatalf("claim at RetryAt = %v, want %s", ids(jobs, jobID), j.ID)
		}
		if jobs[0].InDoubt || jobs[0].Attempt != 2 || jobs[0].LastError != "smsc busy" || !jobs[0].RunAt.Equal(retryAt) {
			t.Fatalf("retried job = %+v, want attempt 2, not in doubt, last error kept", jobs[0])
		}
		if err := finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: retryAt}); verifyd.ErrorCode(err) != verifyd.ECONFLICT {
			t.Fatalf("FinishJob by the earlier worker after a retry: %v, want ErrLeaseLost", err)
		}
	})

	subtest(t, open, "FinishDead", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		mustCreateDue(t, s, p, "+15550000000", T0)
		j := mustClaim(t, s, "w", T0, lease, 1)[0]
		wantNoErr(t, "FinishJob dead", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Second),
			Dead: true, Error: "number unreachable"}))
		mustDepth(t, s, 0)
		if jobs := mustClaim(t, s, "w", T0.Add(24*time.Hour), lease, 10); len(jobs) != 0 {
			t.Fatalf("a dead job was claimed again")
		}
	})

	subtest(t, open, "DeliverySent", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v, _ := mustCreateDue(t, s, p, "+15550000000", T0)
		j := mustClaim(t, s, "w", T0, lease, 1)[0]
		now := T0.Add(time.Second)
		att := &verifyd.DeliveryAttempt{ID: verifyd.NewID(), VerificationID: v.ID, JobID: j.ID, Sender: "smpp-main",
			ProviderMessageID: "msg-1", Parts: 2, Outcome: verifyd.DeliverySent, At: now}
		wantNoErr(t, "FinishJob sent", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: now,
			DeliveryStatus: verifyd.DeliverySent, Attempts: []*verifyd.DeliveryAttempt{att}}))
		got := MustGetVerification(t, s, v.AccountID, v.ID)
		wantStatus(t, got, verifyd.StatusPending, "")
		if got.DeliveryStatus != verifyd.DeliverySent {
			t.Fatalf("DeliveryStatus = %q, want sent", got.DeliveryStatus)
		}
		evs := wantEvents(t, s, v, verifyd.EventSent)
		if pl := payload(t, evs[0]); pl.DeliveryStatus == nil || *pl.DeliveryStatus != verifyd.DeliverySent ||
			pl.Status != verifyd.StatusPending || !evs[0].OccurredAt.Equal(now) {
			t.Fatalf("verify.sent event = %s at %v", evs[0].Payload, evs[0].OccurredAt)
		}
		if l, ok := s.(DeliveryAttemptLister); ok {
			list, err := l.ListDeliveryAttempts(ctx, v.AccountID, v.ID)
			wantNoErr(t, "ListDeliveryAttempts", err)
			if len(list) != 1 {
				t.Fatalf("ListDeliveryAttempts: %d, want 1", len(list))
			}
			wantEqual(t, "delivery attempt", list[0], att)
		} else {
			t.Log("store has no ListDeliveryAttempts: the stored attempt is not checked")
		}
		mustDepth(t, s, 0)
	})

	subtest(t, open, "FailVerification", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v, _ := mustCreateDue(t, s, p, "+15550000000", T0)
		j := mustClaim(t, s, "w", T0, lease, 1)[0]
		now := T0.Add(time.Second)
		wantNoErr(t, "FinishJob failed", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: now, Dead: true,
			Error: "no route", DeliveryStatus: verifyd.DeliverySendingFailed, FailVerification: true,
			Attempts: []*verifyd.DeliveryAttempt{{ID: verifyd.NewID(), VerificationID: v.ID, JobID: j.ID, Sender: "router",
				Outcome: "error", Error: "no route", At: now}}}))
		got := MustGetVerification(t, s, v.AccountID, v.ID)
		wantStatus(t, got, verifyd.StatusError, verifyd.ReasonSendingFailed)
		if got.DeliveryStatus != verifyd.DeliverySendingFailed || !got.UpdatedAt.Equal(now) {
			t.Fatalf("failed verification: delivery %q updated %v", got.DeliveryStatus, got.UpdatedAt)
		}
		evs := wantEvents(t, s, v, verifyd.EventFailed, verifyd.EventCompleted)
		if pl := payload(t, evs[0]); pl.DeliveryStatus == nil || *pl.DeliveryStatus != verifyd.DeliverySendingFailed {
			t.Fatalf("verify.failed payload = %s", evs[0].Payload)
		}
		wantCompleted(t, evs[1], got, verifyd.StatusError, verifyd.ReasonSendingFailed, now)
		if l, ok := s.(DeliveryAttemptLister); ok {
			list, err := l.ListDeliveryAttempts(ctx, v.AccountID, v.ID)
			wantNoErr(t, "ListDeliveryAttempts", err)
			if len(list) != 1 || list[0].Outcome != "error" || list[0].Error != "no route" {
				t.Fatalf("ListDeliveryAttempts = %+v", list)
			}
		}
	})

	subtest(t, open, "FailVerificationLeavesTerminal", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v, _ := mustCreateDue(t, s, p, "+15550000000", T0)
		j := mustClaim(t, s, "w", T0, lease, 1)[0]
		mustAccept(t, s, v, T0.Add(time.Second))
		wantNoErr(t, "FinishJob", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(2 * time.Second),
			FailVerification: true}))
		wantStatus(t, MustGetVerification(t, s, v.AccountID, v.ID), verifyd.StatusAccepted, verifyd.ReasonAccepted)
		wantEvents(t, s, v, verifyd.EventCompleted)
	})

	subtest(t, open, "FinishBatchMixed", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		var vs []*verifyd.Verification
		for i := range 5 {
			v, _ := mustCreateDue(t, s, p, fmt.Sprintf("+1555000000%d", i), T0.Add(time.Duration(i)*time.Second))
			vs = append(vs, v)
		}
		claimed := mustClaim(t, s, "w1", T0.Add(5*time.Second), lease, 10)
		if len(claimed) != 5 {
			t.Fatalf("claimed %d jobs, want 5", len(claimed))
		}
		// w2 takes over the oldest once its lease lapsed: w1 lost it.
		now := T0.Add(5*time.Second + lease)
		if again := mustClaim(t, s, "w2", now, lease, 1); len(again) != 1 || again[0].ID != claimed[0].ID {
			t.Fatalf("takeover = %v, want %s", ids(again, jobID), claimed[0].ID)
		}
		j := claimed
		att := func(i int, outcome string) *verifyd.DeliveryAttempt {
			return &verifyd.DeliveryAttempt{ID: verifyd.NewID(), VerificationID: vs[i].ID, JobID: j[i].ID, Sender: "smpp",
				ProviderMessageID: fmt.Sprint("msg-", i), Parts: 1, Outcome: outcome, At: now}
		}
		sent1, retry2, dead3 := att(1, verifyd.DeliverySent), att(2, "error"), att(3, verifyd.DeliverySendingFailed)
		retryAt := now.Add(lease / 2) // before w2's lease lapses
		outs := []verifyd.JobOutcome{
			{JobID: j[0].ID, Worker: "w1", Now: now, DeliveryStatus: verifyd.DeliverySent, Attempts: []*verifyd.DeliveryAttempt{att(0, verifyd.DeliverySent)}},
			{JobID: j[1].ID, Worker: "w1", Now: now, DeliveryStatus: verifyd.DeliverySent, Attempts: []*verifyd.DeliveryAttempt{sent1}},
			{JobID: j[2].ID, Worker: "w1", Now: now, Retry: true, RetryAt: retryAt, Error: "busy", Attempts: []*verifyd.DeliveryAttempt{retry2}},
			{JobID: j[3].ID, Worker: "w1", Now: now, Dead: true, Error: "no route", DeliveryStatus: verifyd.DeliverySendingFailed,
				FailVerification: true, Attempts: []*verifyd.DeliveryAttempt{dead3}},
			{JobID: j[4].ID, Worker: "w1", Now: now},
			{JobID: j[1].ID, Worker: "w1", Now: now, DeliveryStatus: verifyd.DeliveryDelivered}, // finished above
		}
		errs := s.FinishJobs(ctx, outs)
		if len(errs) != len(outs) {
			t.Fatalf("FinishJobs returned %d errors for %d outcomes", len(errs), len(outs))
		}
		for i, err := range errs {
			if i == 0 || i == 5 {
				wantCode(t, fmt.Sprint("outcome ", i, " without the lease"), err, verifyd.ECONFLICT)
				if verifyd.ErrorMessage(err) != verifyd.ErrorMessage(verifyd.ErrLeaseLost) {
					t.Fatalf("outcome %d: %v, want ErrLeaseLost", i, err)
				}
				continue
			}
			wantNoErr(t, fmt.Sprint("outcome ", i), err)
		}

		// Lost lease: nothing recorded.
		if got := MustGetVerification(t, s, vs[0].AccountID, vs[0].ID); got.DeliveryStatus != "" || !got.UpdatedAt.Equal(T0) {
			t.Fatalf("lost-lease outcome recorded: %+v", got)
		}
		wantEvents(t, s, vs[0])
		wantAttempts(t, s, vs[0])
		// Sent.
		got := MustGetVerification(t, s, vs[1].AccountID, vs[1].ID)
		wantStatus(t, got, verifyd.StatusPending, "")
		if got.DeliveryStatus != verifyd.DeliverySent || !got.UpdatedAt.Equal(now) {
			t.Fatalf("sent verification: delivery %q updated %v", got.DeliveryStatus, got.UpdatedAt)
		}
		evs := wantEvents(t, s, vs[1], verifyd.EventSent)
		if pl := payload(t, evs[0]); pl.DeliveryStatus == nil || *pl.DeliveryStatus != verifyd.DeliverySent ||
			pl.Status != verifyd.StatusPending || pl.UpdatedAt != verifyd.FormatTime(now) || !evs[0].OccurredAt.Equal(now) ||
			evs[0].AccountID != vs[1].AccountID || evs[0].ProfileID != p.ID || !verifyd.ValidID(evs[0].ID) {
			t.Fatalf("verify.sent event = %+v, payload %s", evs[0], evs[0].Payload)
		}
		wantAttempts(t, s, vs[1], sent1)
		// Retried: queued again, verification untouched.
		wantStatus(t, MustGetVerification(t, s, vs[2].AccountID, vs[2].ID), verifyd.StatusPending, "")
		wantEvents(t, s, vs[2])
		wantAttempts(t, s, vs[2], retry2)
		// Dead and failed.
		got = MustGetVerification(t, s, vs[3].AccountID, vs[3].ID)
		wantStatus(t, got, verifyd.StatusError, verifyd.ReasonSendingFailed)
		evs = wantEvents(t, s, vs[3], verifyd.EventFailed, verifyd.EventCompleted)
		wantCompleted(t, evs[1], got, verifyd.StatusError, verifyd.ReasonSendingFailed, now)
		wantAttempts(t, s, vs[3], dead3)
		// Done without a status.
		if got := MustGetVerification(t, s, vs[4].AccountID, vs[4].ID); got.DeliveryStatus != "" || !got.UpdatedAt.Equal(T0) {
			t.Fatalf("done outcome without status changed the verification: %+v", got)
		}
		wantEvents(t, s, vs[4])

		mustDepth(t, s, 2) // j0 held by w2, j2 retried
		jobs := mustClaim(t, s, "w3", retryAt, lease, 10)
		wantIDs(t, "claim after the batch", ids(jobs, jobID), []string{j[2].ID})
		wantNoErr(t, "FinishJob by the new lease holder", finishJob(s, verifyd.JobOutcome{JobID: j[0].ID, Worker: "w2", Now: now}))
	})

	subtest(t, open, "FinishBatchLarge", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		const n = 150
		vs := make([]*verifyd.Verification, n)
		for i := range vs {
			vs[i], _ = mustCreateDue(t, s, p, fmt.Sprintf("+1555%07d", i), T0)
		}
		jobs := mustClaim(t, s, "w", T0, lease, n)
		if len(jobs) != n {
			t.Fatalf("claimed %d jobs, want %d", len(jobs), n)
		}
		outs := make([]verifyd.JobOutcome, n)
		for i, j := range jobs {
			outs[i] = verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Duration(i) * time.Microsecond),
				DeliveryStatus: verifyd.DeliveryDelivered}
		}
		for i, err := range s.FinishJobs(ctx, outs) {
			wantNoErr(t, fmt.Sprint("outcome ", i), err)
		}
		mustDepth(t, s, 0)
		byVerification := map[string]time.Time{}
		for i, j := range jobs {
			byVerification[j.VerificationID] = outs[i].Now
		}
		for _, v := range vs {
			got := MustGetVerification(t, s, v.AccountID, v.ID)
			if got.DeliveryStatus != verifyd.DeliveryDelivered || !got.UpdatedAt.Equal(byVerification[v.ID]) {
				t.Fatalf("verification %s: delivery %q updated %v", v.ID, got.DeliveryStatus, got.UpdatedAt)
			}
			if evs := wantEvents(t, s, v, verifyd.EventDelivered); !evs[0].OccurredAt.Equal(byVerification[v.ID]) {
				t.Fatalf("verify.delivered at %v, want %v", evs[0].OccurredAt, byVerification[v.ID])
			}
		}
		if errs := s.FinishJobs(ctx, nil); len(errs) != 0 {
			t.Fatalf("FinishJobs(nil) = %v", errs)
		}
	})

	subtest(t, open, "QueueDepth", func(t *testing.T, s verifyd.Store) {
		mustDepth(t, s, 0)
		p := setup(t, s)
		for i := range 3 {
			mustCreateDue(t, s, p, "+1555000000"+string(rune('0'+i)), T0.Add(time.Duration(i)*time.Hour))
		}
		mustDepth(t, s, 3) // not yet due counts too
		j := mustClaim(t, s, "w", T0, lease, 1)[0]
		mustDepth(t, s, 3)
		wantNoErr(t, "FinishJob", finishJob(s, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0}))
		mustDepth(t, s, 2)
	})
}
