package fraud

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

func TestPriceTable(t *testing.T) {
	p, err := compilePrices(PriceTable{Default: Amount(0.10), Prices: map[string]Money{
		"GB/sms": Amount(0.04), "GB": Amount(0.09), "*/call": Amount(0.02),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		region string
		ch     verifyd.Channel
		want   Money
	}{
		{"GB", verifyd.SMS, Amount(0.04)},
		{"GB", verifyd.Call, Amount(0.09)},
		{"DE", verifyd.Call, Amount(0.02)},
		{"DE", verifyd.SMS, Amount(0.10)},
	} {
		if got := p.price(tc.region, tc.ch); got != tc.want {
			t.Errorf("%s/%s: %v, want %v", tc.region, tc.ch, got, tc.want)
		}
	}
	for _, bad := range []map[string]Money{{"": 1}, {"*": 1}, {"GB": -1}} {
		if _, err := compilePrices(PriceTable{Prices: bad}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestSpend_LimitAndAlerts(t *testing.T) {
	var alerts []SpendAlert
	g, _, clk := testGuard(t, func(c *Config) {
		c.Prices = PriceTable{Default: Amount(0.05)}
		c.OnSpend = func(a SpendAlert) { alerts = append(alerts, a) }
	})
	ctx := context.Background()
	clk.t = time.Date(2026, 3, 2, 23, 0, 0, 0, time.UTC)
	limit := Amount(0.25)
	phone := "+447400123456"
	try := func() error {
		d, err := g.Check(ctx, Request{ProfileID: "p", Channel: verifyd.SMS, Phone: phone, SpendLimit: &limit})
		if err != nil {
			return err
		}
		if d.Price != Amount(0.05) {
			t.Fatalf("price %v", d.Price)
		}
		return g.Sent(ctx, Attempt{ProfileID: "p", Channel: verifyd.SMS, Phone: phone, SpendLimit: &limit})
	}
	for i := range 5 {
		if err := try(); err != nil {
			t.Fatalf("send %d under the limit: %v", i+1, err)
		}
	}
	e := wantCode(t, try(), verifyd.ESPENDLIMIT)
	if e.RetryAfter != 3600 {
		t.Errorf("RetryAfter %d, want 3600 (to 00:00 UTC)", e.RetryAfter)
	}
	if !strings.Contains(e.Message, "0.2500") {
		t.Errorf("message %q does not give the limit", e.Message)
	}
	if len(alerts) != 2 || alerts[0].Percent != 80 || alerts[0].Spent != Amount(0.20) || alerts[1].Percent != 100 {
		t.Fatalf("alerts %+v, want 80 %% at 0.20 then 100 %%", alerts)
	}
	// Another profile has its own budget; no limit means no check.
	if _, err := g.Check(ctx, Request{ProfileID: "q", Channel: verifyd.SMS, Phone: phone, SpendLimit: &limit}); err != nil {
		t.Errorf("other profile: %v", err)
	}
	if _, err := g.Check(ctx, Request{ProfileID: "p", Channel: verifyd.SMS, Phone: phone}); err != nil {
		t.Errorf("no limit: %v", err)
	}
	// A new UTC day starts from zero, and alerts fire again once.
	clk.Advance(time.Hour)
	for i := range 5 {
		if err := try(); err != nil {
			t.Fatalf("next day send %d: %v", i+1, err)
		}
	}
	if len(alerts) != 4 || !alerts[3].Day.Equal(time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("alerts %+v", alerts)
	}
}

func TestSpend_FailoverBilledNotCounted(t *testing.T) {
	g, st, clk := testGuard(t, nil)
	ctx := context.Background()
	a := Attempt{ProfileID: "p", Channel: verifyd.SMS, Phone: "+447400123456", Cost: Amount(0.07), Failover: true}
	if err := g.Sent(ctx, a); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Spend(ctx, "p", utcDay(clk.Now())); s != Amount(0.07) {
		t.Errorf("spend %v, want the reported cost 0.07", s)
	}
	if m, _, _ := st.Counts(ctx, "+44740", clk.Now().Add(-time.Hour), clk.Now()); m != nil {
		t.Errorf("a failover attempt counted as a send: %+v", m)
	}
	a.Test = true
	if err := g.Sent(ctx, a); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.Spend(ctx, "p", utcDay(clk.Now())); s != Amount(0.07) {
		t.Errorf("a test send was billed: %v", s)
	}
}
