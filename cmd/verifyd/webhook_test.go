package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd/webhook"
)

// received is one request the SDK receiver saw.
type received struct {
	Path     string `json:"path"`
	Verified bool   `json:"verified"`
	Error    string `json:"error"`
	Event    struct {
		Data struct {
			EventType  string         `json:"event_type"`
			ID         string         `json:"id"`
			OccurredAt string         `json:"occurred_at"`
			RecordType string         `json:"record_type"`
			Payload    map[string]any `json:"payload"`
		} `json:"data"`
		Meta struct {
			Attempt     int    `json:"attempt"`
			DeliveredTo string `json:"delivered_to"`
		} `json:"meta"`
	} `json:"event"`
	raw string
}

// sdkReceiver is interop/webhook-receiver.mjs: a webhook endpoint that
// verifies every delivery with the official Telnyx SDK.
type sdkReceiver struct {
	URL  string
	mu   sync.Mutex
	reqs []received
}

func startSDKReceiver(t *testing.T, publicKey string, port int) *sdkReceiver {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		skipPeer(t, "node is not installed: the Telnyx SDK webhook receiver cannot run")
	}
	dir, _ := filepath.Abs("../../interop")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "telnyx")); err != nil {
		skipPeer(t, "interop/node_modules/telnyx is missing: run `cd interop && npm ci`")
	}
	cmd := exec.Command("node", filepath.Join(dir, "webhook-receiver.mjs"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RECEIVER_PUBLIC_KEY="+publicKey, "RECEIVER_PORT="+strconv.Itoa(port))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := &sdkReceiver{}
	ready := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct {
				Listening int `json:"listening"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Listening != 0 {
				ready <- l.Listening
				continue
			}
			var rq received
			if err := json.Unmarshal(sc.Bytes(), &rq); err != nil {
				continue
			}
			rq.raw = sc.Text()
			r.mu.Lock()
			r.reqs = append(r.reqs, rq)
			r.mu.Unlock()
		}
	}()
	select {
	case p := <-ready:
		r.URL = "http://127.0.0.1:" + strconv.Itoa(p)
	case <-time.After(20 * time.Second):
		t.Fatal("the SDK receiver did not start")
	}
	return r
}

// wait polls (with a deadline) until cond holds for the requests so far.
func (r *sdkReceiver) wait(t *testing.T, what string, within time.Duration, cond func([]received) bool) []received {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r.mu.Lock()
		reqs := slices.Clone(r.reqs)
		r.mu.Unlock()
		if cond(reqs) {
			return reqs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; the receiver saw %d requests", within, what, len(reqs))
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// eventsOf returns the verified requests about one verification.
func eventsOf(reqs []received, verificationID, path string) []received {
	var out []received
	for _, q := range reqs {
		if q.Verified && q.Event.Data.Payload["id"] == verificationID && (path == "" || q.Path == path) {
			out = append(out, q)
		}
	}
	return out
}

func hasTypes(evs []received, types ...string) bool {
	for _, typ := range types {
		if !slices.ContainsFunc(evs, func(q received) bool { return q.Event.Data.EventType == typ }) {
			return false
		}
	}
	return true
}

type webhookEnv struct {
	srv *server
	key string
	pub string
}

func startWebhookServer(t *testing.T, args ...string) *webhookEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	db := filepath.Join(t.TempDir(), "v.db")
	key := lastLine(t, "apikey", "create", "--name", "t", "--db", db)
	pub := lastLine(t, "webhook-key", "--db", db) // the account's public key, before the server holds the DB
	srv := startServer(t, append([]string{"--db", db, "--console-out", filepath.Join(filepath.Dir(db), "console.jsonl"),
		"--webhook-allow", "loopback"}, args...)...)
	return &webhookEnv{srv: srv, key: key, pub: pub}
}

func (e *webhookEnv) profile(t *testing.T, url, failover string) string {
	t.Helper()
	body := fmt.Sprintf(`{"name":"hooks-%d","webhook_url":%q,"sms":{"whitelisted_destinations":["GB"]}}`, time.Now().UnixNano(), url)
	if failover != "" {
		body = fmt.Sprintf(`{"name":"hooks-%d","webhook_url":%q,"webhook_failover_url":%q,"sms":{"whitelisted_destinations":["GB"]}}`,
			time.Now().UnixNano(), url, failover)
	}
	code, out := e.srv.do(t, e.key, "POST", "/v2/verify_profiles", body)
	if code != 200 {
		t.Fatalf("create profile: %d %v", code, out)
	}
	return out["data"].(map[string]any)["id"].(string)
}

// verify triggers a verification with a custom code and checks it right,
// which writes verify.sent (after delivery) and verify.completed.
func (e *webhookEnv) verify(t *testing.T, profile, phone, code string) string {
	t.Helper()
	st, out := e.srv.do(t, e.key, "POST", "/v2/verifications/sms",
		fmt.Sprintf(`{"phone_number":%q,"verify_profile_id":%q,"custom_code":%q}`, phone, profile, code))
	if st != 200 {
		t.Fatalf("trigger: %d %v", st, out)
	}
	id := out["data"].(map[string]any)["id"].(string)
	// A user types the code after it arrived: check once it was sent, so
	// verify.sent happens before verify.completed.
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, out = e.srv.do(t, e.key, "GET", "/v2/webhook_deliveries?filter[event_type]=verify.sent&filter[verification_id]="+id, "")
		if m, _ := out["meta"].(map[string]any); m != nil && m["total_results"] == float64(1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verification %s not sent: %v", id, out)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	st, out = e.srv.do(t, e.key, "POST", "/v2/verifications/by_phone_number/"+phone+"/actions/verify",
		fmt.Sprintf(`{"code":%q,"verify_profile_id":%q}`, code, profile))
	if st != 200 || out["data"].(map[string]any)["response_code"] != "accepted" {
		t.Fatalf("check: %d %v", st, out)
	}
	return id
}

// TestWebhooks_SDKVerifies runs the real binary against a receiver that
// checks every delivery with the official Telnyx SDK: signatures, the
// envelope, failover, failure, redelivery, and internal targets refused.
func TestWebhooks_SDKVerifies(t *testing.T) {
	e := startWebhookServer(t, "--webhook-attempts", "3", "--webhook-backoff", "100ms", "--webhook-max-backoff", "400ms")
	// The API hands out the key `verifyd webhook-key` printed.
	st, out := e.srv.do(t, e.key, "GET", "/v2/webhook_keys", "")
	keys, _ := out["data"].([]any)
	if st != 200 || len(keys) != 1 || keys[0].(map[string]any)["public_key"] != e.pub ||
		keys[0].(map[string]any)["status"] != "active" {
		t.Fatalf("GET /v2/webhook_keys: %d %v (CLI printed %s)", st, out, e.pub)
	}
	rcv := startSDKReceiver(t, e.pub, 0)

	t.Run("SignedEnvelope", func(t *testing.T) {
		p := e.profile(t, rcv.URL+"/hook", "")
		id := e.verify(t, p, "+447400000001", "424242")
		reqs := rcv.wait(t, "verify.sent and verify.completed", 20*time.Second, func(r []received) bool {
			return hasTypes(eventsOf(r, id, "/hook"), "verify.sent", "verify.completed")
		})
		for _, q := range eventsOf(reqs, id, "") {
			d := q.Event.Data
			if d.RecordType != "event" || len(d.ID) != 36 || !strings.HasSuffix(d.OccurredAt, "+00:00") ||
				q.Event.Meta.Attempt != 1 || q.Event.Meta.DeliveredTo != rcv.URL+"/hook" ||
				d.Payload["record_type"] != "verification" || d.Payload["profile_id"] != p ||
				d.Payload["phone_number"] != "+447400000001" {
				t.Errorf("envelope %s", q.raw)
			}
			if d.Payload["custom_code"] != nil || strings.Contains(q.raw, "424242") {
				t.Errorf("a code reached a webhook: %s", q.raw)
			}
			if d.EventType == "verify.completed" && (d.Payload["status"] != "accepted" || d.Payload["completion_reason"] != "accepted") {
				t.Errorf("completed payload %v", d.Payload)
			}
		}
	})

	t.Run("FailoverAfterThreeAttempts", func(t *testing.T) {
		p := e.profile(t, rcv.URL+"/fail", rcv.URL+"/hook")
		id := e.verify(t, p, "+447400000002", "515151")
		reqs := rcv.wait(t, "both events at the failover URL", 20*time.Second, func(r []received) bool {
			return hasTypes(eventsOf(r, id, "/hook"), "verify.sent", "verify.completed")
		})
		for _, q := range eventsOf(reqs, id, "/hook") {
			if q.Event.Meta.Attempt != 4 || q.Event.Meta.DeliveredTo != rcv.URL+"/hook" {
				t.Errorf("failover delivery meta %+v, want attempt 4 to the failover URL", q.Event.Meta)
			}
		}
		if n := len(eventsOf(reqs, id, "/fail")); n != 6 {
			t.Errorf("the failing primary got %d attempts for 2 events, want 6", n)
		}
	})

	t.Run("FailedThenRedelivered", func(t *testing.T) {
		p := e.profile(t, rcv.URL+"/fail", "")
		id := e.verify(t, p, "+447400000003", "626262")
		var failed []any
		deadline := time.Now().Add(20 * time.Second)
		for len(failed) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("deliveries did not fail: %v", failed)
			}
			time.Sleep(50 * time.Millisecond) // polling with a deadline
			_, out := e.srv.do(t, e.key, "GET", "/v2/webhook_deliveries?filter[status]=failed&filter[verification_id]="+id, "")
			failed, _ = out["data"].([]any)
		}
		d := failed[0].(map[string]any)
		if d["attempts_made"] != float64(3) || d["record_type"] != "webhook_delivery" || d["last_error"] != "HTTP 500" {
			t.Fatalf("failed delivery %v", d)
		}
		eid := d["id"].(string)
		st, out := e.srv.do(t, e.key, "GET", "/v2/webhook_deliveries/"+eid, "")
		attempts, _ := out["data"].(map[string]any)["attempts"].([]any)
		if st != 200 || len(attempts) != 3 || attempts[2].(map[string]any)["status_code"] != float64(500) {
			t.Fatalf("delivery log: %d %v", st, out)
		}
		if st, out := e.srv.do(t, e.key, "PATCH", "/v2/verify_profiles/"+p, fmt.Sprintf(`{"webhook_url":%q}`, rcv.URL+"/hook")); st != 200 {
			t.Fatalf("patch profile: %d %v", st, out)
		}
		if st, out := e.srv.do(t, e.key, "POST", "/v2/webhook_deliveries/"+eid+"/actions/redeliver", ""); st != 200 {
			t.Fatalf("redeliver: %d %v", st, out)
		}
		reqs := rcv.wait(t, "the redelivered event", 20*time.Second, func(r []received) bool {
			return slices.ContainsFunc(eventsOf(r, id, "/hook"), func(q received) bool { return q.Event.Data.ID == eid })
		})
		for _, q := range eventsOf(reqs, id, "/hook") {
			if q.Event.Data.ID == eid && q.Event.Meta.Attempt != 4 {
				t.Errorf("redelivery meta.attempt %d, want 4", q.Event.Meta.Attempt)
			}
		}
		// Redeliver every failed event of a time range (the other one).
		from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		st, out = e.srv.do(t, e.key, "POST", "/v2/webhook_deliveries/actions/redeliver",
			fmt.Sprintf(`{"filter":{"status":"failed","verification_id":%q,"occurred_at":{"gte":%q}}}`, id, from))
		if st != 200 || out["data"].(map[string]any)["redelivered"] != float64(1) {
			t.Fatalf("redeliver range: %d %v", st, out)
		}
		rcv.wait(t, "both events after the range redelivery", 20*time.Second, func(r []received) bool {
			return hasTypes(eventsOf(r, id, "/hook"), "verify.sent", "verify.completed")
		})
	})

	t.Run("InternalTargetsRefused", func(t *testing.T) {
		p := e.profile(t, "http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data/")
		id := e.verify(t, p, "+447400000004", "737373")
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, out := e.srv.do(t, e.key, "GET", "/v2/webhook_deliveries?filter[status]=failed&filter[verification_id]="+id, "")
			if failed, _ := out["data"].([]any); len(failed) == 2 {
				eid := failed[0].(map[string]any)["id"].(string)
				_, out = e.srv.do(t, e.key, "GET", "/v2/webhook_deliveries/"+eid, "")
				for _, a := range out["data"].(map[string]any)["attempts"].([]any) {
					if msg, _ := a.(map[string]any)["error"].(string); !strings.Contains(msg, "refused") {
						t.Errorf("attempt error %q, want a refusal", msg)
					}
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("deliveries to internal targets did not fail")
			}
			time.Sleep(50 * time.Millisecond) // polling with a deadline
		}
	})

	t.Run("SDKRejectsTamperedStaleWrongKey", func(t *testing.T) {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		r2 := startSDKReceiver(t, base64.StdEncoding.EncodeToString(pub), 0)
		body := []byte(`{"data":{"event_type":"verify.sent","id":"0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f","record_type":"event","payload":{"id":"probe"}},"meta":{"attempt":1}}`)
		post := func(path string, ts time.Time, key ed25519.PrivateKey, sent []byte) {
			stamp, sig := webhook.Sign(key, ts, body)
			req, _ := http.NewRequest("POST", r2.URL+path, bytes.NewReader(sent))
			req.Header.Set(webhook.HeaderTimestamp, stamp)
			req.Header.Set(webhook.HeaderSignature, sig)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		post("/valid", time.Now(), priv, body)
		post("/tampered", time.Now(), priv, bytes.Replace(body, []byte("verify.sent"), []byte("verify.fail"), 1))
		post("/stale", time.Now().Add(-10*time.Minute), priv, body)
		post("/wrong-key", time.Now(), other, body)
		reqs := r2.wait(t, "four probes", 10*time.Second, func(r []received) bool { return len(r) == 4 })
		want := map[string]bool{"/valid": true, "/tampered": false, "/stale": false, "/wrong-key": false}
		for _, q := range reqs {
			if q.Verified != want[q.Path] {
				t.Errorf("%s: SDK verified=%v (%s), want %v", q.Path, q.Verified, q.Error, want[q.Path])
			}
		}
	})
}

// TestWebhooks_ReceiverDownThenUp: the receiver is down for 20 s; every
// event arrives once it is up, and sorting by occurred_at gives each
// verification's events in the order they happened.
func TestWebhooks_ReceiverDownThenUp(t *testing.T) {
	e := startWebhookServer(t, "--webhook-attempts", "10", "--webhook-backoff", "1s", "--webhook-max-backoff", "4s")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there for now: connections are refused
	p := e.profile(t, fmt.Sprintf("http://127.0.0.1:%d/hook", port), "")
	var ids []string
	for i := range 5 {
		ids = append(ids, e.verify(t, p, fmt.Sprintf("+44740000010%d", i), "8181"+strconv.Itoa(10+i)))
	}
	down := time.Now()
	time.Sleep(20 * time.Second) // the scenario: the receiver is down for 20 s
	rcv := startSDKReceiver(t, e.pub, port)
	t.Logf("receiver up after %v", time.Since(down).Round(time.Second))
	reqs := rcv.wait(t, "all 10 events", 30*time.Second, func(r []received) bool {
		for _, id := range ids {
			if !hasTypes(eventsOf(r, id, "/hook"), "verify.sent", "verify.completed") {
				return false
			}
		}
		return true
	})
	for _, id := range ids {
		evs := eventsOf(reqs, id, "/hook")
		slices.SortStableFunc(evs, func(a, b received) int { return strings.Compare(a.Event.Data.OccurredAt, b.Event.Data.OccurredAt) })
		first := map[string]int{}
		for i, q := range evs {
			if _, ok := first[q.Event.Data.EventType]; !ok {
				first[q.Event.Data.EventType] = i
			}
		}
		// occurred_at has millisecond resolution (D37): a check in the
		// same millisecond as the send ties, and a tie has no order.
		if first["verify.sent"] > first["verify.completed"] &&
			evs[first["verify.sent"]].Event.Data.OccurredAt != evs[first["verify.completed"]].Event.Data.OccurredAt {
			t.Errorf("verification %s: sorted by occurred_at, verify.completed comes before verify.sent", id)
		}
		for _, q := range evs {
			if q.Event.Meta.Attempt < 2 {
				t.Errorf("event %s arrived at attempt %d although the receiver was down", q.Event.Data.ID, q.Event.Meta.Attempt)
			}
		}
	}
}
