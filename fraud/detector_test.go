package fraud

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// phoneIn returns the i-th number of the GB mobile range +447911 (prefix
// "+447911" with the default 4 digits).
func phoneIn(i int) string { return fmt.Sprintf("+4479110%05d", i) }

// burst sends n numbers of +447911 at the current instant and fails on a refusal.
func burst(t *testing.T, g *Guard, n int) {
	t.Helper()
	for i := range n {
		if err := send(t, g, phoneIn(i)); err != nil {
			t.Fatalf("send %d of the burst refused: %v", i, err)
		}
	}
}

func TestPrefix_BurstBlockedOnceMatured(t *testing.T) {
	var blocks []Block
	g, _, clk := testGuard(t, func(c *Config) { c.OnBlock = func(b Block) { blocks = append(blocks, b) } })
	// A burst is all young: nobody could have typed a code yet, so it
	// passes whole.
	burst(t, g, 100)
	clk.Advance(10 * time.Second)
	if err := send(t, g, phoneIn(100)); err != nil {
		t.Fatalf("young burst judged: %v", err)
	}
	clk.Advance(3 * time.Minute)
	e := wantCode(t, send(t, g, phoneIn(101)), verifyd.EPREFIXBLOCK)
	if e.RetryAfter != 3600 {
		t.Errorf("RetryAfter %d, want 3600", e.RetryAfter)
	}
	if !strings.Contains(e.Message, "+447911") {
		t.Errorf("message %q does not name the prefix", e.Message)
	}
	if len(blocks) != 1 {
		t.Fatalf("OnBlock calls %d, want 1", len(blocks))
	}
	b := blocks[0]
	if b.Prefix != "+447911" || b.Level != 1 || b.Evidence.Rule != "window" || b.Evidence.Completed != 0 || b.Evidence.Sends < 80 {
		t.Errorf("block %+v", b)
	}
	if !strings.Contains(b.Reason, "conversion 0.0%") {
		t.Errorf("reason %q", b.Reason)
	}
	// Other prefixes are unaffected.
	if err := send(t, g, "+447400123456"); err != nil {
		t.Errorf("other prefix: %v", err)
	}
}

func TestPrefix_HealthyConversionPasses(t *testing.T) {
	g, _, clk := testGuard(t, nil)
	ctx := context.Background()
	// 200 sends over 100 minutes, 7 in 10 completed 40 s after the send.
	for i := range 200 {
		if err := send(t, g, phoneIn(i)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		sentAt := clk.Now()
		clk.Advance(30 * time.Second)
		if i%10 < 7 {
			if err := g.Completed(ctx, phoneIn(i), sentAt); err != nil {
				t.Fatal(err)
			}
		}
	}
	if bs, _ := g.Blocks(ctx); len(bs) != 0 {
		t.Fatalf("blocks %+v", bs)
	}
}

func TestPrefix_LowConversionBelowFloorPasses(t *testing.T) {
	g, _, clk := testGuard(t, nil)
	burst(t, g, 19) // under the floor of 20
	clk.Advance(10 * time.Minute)
	if err := send(t, g, phoneIn(50)); err != nil {
		t.Fatalf("under the floor: %v", err)
	}
}

func TestPrefix_EscalationAndProbation(t *testing.T) {
	g, _, clk := testGuard(t, nil)
	var levels []int
	for _, want := range []time.Duration{time.Hour, 4 * time.Hour, 24 * time.Hour, 24 * time.Hour} {
		// After a block, one send to a quiet prefix passes: the evidence
		// before the block is not held against it.
		burst(t, g, 30)
		clk.Advance(3 * time.Minute)
		e := wantCode(t, send(t, g, phoneIn(999)), verifyd.EPREFIXBLOCK)
		if got := time.Duration(e.RetryAfter) * time.Second; got != want {
			t.Fatalf("block %d lasts %s, want %s", len(levels)+1, got, want)
		}
		bs, _ := g.Blocks(context.Background())
		levels = append(levels, bs[0].Level)
		clk.Advance(want)
	}
	if fmt.Sprint(levels) != "[1 2 3 3]" {
		t.Errorf("levels %v", levels)
	}
	// On probation a small floor (5) applies: 7 unconverted sends re-block.
	burst(t, g, 7)
	clk.Advance(3 * time.Minute)
	wantCode(t, send(t, g, phoneIn(999)), verifyd.EPREFIXBLOCK)
}

func TestPrefix_StoppedAttackLeavesNoStaleEvidence(t *testing.T) {
	g, _, clk := testGuard(t, nil)
	ctx := context.Background()
	burst(t, g, 50)
	clk.Advance(3 * time.Minute)
	wantCode(t, send(t, g, phoneIn(999)), verifyd.EPREFIXBLOCK)
	clk.Advance(time.Hour)
	// Legitimate users come back and complete.
	for i := range 20 {
		if err := send(t, g, phoneIn(i)); err != nil {
			t.Fatalf("legit send %d after the attack: %v", i, err)
		}
		if err := g.Completed(ctx, phoneIn(i), clk.Now()); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
}

func TestPrefix_LiftResets(t *testing.T) {
	g, _, clk := testGuard(t, nil)
	ctx := context.Background()
	burst(t, g, 50)
	clk.Advance(3 * time.Minute)
	wantCode(t, send(t, g, phoneIn(999)), verifyd.EPREFIXBLOCK)
	b, err := g.Lift(ctx, "+447911")
	if err != nil || b.LiftedAt.IsZero() {
		t.Fatalf("lift: %+v %v", b, err)
	}
	if _, err := g.Lift(ctx, "+447911"); verifyd.ErrorCode(err) != verifyd.ENOTFOUND {
		t.Errorf("second lift: %v", err)
	}
	// The 50 unconverted sends before the lift no longer count...
	if err := send(t, g, phoneIn(998)); err != nil {
		t.Fatalf("after lift: %v", err)
	}
	// ...and a new attack starts again at step 1 with the full floor.
	burst(t, g, 19)
	clk.Advance(3 * time.Minute)
	if err := send(t, g, phoneIn(997)); err != nil {
		t.Fatalf("19 new sends after a lift blocked: %v", err)
	}
	burst(t, g, 10)
	clk.Advance(3 * time.Minute)
	e := wantCode(t, send(t, g, phoneIn(996)), verifyd.EPREFIXBLOCK)
	if e.RetryAfter != 3600 {
		t.Errorf("after a lift the escalation restarts: RetryAfter %d", e.RetryAfter)
	}
}

func TestPrefix_ManualBlock(t *testing.T) {
	g, _, clk := testGuard(t, nil)
	ctx := context.Background()
	if _, err := g.BlockPrefix(ctx, "44", "x", time.Hour); verifyd.ErrorCode(err) != verifyd.EINVALID {
		t.Errorf("bad prefix: %v", err)
	}
	if _, err := g.BlockPrefix(ctx, "+4479", " ", time.Hour); verifyd.ErrorCode(err) != verifyd.EREQUIRED {
		t.Errorf("no reason: %v", err)
	}
	b, err := g.BlockPrefix(ctx, "+4479", "operator saw pumping", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Manual || b.Reason != "manual: operator saw pumping" {
		t.Errorf("block %+v", b)
	}
	clk.Advance(30 * time.Minute)
	e := wantCode(t, send(t, g, phoneIn(1)), verifyd.EPREFIXBLOCK)
	if e.RetryAfter != 5400 {
		t.Errorf("RetryAfter %d, want 5400", e.RetryAfter)
	}
	if err := send(t, g, "+447400123456"); err != nil {
		t.Errorf("+4474 is outside +4479: %v", err)
	}
	bs, _ := g.Blocks(ctx)
	if len(bs) != 1 || bs[0].Prefix != "+4479" {
		t.Errorf("blocks %+v", bs)
	}
	if _, err := g.Lift(ctx, "+4479"); err != nil {
		t.Fatal(err)
	}
	if err := send(t, g, phoneIn(1)); err != nil {
		t.Errorf("after lift: %v", err)
	}
}

func TestPrefix_SafeList(t *testing.T) {
	g, _, clk := testGuard(t, func(c *Config) {
		c.Prefix.SafeNumbers = []string{phoneIn(7)}
		c.Prefix.SafePrefixes = []string{"+44740"}
	})
	ctx := context.Background()
	burst(t, g, 50)
	clk.Advance(3 * time.Minute)
	wantCode(t, send(t, g, phoneIn(999)), verifyd.EPREFIXBLOCK)
	if err := send(t, g, phoneIn(7)); err != nil {
		t.Errorf("safe number blocked: %v", err)
	}
	if _, err := g.BlockPrefix(ctx, "+44", "everything", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := send(t, g, phoneIn(7)); err != nil {
		t.Errorf("safe number under a manual block: %v", err)
	}
	// A safe prefix is never judged, whatever its traffic.
	if _, err := g.Lift(ctx, "+44"); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := send(t, g, fmt.Sprintf("+4474001%05d", i)); err != nil {
			t.Fatalf("safe prefix: %v", err)
		}
	}
	clk.Advance(5 * time.Minute)
	if err := send(t, g, "+447400199999"); err != nil {
		t.Errorf("safe prefix blocked: %v", err)
	}
}

func TestPrefix_MonitorMode(t *testing.T) {
	var blocks []Block
	g, _, clk := testGuard(t, func(c *Config) {
		c.Prefix.Monitor = true
		c.OnBlock = func(b Block) { blocks = append(blocks, b) }
	})
	burst(t, g, 50)
	clk.Advance(3 * time.Minute)
	for i := range 3 {
		if err := send(t, g, phoneIn(900+i)); err != nil {
			t.Fatalf("monitor mode refused: %v", err)
		}
	}
	if len(blocks) != 1 || !blocks[0].MonitorOnly {
		t.Fatalf("OnBlock %+v, want one monitor-only block", blocks)
	}
	if nb, nr := g.MonitorStats(); nb != 1 || nr != 3 {
		t.Errorf("monitor stats blocks=%d refusals=%d, want 1 and 3", nb, nr)
	}
	bs, _ := g.Blocks(context.Background())
	if len(bs) != 1 || !bs[0].MonitorOnly {
		t.Errorf("blocks %+v", bs)
	}
	// Manual blocks are enforced even in monitor mode.
	if _, err := g.BlockPrefix(context.Background(), "+447911", "sure", time.Hour); err != nil {
		t.Fatal(err)
	}
	wantCode(t, send(t, g, phoneIn(990)), verifyd.EPREFIXBLOCK)
}

func TestPrefix_SlowAttackCaughtByLongWindow(t *testing.T) {
	var blocks []Block
	g, _, clk := testGuard(t, func(c *Config) { c.OnBlock = func(b Block) { blocks = append(blocks, b) } })
	start := clk.Now()
	// One send every 10 minutes, never completed: 6 an hour, far under the
	// 1-hour floor of 20.
	var blockedAfter time.Duration
	for i := range 60 {
		if err := send(t, g, phoneIn(i)); err != nil {
			blockedAfter = clk.Now().Sub(start)
			break
		}
		clk.Advance(10 * time.Minute)
	}
	if len(blocks) != 1 || blocks[0].Evidence.Rule != "long_window" {
		t.Fatalf("blocks %+v, want one long-window block", blocks)
	}
	// The long floor (30) is reached by the 31st send, 5 h after the first.
	if blockedAfter < 5*time.Hour || blockedAfter > 5*time.Hour+10*time.Minute {
		t.Errorf("blocked after %s, want about 5h", blockedAfter)
	}
}

func TestPrefixConfig_Validate(t *testing.T) {
	if err := DefaultPrefixConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*PrefixConfig){
		"window":     func(c *PrefixConfig) { c.Window = 3 * time.Hour },
		"long":       func(c *PrefixConfig) { c.LongWindow = 72 * time.Hour },
		"threshold":  func(c *PrefixConfig) { c.Threshold = 1 },
		"maturity":   func(c *PrefixConfig) { c.Maturity = c.MinAge },
		"escalation": func(c *PrefixConfig) { c.Escalation = nil },
		"safe":       func(c *PrefixConfig) { c.SafePrefixes = []string{"44"} },
		"probation":  func(c *PrefixConfig) { c.ProbationFloor = 0 },
	} {
		c := DefaultPrefixConfig()
		edit(&c)
		if c.Validate() == nil {
			t.Errorf("%s: invalid config accepted", name)
		}
	}
}
