package fraud

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/verifyd/verifyd"
)

// Money is an amount in millionths of the price table's currency (USD by
// default), so that sums never drift.
type Money int64

// Amount converts a decimal amount (as in daily_spend_limit) to Money.
func Amount(f float64) Money { return Money(math.Round(f * 1e6)) }

// Float returns m as a decimal amount.
func (m Money) Float() float64 { return float64(m) / 1e6 }

func (m Money) String() string { return fmt.Sprintf("%.4f", m.Float()) }

// PriceTable prices one send by destination region and channel. Keys of
// Prices are "GB/sms" (region and channel), "GB" (region, any channel) or
// "*/call" (any region, one channel); the most specific wins, then Default.
type PriceTable struct {
	Default Money
	Prices  map[string]Money
}

type priceKey struct {
	region  string
	channel verifyd.Channel
}

// prices is a PriceTable compiled for allocation-free lookups.
type prices struct {
	def Money
	m   map[priceKey]Money
}

func compilePrices(t PriceTable) (prices, error) {
	p := prices{def: t.Default, m: make(map[priceKey]Money, len(t.Prices))}
	if t.Default < 0 {
		return p, fmt.Errorf("fraud: negative default price")
	}
	for k, v := range t.Prices {
		if v < 0 {
			return p, fmt.Errorf("fraud: negative price for %q", k)
		}
		region, ch, _ := strings.Cut(k, "/")
		if region == "" || region == "*" && ch == "" {
			return p, fmt.Errorf("fraud: bad price key %q (want REGION, REGION/channel or */channel)", k)
		}
		p.m[priceKey{strings.ToUpper(region), verifyd.Channel(ch)}] = v
	}
	return p, nil
}

func (p prices) price(region string, ch verifyd.Channel) Money {
	if v, ok := p.m[priceKey{region, ch}]; ok {
		return v
	}
	if v, ok := p.m[priceKey{region, ""}]; ok {
		return v
	}
	if v, ok := p.m[priceKey{"*", ch}]; ok {
		return v
	}
	return p.def
}

// SpendAlert reports that a profile's spend of a UTC day reached a share of
// its daily limit.
type SpendAlert struct {
	ProfileID string
	Day       time.Time // 00:00 UTC of the day
	Percent   int       // 80 or 100
	Spent     Money
	Limit     Money
}

func utcDay(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// checkSpend refuses a send whose price would take the profile's spend of
// today past limit.
func checkSpend(ctx context.Context, l Ledger, profileID string, limit Money, price Money, now time.Time) error {
	day := utcDay(now)
	spent, err := l.Spend(ctx, profileID, day)
	if err != nil {
		return err
	}
	if spent+price <= limit {
		return nil
	}
	e := verifyd.Errorf(verifyd.ESPENDLIMIT,
		"The daily spend limit of this profile (%s) is reached: %s spent today (UTC), this send costs %s. Sending resumes at 00:00 UTC or when daily_spend_limit is raised.",
		limit, spent, price)
	e.RetryAfter = ceilSeconds(day.Add(24 * time.Hour).Sub(now))
	return e
}

// addSpend books amount and returns the alerts whose threshold this addition
// crossed: each (profile, day, threshold) is crossed by exactly one call as
// long as the limit is unchanged during the day.
func addSpend(ctx context.Context, l Ledger, profileID string, limit *Money, amount Money, now time.Time) ([]SpendAlert, error) {
	if amount <= 0 {
		return nil, nil
	}
	day := utcDay(now)
	total, err := l.AddSpend(ctx, profileID, day, amount)
	if err != nil || limit == nil || *limit <= 0 {
		return nil, err
	}
	prev := total - amount
	var alerts []SpendAlert
	for _, pct := range [...]int{80, 100} { // the percentages at which OnSpend fires
		// threshold = limit*pct/100, compared without rounding: x*100 >= limit*pct.
		at := func(x Money) bool { return int64(x)*100 >= int64(*limit)*int64(pct) }
		if !at(prev) && at(total) {
			alerts = append(alerts, SpendAlert{ProfileID: profileID, Day: day, Percent: pct, Spent: total, Limit: *limit})
		}
	}
	return alerts, nil
}

func ceilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
