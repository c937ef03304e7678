package fraud

import (
	"context"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/verifyd/verifyd"
)

// testClock is a settable clock for tests.
type testClock struct{ t time.Time }

func (c *testClock) Now() time.Time          { return c.t }
func (c *testClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// testGuard returns a Guard on a fresh MemStore with destinations "*" and
// the shipped defaults otherwise; edit adjusts the config.
func testGuard(tb testing.TB, edit func(*Config)) (*Guard, *MemStore, *testClock) {
	tb.Helper()
	clk := &testClock{t: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	cfg := DefaultConfig()
	cfg.Now = clk.Now
	cfg.Destinations = []string{"*"}
	if edit != nil {
		edit(&cfg)
	}
	st := NewMemStore()
	g, err := NewGuard(cfg, st, st)
	if err != nil {
		tb.Fatal(err)
	}
	return g, st, clk
}

// example returns libphonenumber's example number of a type in E.164.
func example(tb testing.TB, region string, t phonenumbers.PhoneNumberType) string {
	tb.Helper()
	n := phonenumbers.GetExampleNumberForType(region, t)
	if n == nil {
		tb.Fatalf("no example %v number for %s", t, region)
	}
	return phonenumbers.Format(n, phonenumbers.E164)
}

func wantCode(tb testing.TB, err error, code string) *verifyd.Error {
	tb.Helper()
	if got := verifyd.ErrorCode(err); got != code {
		tb.Fatalf("error %v: code %q, want %q", err, got, code)
	}
	e, _ := err.(*verifyd.Error)
	return e
}

// send checks and, if allowed, records a send to phone; it returns Check's error.
func send(tb testing.TB, g *Guard, phone string) error {
	tb.Helper()
	ctx := context.Background()
	_, err := g.Check(ctx, Request{ProfileID: "p", Channel: verifyd.SMS, Phone: phone})
	if err != nil {
		return err
	}
	if err := g.Sent(ctx, Attempt{ProfileID: "p", Channel: verifyd.SMS, Phone: phone}); err != nil {
		tb.Fatal(err)
	}
	return nil
}
