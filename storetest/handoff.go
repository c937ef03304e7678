package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// mustHandOff creates a verification of p whose job is handed off at T0 to
// worker (NewHandOff). It returns the job as inserted.
func mustHandOff(tb testing.TB, s verifyd.Store, p *verifyd.Profile, phone, worker string, lease time.Duration) (*verifyd.Verification, *verifyd.Job) {
	tb.Helper()
	v := NewVerification(p, phone, T0)
	j := NewHandOff(v, T0, worker, lease)
	if _, err := s.CreateVerification(context.Background(), verifyd.CreateParams{Verification: v, Job: j, Now: T0}); err != nil {
		tb.Fatalf("CreateVerification: %v", err)
	}
	return v, j
}

// testHandOff: jobs inserted running (handed off to a worker in the
// trigger's transaction) behave as claimed jobs in every respect.
func testHandOff(t *testing.T, open Opener) {
	const lease = 30 * time.Second
	setup := func(t *testing.T, s verifyd.Store) *verifyd.Profile {
		return MustCreateProfile(t, s, MustCreateAccount(t, s).ID, "Main", T0)
	}
	sent := func(v *verifyd.Verification, j *verifyd.Job, worker string, now time.Time, withVID bool) (verifyd.JobOutcome, *verifyd.DeliveryAttempt) {
		a := &verifyd.DeliveryAttempt{ID: verifyd.NewID(), VerificationID: v.ID, JobID: j.ID, Sender: "console",
			ProviderMessageID: "m-" + v.ID, Parts: 1, Outcome: verifyd.DeliverySent, At: now}
		o := verifyd.JobOutcome{JobID: j.ID, Worker: worker, Now: now, DeliveryStatus: verifyd.DeliverySent,
			Attempts: []*verifyd.DeliveryAttempt{a}}
		if withVID {
			o.VerificationID = v.ID
		}
		return o, a
	}

	for _, withVID := range []bool{true, false} {
		name := "Sent"
		if !withVID {
			name = "SentWithoutVerificationID"
		}
		subtest(t, open, name, func(t *testing.T, s verifyd.Store) {
			p := setup(t, s)
			v, j := mustHandOff(t, s, p, "+15550000000", "w1", lease)
			mustDepth(t, s, 1)
			if jobs := mustClaim(t, s, "w2", T0.Add(lease-time.Microsecond), lease, 10); len(jobs) != 0 {
				t.Fatalf("a handed-off job was claimed while leased: %v", ids(jobs, jobID))
			}
			now := T0.Add(time.Second)
			o, a := sent(v, j, "w2", now, withVID)
			wantCode(t, "FinishJobs by another worker", finishJob(s, o), verifyd.ECONFLICT)
			if got := MustGetVerification(t, s, v.AccountID, v.ID); got.DeliveryStatus != "" {
				t.Fatalf("another worker's outcome recorded delivery status %q", got.DeliveryStatus)
			}
			o.Worker = "w1"
			wantNoErr(t, "FinishJobs by the worker it was handed to", finishJob(s, o))
			mustDepth(t, s, 0)
			if got := MustGetVerification(t, s, v.AccountID, v.ID); got.DeliveryStatus != verifyd.DeliverySent ||
				!got.UpdatedAt.Equal(now) {
				t.Fatalf("delivery status %q at %v, want sent at %v", got.DeliveryStatus, got.UpdatedAt, now)
			}
			wantEvents(t, s, v, verifyd.EventSent)
			wantAttempts(t, s, v, a)
			wantCode(t, "FinishJobs twice", finishJob(s, o), verifyd.ECONFLICT)
			if jobs := mustClaim(t, s, "w2", T0.Add(time.Hour), lease, 10); len(jobs) != 0 {
				t.Fatalf("a finished hand-off was claimed: %v", ids(jobs, jobID))
			}
		})
	}

	subtest(t, open, "LapsedLeaseInDoubt", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v, j := mustHandOff(t, s, p, "+15550000000", "w1", lease)
		now := T0.Add(lease)
		jobs := mustClaim(t, s, "w2", now, lease, 10)
		if len(jobs) != 1 {
			t.Fatalf("claim after the hand-off's lease lapsed: %d jobs, want 1", len(jobs))
		}
		want := *j
		want.Attempt, want.LockedBy, want.LockedUntil, want.InDoubt = 2, "w2", now.Add(lease), true
		wantEqual(t, "job taken over", jobs[0], &want)
		mustDepth(t, s, 1)
		o, _ := sent(v, j, "w1", now, true)
		wantCode(t, "FinishJobs by the worker that lost the lease", finishJob(s, o), verifyd.ECONFLICT)
		wantEvents(t, s, v)
		wantAttempts(t, s, v)
		o, a := sent(v, j, "w2", now, true)
		wantNoErr(t, "FinishJobs by the worker that took it over", finishJob(s, o))
		wantEvents(t, s, v, verifyd.EventSent)
		wantAttempts(t, s, v, a)
		mustDepth(t, s, 0)
	})

	subtest(t, open, "LapsedLeaseNobodyTookOver", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v, j := mustHandOff(t, s, p, "+15550000000", "w1", lease)
		o, a := sent(v, j, "w1", T0.Add(2*lease), true)
		wantNoErr(t, "FinishJobs after the lease lapsed, not taken over", finishJob(s, o))
		wantAttempts(t, s, v, a)
		mustDepth(t, s, 0)
	})

	subtest(t, open, "Retry", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v, j := mustHandOff(t, s, p, "+15550000000", "w1", lease)
		retryAt := T0.Add(5 * time.Minute)
		a := &verifyd.DeliveryAttempt{ID: verifyd.NewID(), VerificationID: v.ID, JobID: j.ID, Sender: "smpp",
			Outcome: "error", Error: "smsc busy", At: T0.Add(time.Second)}
		wantNoErr(t, "FinishJobs retry", finishJob(s, verifyd.JobOutcome{JobID: j.ID, VerificationID: v.ID, Worker: "w1",
			Now: T0.Add(time.Second), Retry: true, RetryAt: retryAt, Error: "smsc busy",
			Attempts: []*verifyd.DeliveryAttempt{a}}))
		wantAttempts(t, s, v, a)
		mustDepth(t, s, 1)
		if jobs := mustClaim(t, s, "w2", retryAt.Add(-time.Microsecond), lease, 10); len(jobs) != 0 {
			t.Fatalf("a retried hand-off was claimed before RetryAt")
		}
		jobs := mustClaim(t, s, "w2", retryAt, lease, 10)
		want := *j
		want.Attempt, want.LockedBy, want.LockedUntil, want.RunAt, want.LastError = 2, "w2", retryAt.Add(lease), retryAt, "smsc busy"
		if len(jobs) != 1 {
			t.Fatalf("claim at RetryAt: %d jobs, want 1", len(jobs))
		}
		wantEqual(t, "retried hand-off", jobs[0], &want)
		wantCode(t, "FinishJobs by the first worker after a retry",
			finishJob(s, verifyd.JobOutcome{JobID: j.ID, VerificationID: v.ID, Worker: "w1", Now: retryAt}), verifyd.ECONFLICT)
	})

	subtest(t, open, "DeadFailsVerification", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v, j := mustHandOff(t, s, p, "+15550000000", "w1", lease)
		now := T0.Add(time.Second)
		wantNoErr(t, "FinishJobs dead", finishJob(s, verifyd.JobOutcome{JobID: j.ID, VerificationID: v.ID, Worker: "w1",
			Now: now, Dead: true, Error: "number unreachable", DeliveryStatus: verifyd.DeliverySendingFailed,
			FailVerification: true}))
		mustDepth(t, s, 0)
		got := MustGetVerification(t, s, v.AccountID, v.ID)
		wantStatus(t, got, verifyd.StatusError, verifyd.ReasonSendingFailed)
		if got.DeliveryStatus != verifyd.DeliverySendingFailed {
			t.Fatalf("delivery status %q, want sending_failed", got.DeliveryStatus)
		}
		if jobs := mustClaim(t, s, "w2", T0.Add(24*time.Hour), lease, 10); len(jobs) != 0 {
			t.Fatalf("a dead hand-off was claimed")
		}
	})

	// One batch: a hand-off finished, a claimed job finished, a hand-off
	// whose lease another worker holds, an unknown job.
	subtest(t, open, "MixedBatch", func(t *testing.T, s verifyd.Store) {
		p := setup(t, s)
		v1, j1 := mustHandOff(t, s, p, "+15550000001", "w1", lease)
		v2, _ := mustCreateDue(t, s, p, "+15550000002", T0)
		j2 := mustClaim(t, s, "w1", T0, lease, 10)[0]
		v3, j3 := mustHandOff(t, s, p, "+15550000003", "w2", lease)
		now := T0.Add(time.Second)
		o1, a1 := sent(v1, j1, "w1", now, true)
		o2, a2 := sent(v2, j2, "w1", now, true)
		o3, _ := sent(v3, j3, "w1", now, true)
		o4 := verifyd.JobOutcome{JobID: verifyd.NewID(), VerificationID: v1.ID, Worker: "w1", Now: now}
		errs := s.FinishJobs(context.Background(), []verifyd.JobOutcome{o1, o2, o3, o4, o1})
		wantNoErr(t, "hand-off", errs[0])
		wantNoErr(t, "claimed job", errs[1])
		wantCode(t, "hand-off of another worker", errs[2], verifyd.ECONFLICT)
		wantCode(t, "unknown job", errs[3], verifyd.ECONFLICT)
		wantCode(t, "second outcome of a job", errs[4], verifyd.ECONFLICT)
		wantAttempts(t, s, v1, a1)
		wantAttempts(t, s, v2, a2)
		wantAttempts(t, s, v3)
		wantEvents(t, s, v1, verifyd.EventSent)
		wantEvents(t, s, v2, verifyd.EventSent)
		wantEvents(t, s, v3)
		mustDepth(t, s, 1)
	})
}
