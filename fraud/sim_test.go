package fraud

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/verifyd/verifyd"
)

// The simulation replays one synthetic day through a Guard built from
// DefaultConfig (only the price table and destinations set) and checks the
// bars of docs/fraud.md. Everything is seeded: the figures are reproducible.

type simCountry struct {
	region string
	tz     float64 // hours from UTC
	share  float64 // of legitimate sends
	ranges int     // number ranges (first 3 national digits) in use
	price  float64 // per SMS
}

type simRange struct {
	country  *simCountry
	digits   string // first 3 national digits
	template string // a valid national number starting with digits
	nsnLen   int
	cc       int32
	convert  float64 // legitimate conversion of the range
	weight   float64 // popularity within the country
	attacked string  // name of the attack on it, if any
}

type simAttack struct {
	name       string
	region     string
	ranges     int
	start, end time.Duration // from the start of the day
	perMinute  float64       // per range
}

type simSend struct {
	at     time.Time
	rng    *simRange
	attack string // "" = legitimate
}

type simCompletion struct {
	at     time.Time
	phone  string
	sentAt time.Time
}

type completionHeap []simCompletion

func (h completionHeap) Len() int           { return len(h) }
func (h completionHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h completionHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *completionHeap) Push(x any)        { *h = append(*h, x.(simCompletion)) }
func (h *completionHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type simTally struct {
	sends, blocked int
	cost, saved    float64
}

func (t *simTally) add(blocked bool, price float64) {
	t.sends++
	if blocked {
		t.blocked++
		t.saved += price
	} else {
		t.cost += price
	}
}

func (t simTally) pct() float64 { return 100 * float64(t.blocked) / math.Max(1, float64(t.sends)) }

func poisson(r *rand.Rand, lambda float64) int {
	if lambda > 60 { // normal approximation, plenty for a traffic model
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// diurnal is the relative traffic at a local hour: a daytime hump, a night floor.
func diurnal(local float64) float64 {
	local = math.Mod(local+48, 24)
	if local < 7 || local > 23 {
		return 0.08
	}
	return 0.08 + math.Sin(math.Pi*(local-7)/16)
}

// mobileRanges returns the 3-digit ranges of region that hold valid mobile
// numbers, in random order.
func mobileRanges(t *testing.T, r *rand.Rand, c *simCountry) []*simRange {
	ex := phonenumbers.GetExampleNumberForType(c.region, phonenumbers.MOBILE)
	if ex == nil {
		t.Fatalf("no example mobile number for %s", c.region)
	}
	nsnLen := len(phonenumbers.GetNationalSignificantNumber(ex))
	var out []*simRange
	for _, i := range r.Perm(1000) {
		rg := &simRange{country: c, digits: fmt.Sprintf("%03d", i), nsnLen: nsnLen, cc: ex.GetCountryCode()}
		// The range is in use if a random number in it is a valid mobile
		// one; that number's digits become its template.
		var b strings.Builder
		b.WriteString(rg.digits)
		for b.Len() < nsnLen {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		rg.template = b.String()
		if _, _, ok := rg.number(r, rg.nsnLen-4); ok {
			out = append(out, rg)
		}
		if len(out) == c.ranges {
			break
		}
	}
	if len(out) < c.ranges/2 {
		t.Fatalf("%s: only %d mobile ranges", c.region, len(out))
	}
	return out
}

// number draws a valid mobile number in the range, classified the way the
// core's validation would hand it to the guard. fixed is how many leading
// digits of the range's template it keeps: legitimate users are anywhere in
// the range (3), an attacker pumps a block of numbers it is paid for
// (all but the last 5 digits).
func (rg *simRange) number(r *rand.Rand, fixed int) (string, Classification, bool) {
	for try := range 16 {
		if try == 8 {
			fixed = rg.nsnLen - 4 // sparse range: stay near the known-good number
		}
		var b strings.Builder
		b.WriteString(rg.template[:fixed])
		for b.Len() < rg.nsnLen {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		phone := fmt.Sprintf("+%d%s", rg.cc, b.String())
		c, err := Classify(phone)
		if err == nil && (c.Type == Mobile || c.Type == FixedLineOrMobile) {
			return phone, c, true
		}
	}
	return "", Classification{}, false
}

// completionDelay draws how long a legitimate user takes to type the code,
// delivery included; beyond 5 min the code has expired.
func completionDelay(r *rand.Rand) time.Duration {
	delivery := 2 + 15*r.Float64()
	if r.Float64() < 0.1 { // distracted users
		return time.Duration((delivery + 60 + 240*r.Float64()) * float64(time.Second))
	}
	typing := 25 * math.Exp(0.8*r.NormFloat64())
	return time.Duration((delivery + typing) * float64(time.Second))
}

func TestSimulation_DayOfTraffic(t *testing.T) {
	const legitPerDay = 60000
	r := rand.New(rand.NewPCG(20260302, 7))
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

	countries := []*simCountry{
		{region: "US", tz: -5, share: 0.30, ranges: 150, price: 0.008},
		{region: "GB", tz: 0, share: 0.12, ranges: 60, price: 0.04},
		{region: "DE", tz: 1, share: 0.10, ranges: 40, price: 0.08},
		{region: "FR", tz: 1, share: 0.10, ranges: 60, price: 0.07},
		{region: "IN", tz: 5.5, share: 0.20, ranges: 150, price: 0.03},
		{region: "BR", tz: -3, share: 0.12, ranges: 60, price: 0.03},
		{region: "NG", tz: 1, share: 0.06, ranges: 30, price: 0.25},
		{region: "SL", tz: 0, share: 0, ranges: 10, price: 0.30},
	}
	attacks := []simAttack{
		{name: "night burst NG", region: "NG", ranges: 3, start: 2 * time.Hour, end: 4 * time.Hour, perMinute: 40},
		{name: "big burst GB", region: "GB", ranges: 2, start: 13 * time.Hour, end: 14 * time.Hour, perMinute: 100},
		{name: "short burst IN", region: "IN", ranges: 1, start: 9 * time.Hour, end: 9*time.Hour + 20*time.Minute, perMinute: 30},
		{name: "rotating FR", region: "FR", ranges: 6, start: 16 * time.Hour, end: 18 * time.Hour, perMinute: 8},
		{name: "evening SL", region: "SL", ranges: 2, start: 18 * time.Hour, end: 21 * time.Hour, perMinute: 20},
		{name: "slow BR", region: "BR", ranges: 1, start: 0, end: 24 * time.Hour, perMinute: 0.8},
		{name: "trickle US", region: "US", ranges: 1, start: 0, end: 24 * time.Hour, perMinute: 1.0 / 6},
	}

	pt := PriceTable{Default: Amount(0.10), Prices: map[string]Money{}}
	ranges := map[string][]*simRange{}
	for _, c := range countries {
		pt.Prices[c.region+"/sms"] = Amount(c.price)
		rs := mobileRanges(t, r, c)
		for i, rg := range rs {
			rg.convert = 0.6 + 0.2*r.Float64()
			rg.weight = 1 / math.Pow(float64(i+1), 0.8)
		}
		ranges[c.region] = rs
	}

	// Legitimate sends: Poisson per minute, diurnal by local time, ranges
	// by popularity.
	var sends []simSend
	for _, c := range countries {
		if c.share == 0 {
			continue
		}
		var norm float64
		for m := range 1440 {
			norm += diurnal(float64(m)/60 + c.tz)
		}
		rs := ranges[c.region]
		var wsum float64
		for _, rg := range rs {
			wsum += rg.weight
		}
		for m := range 1440 {
			lambda := legitPerDay * c.share * diurnal(float64(m)/60+c.tz) / norm
			for range poisson(r, lambda) {
				x, rg := r.Float64()*wsum, rs[len(rs)-1]
				for _, cand := range rs {
					if x -= cand.weight; x < 0 {
						rg = cand
						break
					}
				}
				at := day.Add(time.Duration(m)*time.Minute + time.Duration(r.Int64N(int64(time.Minute))))
				sends = append(sends, simSend{at: at, rng: rg})
			}
		}
	}
	// Attacks: bursts to a few ranges, a slow attack spread over many
	// numbers of one range; ~1 % conversion (the odd code typed to look real).
	for _, a := range attacks {
		rs := ranges[a.region]
		for _, i := range r.Perm(len(rs))[:a.ranges] {
			rg := rs[i]
			rg.attacked = a.name
			for m := int(a.start / time.Minute); m < int(a.end/time.Minute); m++ {
				for range poisson(r, a.perMinute) {
					at := day.Add(time.Duration(m)*time.Minute + time.Duration(r.Int64N(int64(time.Minute))))
					sends = append(sends, simSend{at: at, rng: rg, attack: a.name})
				}
			}
		}
	}
	slices.SortStableFunc(sends, func(a, b simSend) int { return a.at.Compare(b.at) })

	now := day
	cfg := DefaultConfig()
	cfg.Now = func() time.Time { return now }
	cfg.Destinations = []string{"*"}
	cfg.Prices = pt
	var blocks []Block
	cfg.OnBlock = func(b Block) { blocks = append(blocks, b) }
	store := NewMemStore()
	g, err := NewGuard(cfg, store, store)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	var legit, fraud simTally
	perAttack := map[string]*simTally{}
	var collateral, falsePositive, skipped int
	var pending completionHeap
	for _, s := range sends {
		for len(pending) > 0 && !pending[0].at.After(s.at) {
			c := heap.Pop(&pending).(simCompletion)
			now = c.at
			if err := g.Completed(ctx, c.phone, c.sentAt); err != nil {
				t.Fatal(err)
			}
		}
		now = s.at
		fixed := 3
		if s.attack != "" {
			fixed = s.rng.nsnLen - 5
		}
		phone, c, ok := s.rng.number(r, fixed)
		if !ok {
			skipped++
			continue
		}
		d, err := g.Check(ctx, Request{ProfileID: "p1", Channel: verifyd.SMS, Phone: phone, Number: c.Number, Region: c.Region, Type: c.Type})
		blocked := err != nil
		if blocked && verifyd.ErrorCode(err) != verifyd.EPREFIXBLOCK {
			t.Fatalf("%s: unexpected refusal %v", phone, err)
		}
		price := s.rng.country.price
		if s.attack == "" {
			legit.add(blocked, price)
			if blocked && s.rng.attacked != "" {
				collateral++
			} else if blocked {
				falsePositive++
			}
		} else {
			fraud.add(blocked, price)
			if perAttack[s.attack] == nil {
				perAttack[s.attack] = &simTally{}
			}
			perAttack[s.attack].add(blocked, price)
		}
		if blocked {
			continue
		}
		if err := g.Sent(ctx, Attempt{ProfileID: "p1", Channel: verifyd.SMS, Phone: phone, Prefix: d.Prefix, Region: d.Region}); err != nil {
			t.Fatal(err)
		}
		conv := 0.01
		if s.attack == "" {
			conv = s.rng.convert
		}
		if r.Float64() < conv {
			if d := completionDelay(r); d <= 5*time.Minute {
				heap.Push(&pending, simCompletion{at: s.at.Add(d), phone: phone, sentAt: s.at})
			}
		}
	}

	t.Logf("| traffic | sends | blocked | blocked %% | spent | saved |")
	t.Logf("|---|---:|---:|---:|---:|---:|")
	names := make([]string, 0, len(perAttack))
	for n := range perAttack {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		a := perAttack[n]
		t.Logf("| attack: %s | %d | %d | %.1f %% | $%.2f | $%.2f |", n, a.sends, a.blocked, a.pct(), a.cost, a.saved)
	}
	t.Logf("| **all pumping** | %d | %d | **%.1f %%** | $%.2f | **$%.2f** |", fraud.sends, fraud.blocked, fraud.pct(), fraud.cost, fraud.saved)
	t.Logf("| **legitimate** | %d | %d | **%.2f %%** | $%.2f | — |", legit.sends, legit.blocked, legit.pct(), legit.cost)
	t.Logf("legitimate sends blocked: %d on attacked ranges (collateral), %d on ranges nobody attacked (false positives)", collateral, falsePositive)
	slices.SortFunc(blocks, func(a, b Block) int { return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Prefix, b.Prefix)) })
	for _, b := range blocks {
		t.Logf("block %s %s–%s: %s", b.Prefix, b.Start.Format("15:04:05"), b.Until.Format("15:04"), b.Reason)
	}

	if fraud.pct() < 95 {
		t.Errorf("pumping sends blocked: %.2f %%, want >= 95 %%", fraud.pct())
	}
	if legit.pct() > 1 {
		t.Errorf("legitimate sends blocked: %.2f %%, want <= 1 %%", legit.pct())
	}
	if skipped > len(sends)/1000 {
		t.Errorf("%d of %d sends found no valid number", skipped, len(sends))
	}
	if legit.sends < legitPerDay*9/10 {
		t.Errorf("only %d legitimate sends simulated", legit.sends)
	}
}
