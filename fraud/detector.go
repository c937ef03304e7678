package fraud

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/verifyd/verifyd"
)

// PrefixConfig tunes the per-prefix fraud guard. A prefix is "+", the
// country calling code and the first Digits national digits ("+44791").
//
// On every send the guard weighs the prefix's sends of the last Window:
// a send younger than MinAge counts 0 (nobody could have typed its code
// yet), one older than Maturity counts 1, in between it ramps linearly. If
// the weighted sends reach Floor and the completions of those sends are
// fewer than Threshold times them, the prefix is blocked; the same test runs
// over LongWindow with LongFloor, to catch slow attacks. A block lasts
// Escalation[0]. When it ends the prefix is on probation for
// EscalationMemory: only sends after the block count, against
// ProbationFloor, and a new block lasts the next step. An attack that
// stopped leaves no stale evidence; one that goes on is re-blocked after a
// few sends. A lifted block resets both the escalation and the evidence
// (only sends after the lift count).
type PrefixConfig struct {
	Digits           int
	Window           time.Duration
	Floor            float64
	LongWindow       time.Duration
	LongFloor        float64
	Threshold        float64
	MinAge           time.Duration
	Maturity         time.Duration
	Escalation       []time.Duration
	EscalationMemory time.Duration
	// ProbationFloor replaces both floors while a prefix is on probation
	// (after an automatic block, for EscalationMemory); only sends after the
	// block count then.
	ProbationFloor float64
	// Monitor records would-be blocks (Block.MonitorOnly, OnBlock, the
	// monitor counters) without refusing anything: for tuning on real
	// traffic before enforcing.
	Monitor bool
	// SafeNumbers (E.164) and SafePrefixes ("+4479") are never blocked,
	// automatically or manually, and do not feed the statistics.
	SafeNumbers  []string
	SafePrefixes []string
}

// DefaultPrefixConfig returns the shipped tuning (docs/fraud.md shows what
// it does on a simulated day).
func DefaultPrefixConfig() PrefixConfig {
	return PrefixConfig{
		Digits:           4,
		Window:           time.Hour,
		Floor:            20,
		LongWindow:       24 * time.Hour,
		LongFloor:        30,
		Threshold:        0.2,
		MinAge:           15 * time.Second,
		Maturity:         3 * time.Minute,
		Escalation:       []time.Duration{time.Hour, 4 * time.Hour, 24 * time.Hour},
		EscalationMemory: 24 * time.Hour,
		ProbationFloor:   5,
	}
}

// Validate reports a configuration the guard cannot run with.
func (c PrefixConfig) Validate() error {
	switch {
	case c.Digits < 0 || c.Digits > 12:
		return fmt.Errorf("fraud: prefix digits %d out of 0-12", c.Digits)
	case c.Window <= 0 || c.Window+c.Maturity+time.Hour > MinuteRetention:
		return fmt.Errorf("fraud: window %s must be positive and at most %s", c.Window, MinuteRetention-c.Maturity-time.Hour)
	case c.LongWindow < 0 || c.LongWindow+time.Hour > HourRetention:
		return fmt.Errorf("fraud: long window %s out of 0-%s", c.LongWindow, HourRetention-time.Hour)
	case c.Floor < 1 || c.LongFloor < 1 || c.ProbationFloor < 1:
		return fmt.Errorf("fraud: floors must be at least 1")
	case c.Threshold <= 0 || c.Threshold >= 1:
		return fmt.Errorf("fraud: threshold %v out of (0,1)", c.Threshold)
	case c.MinAge < 0 || c.Maturity <= c.MinAge:
		return fmt.Errorf("fraud: need 0 <= min age < maturity")
	case len(c.Escalation) == 0:
		return fmt.Errorf("fraud: escalation needs at least one duration")
	}
	for _, d := range c.Escalation {
		if d <= 0 {
			return fmt.Errorf("fraud: escalation durations must be positive")
		}
	}
	for _, p := range append(slices.Clone(c.SafeNumbers), c.SafePrefixes...) {
		if !validPrefix(p) {
			return fmt.Errorf("fraud: safe entry %q is not '+' and 1-15 digits", p)
		}
	}
	return nil
}

func validPrefix(p string) bool {
	if len(p) < 2 || len(p) > 16 || p[0] != '+' || p[1] == '0' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

// callingCodeLen returns the length of the country calling code of an E.164
// number, 0 if none is known. Calling codes are prefix-free.
func callingCodeLen(phone string) int {
	for n := 1; n <= 3 && n < len(phone); n++ {
		cc, err := strconv.Atoi(phone[1 : 1+n])
		if err == nil && phonenumbers.GetRegionCodeForCountryCode(cc) != "ZZ" {
			return n
		}
	}
	return 0
}

// prefixOf returns the fraud prefix of an E.164 number whose country
// calling code is cc.
func prefixOf(phone string, cc int32, digits int) string {
	n := 2 + digits
	for x := cc; x >= 10; x /= 10 {
		n++
	}
	if cc <= 0 || n > len(phone) {
		return phone
	}
	return phone[:n]
}

type safeList struct {
	numbers  map[string]bool
	prefixes []string
}

func newSafeList(c PrefixConfig) safeList {
	s := safeList{numbers: map[string]bool{}, prefixes: slices.Clone(c.SafePrefixes)}
	for _, n := range c.SafeNumbers {
		s.numbers[n] = true
	}
	return s
}

func (s safeList) has(phone string) bool {
	if s.numbers[phone] {
		return true
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(phone, p) {
			return true
		}
	}
	return false
}

// weight is how much a minute bucket starting at start counts as sends that
// had their chance to complete, at now.
func (c PrefixConfig) weight(now, start time.Time) float64 {
	if now.Sub(start) >= c.Maturity+time.Minute {
		return 1
	}
	end := minTime(start.Truncate(time.Minute).Add(time.Minute), now)
	age := now.Sub(start.Add(end.Sub(start) / 2))
	w := float64(age-c.MinAge) / float64(c.Maturity-c.MinAge)
	return min(max(w, 0), 1)
}

// probation reports whether prefix is on probation after its last block:
// an automatic block of the current mode that ended less than
// EscalationMemory ago and was not lifted.
func (c *PrefixConfig) probation(last Block, hasLast bool, now time.Time) bool {
	return hasLast && !last.Manual && last.LiftedAt.IsZero() && last.MonitorOnly == c.Monitor &&
		!now.Before(last.Until) && now.Sub(last.Until) <= c.EscalationMemory
}

// evaluate decides from the prefix's statistics whether it must be blocked
// now; it returns the evidence of the failed rule, or nil.
func (g *Guard) evaluate(ctx context.Context, prefix string, last Block, hasLast bool, now time.Time) (*Evidence, error) {
	c := &g.cfg.Prefix
	since := now.Add(-c.Window)
	longSince := now.Add(-c.LongWindow)
	floor, longFloor := c.Floor, c.LongFloor
	switch {
	case hasLast && !last.LiftedAt.IsZero():
		// A lift says the block was wrong: what came before is forgotten.
		since, longSince = maxTime(since, last.LiftedAt), maxTime(longSince, last.LiftedAt)
	case c.probation(last, hasLast, now):
		// Only sends after the block count, so a stopped attack leaves no
		// stale evidence behind; a lower floor re-blocks a running one fast.
		since, longSince = maxTime(since, last.Until), maxTime(longSince, last.Until)
		floor, longFloor = min(floor, c.ProbationFloor), min(longFloor, c.ProbationFloor)
	}
	// Hour buckets in [hourFrom, cutH) are wholly mature and carry the long
	// window; minute buckets carry the rest of it (after cutH, and before
	// hourFrom as far as they are kept).
	cutH := now.Add(-c.Maturity).Truncate(time.Hour)
	hourFrom := longSince.Add(time.Hour - 1).Truncate(time.Hour)
	minuteFrom := since.Truncate(time.Minute)
	if c.LongWindow > 0 {
		minuteFrom = minTime(minuteFrom, cutH)
		if longSince.After(now.Add(-MinuteRetention)) { // the part before hourFrom is still kept
			minuteFrom = minTime(minuteFrom, longSince.Truncate(time.Minute))
		}
	} else {
		hourFrom = now.Add(time.Hour)
	}
	minutes, hours, err := g.store.Counts(ctx, prefix, minuteFrom, hourFrom)
	if err != nil {
		return nil, err
	}
	// The minute bucket holding a window's start counts whole (after a
	// block or a lift it holds only sends after it: the block refused the
	// others), weighed as if its sends came no earlier than that start.
	sinceM, longSinceM := since.Truncate(time.Minute), longSince.Truncate(time.Minute)
	var short, long Evidence
	for _, b := range minutes {
		if !b.Start.Before(sinceM) {
			short.Sends += c.weight(now, maxTime(b.Start, since)) * float64(b.Sent)
			short.Completed += b.Completed
		}
		if c.LongWindow > 0 && !b.Start.Before(longSinceM) && (b.Start.Before(hourFrom) || !b.Start.Before(cutH)) {
			long.Sends += c.weight(now, maxTime(b.Start, longSince)) * float64(b.Sent)
			long.Completed += b.Completed
		}
	}
	for _, b := range hours {
		if !b.Start.Before(hourFrom) && !b.Start.Add(time.Hour).After(cutH) {
			long.Sends += float64(b.Sent)
			long.Completed += b.Completed
		}
	}
	if fails(short, floor, c.Threshold) {
		short.Rule, short.Window, short.Floor = "window", now.Sub(since), floor
		short.Conversion = float64(short.Completed) / short.Sends
		return &short, nil
	}
	if c.LongWindow > 0 && fails(long, longFloor, c.Threshold) {
		long.Rule, long.Window, long.Floor = "long_window", now.Sub(longSince), longFloor
		long.Conversion = float64(long.Completed) / long.Sends
		return &long, nil
	}
	return nil, nil
}

func fails(e Evidence, floor, threshold float64) bool {
	return e.Sends >= floor && float64(e.Completed) < threshold*e.Sends
}

// autoBlock records an automatic block of prefix on evidence ev, one
// escalation step above the last block if the prefix is on probation.
func (g *Guard) autoBlock(ctx context.Context, prefix string, ev *Evidence, last Block, hasLast bool, now time.Time) (Block, error) {
	c := &g.cfg.Prefix
	level := 1
	if c.probation(last, hasLast, now) {
		level = min(last.Level+1, len(c.Escalation))
	}
	d := c.Escalation[level-1]
	b := Block{
		Prefix: prefix, Start: now, Until: now.Add(d), Level: level, MonitorOnly: c.Monitor, Evidence: *ev,
		Reason: fmt.Sprintf("conversion %.1f%% (%d completed of %.1f matured sends) below %.0f%% over the last %s (%s rule, floor %.0f); automatic block step %d of %d for %s",
			100*ev.Conversion, ev.Completed, ev.Sends, 100*c.Threshold, ev.Window.Round(time.Second), ev.Rule,
			ev.Floor, level, len(c.Escalation), d),
	}
	if err := g.store.PutBlock(ctx, b); err != nil {
		return Block{}, err
	}
	if c.Monitor {
		g.monitorBlocks.Add(1)
	}
	if g.cfg.OnBlock != nil {
		g.cfg.OnBlock(b)
	}
	return b, nil
}

func blockedError(b Block, now time.Time) error {
	e := verifyd.Errorf(verifyd.EPREFIXBLOCK,
		"Sending to numbers starting %s is paused by the fraud guard until %s (unusual traffic to this range). Try another channel or retry later.",
		b.Prefix, b.Until.UTC().Format(time.RFC3339))
	e.RetryAfter = b.RetryAfter(now)
	return e
}

// checkPrefix refuses a number under an enforced block, and blocks its
// prefix when the statistics say so.
func (g *Guard) checkPrefix(ctx context.Context, phone, prefix string, now time.Time) error {
	if g.safe.has(phone) {
		return nil
	}
	blocks, err := g.store.MatchBlocks(ctx, phone, now)
	if err != nil {
		return err
	}
	selfBlocked := false
	for _, b := range blocks {
		if b.Prefix == prefix {
			selfBlocked = true
		}
		if !b.MonitorOnly {
			return blockedError(b, now)
		}
		g.monitorRefusals.Add(1)
	}
	if selfBlocked {
		return nil // a monitor-only block of this prefix is running
	}
	last, hasLast, err := g.store.LastBlock(ctx, prefix)
	if err != nil {
		return err
	}
	ev, err := g.evaluate(ctx, prefix, last, hasLast, now)
	if err != nil || ev == nil {
		return err
	}
	b, err := g.autoBlock(ctx, prefix, ev, last, hasLast, now)
	if err != nil {
		return err
	}
	if b.MonitorOnly {
		g.monitorRefusals.Add(1)
		return nil
	}
	return blockedError(b, now)
}

// Blocks lists the blocks in force (monitor-only ones included), by prefix.
func (g *Guard) Blocks(ctx context.Context) ([]Block, error) {
	return g.store.ListBlocks(ctx, g.now())
}

// BlockPrefix adds a manual block on prefix ("+" and 1-15 digits: a country
// code, a range or a full number) for d, enforced even in monitor mode.
func (g *Guard) BlockPrefix(ctx context.Context, prefix, reason string, d time.Duration) (Block, error) {
	if !validPrefix(prefix) {
		return Block{}, verifyd.Errorf(verifyd.EINVALID, "A prefix is '+' followed by 1 to 15 digits.").At("/prefix")
	}
	if d <= 0 {
		return Block{}, verifyd.Errorf(verifyd.EINVALID, "The block duration must be positive.").At("/duration")
	}
	if strings.TrimSpace(reason) == "" {
		return Block{}, verifyd.Errorf(verifyd.EREQUIRED, "A manual block needs a reason.").At("/reason")
	}
	now := g.now()
	b := Block{Prefix: prefix, Start: now, Until: now.Add(d), Manual: true, Reason: "manual: " + reason}
	if err := g.store.PutBlock(ctx, b); err != nil {
		return Block{}, err
	}
	return b, nil
}

// Lift ends the block in force on exactly prefix. The prefix's escalation
// restarts and its statistics before now stop counting (a lift says the
// block was wrong). ENOTFOUND if no block is in force.
func (g *Guard) Lift(ctx context.Context, prefix string) (Block, error) {
	return g.store.LiftBlock(ctx, prefix, g.now())
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func sortBlocks(bs []Block) {
	slices.SortFunc(bs, func(a, b Block) int { return strings.Compare(a.Prefix, b.Prefix) })
}
