package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// cluster is N verifyd processes on one PostgreSQL schema, sharing the key
// file and the console file (so a node can reconcile another's in-doubt
// jobs, as nodes sharing a real carrier would).
type cluster struct {
	nodes   []*server
	args    []string
	key     string
	profile string
	console string
}

func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	url := os.Getenv("VERIFYD_TEST_POSTGRES_URL")
	if url == "" {
		skipPeer(t, "cluster: VERIFYD_TEST_POSTGRES_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "verifyd_cluster_" + hex.EncodeToString(b[:])
	dir := t.TempDir()
	c := &cluster{console: filepath.Join(dir, "console.jsonl")}
	// --fraud-monitor: these tests send thousands of codes nobody checks to
	// one number range — what the conversion guard exists to block.
	c.args = []string{"--db", url, "--db-schema", schema, "--keys", filepath.Join(dir, "keys"),
		"--console-out", c.console, "--job-lease", "2s", "--fraud-monitor"}
	c.key = lastLine(t, append([]string{"apikey", "create", "--name", "cluster"}, c.args[:6]...)...)
	t.Cleanup(func() { dropSchema(t, url, schema) })
	for i := 0; i < n; i++ {
		c.nodes = append(c.nodes, startServer(t, c.args...))
	}
	code, body := c.nodes[0].do(t, c.key, "POST", "/v2/verify_profiles", `{"name":"cluster","sms":{"whitelisted_destinations":["GB"],"rate_limits":{"profile":"off","prefix":"off"}}}`)
	if code != 200 {
		t.Fatalf("create profile: %d %v", code, body)
	}
	c.profile = body["data"].(map[string]any)["id"].(string)
	return c
}

// codeFor polls the console file for the code of a verification.
func (c *cluster) codeFor(t *testing.T, verificationID string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(c.console)
		for _, l := range strings.Split(string(b), "\n") {
			var m struct {
				Code           string `json:"code"`
				VerificationID string `json:"verification_id"`
			}
			if json.Unmarshal([]byte(l), &m) == nil && m.VerificationID == verificationID {
				return m.Code
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no console line for %s", verificationID)
	return ""
}

func TestCluster_TriggerOnOneNodeCheckOnOthers(t *testing.T) {
	c := startCluster(t, 3)
	phone := "+447400200001"
	code, body := c.nodes[0].do(t, c.key, "POST", "/v2/verifications/sms",
		`{"phone_number":"`+phone+`","verify_profile_id":"`+c.profile+`"}`)
	if code != 200 {
		t.Fatalf("trigger: %d %v", code, body)
	}
	id := body["data"].(map[string]any)["id"].(string)
	if code, body := c.nodes[1].do(t, c.key, "GET", "/v2/verifications/"+id, ""); code != 200 ||
		body["data"].(map[string]any)["status"] != "pending" {
		t.Fatalf("retrieve on node 2: %d %v", code, body)
	}
	otp := c.codeFor(t, id)
	code, body = c.nodes[2].do(t, c.key, "POST", "/v2/verifications/by_phone_number/"+phone+"/actions/verify",
		`{"code":"`+otp+`","verify_profile_id":"`+c.profile+`"}`)
	if code != 200 || body["data"].(map[string]any)["response_code"] != "accepted" {
		t.Fatalf("check on node 3: %d %v", code, body)
	}
	code, body = c.nodes[1].do(t, c.key, "POST", "/v2/verifications/"+id+"/actions/verify", `{"code":"`+otp+`"}`)
	if code != 200 || body["data"].(map[string]any)["response_code"] != "rejected" {
		t.Fatalf("second use on node 2 was not rejected: %d %v", code, body)
	}
}

func TestCluster_ConcurrentChecksNeverExceedTheBudget(t *testing.T) {
	c := startCluster(t, 3)
	for round := 0; round < 3; round++ {
		phone := fmt.Sprintf("+4474002001%02d", round)
		code, body := c.nodes[0].do(t, c.key, "POST", "/v2/verifications/sms",
			`{"phone_number":"`+phone+`","verify_profile_id":"`+c.profile+`","custom_code":"424242"}`)
		if code != 200 {
			t.Fatalf("trigger: %d %v", code, body)
		}
		id := body["data"].(map[string]any)["id"].(string)
		var accepted atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < 60; i++ {
			guess := fmt.Sprintf("%06d", i)
			if i == 30 {
				guess = "424242"
			}
			node := c.nodes[i%3]
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				req, _ := http.NewRequest("POST", node.URL+"/v2/verifications/"+id+"/actions/verify",
					strings.NewReader(`{"code":"`+guess+`"}`))
				req.Header.Set("Authorization", "Bearer "+c.key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer resp.Body.Close()
				var r struct {
					Data struct {
						ResponseCode string `json:"response_code"`
					}
				}
				json.NewDecoder(resp.Body).Decode(&r)
				if resp.StatusCode != 200 && resp.StatusCode != 429 {
					t.Errorf("check answered %d", resp.StatusCode)
				}
				if r.Data.ResponseCode == "accepted" {
					accepted.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		_, body = c.nodes[1].do(t, c.key, "GET", "/v2/verifications/"+id, "")
		status := body["data"].(map[string]any)["status"]
		if accepted.Load() > 1 {
			t.Fatalf("round %d: the code was accepted %d times", round, accepted.Load())
		}
		if (accepted.Load() == 1) != (status == "accepted") {
			t.Fatalf("round %d: %d accepts but status %v", round, accepted.Load(), status)
		}
		if status != "accepted" && status != "invalid" {
			t.Fatalf("round %d: 60 checks left the verification %v (budget not enforced)", round, status)
		}
	}
}

// TestCluster_Kill9_JobsTakenOverExactlyOnce triggers across three nodes,
// kills one with SIGKILL in the middle, and checks every accepted
// verification reaches the console exactly once, and that no job is left
// unfinished: the dead node's leased jobs are taken over by the others
// after the lease (30 s here: --job-lease 2s is raised to the send timeout
// plus 15 s, see workerOptions).
func TestCluster_Kill9_JobsTakenOverExactlyOnce(t *testing.T) {
	c := startCluster(t, 3)
	var mu sync.Mutex
	accepted := map[string]bool{}
	var killed atomic.Bool
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for w := 0; w < 9; w++ {
		node := c.nodes[w%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				phone := fmt.Sprintf("+4474%02d%06d", 30+w, i)
				req, _ := http.NewRequest("POST", node.URL+"/v2/verifications/sms",
					strings.NewReader(`{"phone_number":"`+phone+`","verify_profile_id":"`+c.profile+`"}`))
				req.Header.Set("Authorization", "Bearer "+c.key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					if node == c.nodes[1] && killed.Load() {
						return
					}
					t.Errorf("trigger on a live node: %v", err)
					return
				}
				var r struct{ Data struct{ ID string } }
				json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					accepted[r.Data.ID] = true
					if len(accepted) == 150 && !killed.Load() {
						killed.Store(true)
						c.nodes[1].cmd.Process.Signal(syscall.SIGKILL)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if !killed.Load() {
		t.Fatalf("only %d accepted; the kill never happened", len(accepted))
	}
	waitDeliveredOnce(t, c.console, accepted, 30*time.Second) // lease 2 s + poll: far within
	// And no job is left behind: the dead node's sends whose outcome it had
	// not recorded yet (its hand-offs, kept in handoffs, not jobs) are taken
	// over, found sent (the console reconciles) and finished. The queue
	// depth a live node exports counts the whole shared queue.
	pollUntil(t, 45*time.Second, "no delivery job left unfinished", func() bool {
		return scrapeMetric(t, c.nodes[0].URL, "verifyd_queue_depth") == 0
	})
	t.Logf("%d accepted, all delivered once after node 2 was killed", len(accepted))
}

// dropSchema removes a test schema (the database is shared; never assume it
// is empty, never leave litter).
func dropSchema(t *testing.T, url, schema string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Logf("drop schema %s: %v", schema, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
		t.Logf("drop schema %s: %v", schema, err)
	}
}
