package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/ratelimit/limitertest"
)

// testURL returns the Redis to test against: VERIFYD_TEST_REDIS_URL, else
// the local default when VERIFYD_REQUIRE_PEERS=1 (CI has Redis); otherwise
// the test is skipped. An unreachable Redis fails the test when it was
// asked for, by URL or by VERIFYD_REQUIRE_PEERS.
func testURL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv("VERIFYD_TEST_REDIS_URL")
	required := os.Getenv("VERIFYD_REQUIRE_PEERS") == "1"
	if url == "" {
		if !required {
			tb.Skip("Redis: VERIFYD_TEST_REDIS_URL is not set; run with " +
				"VERIFYD_TEST_REDIS_URL=redis://127.0.0.1:6379/0 go test ./redis/ (or VERIFYD_REQUIRE_PEERS=1)")
		}
		url = "redis://127.0.0.1:6379/0"
	}
	c, err := goredis.ParseURL(url)
	if err != nil {
		tb.Fatalf("VERIFYD_TEST_REDIS_URL=%q: %v", url, err)
	}
	cli := goredis.NewClient(c)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := cli.Ping(ctx).Err(); err != nil {
		tb.Fatalf("Redis at %s is unreachable: %v", url, err)
	}
	return url
}

// openTest returns a limiter on a key prefix of its own, whose keys are
// deleted when the test ends.
func openTest(tb testing.TB, url, prefix string, opts Options) *Limiter {
	tb.Helper()
	if prefix == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		prefix = "verifyd-test:" + hex.EncodeToString(b[:]) + ":"
		tb.Cleanup(func() { deleteKeys(tb, url, prefix) })
	}
	opts.Prefix = prefix
	l, err := New(url, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return l
}

func deleteKeys(tb testing.TB, url, prefix string) {
	c, _ := goredis.ParseURL(url)
	cli := goredis.NewClient(c)
	defer cli.Close()
	ctx := context.Background()
	keys, err := scanKeys(ctx, cli, prefix)
	if err == nil && len(keys) > 0 {
		err = cli.Del(ctx, keys...).Err()
	}
	if err != nil {
		tb.Errorf("cleaning up %s*: %v", prefix, err)
	}
}

func scanKeys(ctx context.Context, cli *goredis.Client, prefix string) ([]string, error) {
	var keys []string
	iter := cli.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

func TestLimiter(t *testing.T) {
	url := testURL(t)
	limitertest.Run(t, limitertest.Backend{
		Open: func(t *testing.T, now func() time.Time) verifyd.Limiter {
			return openTest(t, url, "", Options{Now: now})
		},
		// Another node: its own client (own connections), same prefix,
		// same clock (Redis TIME, or the test's).
		Peer: func(t *testing.T, l verifyd.Limiter) verifyd.Limiter {
			rl := l.(*Limiter)
			return openTest(t, url, rl.opts.Prefix, Options{Now: rl.opts.Now})
		},
	})
}

// TestLimiter_Keys: the keys are named as documented and expire when their
// TAT passes.
func TestLimiter_Keys(t *testing.T) {
	url := testURL(t)
	l := openTest(t, url, "", Options{})
	ctx := context.Background()
	lim := verifyd.Limit{Name: "phone", Key: "acct:+15551234567", Count: 3, Period: 10 * time.Minute}
	for range 2 {
		if d, err := l.Allow(ctx, []verifyd.Limit{lim}); err != nil || !d.Allowed {
			t.Fatalf("Allow = %+v, %v", d, err)
		}
	}
	cli := l.client.(*goredis.Client)
	keys, err := scanKeys(ctx, cli, l.opts.Prefix)
	if err != nil {
		t.Fatal(err)
	}
	want := l.opts.Prefix + "phone:10m0s:acct:+15551234567"
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("keys %q, want [%q]", keys, want)
	}
	// Two tokens of 200 s taken: the key lives until its TAT, 400 s ahead.
	ttl, err := cli.PTTL(ctx, want).Result()
	if err != nil || ttl <= 399*time.Second || ttl > 400*time.Second {
		t.Fatalf("PTTL = %s, %v; want just under 400 s", ttl, err)
	}
}

// TestLimiter_Down: a Redis that does not answer fails closed with
// EUNAVAILABLE within the timeout, or, configured to, fails open. Needs no
// Redis (port 1 on loopback refuses connections).
func TestLimiter_Down(t *testing.T) {
	lim := []verifyd.Limit{{Name: "ip", Key: "192.0.2.1", Count: 1, Period: time.Minute}}
	var seen atomic.Int64
	onErr := func(error) { seen.Add(1) }

	closed, err := New("redis://127.0.0.1:1/0", Options{Timeout: 300 * time.Millisecond, OnError: onErr})
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	start := time.Now()
	d, err := closed.Allow(context.Background(), lim)
	if verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE || !errors.Is(err, ErrUnavailable) || d.Allowed {
		t.Fatalf("Allow on a down Redis = %+v, %v; want EUNAVAILABLE", d, err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("failing took %s with a 300 ms timeout", el)
	}
	if err.Error() == ErrUnavailable.Error() {
		t.Fatalf("error %q hides its cause (for the log)", err)
	}
	if verifyd.ErrorMessage(err) != ErrUnavailable.Message {
		t.Fatalf("client message %q leaks the cause", verifyd.ErrorMessage(err))
	}
	if err := closed.Ping(context.Background()); verifyd.ErrorCode(err) != verifyd.EUNAVAILABLE {
		t.Fatalf("Ping on a down Redis = %v", err)
	}

	open, err := New("redis://127.0.0.1:1/0", Options{Timeout: 300 * time.Millisecond, FailOpen: true, OnError: onErr})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if d, err := open.Allow(context.Background(), lim); err != nil || !d.Allowed {
		t.Fatalf("fail-open Allow on a down Redis = %+v, %v; want allowed", d, err)
	}
	if seen.Load() != 2 {
		t.Fatalf("OnError saw %d errors, want 2", seen.Load())
	}
}

func TestNew_BadURL(t *testing.T) {
	if _, err := New("http://127.0.0.1:6379", Options{}); err == nil {
		t.Fatal("New accepted an http URL")
	}
}

// BenchmarkAllow: decisions over 3 keys (phone 10 min, phone 1 h, ip) from
// 8 goroutines on one client, Redis TIME as the clock.
func BenchmarkAllow(b *testing.B) {
	url := testURL(b)
	l := openTest(b, url, "", Options{})
	const keys = 10000
	lists := make([][]verifyd.Limit, keys)
	for i := range lists {
		phone := "acct:+1555" + strings.Repeat("0", 3) + hex.EncodeToString([]byte{byte(i >> 8), byte(i)})
		lists[i] = []verifyd.Limit{
			{Name: "phone", Key: phone, Count: 3, Period: 10 * time.Minute},
			{Name: "phone", Key: phone, Count: 5, Period: time.Hour},
			{Name: "ip", Key: "acct:10.0.0." + hex.EncodeToString([]byte{byte(i)}), Count: 1 << 20, Period: time.Hour},
		}
	}
	ctx := context.Background()
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(n.Add(1)) * 7919
		for pb.Next() {
			if _, err := l.Allow(ctx, lists[i%keys]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
}
