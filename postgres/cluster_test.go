package postgres_test

import (
	"context"
	"fmt"
	"slices"
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
	nodes := openNodes(t, url, schema, 2)
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

// TestNodesClaimWebhooks claims webhook deliveries from many workers over
// two stores on one schema (two nodes) at once: every delivery is claimed
// by exactly one worker, and finishing them concurrently (in opposite
// orders, with a stranger's outcome for each mixed in) applies each once.
func TestNodesClaimWebhooks(t *testing.T) {
	url := testURL(t)
	schema := newSchema(t, url)
	ctx := context.Background()
	nodes := openNodes(t, url, schema, 2)
	a := storetest.MustCreateAccount(t, nodes[0])
	p := storetest.MustCreateProfile(t, nodes[0], a.ID, "Main", storetest.T0, func(p *verifyd.Profile) {
		p.WebhookURL = "https://hooks.example/"
	})
	const n = 40
	for i := range n {
		storetest.MustCreateVerification(t, nodes[0], storetest.NewVerification(p, fmt.Sprintf("+1555100%04d", i), storetest.T0))
	}
	now := storetest.T0.Add(24 * time.Hour)
	if k, err := nodes[0].ExpirePending(ctx, now, n); err != nil || k != n {
		t.Fatalf("ExpirePending: %d, %v", k, err)
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	claimed := map[string]string{} // event ID → worker
	for w := range 8 {
		wg.Go(func() {
			worker := fmt.Sprintf("w%d", w)
			for {
				ds, err := nodes[w%2].ClaimWebhooks(ctx, verifyd.ClaimParams{Worker: worker, Now: now, Lease: time.Minute, Limit: 3})
				if err != nil {
					t.Errorf("ClaimWebhooks: %v", err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					if prev, ok := claimed[d.Event.ID]; ok {
						t.Errorf("%s claimed by %s and %s", d.Event.ID, prev, worker)
					}
					claimed[d.Event.ID] = worker
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != n {
		t.Fatalf("claimed %d deliveries, want %d", len(claimed), n)
	}

	var outs []verifyd.WebhookOutcome
	for id, worker := range claimed {
		at := now.Add(time.Second)
		outs = append(outs,
			verifyd.WebhookOutcome{EventID: id, Worker: "stranger", Now: at, State: verifyd.WebhookFailed},
			verifyd.WebhookOutcome{EventID: id, Worker: worker, Now: at, State: verifyd.WebhookDelivered,
				Attempt: &verifyd.WebhookAttempt{EventID: id, AccountID: a.ID, Attempt: 1, URL: p.WebhookURL, StatusCode: 200, At: at}})
	}
	applied := make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			batch := slices.Clone(outs)
			if i == 1 {
				slices.Reverse(batch)
			}
			for j, err := range nodes[i].FinishWebhooks(ctx, batch) {
				switch {
				case err == nil:
					if batch[j].Worker == "stranger" {
						t.Errorf("a stranger's outcome applied")
					}
					mu.Lock()
					applied[i]++
					mu.Unlock()
				case err != verifyd.ErrLeaseLost:
					t.Errorf("FinishWebhooks: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if applied[0]+applied[1] != n {
		t.Fatalf("applied %d+%d outcomes, want %d", applied[0], applied[1], n)
	}
	ds, total, err := nodes[1].ListWebhookDeliveries(ctx, a.ID, verifyd.WebhookFilter{State: verifyd.WebhookDelivered})
	if err != nil || total != n || len(ds) != n {
		t.Fatalf("delivered: %d of %d, %v", len(ds), total, err)
	}
	for _, d := range ds {
		if _, as, err := nodes[0].GetWebhookDelivery(ctx, a.ID, d.Event.ID); err != nil || d.Attempts != 1 || len(as) != 1 {
			t.Fatalf("delivery %s: %d attempts, %d recorded, %v", d.Event.ID, d.Attempts, len(as), err)
		}
	}
}

// openNodes opens n stores on one schema (n nodes of a cluster), closed
// when tb ends.
func openNodes(tb testing.TB, url, schema string, n int, opts ...postgres.Option) []*postgres.Store {
	tb.Helper()
	nodes := make([]*postgres.Store, n)
	for i := range nodes {
		s, err := postgres.Open(context.Background(), url,
			append([]postgres.Option{postgres.WithSchema(schema), postgres.WithMaxConns(testConns)}, opts...)...)
		if err != nil {
			tb.Fatalf("Open: %v", err)
		}
		tb.Cleanup(func() { s.Close() })
		nodes[i] = s
	}
	return nodes
}
