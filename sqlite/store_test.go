package sqlite_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/sqlite"
	"github.com/verifyd/verifyd/storetest"
)

// mustOpen opens a store on a new file in tb.TempDir, closed at cleanup.
func mustOpen(tb testing.TB, opts ...sqlite.Option) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "verifyd.db"), opts...)
	if err != nil {
		tb.Fatalf("sqlite.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(tb testing.TB) verifyd.Store { return mustOpen(tb) })
}

func TestOpenLocked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "verifyd.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := sqlite.Open(ctx, path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open of a held database: %v, want an in-use error", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate on a current schema: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := sqlite.Open(ctx, ":memory:"); err == nil {
		t.Fatal("Open(:memory:) succeeded; the store needs a file")
	}
}

func TestClosedIsUnavailable(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	a := storetest.MustCreateAccount(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.GetAccount(ctx, a.ID); verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE {
		t.Fatalf("GetAccount after Close: %v, want unavailable", err)
	}
	err := s.CreateAccount(ctx, &verifyd.Account{ID: verifyd.NewID(), Name: "x", CreatedAt: storetest.T0})
	if verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE {
		t.Fatalf("CreateAccount after Close: %v, want unavailable", err)
	}
	if err := s.Ping(ctx); verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE {
		t.Fatalf("Ping after Close: %v, want unavailable", err)
	}
}

// openForReopen opens a store in a file of a temporary directory (the
// caller closes it and opens the path again) with an account, a profile
// and a verification of it, not yet created.
func openForReopen(t *testing.T) (string, *sqlite.Store, *verifyd.Verification) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "verifyd.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)
	return path, s, storetest.NewVerification(p, "+15550000000", storetest.T0)
}

// A job left running by a dead process is claimable at once after reopening,
// in doubt, whatever its lease said.
func TestReopenReleasesRunningJobs(t *testing.T) {
	ctx := context.Background()
	path, s, v := openForReopen(t)
	storetest.MustCreateVerification(t, s, v)
	jobs, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "dead", Now: storetest.T0, Lease: time.Hour, Limit: 1})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("ClaimJobs: %v, %d jobs", err, len(jobs))
	}
	s.Close()

	s2, err := sqlite.Open(ctx, path, sqlite.WithReaders(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	again, err := s2.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "new", Now: storetest.T0.Add(time.Second), Lease: time.Minute, Limit: 1})
	if err != nil || len(again) != 1 {
		t.Fatalf("ClaimJobs after reopen: %v, %d jobs", err, len(again))
	}
	if !again[0].InDoubt || again[0].Attempt != 2 || again[0].ID != jobs[0].ID {
		t.Fatalf("reclaimed job = %+v, want in doubt, attempt 2", again[0])
	}
}

// A job handed off to a worker in its trigger's transaction (kept in
// handoffs, not jobs) by a process that died is claimable at once after
// reopening, in doubt, with its payload.
func TestReopenReleasesHandOffs(t *testing.T) {
	ctx := context.Background()
	path, s, v := openForReopen(t)
	j := storetest.NewHandOff(v, storetest.T0, "dead", time.Hour)
	if _, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: j, Now: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s2, err := sqlite.Open(ctx, path, sqlite.WithReaders(2))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n, err := s2.QueueDepth(ctx); err != nil || n != 1 {
		t.Fatalf("QueueDepth after reopen = %d, %v; want 1", n, err)
	}
	again, err := s2.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "new", Now: storetest.T0.Add(time.Second), Lease: time.Minute, Limit: 1})
	if err != nil || len(again) != 1 {
		t.Fatalf("ClaimJobs after reopen: %v, %d jobs", err, len(again))
	}
	if g := again[0]; !g.InDoubt || g.Attempt != 2 || g.ID != j.ID || g.LockedBy != "new" ||
		string(g.Payload) != string(j.Payload) || g.VerificationID != v.ID {
		t.Fatalf("reclaimed hand-off = %+v, want in doubt, attempt 2, its payload", g)
	}
}

// An operation whose context ends while it is queued never runs; one that
// fails leaves the rest of its batch alone.
func TestWriteContext(t *testing.T) {
	s := mustOpen(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	id := verifyd.NewID()
	err := s.CreateAccount(ctx, &verifyd.Account{ID: id, Name: "x", CreatedAt: storetest.T0})
	if err == nil {
		// The op may have been taken before the cancel was seen; then it ran.
		if _, gerr := s.GetAccount(context.Background(), id); gerr != nil {
			t.Fatalf("CreateAccount succeeded but the account is missing: %v", gerr)
		}
		return
	}
	if _, gerr := s.GetAccount(context.Background(), id); verifyd.ErrorCode(gerr) != verifyd.ENOTFOUND {
		t.Fatalf("cancelled CreateAccount (%v) left an account: %v", err, gerr)
	}
}

func TestErrorsHideSQL(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	p := &verifyd.Profile{ID: verifyd.NewID(), AccountID: verifyd.NewID(), Name: "orphan", CreatedAt: storetest.T0}
	err := s.CreateProfile(ctx, p)
	if verifyd.ErrorCode(err) != verifyd.EREFERENCE {
		t.Fatalf("CreateProfile of an unknown account: %v, want reference", err)
	}
	if msg := verifyd.ErrorMessage(err); strings.Contains(strings.ToLower(msg), "constraint") {
		t.Fatalf("client message leaks SQL: %q", msg)
	}
}

// Operations batched into one transaction fail alone: the others commit.
func TestBatchIsolation(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t)
	dup := storetest.MustCreateAccount(t, s)
	var wg sync.WaitGroup
	ids := make([]string, 64)
	errs := make([]error, 64)
	for i := range ids {
		wg.Go(func() {
			id := dup.ID
			if i%2 == 0 {
				id = verifyd.NewID()
			}
			ids[i] = id
			errs[i] = s.CreateAccount(ctx, &verifyd.Account{ID: id, Name: "a", CreatedAt: storetest.T0})
		})
	}
	wg.Wait()
	for i, id := range ids {
		if i%2 == 1 {
			if verifyd.ErrorCode(errs[i]) != verifyd.ECONFLICT {
				t.Fatalf("duplicate CreateAccount: %v, want conflict", errs[i])
			}
			continue
		}
		if errs[i] != nil {
			t.Fatalf("CreateAccount batched with failing ones: %v", errs[i])
		}
		if _, err := s.GetAccount(ctx, id); err != nil {
			t.Fatalf("GetAccount of a batched create: %v", err)
		}
	}
	if batches, ops := s.BatchStats(); batches >= ops {
		t.Logf("no batching observed: %d commits for %d writes", batches, ops)
	}
}
