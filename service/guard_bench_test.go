package service_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/fraud"
	"github.com/verifyd/verifyd/ratelimit"
	"github.com/verifyd/verifyd/service"
	"github.com/verifyd/verifyd/sqlite"
)

// BenchmarkTrigger measures Trigger on SQLite without guards and with every
// guard in process (allowlist, number type, prefix guard with statistics,
// spend cap, rate limits): the ratio is what the guards add (bar: ≤ 1.10).
// Every trigger goes to a new number, spread over 100 prefixes, so the
// per-phone limits allow all of them (the spike limits are raised).
func BenchmarkTrigger(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		name := "NoGuards"
		if guarded {
			name = "Guards"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			opts := service.Options{}
			if guarded {
				cfg := fraud.DefaultConfig()
				mem := fraud.NewMemStore()
				g, _ := fraud.NewGuard(cfg, mem, mem)
				// The spike limits raised so the run is not refused; they
				// are still evaluated on every trigger.
				limits, _ := service.ParseLimits(service.DefaultLimits(), "profile=1000000/1m,prefix=1000000/1m")
				opts.Guards = &service.Guards{Fraud: g, Limiter: ratelimit.New(ratelimit.Options{}), Limits: limits,
					DefaultDestinations: []string{"GB"}}
			}
			_, svc := benchService(b, opts)
			acct, _ := svc.CreateAccount(ctx, "a")
			p, err := svc.CreateProfile(ctx, acct, map[string]any{"name": "p", "daily_spend_limit": "1000000", "daily_spend_limit_enabled": true,
				"sms": map[string]any{"whitelisted_destinations": []any{"GB"}}})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				phone := fmt.Sprintf("+4474%02d%06d", i%100, i/100)
				if _, err := svc.Trigger(ctx, acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: p.ID}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchService returns a service on a new SQLite database (newStoreKeys).
func benchService(b *testing.B, opts service.Options) (*sqlite.Store, *service.Service) {
	b.Helper()
	store, keys := newStoreKeys(b)
	return store, service.New(store, keys, opts)
}
