package storetest

import (
	"context"
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
		err := s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w1", Now: now, DeliveryStatus: verifyd.DeliverySent,
			Attempt: &verifyd.DeliveryAttempt{ID: verifyd.NewID(), VerificationID: v.ID, JobID: j.ID, Sender: "console", Outcome: "sent", At: now}})
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
		wantNoErr(t, "FinishJob by the lease holder", s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w2", Now: now}))
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
		wantNoErr(t, "FinishJob", s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Second)}))
		mustDepth(t, s, 0)
		if jobs := mustClaim(t, s, "w", T0.Add(time.Hour), lease, 10); len(jobs) != 0 {
			t.Fatalf("a finished job was claimed again")
		}
		err := s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Second)})
		wantCode(t, "FinishJob twice", err, verifyd.ECONFLICT)
		err = s.FinishJob(ctx, verifyd.JobOutcome{JobID: verifyd.NewID(), Worker: "w", Now: T0})
		wantCode(t, "FinishJob unknown", err, verifyd.ECONFLICT)
	})

	subtest(t, open, "FinishRetry", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		mustCreateDue(t, s, p, "+15550000000", T0)
		j := mustClaim(t, s, "w", T0, lease, 1)[0]
		retryAt := T0.Add(5 * time.Minute)
		wantNoErr(t, "FinishJob retry", s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Second),
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
		if err := s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: retryAt}); verifyd.ErrorCode(err) != verifyd.ECONFLICT {
			t.Fatalf("FinishJob by the earlier worker after a retry: %v, want ErrLeaseLost", err)
		}
	})

	subtest(t, open, "FinishDead", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		mustCreateDue(t, s, p, "+15550000000", T0)
		j := mustClaim(t, s, "w", T0, lease, 1)[0]
		wantNoErr(t, "FinishJob dead", s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(time.Second),
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
		wantNoErr(t, "FinishJob sent", s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: now,
			DeliveryStatus: verifyd.DeliverySent, Attempt: att}))
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
		wantNoErr(t, "FinishJob failed", s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: now, Dead: true,
			Error: "no route", DeliveryStatus: verifyd.DeliverySendingFailed, FailVerification: true,
			Attempt: &verifyd.DeliveryAttempt{ID: verifyd.NewID(), VerificationID: v.ID, JobID: j.ID, Sender: "router",
				Outcome: "error", Error: "no route", At: now}}))
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
		wantNoErr(t, "FinishJob", s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0.Add(2 * time.Second),
			FailVerification: true}))
		wantStatus(t, MustGetVerification(t, s, v.AccountID, v.ID), verifyd.StatusAccepted, verifyd.ReasonAccepted)
		wantEvents(t, s, v, verifyd.EventCompleted)
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
		wantNoErr(t, "FinishJob", s.FinishJob(ctx, verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: T0}))
		mustDepth(t, s, 2)
	})
}
