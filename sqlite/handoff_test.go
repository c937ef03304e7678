package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/storetest"
)

// holdWriter runs an operation that blocks the writer until the returned
// release is called, so that the operations queued meanwhile make one
// batch; queued waits until n operations are queued.
func holdWriter(t *testing.T, s *Store) (queued func(n int), release func()) {
	t.Helper()
	inside, rel := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), func(*wtx) error { close(inside); <-rel; return nil })
	}()
	<-inside
	queued = func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); len(s.ops) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d operations queued, want %d", len(s.ops), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	release = func() {
		t.Helper()
		close(rel)
		if err := <-done; err != nil {
			t.Fatalf("holding operation: %v", err)
		}
	}
	return queued, release
}

// When an operation after a hand-off's in its batch fails, the batch runs
// again with that operation in a savepoint: the hand-off survives that
// operation's rollback, also when the operation wrote handoffs first.
func TestHandoffSurvivesALaterOperationsRollback(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)

	queued, release := holdWriter(t, s)
	var v [2]*verifyd.Verification
	var j [2]*verifyd.Job
	errs := make(chan error, 3)
	for i := range v {
		v[i] = storetest.NewVerification(p, "+1555000000"+string(rune('0'+i)), storetest.T0)
		j[i] = storetest.NewJob(v[i], storetest.T0)
		j[i].State, j[i].LockedBy, j[i].LockedUntil, j[i].Attempt = verifyd.JobRunning, "w", storetest.T0.Add(time.Minute), 1
		go func() {
			_, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v[i], Job: j[i], Now: storetest.T0})
			errs <- err
		}()
		queued(i + 1)
	}
	boom := errors.New("boom")
	go func() {
		errs <- s.write(ctx, func(w *wtx) error {
			if err := w.moveLapsedHandoffs(storetest.T0); err != nil {
				return err
			}
			return boom
		})
	}()
	queued(3)
	release()
	failed := 0
	for range 3 {
		if err := <-errs; errors.Is(err, boom) || err != nil && err.Error() == boom.Error() {
			failed++
		} else if err != nil {
			t.Fatalf("CreateVerification batched with a failing operation: %v", err)
		}
	}
	if failed != 1 {
		t.Fatalf("%d operations failed, want the one", failed)
	}
	if n, err := s.QueueDepth(ctx); err != nil || n != 2 {
		t.Fatalf("QueueDepth = %d, %v; want the 2 hand-offs", n, err)
	}
	jobs, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "w2", Now: storetest.T0.Add(time.Minute), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("ClaimJobs after the lease: %v, %d jobs; want the 2 hand-offs", err, len(jobs))
	}
}

// A claim batched after hand-offs whose leases have lapsed takes them over.
func TestHandoffsOfABatch(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)

	queued, release := holdWriter(t, s)
	const n = 5
	errs := make(chan error, n)
	for i := range n {
		v := storetest.NewVerification(p, "+1555000000"+string(rune('0'+i)), storetest.T0)
		j := storetest.NewJob(v, storetest.T0)
		// Leased until T0: lapsed for the claim below.
		j.State, j.LockedBy, j.LockedUntil, j.Attempt = verifyd.JobRunning, "w", storetest.T0, 1
		go func() {
			_, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: j, Now: storetest.T0})
			errs <- err
		}()
		queued(i + 1)
	}
	claimed := make(chan []*verifyd.Job, 1)
	go func() {
		jobs, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "w2", Now: storetest.T0, Lease: time.Minute, Limit: 10})
		if err != nil {
			t.Errorf("ClaimJobs: %v", err)
		}
		claimed <- jobs
	}()
	queued(n + 1)
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("CreateVerification: %v", err)
		}
	}
	if jobs := <-claimed; len(jobs) != n {
		t.Fatalf("a claim batched after %d hand-offs took %d", n, len(jobs))
	}
	if batches, ops := s.BatchStats(); ops-batches < n {
		t.Fatalf("%d operations in %d batches: not batched", ops, batches)
	}
}
