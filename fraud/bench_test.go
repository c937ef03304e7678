package fraud

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// benchGuard returns a guard whose store holds an hour of traffic on 200
// prefixes, so Check reads realistic bucket series.
func benchGuard(b *testing.B) (*Guard, []string) {
	g, st, clk := testGuard(b, nil)
	ctx := context.Background()
	phones := make([]string, 200)
	for i := range phones {
		phones[i] = fmt.Sprintf("+4474%02d%06d", i%100, i)
	}
	start := clk.Now()
	for m := range 60 {
		at := start.Add(time.Duration(m) * time.Minute)
		for i, p := range phones {
			pre := p[:7] // +44 and 4 digits
			if (m+i)%3 == 0 {
				_ = st.Incr(ctx, pre, KindSent, at)
				_ = st.Incr(ctx, pre, KindCompleted, at)
			}
		}
	}
	clk.t = start.Add(time.Hour)
	return g, phones
}

// BenchmarkGuard_Check is the trigger path: parse, allowlist, number type,
// prefix statistics, spend.
func BenchmarkGuard_Check(b *testing.B) {
	g, phones := benchGuard(b)
	ctx := context.Background()
	limit := Amount(100)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		r := Request{ProfileID: "p", Channel: verifyd.SMS, Phone: phones[i%len(phones)], SpendLimit: &limit}
		if _, err := g.Check(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuard_CheckClassified is Check when the core's phone
// validation already classified the number (Classify) and passes Number,
// Region and Type: the guard's own cost on top of validation.
func BenchmarkGuard_CheckClassified(b *testing.B) {
	g, phones := benchGuard(b)
	ctx := context.Background()
	cs := make([]Classification, len(phones))
	for i, p := range phones {
		var err error
		if cs[i], err = Classify(p); err != nil {
			b.Fatal(err)
		}
	}
	limit := Amount(100)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c := cs[i%len(cs)]
		r := Request{ProfileID: "p", Channel: verifyd.SMS, Phone: phones[i%len(phones)],
			Number: c.Number, Region: c.Region, Type: c.Type, SpendLimit: &limit}
		if _, err := g.Check(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClassify is the libphonenumber work of a trigger (parse, region,
// type), which the core's validation does anyway.
func BenchmarkClassify(b *testing.B) {
	_, phones := benchGuard(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Classify(phones[i%len(phones)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuard_Sent is the record hook after a send.
func BenchmarkGuard_Sent(b *testing.B) {
	g, phones := benchGuard(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := phones[i%len(phones)]
		if err := g.Sent(ctx, Attempt{ProfileID: "p", Channel: verifyd.SMS, Phone: p, Prefix: p[:7], Region: "GB"}); err != nil {
			b.Fatal(err)
		}
	}
}
