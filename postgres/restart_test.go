package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/storetest"
)

// TestRestart restarts the PostgreSQL server of this machine in the middle
// of traffic on a Store: while it is down every operation fails within
// opBound with EUNAVAILABLE (never hangs, never another code), once it is
// back operations succeed again on their own, and every CreateVerification
// that returned nil is still readable.
//
// It runs only with VERIFYD_TEST_PG_RESTART=1 (CI sets it) and must not run
// while other tests use that server.
func TestRestart(t *testing.T) {
	if os.Getenv("VERIFYD_TEST_PG_RESTART") != "1" {
		t.Skip("restarts this machine's PostgreSQL: set VERIFYD_TEST_PG_RESTART=1 to run")
	}
	const opBound = 6 * time.Second // the operation timeout (5s) and some slack
	ctx := context.Background()
	s := mustOpen(t)
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "Main", storetest.T0)

	var (
		mu       sync.Mutex
		created  []string
		ok, down atomic.Int64
		okAfter  atomic.Int64
		back     atomic.Bool
		slowest  atomic.Int64 // nanoseconds, of an unavailable operation
		n        atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	// op runs one operation, checks its bound and its error, and counts it.
	op := func(name string, f func() error) {
		start := time.Now()
		err := f()
		if d := time.Since(start); d > opBound {
			t.Errorf("%s took %v (bound %v)", name, d, opBound)
		}
		switch code := verifyd.ErrorCode(err); code {
		case "":
			ok.Add(1)
			if back.Load() {
				okAfter.Add(1)
			}
		case verifyd.EUNAVAILABLE:
			down.Add(1)
			for d := int64(time.Since(start)); ; {
				m := slowest.Load()
				if d <= m || slowest.CompareAndSwap(m, d) {
					break
				}
			}
		default:
			t.Errorf("%s: %v (code %q), want success or %s", name, err, code, verifyd.EUNAVAILABLE)
		}
	}
	for w := range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := n.Add(1)
				now := storetest.T0.Add(time.Duration(i) * time.Millisecond)
				v := storetest.NewVerification(p, fmt.Sprintf("+1555%03d%04d", w, i%10000), now)
				op("CreateVerification", func() error {
					_, err := s.CreateVerification(ctx, verifyd.CreateParams{Verification: v, Job: storetest.NewJob(v, now), Now: now})
					if err == nil {
						mu.Lock()
						created = append(created, v.ID)
						mu.Unlock()
					}
					return err
				})
				op("Attempt", func() error {
					_, err := s.Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: v.PhoneNumber,
						Now: now, MaxAttempts: 5, FailuresSince: now.Add(-time.Minute),
						Decide: func(*verifyd.Verification, int) (verifyd.Decision, error) { return verifyd.DecideReject, nil }})
					return err
				})
				op("ClaimJobs", func() error {
					_, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "w", Now: now, Lease: time.Minute, Limit: 4})
					return err
				})
				op("GetAccount", func() error { _, err := s.GetAccount(ctx, a.ID); return err })
				time.Sleep(5 * time.Millisecond)
			}
		})
	}

	time.Sleep(500 * time.Millisecond)
	before := ok.Load()
	start := time.Now()
	cmd := exec.Command("sh", "-c", "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart")
	out, err := cmd.CombinedOutput()
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("restart: %v\n%s", err, out)
	}
	t.Logf("restart took %v", time.Since(start))
	// Back: a Ping answers within a bounded time, and traffic succeeds again.
	deadline := time.Now().Add(30 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			close(stop)
			wg.Wait()
			t.Fatal("the store did not come back within 30s of the restart")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("store answering %v after the restart began", time.Since(start))
	back.Store(true)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	t.Logf("operations: %d ok (%d before the restart, %d after it), %d unavailable (the slowest in %v)",
		ok.Load(), before, okAfter.Load(), down.Load(), time.Duration(slowest.Load()))
	if down.Load() == 0 {
		t.Error("no operation saw the outage: was the server restarted?")
	}
	if okAfter.Load() == 0 {
		t.Error("no operation succeeded after the restart")
	}
	for _, id := range created {
		if _, err := s.GetVerification(ctx, a.ID, id); err != nil {
			t.Fatalf("verification %s, created before or during the restart: %v", id, err)
		}
	}
	t.Logf("%d verifications created, all readable", len(created))
}
