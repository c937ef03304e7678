package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// TestFraudCluster_LimitsExactAcrossNodes runs two verifyd binaries on one
// PostgreSQL schema and one Redis: 20 concurrent triggers for one phone,
// spread over both nodes, get exactly the 3 the per-phone limit allows
// (3 per 10 min); a block added through one node's admin API refuses on
// the other; the shared spend ledger stops the profile on both.
func TestFraudCluster_LimitsExactAcrossNodes(t *testing.T) {
	pgURL := os.Getenv("VERIFYD_TEST_POSTGRES_URL")
	if pgURL == "" {
		skipPeer(t, "fraud cluster: VERIFYD_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	redisURL := os.Getenv("VERIFYD_TEST_REDIS_URL")
	if redisURL == "" {
		skipPeer(t, "fraud cluster: VERIFYD_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	schema, prefix := "verifyd_fraud_"+id, "verifyd-test:"+id+":"
	t.Cleanup(func() { dropSchema(t, pgURL, schema) })
	t.Cleanup(func() {
		o, _ := goredis.ParseURL(redisURL)
		c := goredis.NewClient(o)
		defer c.Close()
		ctx := context.Background()
		var keys []string
		it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		if len(keys) > 0 {
			c.Del(ctx, keys...)
		}
	})
	dir := t.TempDir()
	db := []string{"--db", pgURL, "--db-schema", schema, "--keys", filepath.Join(dir, "keys")}
	key := lastLine(t, append([]string{"apikey", "create", "--name", "fraud"}, db...)...)
	args := append(db, "--console-out", filepath.Join(dir, "console.jsonl"), "--redis", redisURL,
		"--redis-prefix", prefix, "--admin-token", "adm-"+id, "--prices", "default=0.05")
	nodes := []*server{startServer(t, args...), startServer(t, args...)}
	code, body := nodes[0].do(t, key, "POST", "/v2/verify_profiles",
		`{"name":"fraud","daily_spend_limit":"0.30","daily_spend_limit_enabled":true,"sms":{"whitelisted_destinations":["GB"]}}`)
	if code != 200 {
		t.Fatalf("create profile: %d %v", code, body)
	}
	profile := body["data"].(map[string]any)["id"].(string)
	trigger := func(n *server, phone string) (int, string, http.Header) {
		req, _ := http.NewRequest("POST", n.URL+"/v2/verifications/sms",
			strings.NewReader(`{"phone_number":"`+phone+`","verify_profile_id":"`+profile+`"}`))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, "", nil
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw), resp.Header
	}

	// 1. Per-phone limit, exact across nodes.
	var mu sync.Mutex
	got := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			code, raw, h := trigger(nodes[i%2], "+447400300001")
			if code == 429 && (!strings.Contains(raw, `"V0003"`) || h.Get("Retry-After") == "") {
				t.Errorf("429 without V0003 and Retry-After: %s %v", raw, h)
			}
			mu.Lock()
			got[code]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if got[200] != 3 || got[429] != 17 {
		t.Fatalf("20 concurrent triggers on two nodes: %v, want exactly 3 × 200 and 17 × 429", got)
	}

	// 2. A block added on node 1 refuses on node 2.
	req, _ := http.NewRequest("POST", nodes[0].URL+"/v2/admin/fraud/blocks",
		strings.NewReader(`{"prefix":"+447401","reason":"cluster test","duration_secs":600}`))
	req.Header.Set("Authorization", "Bearer adm-"+id)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("add block: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, raw, _ := trigger(nodes[1], "+447401300001"); code != 422 || !strings.Contains(raw, `"V0004"`) {
		t.Fatalf("blocked prefix on node 2: %d %s", code, raw)
	}

	// 3. The spend ledger is shared: 0.30 a day at 0.05 a send allows 6
	// sends in all (3 already), whichever node takes them.
	sent := 3
	for i := range 6 {
		code, raw, _ := trigger(nodes[i%2], fmt.Sprintf("+4474023000%02d", i))
		switch {
		case code == 200:
			sent++
		case code == 422 && strings.Contains(raw, `"V0005"`):
		default:
			t.Fatalf("spend trigger %d: %d %s", i, code, raw)
		}
	}
	if sent != 6 {
		t.Fatalf("%d sends under a 0.30 cap at 0.05, want 6", sent)
	}
}
