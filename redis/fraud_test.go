package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/fraud"
)

// openFraudPair returns two FraudStores on their own clients and one key
// prefix (two nodes), cleaned up when the test ends.
func openFraudPair(t *testing.T) (*FraudStore, *FraudStore) {
	t.Helper()
	url := testURL(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "verifyd-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() { deleteKeys(t, url, prefix) })
	open := func() *FraudStore {
		s, err := OpenFraud(url, FraudOptions{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	return open(), open()
}

var t0 = time.Date(2026, 3, 14, 9, 26, 0, 0, time.UTC)

func TestFraudStore_Counts(t *testing.T) {
	a, b := openFraudPair(t)
	ctx := context.Background()
	for i, s := range []*FraudStore{a, b, a} { // both nodes add to one series
		if err := s.Incr(ctx, "+44740", fraud.KindSent, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Incr(ctx, "+44740", fraud.KindCompleted, t0); err != nil {
		t.Fatal(err)
	}
	mins, hours, err := a.Counts(ctx, "+44740", t0, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint([]fraud.Bucket{{Start: t0, Sent: 1, Completed: 1}, {Start: t0.Add(time.Minute), Sent: 1}, {Start: t0.Add(2 * time.Minute), Sent: 1}})
	if fmt.Sprint(mins) != want {
		t.Fatalf("minutes = %v, want %v", mins, want)
	}
	if len(hours) != 1 || hours[0].Sent != 3 || hours[0].Completed != 1 || !hours[0].Start.Equal(t0.Truncate(time.Hour)) {
		t.Fatalf("hours = %v", hours)
	}
	// minutesSince cuts; another prefix is empty.
	if mins, _, _ := b.Counts(ctx, "+44740", t0.Add(90*time.Second), t0); len(mins) != 1 {
		t.Fatalf("minutes since t0+90s = %v, want the last one", mins)
	}
	if mins, hours, _ := b.Counts(ctx, "+44741", t0, t0); mins != nil || hours != nil {
		t.Fatalf("empty prefix: %v %v", mins, hours)
	}
	// Old buckets are pruned once the hash outgrows its retention.
	for i := 0; i < int(2*minuteSlots+10); i++ {
		if err := a.Incr(ctx, "+44742", fraud.KindSent, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := a.client.HLen(ctx, a.opts.Prefix+"m:+44742").Result()
	if err != nil || n > 2*minuteSlots+8 {
		t.Fatalf("minute hash holds %d fields (%v), want at most %d", n, err, 2*minuteSlots+8)
	}
}

func TestFraudStore_Blocks(t *testing.T) {
	a, b := openFraudPair(t)
	ctx := context.Background()
	if bs, err := b.MatchBlocks(ctx, "+447400123456", t0); err != nil || bs != nil {
		t.Fatalf("no blocks: %v %v", bs, err)
	}
	blk := fraud.Block{Prefix: "+447400", Start: t0, Until: t0.Add(time.Hour), Level: 1, Reason: "test",
		Evidence: fraud.Evidence{Rule: "window", Window: time.Hour, Sends: 20, Conversion: 0.05}}
	if err := a.PutBlock(ctx, blk); err != nil {
		t.Fatal(err)
	}
	if err := a.PutBlock(ctx, fraud.Block{Prefix: "+44", Start: t0, Until: t0.Add(time.Minute), Manual: true}); err != nil {
		t.Fatal(err)
	}
	got, err := b.MatchBlocks(ctx, "+447400123456", t0.Add(30*time.Second))
	if err != nil || len(got) != 2 || got[0].Prefix != "+447400" || got[0].Evidence.Sends != 20 || got[1].Prefix != "+44" {
		t.Fatalf("match on the other node = %+v, %v", got, err)
	}
	if got, _ := b.MatchBlocks(ctx, "+447400123456", t0.Add(2*time.Minute)); len(got) != 1 {
		t.Fatalf("after the +44 block ended: %+v", got)
	}
	if l, _ := b.ListBlocks(ctx, t0.Add(2*time.Minute)); len(l) != 1 || l[0].Prefix != "+447400" {
		t.Fatalf("list = %+v", l)
	}
	lifted, err := b.LiftBlock(ctx, "+447400", t0.Add(3*time.Minute))
	if err != nil || !lifted.LiftedAt.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("lift = %+v, %v", lifted, err)
	}
	if _, err := a.LiftBlock(ctx, "+447400", t0.Add(4*time.Minute)); verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
		t.Fatalf("second lift: %v, want ENOTFOUND", err)
	}
	last, ok, err := a.LastBlock(ctx, "+447400")
	if err != nil || !ok || last.LiftedAt.IsZero() || last.Level != 1 {
		t.Fatalf("last = %+v %v %v", last, ok, err)
	}
	if _, ok, _ := a.LastBlock(ctx, "+4474"); ok {
		t.Fatal("a prefix never blocked has a last block")
	}
	// Long-ended blocks are dropped by a listing.
	if _, err := a.ListBlocks(ctx, t0.Add(fraud.HourRetention+2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.LastBlock(ctx, "+44"); ok {
		t.Fatal("a block ended beyond the retention was kept")
	}
}

func TestFraudStore_LedgerAcrossNodes(t *testing.T) {
	a, b := openFraudPair(t)
	ctx := context.Background()
	day := t0.Truncate(24 * time.Hour)
	var wg sync.WaitGroup
	totals := make(chan fraud.Money, 200)
	for i := range 200 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.AddSpend(ctx, "p1", day, fraud.Amount(0.01))
			if err != nil {
				t.Error(err)
			}
			totals <- n
		}()
	}
	wg.Wait()
	close(totals)
	seen := map[fraud.Money]bool{}
	for n := range totals {
		if seen[n] {
			t.Fatalf("two additions saw the same total %v: not atomic", n)
		}
		seen[n] = true
	}
	if n, err := b.Spend(ctx, "p1", day); err != nil || n != fraud.Amount(2) {
		t.Fatalf("spend = %v, %v; want 2.00", n, err)
	}
	if n, _ := b.Spend(ctx, "p1", day.Add(24*time.Hour)); n != 0 {
		t.Fatalf("next day spend = %v", n)
	}
}

// TestFraudStore_GuardsShareBlocks: two Guards (two nodes) on one Redis: a
// prefix pumped through one node is blocked on the other.
func TestFraudStore_GuardsShareBlocks(t *testing.T) {
	a, b := openFraudPair(t)
	ctx := context.Background()
	now := t0
	clock := func() time.Time { return now }
	guard := func(s *FraudStore) *fraud.Guard {
		cfg := fraud.DefaultConfig()
		cfg.Now, cfg.Destinations = clock, []string{"*"}
		g, err := fraud.NewGuard(cfg, s, s)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	ga, gb := guard(a), guard(b)
	req := func(phone string) fraud.Request {
		return fraud.Request{ProfileID: "p", Channel: verifyd.SMS, Phone: phone, Destinations: []string{"*"}}
	}
	for i := range 40 {
		phone := fmt.Sprintf("+4474001%05d", i)
		d, err := ga.Check(ctx, req(phone))
		if verifyd.ErrorCode(err) == verifyd.EPREFIXBLOCK {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := ga.Sent(ctx, fraud.Attempt{ProfileID: "p", Channel: verifyd.SMS, Phone: phone, Prefix: d.Prefix, Region: d.Region}); err != nil {
			t.Fatal(err)
		}
		now = now.Add(20 * time.Second)
	}
	_, err := gb.Check(ctx, req("+447400199999"))
	if verifyd.ErrorCode(err) != verifyd.EPREFIXBLOCK {
		t.Fatalf("node B: %v, want V0004 (the block node A recorded)", err)
	}
	if n, _ := b.Spend(ctx, "p", now.Truncate(24*time.Hour)); n == 0 {
		t.Fatal("node A's spend is not in the shared ledger")
	}
}
