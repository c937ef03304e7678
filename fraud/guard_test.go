package fraud

import (
	"context"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/verifyd/verifyd"
)

func TestGuard_OrderCheapestFirst(t *testing.T) {
	g, _, _ := testGuard(t, nil)
	ctx := context.Background()
	premium := example(t, "GB", phonenumbers.PREMIUM_RATE)
	// A premium number in a barred country: the allowlist answers first.
	_, err := g.Check(ctx, Request{Channel: verifyd.SMS, Phone: premium, Destinations: []string{"DE"}})
	wantCode(t, err, verifyd.EDESTINATION)
	// A premium number under a manual block: the type answers first.
	if _, err := g.BlockPrefix(ctx, "+44", "test", 3600e9); err != nil {
		t.Fatal(err)
	}
	_, err = g.Check(ctx, Request{Channel: verifyd.SMS, Phone: premium})
	wantCode(t, err, verifyd.ENUMBERTYPE)
	// A blocked prefix answers before the spend cap.
	zero := Money(0)
	_, err = g.Check(ctx, Request{Channel: verifyd.SMS, Phone: "+447400123456", SpendLimit: &zero})
	wantCode(t, err, verifyd.EPREFIXBLOCK)
	_, err = g.Check(ctx, Request{Channel: verifyd.SMS, Phone: "+4915123456789", SpendLimit: &zero})
	wantCode(t, err, verifyd.ESPENDLIMIT)
}

func TestGuard_OperatorDefaultDestinations(t *testing.T) {
	g, _, _ := testGuard(t, func(c *Config) { c.Destinations = nil })
	ctx := context.Background()
	// Shipped default: nothing allowed until the profile or operator says so.
	_, err := g.Check(ctx, Request{Channel: verifyd.SMS, Phone: "+447400123456"})
	wantCode(t, err, verifyd.EDESTINATION)
	if _, err := g.Check(ctx, Request{Channel: verifyd.SMS, Phone: "+447400123456", Destinations: []string{"GB"}}); err != nil {
		t.Fatal(err)
	}
	// An explicit empty list on the profile is deny-all too, not "default".
	g2, _, _ := testGuard(t, nil)
	_, err = g2.Check(ctx, Request{Channel: verifyd.SMS, Phone: "+447400123456", Destinations: []string{}})
	wantCode(t, err, verifyd.EDESTINATION)
}

func TestGuard_TestModeBypassesEverything(t *testing.T) {
	g, st, clk := testGuard(t, func(c *Config) { c.Destinations = nil })
	ctx := context.Background()
	zero := Money(0)
	r := Request{ProfileID: "p", Channel: verifyd.SMS, Phone: example(t, "GB", phonenumbers.PREMIUM_RATE), SpendLimit: &zero, Test: true}
	d, err := g.Check(ctx, r)
	if err != nil || !d.Test {
		t.Fatalf("test request: %+v %v", d, err)
	}
	if err := g.Sent(ctx, Attempt{ProfileID: "p", Channel: verifyd.SMS, Phone: r.Phone, Test: true}); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Spend(ctx, "p", utcDay(clk.Now())); s != 0 {
		t.Errorf("test send billed %v", s)
	}
}

func TestGuard_Decision(t *testing.T) {
	g, _, _ := testGuard(t, nil)
	num, _ := phonenumbers.Parse("+14155550123", "")
	for _, r := range []Request{
		{Channel: verifyd.SMS, Phone: "+14155550123"},
		{Channel: verifyd.SMS, Phone: "+14155550123", Number: num},
	} {
		d, err := g.Check(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if d.Region != "US" || d.Type != FixedLineOrMobile || d.Prefix != "+14155" || d.Price != Amount(0.05) {
			t.Errorf("decision %+v", d)
		}
	}
	_, err := g.Check(context.Background(), Request{Channel: verifyd.SMS, Phone: "+44"})
	wantCode(t, err, verifyd.EPHONEINVALID)
}

func TestNewRequest(t *testing.T) {
	limit := 12.5
	p := &verifyd.Profile{ID: "p1", DailySpendLimit: &limit, DailySpendLimitEnabled: true,
		Channels: map[verifyd.Channel]map[string]any{verifyd.SMS: {"whitelisted_destinations": []any{"GB", "DE"}}}}
	r := NewRequest(p, verifyd.SMS, "+447400123456")
	if r.ProfileID != "p1" || len(r.Destinations) != 2 || r.SpendLimit == nil || *r.SpendLimit != Amount(12.5) {
		t.Errorf("request %+v", r)
	}
	if r := NewRequest(p, verifyd.Call, "+447400123456"); r.Destinations != nil {
		t.Errorf("call destinations %v, want nil (operator default)", r.Destinations)
	}
	p.DailySpendLimitEnabled = false
	if r := NewRequest(p, verifyd.SMS, "+447400123456"); r.SpendLimit != nil {
		t.Errorf("disabled limit applied")
	}
}

func TestNewGuard_Invalid(t *testing.T) {
	st := NewMemStore()
	if _, err := NewGuard(DefaultConfig(), nil, st); err == nil {
		t.Error("nil store accepted")
	}
	cfg := DefaultConfig()
	cfg.Prices.Prices = map[string]Money{"": 1}
	if _, err := NewGuard(cfg, st, st); err == nil {
		t.Error("bad price key accepted")
	}
	cfg = DefaultConfig()
	cfg.Prefix.Floor = 0
	if _, err := NewGuard(cfg, st, st); err == nil {
		t.Error("zero floor accepted")
	}
}
