package main

// End-to-end delivery to carriers on the real binary: node-smpp (npm smpp,
// smpp/testdata/smsc.cjs) as the SMSC, a fake Twilio and a fake Telnyx on
// loopback, all routed by a --config file.

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd/twilio"
)

// carrierSMSC is a node-smpp SMSC under test, with its JSON event lines.
type carrierSMSC struct {
	port    int
	cmd     *exec.Cmd
	exited  chan struct{} // closed once its output is drained
	mu      sync.Mutex
	events  []map[string]any
	changed chan struct{}
}

// startCarrierSMSC runs smpp/testdata/smsc.cjs with env, or skips when
// node or node-smpp is absent (unless VERIFYD_REQUIRE_PEERS is set).
func startCarrierSMSC(t *testing.T, env ...string) *carrierSMSC {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		skipPeer(t, "node not found: the SMPP carrier tests need node-smpp")
	}
	mods, _ := filepath.Abs(filepath.Join("..", "..", "interop", "node_modules"))
	if _, err := os.Stat(filepath.Join(mods, "smpp", "package.json")); err != nil {
		skipPeer(t, "interop/node_modules/smpp missing: run `cd interop && npm ci`")
	}
	cmd := exec.Command(node, filepath.Join("..", "..", "smpp", "testdata", "smsc.cjs"))
	cmd.Env = append(append(os.Environ(), "SMSC_NODE_MODULES="+mods, "SMSC_PORT=0"), env...)
	cmd.Stderr = io.Discard
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	s := &carrierSMSC{cmd: cmd, exited: done, changed: make(chan struct{})}
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e map[string]any
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			s.mu.Lock()
			s.events = append(s.events, e)
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			s.mu.Lock()
			for _, e := range s.events {
				t.Logf("SMSC: %v", e)
			}
			s.mu.Unlock()
		}
	})
	e := s.wait(t, "listening", func(e map[string]any) bool { return e["event"] == "listening" })
	s.port = int(e["port"].(float64))
	return s
}

// wait returns the first event matching f, waiting 15 s at most.
func (s *carrierSMSC) wait(t *testing.T, what string, f func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ch := s.changed
		for _, e := range s.events {
			if f(e) {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("SMSC: no %s within 15 s", what)
		}
	}
}

func event(name string) func(map[string]any) bool {
	return func(e map[string]any) bool { return e["event"] == name }
}

// carrierEnv is verifyd on a fresh database with a config file, an API key
// and a profile whose webhooks go to a loopback receiver.
type carrierEnv struct {
	srv     *sdkServer
	args    []string // of verifyd serve, to start it again on the same database
	key     string
	profile string
	hooks   *hookRecorder
}

// startCarrierEnv writes config (YAML) to a file and starts verifyd with it
// and env (besides the process environment); extra args are appended.
func startCarrierEnv(t *testing.T, config string, env []string, args ...string) *carrierEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	db, cfgPath := filepath.Join(dir, "v.db"), filepath.Join(dir, "verifyd.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	key := lastLine(t, "apikey", "create", "--name", "t", "--db", db)
	hooks := newHookRecorder(t)
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db, "--config", cfgPath,
		"--webhook-allow", "loopback", "--webhook-backoff", "100ms", "--log-level", "debug"}, args...)
	srv := sdkStartServer(t, context.Background(), binary(t), append(os.Environ(), env...), args...)
	e := &carrierEnv{srv: srv, args: args, key: key, hooks: hooks}
	st, body := e.do(t, "POST", "/v2/verify_profiles", fmt.Sprintf(`{"name":"Shop","webhook_url":%q,"sms":{"whitelisted_destinations":["GB","DE"]}}`, hooks.URL))
	if st != 200 {
		t.Fatalf("create profile: %d %v", st, body)
	}
	e.profile = body["data"].(map[string]any)["id"].(string)
	t.Cleanup(func() {
		if t.Failed() {
			// The test's polling would fill the tail: its request lines are left out.
			t.Logf("verifyd stderr (tail, without request lines):\n%s", srv.stderrTailExcept(80, `"msg":"http request"`))
		}
	})
	return e
}

func (e *carrierEnv) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+e.srv.addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// trigger starts an SMS verification and returns its ID.
func (e *carrierEnv) trigger(t *testing.T, phone string) string {
	t.Helper()
	st, body := e.do(t, "POST", "/v2/verifications/sms", fmt.Sprintf(`{"phone_number":%q,"verify_profile_id":%q}`, phone, e.profile))
	if st != 200 {
		t.Fatalf("trigger: %d %v", st, body)
	}
	return body["data"].(map[string]any)["id"].(string)
}

// waitDelivery polls GET /v2/verifications/{id} until its delivery_status
// is want (15 s at most).
func (e *carrierEnv) waitDelivery(t *testing.T, id, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last any
	for time.Now().Before(deadline) {
		st, body := e.do(t, "GET", "/v2/verifications/"+id, "")
		if st == 200 {
			if last = body["data"].(map[string]any)["delivery_status"]; last == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("verification %s: delivery_status %v after 15 s, want %s", id, last, want)
}

// metric returns the value of the sample of /metrics whose line starts with
// prefix (name and labels), or -1.
func (e *carrierEnv) metric(t *testing.T, prefix string) float64 {
	t.Helper()
	return scrapeMetric(t, "http://"+e.srv.addr, prefix)
}

// scrapeMetric returns the value of the sample of base's /metrics whose
// line starts with prefix (name and labels), or -1.
func scrapeMetric(t *testing.T, base, prefix string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(l, prefix)), 64)
			return v
		}
	}
	return -1
}

// hookRecorder is a webhook receiver on loopback: it keeps every event.
type hookRecorder struct {
	URL     string
	mu      sync.Mutex
	events  []hookEvent
	changed chan struct{}
}

type hookEvent struct {
	Type, VerificationID, DeliveryStatus string
}

func newHookRecorder(t *testing.T) *hookRecorder {
	h := &hookRecorder{changed: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Data struct {
				EventType string `json:"event_type"`
				Payload   struct {
					ID             string  `json:"id"`
					DeliveryStatus *string `json:"delivery_status"`
				} `json:"payload"`
			} `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		ev := hookEvent{Type: body.Data.EventType, VerificationID: body.Data.Payload.ID}
		if body.Data.Payload.DeliveryStatus != nil {
			ev.DeliveryStatus = *body.Data.Payload.DeliveryStatus
		}
		h.mu.Lock()
		h.events = append(h.events, ev)
		close(h.changed)
		h.changed = make(chan struct{})
		h.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/hook"
	return h
}

// wait waits (15 s at most) for the event typ of verification id.
func (h *hookRecorder) wait(t *testing.T, id, typ string) hookEvent {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ch := h.changed
		for _, e := range h.events {
			if e.VerificationID == id && e.Type == typ {
				h.mu.Unlock()
				return e
			}
		}
		got := fmt.Sprint(h.events)
		h.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("webhook %s of %s not received within 15 s; got %s", typ, id, got)
		}
	}
}

var codeInText = regexp.MustCompile(`\b(\d{4,10})\b`)

// TestCarrier_SMPP routes SMS to node-smpp: the SMSC gets the text with the
// code (which then verifies), and its delivery receipt moves the
// verification to delivered and writes verify.delivered.
func TestCarrier_SMPP(t *testing.T) {
	smsc := startCarrierSMSC(t)
	e := startCarrierEnv(t, fmt.Sprintf(`
senders:
  - name: smsc
    type: smpp
    smpp:
      address: 127.0.0.1:%d
      system_id: test
      password: ${VERIFYD_TEST_SMPP_PASSWORD}
      source_addr: Verifyd
routes:
  - channel: sms
    senders: [smsc]
`, smsc.port), []string{"VERIFYD_TEST_SMPP_PASSWORD=secret"})

	const phone = "+447400123456"
	id := e.trigger(t, phone)
	sub := smsc.wait(t, "submit_sm", event("submit_sm"))
	text, _ := sub["text"].(string)
	if sub["destination_addr"] != strings.TrimPrefix(phone, "+") || sub["source_addr"] != "Verifyd" || sub["status"] != float64(0) {
		t.Fatalf("submit_sm = %v", sub)
	}
	m := codeInText.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("SMS text %q has no code", text)
	}

	e.waitDelivery(t, id, "delivered")
	if ev := e.hooks.wait(t, id, "verify.delivered"); ev.DeliveryStatus != "delivered" {
		t.Fatalf("verify.delivered payload delivery_status %q", ev.DeliveryStatus)
	}
	if r := smsc.wait(t, "deliver_sm_resp", event("deliver_sm_resp")); r["status"] != float64(0) {
		t.Fatalf("deliver_sm_resp = %v, want status 0", r)
	}
	if n := e.metric(t, `verifyd_sender_attempts_total{outcome="sent",sender="smsc"}`); n != 1 {
		t.Fatalf("verifyd_sender_attempts_total sent/smsc = %v, want 1", n)
	}

	// The code the SMSC got is the code.
	st, body := e.do(t, "POST", "/v2/verifications/"+id+"/actions/verify", fmt.Sprintf(`{"code":%q}`, m[1]))
	if st != 200 || body["data"].(map[string]any)["response_code"] != "accepted" {
		t.Fatalf("verify with the SMSC's code %s: %d %v", m[1], st, body)
	}
	e.srv.stop(t) // clean shutdown: unbind after the worker
	smsc.wait(t, "unbind", event("unbind"))
}

// TestCarrier_SMPPUndeliverable: an UNDELIV receipt moves the status to
// delivery_failed (verify.failed) and leaves the verification pending.
func TestCarrier_SMPPUndeliverable(t *testing.T) {
	smsc := startCarrierSMSC(t, "SMSC_DLR_STAT=UNDELIV")
	e := startCarrierEnv(t, fmt.Sprintf(`
senders:
  - {name: smsc, type: smpp, smpp: {address: "127.0.0.1:%d", system_id: test, password: secret}}
routes:
  - {channel: sms, senders: [smsc]}
`, smsc.port), nil)
	id := e.trigger(t, "+447400123457")
	e.waitDelivery(t, id, "delivery_failed")
	e.hooks.wait(t, id, "verify.failed")
	if _, body := e.do(t, "GET", "/v2/verifications/"+id, ""); body["data"].(map[string]any)["status"] != "pending" {
		t.Fatalf("status after a failure receipt = %v, want pending (D7)", body["data"])
	}
}

// TestCarrier_Failover: the route's first SMPP sender points at a closed
// loopback port; the second (node-smpp) takes the message.
func TestCarrier_Failover(t *testing.T) {
	smsc := startCarrierSMSC(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	e := startCarrierEnv(t, fmt.Sprintf(`
senders:
  - name: down
    type: smpp
    smpp: {address: %q, system_id: test, password: secret, response_timeout: 500ms, reconnect_min: 1s}
  - name: up
    type: smpp
    smpp: {address: "127.0.0.1:%d", system_id: test, password: secret}
routes:
  - channel: sms
    prefixes: ["44"]
    senders: [down, up]
  - channel: sms
    senders: [up]
router:
  attempt_timeout: 5s
`, dead, smsc.port), nil)
	id := e.trigger(t, "+447400123458")
	sub := smsc.wait(t, "submit_sm", event("submit_sm"))
	if sub["destination_addr"] != "447400123458" {
		t.Fatalf("submit_sm = %v", sub)
	}
	e.waitDelivery(t, id, "delivered")
	if n := e.metric(t, `verifyd_sender_attempts_total{outcome="error",sender="down"}`); n != 1 {
		t.Fatalf("attempts error/down = %v, want 1", n)
	}
	if n := e.metric(t, `verifyd_sender_attempts_total{outcome="sent",sender="up"}`); n != 1 {
		t.Fatalf("attempts sent/up = %v, want 1", n)
	}
}

// TestCarrier_HTTPCallbacks routes +44 to a fake Twilio and +49 to a fake
// Telnyx; their signed status callbacks, posted to the mounted
// /callbacks/{twilio,telnyx}/{name} handlers, move the delivery status.
// Unsigned or wrongly signed callbacks are refused and change nothing.
func TestCarrier_HTTPCallbacks(t *testing.T) {
	const token = "twilio-auth-token-for-tests"
	var mu sync.Mutex
	twilioGot := map[string]url.Values{} // To → form
	fakeTwilio := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" || user != "AC123" || pass != token {
			http.Error(w, `{"code":20003,"message":"Authenticate","status":401}`, http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		mu.Lock()
		twilioGot[r.PostForm.Get("To")] = r.PostForm
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","num_segments":"1"}`)
	}))
	defer fakeTwilio.Close()
	fakeTelnyx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/messages" || r.Header.Get("Authorization") != "Bearer KEY_test" {
			http.Error(w, `{"errors":[{"code":"10009","title":"Authentication failed"}]}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"data":{"record_type":"message","id":"40317f7d-3d35-4b1b-a8d2-34e0b3d3e0aa","type":"SMS","parts":1,"to":[{"phone_number":"+4915112345678","status":"queued"}]}}`)
	}))
	defer fakeTelnyx.Close()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)

	// verifyd sits behind a proxy: the public URLs are not its address;
	// signatures are over the public URL.
	const twilioPublic = "https://verify.example.com/callbacks/twilio/tw"
	e := startCarrierEnv(t, fmt.Sprintf(`
senders:
  - name: tw
    type: twilio
    twilio:
      base_url: %s
      account_sid: AC123
      auth_token: ${VERIFYD_TEST_TWILIO_TOKEN}
      from: "+15550001111"
      callback_url: %s
  - name: tx
    type: telnyx
    telnyx:
      base_url: %s
      api_key: ${VERIFYD_TEST_TELNYX_KEY}
      from: "+15550002222"
      webhook_url: https://verify.example.com/callbacks/telnyx/tx
      public_key: %s
routes:
  - {channel: sms, prefixes: ["44"], senders: [tw]}
  - {channel: sms, prefixes: ["49"], senders: [tx]}
`, fakeTwilio.URL, twilioPublic, fakeTelnyx.URL, base64.StdEncoding.EncodeToString(pub)),
		[]string{"VERIFYD_TEST_TWILIO_TOKEN=" + token, "VERIFYD_TEST_TELNYX_KEY=KEY_test"})

	// Twilio.
	id := e.trigger(t, "+447400123459")
	e.waitDelivery(t, id, "sent")
	mu.Lock()
	form := twilioGot["+447400123459"]
	mu.Unlock()
	if form.Get("StatusCallback") != twilioPublic || !codeInText.MatchString(form.Get("Body")) || form.Get("From") != "+15550001111" {
		t.Fatalf("Twilio got %v", form)
	}
	cb := url.Values{"MessageSid": {"SM0123456789abcdef0123456789abcdef"}, "MessageStatus": {"delivered"},
		"AccountSid": {"AC123"}, "To": {"+447400123459"}}
	post := func(path string, body string, header map[string]string) int {
		req, _ := http.NewRequest("POST", "http://"+e.srv.addr+path, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	form2 := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	if st := post("/callbacks/twilio/tw", cb.Encode(), form2); st != http.StatusForbidden {
		t.Fatalf("unsigned Twilio callback: %d, want 403", st)
	}
	form2[twilio.SignatureHeader] = twilio.Signature("wrong-token", twilioPublic, cb)
	if st := post("/callbacks/twilio/tw", cb.Encode(), form2); st != http.StatusForbidden {
		t.Fatalf("wrongly signed Twilio callback: %d, want 403", st)
	}
	if _, body := e.do(t, "GET", "/v2/verifications/"+id, ""); body["data"].(map[string]any)["delivery_status"] != "sent" {
		t.Fatalf("a refused callback moved the status: %v", body["data"])
	}
	form2[twilio.SignatureHeader] = twilio.Signature(token, twilioPublic, cb)
	if st := post("/callbacks/twilio/tw", cb.Encode(), form2); st != http.StatusOK {
		t.Fatalf("signed Twilio callback: %d, want 200", st)
	}
	e.waitDelivery(t, id, "delivered")
	e.hooks.wait(t, id, "verify.delivered")

	// Telnyx.
	id2 := e.trigger(t, "+4915112345678")
	e.waitDelivery(t, id2, "sent")
	hook := `{"data":{"event_type":"message.finalized","id":"e1","occurred_at":"2026-01-31T09:15:04.602+00:00","payload":{"id":"40317f7d-3d35-4b1b-a8d2-34e0b3d3e0aa","to":[{"phone_number":"+4915112345678","status":"delivery_failed"}],"errors":[{"code":"40002","title":"blocked"}]}}}`
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(stamp+"|"+hook)))
	bad := map[string]string{"Content-Type": "application/json", "telnyx-timestamp": stamp,
		"telnyx-signature-ed25519": base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(stamp+"|{}")))}
	if st := post("/callbacks/telnyx/tx", hook, bad); st != http.StatusForbidden {
		t.Fatalf("wrongly signed Telnyx webhook: %d, want 403", st)
	}
	good := map[string]string{"Content-Type": "application/json", "telnyx-timestamp": stamp, "telnyx-signature-ed25519": sig}
	if st := post("/callbacks/telnyx/tx", hook, good); st != http.StatusOK {
		t.Fatalf("signed Telnyx webhook: %d, want 200", st)
	}
	e.waitDelivery(t, id2, "delivery_failed")
	e.hooks.wait(t, id2, "verify.failed")
	// The API still answers everything else on the same server.
	if st, _ := e.do(t, "GET", "/v2/verifications/"+id2, ""); st != 200 {
		t.Fatalf("API beside the callbacks: %d", st)
	}
}

// TestCarrier_ConfigErrors: the binary refuses a bad config file, naming
// the file, the field and the problem, and never printing a secret.
func TestCarrier_ConfigErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir := t.TempDir()
	cases := []struct {
		name, yaml string
		env        []string
		want       []string
	}{
		{"missing env", `
senders:
  - {name: smsc, type: smpp, smpp: {address: "127.0.0.1:2775", system_id: test, password: "${VERIFYD_TEST_NOT_SET}"}}
routes: [{channel: sms, senders: [smsc]}]
`, nil, []string{"senders[0] (smsc).smpp.password", "VERIFYD_TEST_NOT_SET", "not set"}},
		{"unknown sender", `
senders:
  - {name: smsc, type: smpp, smpp: {address: "127.0.0.1:2775", system_id: test, password: "${VERIFYD_TEST_PW}"}}
routes: [{channel: sms, senders: [nope]}]
`, []string{"VERIFYD_TEST_PW=hunter2"}, []string{"routes[0].senders[0]", `no sender is named "nope"`}},
		{"unknown field", `
senders:
  - {name: smsc, type: smpp, smpp: {adress: "127.0.0.1:2775"}}
routes: [{channel: sms, senders: [smsc]}]
`, nil, []string{"line 3", "adress"}},
		{"channel type", `
senders:
  - {name: tw, type: twilio, twilio: {account_sid: AC1, auth_token: "${VERIFYD_TEST_PW}", from: "+15550001111"}}
routes: [{channel: call, senders: [tw]}]
`, []string{"VERIFYD_TEST_PW=hunter2"}, []string{"routes[0].senders[0]", "cannot carry call"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(binary(t), "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "v.db"), "--config", path)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("verifyd started with a bad config:\n%s", out)
			}
			for _, w := range append(c.want, path) {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(string(out), "hunter2") {
				t.Errorf("output shows a secret:\n%s", out)
			}
		})
	}
}
