package fraud

import (
	"context"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func TestMemStore_Counts(t *testing.T) {
	ctx := context.Background()
	st := NewMemStore()
	t0 := time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)
	for _, at := range []time.Time{t0, t0.Add(10 * time.Second), t0.Add(time.Minute), t0.Add(2 * time.Hour)} {
		if err := st.Incr(ctx, "+44791", KindSent, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Incr(ctx, "+44791", KindCompleted, t0); err != nil {
		t.Fatal(err)
	}
	minutes, hours, err := st.Counts(ctx, "+44791", t0.Add(-time.Hour), t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []Bucket{
		{Start: t0.Truncate(time.Minute), Sent: 2, Completed: 1},
		{Start: t0.Truncate(time.Minute).Add(time.Minute), Sent: 1},
		{Start: t0.Truncate(time.Minute).Add(2 * time.Hour), Sent: 1},
	}
	if len(minutes) != len(want) {
		t.Fatalf("minutes %+v, want %+v", minutes, want)
	}
	for i := range want {
		if minutes[i] != want[i] {
			t.Errorf("minute %d: %+v, want %+v", i, minutes[i], want[i])
		}
	}
	if len(hours) != 2 || hours[0].Sent != 3 || hours[0].Completed != 1 || hours[1].Sent != 1 {
		t.Errorf("hours %+v", hours)
	}
	// since excludes earlier buckets.
	minutes, _, _ = st.Counts(ctx, "+44791", t0.Add(30*time.Second), t0.Add(time.Hour))
	if len(minutes) != 2 {
		t.Errorf("minutes since 10:01: %+v", minutes)
	}
	// Other prefixes are separate.
	if m, h, _ := st.Counts(ctx, "+44792", t0.Add(-time.Hour), t0.Add(-time.Hour)); m != nil || h != nil {
		t.Errorf("unknown prefix has counts %v %v", m, h)
	}
}

func TestMemStore_RingDropsOld(t *testing.T) {
	ctx := context.Background()
	st := NewMemStore()
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	_ = st.Incr(ctx, "+1212", KindSent, t0)
	later := t0.Add(MinuteRetention) // same ring slot as t0
	_ = st.Incr(ctx, "+1212", KindSent, later)
	// A completion of the old send arrives late: it must not touch the
	// newer bucket that took its slot.
	_ = st.Incr(ctx, "+1212", KindCompleted, t0)
	minutes, _, _ := st.Counts(ctx, "+1212", t0.Add(-time.Hour), later)
	if len(minutes) != 1 || !minutes[0].Start.Equal(later) || minutes[0].Sent != 1 || minutes[0].Completed != 0 {
		t.Fatalf("minutes %+v, want only the newer bucket, untouched", minutes)
	}
}

func TestMemStore_Blocks(t *testing.T) {
	ctx := context.Background()
	st := NewMemStore()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	put := func(b Block) {
		if err := st.PutBlock(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	put(Block{Prefix: "+44", Start: now, Until: now.Add(time.Hour), Manual: true})
	put(Block{Prefix: "+44791", Start: now, Until: now.Add(2 * time.Hour), Level: 1})
	put(Block{Prefix: "+33612", Start: now.Add(-2 * time.Hour), Until: now.Add(-time.Hour), Level: 1})

	got, _ := st.MatchBlocks(ctx, "+447911123456", now)
	if len(got) != 2 || got[0].Prefix != "+44791" || got[1].Prefix != "+44" {
		t.Fatalf("match %+v, want +44791 then +44", got)
	}
	if got, _ := st.MatchBlocks(ctx, "+33612345678", now); got != nil {
		t.Errorf("expired block matched: %+v", got)
	}
	list, _ := st.ListBlocks(ctx, now)
	if len(list) != 2 || list[0].Prefix != "+44" || list[1].Prefix != "+44791" {
		t.Errorf("list %+v", list)
	}
	if _, err := st.LiftBlock(ctx, "+33612", now); verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
		t.Errorf("lift of expired block: %v", err)
	}
	b, err := st.LiftBlock(ctx, "+44791", now)
	if err != nil || !b.LiftedAt.Equal(now) {
		t.Fatalf("lift: %+v %v", b, err)
	}
	if got, _ := st.MatchBlocks(ctx, "+447911123456", now); len(got) != 1 || got[0].Prefix != "+44" {
		t.Errorf("after lift: %+v", got)
	}
	last, ok, _ := st.LastBlock(ctx, "+44791")
	if !ok || last.LiftedAt.IsZero() {
		t.Errorf("last block %+v %v, want the lifted one", last, ok)
	}
}

func TestMemStore_Ledger(t *testing.T) {
	ctx := context.Background()
	st := NewMemStore()
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if total, _ := st.AddSpend(ctx, "p", day, Amount(0.05)); total != Amount(0.05) {
		t.Fatalf("total %v", total)
	}
	if total, _ := st.AddSpend(ctx, "p", day, Amount(0.07)); total != Amount(0.12) {
		t.Fatalf("total %v", total)
	}
	if s, _ := st.Spend(ctx, "p", day.Add(24*time.Hour)); s != 0 {
		t.Errorf("next day spend %v", s)
	}
	if s, _ := st.Spend(ctx, "q", day); s != 0 {
		t.Errorf("other profile spend %v", s)
	}
}
