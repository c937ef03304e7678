package webhook_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/sqlite"
	"github.com/verifyd/verifyd/storetest"
	"github.com/verifyd/verifyd/webhook"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

type fixedKey struct{ priv ed25519.PrivateKey }

func (k fixedKey) SigningKey(context.Context, string) (ed25519.PrivateKey, error) { return k.priv, nil }

func openStore(t *testing.T) verifyd.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "verifyd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// emit writes the verify.sent events of n new verifications of p.
func emit(t *testing.T, s verifyd.Store, p *verifyd.Profile, n int) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	for i := range n {
		v := storetest.NewVerification(p, fmt.Sprintf("+1555%07d", i), now)
		storetest.MustCreateVerification(t, s, v)
	}
	for {
		jobs, err := s.ClaimJobs(ctx, verifyd.ClaimParams{Worker: "w", Now: now, Lease: time.Minute, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 0 {
			return
		}
		outs := make([]verifyd.JobOutcome, len(jobs))
		for i, j := range jobs {
			outs[i] = verifyd.JobOutcome{JobID: j.ID, Worker: "w", Now: now, DeliveryStatus: verifyd.DeliverySent}
		}
		for _, err := range s.FinishJobs(ctx, outs) {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// receiver records signed deliveries; answer decides the status per
// request (nil: 200).
type receiver struct {
	t      *testing.T
	pub    ed25519.PublicKey
	mu     sync.Mutex
	bodies []map[string]any
	answer func(n int) int
	srv    *httptest.Server
}

func newReceiver(t *testing.T, pub ed25519.PublicKey, answer func(n int) int) *receiver {
	r := &receiver{t: t, pub: pub, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if !webhook.Verify(r.pub, req.Header.Get(webhook.HeaderTimestamp), req.Header.Get(webhook.HeaderSignature),
			body, time.Now(), 5*time.Minute) {
			t.Errorf("delivery with a bad signature: %s", body)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("body is not JSON: %s", body)
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, m)
		n := len(r.bodies)
		r.mu.Unlock()
		status := http.StatusOK
		if r.answer != nil {
			status = r.answer(n)
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "answer %d", n)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.bodies) }

func (r *receiver) meta(i int) (attempt float64, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.bodies[i]["meta"].(map[string]any)
	return m["attempt"].(float64), m["delivered_to"].(string)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling with a deadline
	}
}

func start(t *testing.T, s verifyd.Store, priv ed25519.PrivateKey, copts webhook.ClientOptions, opts webhook.Options) *webhook.Deliverer {
	if copts.Policy.Allow == nil && copts.Control == nil {
		copts.Policy.Allow = loopback
	}
	if opts.Backoff == 0 {
		opts.Backoff, opts.MaxBackoff = 10*time.Millisecond, 40*time.Millisecond
	}
	opts.Poll = 5 * time.Millisecond
	if opts.Lease == 0 {
		opts.Lease = time.Second // a saturated endpoint's deliveries come back when it lapses
	}
	d := webhook.New(s, fixedKey{priv}, webhook.NewClient(copts), opts)
	d.Start(context.Background())
	t.Cleanup(d.Stop)
	return d
}

func onlyDelivery(t *testing.T, s verifyd.Store, acct string) *verifyd.WebhookDelivery {
	t.Helper()
	ds, n, err := s.ListWebhookDeliveries(context.Background(), acct, verifyd.WebhookFilter{Limit: 10})
	if err != nil || n != 1 {
		t.Fatalf("deliveries: %d, %v", n, err)
	}
	return ds[0]
}

func TestRetryThenFailover(t *testing.T) {
	s := openStore(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	primary := newReceiver(t, pub, func(int) int { return http.StatusInternalServerError })
	failover := newReceiver(t, pub, func(n int) int {
		if n == 1 {
			return http.StatusBadGateway
		}
		return http.StatusAccepted
	})
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "P", time.Now(), func(p *verifyd.Profile) {
		p.WebhookURL, p.WebhookFailoverURL = primary.srv.URL+"/hook", failover.srv.URL+"/fail"
	})
	emit(t, s, p, 1)
	start(t, s, priv, webhook.ClientOptions{}, webhook.Options{AttemptsPerURL: 2})
	waitFor(t, "delivered", func() bool { return onlyDelivery(t, s, a.ID).State == verifyd.WebhookDelivered })

	if primary.count() != 2 || failover.count() != 2 {
		t.Fatalf("primary got %d, failover %d; want 2 and 2", primary.count(), failover.count())
	}
	for i, want := range []struct {
		r       *receiver
		i       int
		attempt float64
		to      string
	}{{primary, 0, 1, primary.srv.URL + "/hook"}, {primary, 1, 2, primary.srv.URL + "/hook"},
		{failover, 0, 3, failover.srv.URL + "/fail"}, {failover, 1, 4, failover.srv.URL + "/fail"}} {
		if attempt, to := want.r.meta(want.i); attempt != want.attempt || to != want.to {
			t.Errorf("delivery %d: meta.attempt %v to %s, want %v to %s", i, attempt, to, want.attempt, want.to)
		}
	}
	d := onlyDelivery(t, s, a.ID)
	_, attempts, err := s.GetWebhookDelivery(context.Background(), a.ID, d.Event.ID)
	if err != nil || len(attempts) != 4 {
		t.Fatalf("attempt log: %d, %v", len(attempts), err)
	}
	if last := attempts[3]; last.StatusCode != 202 || last.Attempt != 4 || last.ResponseHead != "answer 2" ||
		attempts[0].StatusCode != 500 || attempts[0].Error != "HTTP 500" || attempts[2].StatusCode != 502 {
		t.Fatalf("attempt log %+v / %+v", attempts[0], last)
	}
	// The payload never carries a code (D12).
	primary.mu.Lock()
	payload := primary.bodies[0]["data"].(map[string]any)["payload"].(map[string]any)
	primary.mu.Unlock()
	if payload["custom_code"] != nil || payload["record_type"] != "verification" {
		t.Fatalf("payload %v", payload)
	}
}

func TestFailedThenRedelivered(t *testing.T) {
	s := openStore(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	var mu sync.Mutex
	status := http.StatusServiceUnavailable
	r := newReceiver(t, pub, func(int) int { mu.Lock(); defer mu.Unlock(); return status })
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "P", time.Now(), func(p *verifyd.Profile) { p.WebhookURL = r.srv.URL })
	emit(t, s, p, 1)
	start(t, s, priv, webhook.ClientOptions{}, webhook.Options{AttemptsPerURL: 3})
	waitFor(t, "failed", func() bool { return onlyDelivery(t, s, a.ID).State == verifyd.WebhookFailed })
	if r.count() != 3 {
		t.Fatalf("%d attempts before failing, want 3", r.count())
	}
	mu.Lock()
	status = http.StatusOK
	mu.Unlock()
	n, err := s.RedeliverWebhooks(context.Background(), a.ID, verifyd.WebhookFilter{State: verifyd.WebhookFailed}, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("redeliver: %d %v", n, err)
	}
	waitFor(t, "redelivered", func() bool { return onlyDelivery(t, s, a.ID).State == verifyd.WebhookDelivered })
	if attempt, _ := r.meta(3); r.count() != 4 || attempt != 4 {
		t.Fatalf("redelivery: %d requests, meta.attempt %v", r.count(), attempt)
	}
}

// A receiver that hangs holds at most PerEndpoint POSTs; the others flow.
func TestSlowReceiverDoesNotBlockOthers(t *testing.T) {
	s := openStore(t)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	release := make(chan struct{})
	var slowMu sync.Mutex
	slowInFlight, slowMax := 0, 0
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		slowMu.Lock()
		slowInFlight++
		slowMax = max(slowMax, slowInFlight)
		slowMu.Unlock()
		<-release
		slowMu.Lock()
		slowInFlight--
		slowMu.Unlock()
	}))
	defer slow.Close()
	released := false
	defer func() {
		if !released {
			close(release) // before slow.Close, which waits for its handlers
		}
	}()
	fast := newReceiver(t, pub, nil)
	a := storetest.MustCreateAccount(t, s)
	ps := storetest.MustCreateProfile(t, s, a.ID, "Slow", time.Now(), func(p *verifyd.Profile) { p.WebhookURL = slow.URL })
	pf := storetest.MustCreateProfile(t, s, a.ID, "Fast", time.Now(), func(p *verifyd.Profile) { p.WebhookURL = fast.srv.URL })
	emit(t, s, ps, 20)
	reg := prometheus.NewRegistry()
	start(t, s, priv, webhook.ClientOptions{Timeout: 30 * time.Second},
		webhook.Options{PerEndpoint: 2, Concurrency: 8, Metrics: webhook.NewMetrics(reg)})
	gauge := func(name string) float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return -1
	}
	waitFor(t, "the slow receiver's queue to fill", func() bool { return gauge("verifyd_webhook_queued") == 8 })
	emit(t, s, pf, 20)
	waitFor(t, "the fast receiver's 20 deliveries", func() bool { return fast.count() == 20 })
	slowMu.Lock()
	if slowMax > 2 {
		t.Errorf("the slow receiver had %d requests in flight, limit 2", slowMax)
	}
	slowMu.Unlock()
	if q := gauge("verifyd_webhook_queued"); q != 8 {
		t.Errorf("verifyd_webhook_queued = %v while the slow receiver hangs, want 8 (4 x PerEndpoint)", q)
	}
	close(release)
	released = true
	waitFor(t, "all 40 delivered", func() bool {
		_, n, _ := s.ListWebhookDeliveries(context.Background(), a.ID, verifyd.WebhookFilter{State: verifyd.WebhookDelivered, Limit: 1})
		return n == 40
	})
	if q, f := gauge("verifyd_webhook_queued"), gauge("verifyd_webhook_inflight"); q != 0 || f != 0 {
		t.Errorf("after the drain: queued %v, in flight %v; want 0 and 0", q, f)
	}
}

// Internal targets fail at once, and no connection is ever opened.
func TestInternalTargetsRefusedWithoutDial(t *testing.T) {
	s := openStore(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	a := storetest.MustCreateAccount(t, s)
	p := storetest.MustCreateProfile(t, s, a.ID, "P", time.Now(), func(p *verifyd.Profile) {
		p.WebhookURL, p.WebhookFailoverURL = "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook"
	})
	emit(t, s, p, 1)
	start(t, s, priv, webhook.ClientOptions{Control: func(network, address string, _ syscall.RawConn) error {
		t.Errorf("a connection to %s was attempted", address)
		return errors.New("no dial in this test")
	}}, webhook.Options{AttemptsPerURL: 1})
	waitFor(t, "failed", func() bool { return onlyDelivery(t, s, a.ID).State == verifyd.WebhookFailed })
	d := onlyDelivery(t, s, a.ID)
	_, attempts, _ := s.GetWebhookDelivery(context.Background(), a.ID, d.Event.ID)
	if len(attempts) != 2 || !strings.Contains(attempts[0].Error, "refused") || !strings.Contains(attempts[1].Error, "10.0.0.1 is private") {
		t.Fatalf("attempts %+v", attempts)
	}
}
