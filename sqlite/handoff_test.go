package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/storetest"
)

// holdWriter runs an operation that blocks the writer until the returned
// release is called (at the latest when t ends, so that a failed test does
// not leave the store unable to close), so that the operations queued
// meanwhile make one batch; queued waits until n operations are queued.
func holdWriter(t *testing.T, s *Store) (queued func(n int), release func()) {
	t.Helper()
	inside, rel := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), func(*wtx) error { close(inside); <-rel; return nil })
	}()
	<-inside
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(rel) }) })
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
		once.Do(func() { close(rel) })
		if err := <-done; err != nil {
			t.Fatalf("holding operation: %v", err)
		}
	}
	return queued, release
}

// openWithProfile opens a store in a temporary directory, closed when t
// ends, with an account and a profile.
func openWithProfile(t *testing.T) (*Store, *verifyd.Profile) {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a := storetest.MustCreateAccount(t, s)
	return s, storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)
}

// queueHandOffs queues n triggers of p, one after the other, each with its
// job handed off at T0 to worker "w" for lease (see holdWriter), and
// returns the channel their errors come on.
func queueHandOffs(t *testing.T, s *Store, p *verifyd.Profile, queued func(int), n int, lease time.Duration) chan error {
	t.Helper()
	errs := make(chan error, n+1)
	for i := range n {
		v := storetest.NewVerification(p, "+1555000000"+string(rune('0'+i)), storetest.T0)
		j := storetest.NewHandOff(v, storetest.T0, "w", lease)
		before := len(s.ops)
		go func() {
			_, err := s.CreateVerification(context.Background(), verifyd.CreateParams{Verification: v, Job: j, Now: storetest.T0})
			errs <- err
		}()
		queued(before + 1)
	}
	return errs
}

// count returns the number of rows of table.
func count(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// When an operation after a hand-off's in its batch fails, the batch runs
// again with that operation in a savepoint: the hand-off survives that
// operation's rollback, also when the operation wrote handoffs first.
func TestHandoffSurvivesALaterOperationsRollback(t *testing.T) {
	ctx := context.Background()
	s, p := openWithProfile(t)
	queued, release := holdWriter(t, s)
	errs := queueHandOffs(t, s, p, queued, 2, time.Minute)
	boom := errors.New("boom")
	go func() {
		errs <- s.write(ctx, func(w *wtx) error {
			// Both leases have lapsed by then: it moves them into jobs,
			// which its rollback must undo, and nothing more.
			if err := w.moveLapsedHandoffs(storetest.T0.Add(time.Minute)); err != nil {
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
	if ho, jobs := count(t, s, "handoffs"), count(t, s, "jobs"); ho != 2 || jobs != 0 {
		t.Fatalf("%d hand-offs and %d jobs, want the 2 hand-offs, no job", ho, jobs)
	}
	jobs, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "w2", Now: storetest.T0.Add(time.Minute), Lease: time.Minute, Limit: 10})
	if err != nil || len(jobs) != 2 {
		t.Fatalf("ClaimJobs after the lease: %v, %d jobs; want the 2 hand-offs", err, len(jobs))
	}
}

// A claim batched after hand-offs whose leases have lapsed takes them over.
func TestHandoffsOfABatch(t *testing.T) {
	ctx := context.Background()
	s, p := openWithProfile(t)
	queued, release := holdWriter(t, s)
	const n = 5
	// Leased until T0: lapsed for the claim below.
	errs := queueHandOffs(t, s, p, queued, n, 0)
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
