package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/postgres"
	"github.com/verifyd/verifyd/storetest"
)

// TestNodesTriggerOneNumber runs concurrent triggers for one new (profile,
// phone) through two stores on one schema (two nodes): they serialize, so
// exactly one verification stays pending, every other one was superseded
// once (one event each), and creation times strictly increase.
func TestNodesTriggerOneNumber(t *testing.T) {
	url := testURL(t)
	schema := newSchema(t, url)
	ctx := context.Background()
	nodes := make([]*postgres.Store, 2)
	for i := range nodes {
		s, err := postgres.Open(ctx, url, postgres.WithSchema(schema), postgres.WithMaxConns(testConns))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		nodes[i] = s
	}
	a := storetest.MustCreateAccount(t, nodes[0])
	p := storetest.MustCreateProfile(t, nodes[0], a.ID, "Main", storetest.T0)
	const phone, n = "+15551239999", 24
	var wg sync.WaitGroup
	var mu sync.Mutex
	superseded := map[string]int{}
	for i := range n {
		wg.Go(func() {
			v := storetest.NewVerification(p, phone, storetest.T0) // all in the same microsecond
			sup, err := nodes[i%2].CreateVerification(ctx, verifyd.CreateParams{Verification: v,
				Job: storetest.NewJob(v, storetest.T0), Now: storetest.T0})
			if err != nil {
				t.Errorf("CreateVerification: %v", err)
				return
			}
			if sup != nil {
				mu.Lock()
				superseded[sup.ID]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	list, total, err := nodes[1].ListVerificationsByPhone(ctx, a.ID, phone, 0, 100)
	if err != nil || total != n {
		t.Fatalf("ListVerificationsByPhone: %d, %v; want %d", total, err, n)
	}
	for i, v := range list {
		if i == 0 {
			if v.Status != verifyd.StatusPending {
				t.Fatalf("newest %s is %s, want pending", v.ID, v.Status)
			}
			continue
		}
		if v.Status != verifyd.StatusExpired || v.CompletionReason != verifyd.ReasonSuperseded || superseded[v.ID] != 1 {
			t.Fatalf("verification %d: %s %s, superseded %d times", i, v.Status, v.CompletionReason, superseded[v.ID])
		}
		if !list[i-1].CreatedAt.After(v.CreatedAt) {
			t.Fatalf("created_at does not strictly increase: %v then %v", v.CreatedAt, list[i-1].CreatedAt)
		}
		if evs, err := nodes[0].ListEvents(ctx, a.ID, v.ID); err != nil || len(evs) != 1 {
			t.Fatalf("events of superseded %s: %d, %v", v.ID, len(evs), err)
		}
	}
	if got := list[0].CreatedAt.Sub(list[n-1].CreatedAt); got != (n-1)*time.Microsecond {
		t.Fatalf("creation times span %v, want %v", got, (n-1)*time.Microsecond)
	}

	// Checks of the pending one through both nodes: exactly one accept.
	var accepts int
	for i := range 20 {
		wg.Go(func() {
			res, err := nodes[i%2].Attempt(ctx, verifyd.AttemptParams{AccountID: a.ID, ProfileID: p.ID, PhoneNumber: phone,
				Now: storetest.T0.Add(time.Second), MaxAttempts: 5, FailuresSince: storetest.T0,
				Decide: func(*verifyd.Verification, int) (verifyd.Decision, error) { return verifyd.DecideAccept, nil }})
			if err != nil {
				t.Errorf("Attempt: %v", err)
				return
			}
			if res.Accepted {
				mu.Lock()
				accepts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if accepts != 1 {
		t.Fatalf("20 concurrent accepts over two nodes: %d accepted, want 1", accepts)
	}
}
