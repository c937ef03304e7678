package service_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/fraud"
	"github.com/verifyd/verifyd/redis"
	"github.com/verifyd/verifyd/service"
	"github.com/verifyd/verifyd/sqlite"
)

// redisURL returns the test Redis, or skips (fails with
// VERIFYD_REQUIRE_PEERS=1).
func redisURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("VERIFYD_TEST_REDIS_URL")
	if url == "" {
		if os.Getenv("VERIFYD_REQUIRE_PEERS") == "1" {
			url = "redis://127.0.0.1:6379/0"
		} else {
			t.Skip("Redis: VERIFYD_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
		}
	}
	return url
}

// TestBruteForce_BudgetAcrossResendsIPsAndNodes: an attacker with 1000
// guesses at one phone, who resends whenever a code is used up, rotates
// the end-user IP on every guess and alternates between two nodes (two
// services on one store, limiter and fraud state on Redis), never gets
// more than the documented budget: at most MaxFailures (10) wrong codes
// compared per phone in any rolling hour (D10), at most MaxAttempts (5)
// per code. The code is 00777 and the attacker counts up from 00000,
// retrying a guess that was refused: without the budget it would hit it.
func TestBruteForce_BudgetAcrossResendsIPsAndNodes(t *testing.T) {
	url := redisURL(t)
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "verifyd-test:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		o, _ := goredis.ParseURL(url)
		c := goredis.NewClient(o)
		defer c.Close()
		keys, _ := c.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys, _ := service.NewKeys([][]byte{make([]byte, 32)})
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	node := func() *service.Service {
		fs, err := redis.OpenFraud(url, redis.FraudOptions{Prefix: prefix + "fraud:"})
		if err != nil {
			t.Fatal(err)
		}
		rl, err := redis.New(url, redis.Options{Prefix: prefix + "rl:", Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fs.Close(); rl.Close() })
		cfg := fraud.DefaultConfig()
		cfg.Now = clk.Now
		g, err := fraud.NewGuard(cfg, fs, fs)
		if err != nil {
			t.Fatal(err)
		}
		return service.New(store, keys, service.Options{Now: clk.Now, Codes: func(int) (string, error) { return "00777", nil },
			Guards: &service.Guards{Fraud: g, Limiter: rl, DefaultDestinations: []string{"GB"}}})
	}
	nodes := []*service.Service{node(), node()}
	acct, err := nodes[0].CreateAccount(ctx, "victim-app")
	if err != nil {
		t.Fatal(err)
	}
	p, err := nodes[0].CreateProfile(ctx, acct, map[string]any{"name": "p", "sms": map[string]any{"whitelisted_destinations": []any{"GB"}}})
	if err != nil {
		t.Fatal(err)
	}
	const phone = "+447400123456"
	var compared []time.Time // when each guess was really compared
	guess, sends, accepted := 0, 0, false
	for i := 0; i < 1000; i++ {
		n := nodes[i%2]
		uctx := service.WithEndUser(ctx, service.EndUser{IP: fmt.Sprintf("198.51.%d.%d", i/250, i%250), Session: fmt.Sprint("s", i)})
		if i%5 == 0 { // resend, from any node
			if _, err := n.Trigger(uctx, acct, service.TriggerRequest{Channel: verifyd.SMS, PhoneNumber: phone, ProfileID: p.ID}); err == nil {
				sends++
			} else if c := verifyd.ErrorCode(err); c != verifyd.ERATELIMITED && c != verifyd.EMAXATTEMPTS {
				t.Fatalf("trigger: %v", err)
			}
		}
		ok, err := n.CheckByPhone(uctx, acct, phone, p.ID, fmt.Sprintf("%05d", guess))
		switch {
		case err == nil:
			compared = append(compared, clk.Now())
			accepted = accepted || ok
			guess++
		case verifyd.ErrorCode(err) != verifyd.ERATELIMITED:
			t.Fatalf("check: %v", err)
		}
		clk.Add(10 * time.Second) // 1000 guesses over 2 h 47 min
	}
	for i := range compared { // any rolling hour: at most 10
		n := 0
		for _, at := range compared[i:] {
			if at.Sub(compared[i]) < time.Hour {
				n++
			}
		}
		if n > 10 {
			t.Fatalf("%d guesses compared within one hour from %v, budget 10", n, compared[i])
		}
	}
	if accepted || guess >= 777 {
		t.Fatalf("the attacker found the code (%d guesses compared)", guess)
	}
	if len(compared) > 30 {
		t.Fatalf("%d guesses compared in under 3 h, budget 3 × 10", len(compared))
	}
	t.Logf("1000 guesses over 2 h 47 min, two nodes, 1000 IPs: %d compared (budget 10 per rolling hour), %d codes sent", len(compared), sends)
}
