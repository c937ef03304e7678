package api

import (
	"bytes"
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verifyd/verifyd/fraud"
	"github.com/verifyd/verifyd/ratelimit"
	"github.com/verifyd/verifyd/service"
	"github.com/verifyd/verifyd/sqlite"
)

// newGuardedEnv is newEnv with every guard on (in-process), GB allowed by
// default, and an admin token.
func newGuardedEnv(t *testing.T) *env {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "verifyd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	keys, err := service.NewKeys([][]byte{bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: store, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	e.metrics = NewMetrics(e.reg)
	cfg := fraud.DefaultConfig()
	cfg.OnBlock = e.metrics.FraudBlock
	mem := fraud.NewMemStore()
	g, err := fraud.NewGuard(cfg, mem, mem)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = service.New(store, keys, service.Options{DefaultDestinations: []string{"GB"}, Codes: fixedCode, Observer: e.metrics,
		Guards: &service.Guards{Fraud: g, Limiter: ratelimit.New(ratelimit.Options{})}})
	e.acctA, e.keyA = e.account("a")
	e.acctB, e.keyB = e.account("b")
	e.api = New(e.svc, Options{Logger: discardLogger(), Registerer: e.reg, Gatherer: e.reg, Metrics: e.metrics, AdminToken: "adm1n"})
	e.srv = httptest.NewServer(e.api)
	t.Cleanup(e.srv.Close)
	return e
}

func TestIdempotencyKeyHeader(t *testing.T) {
	e := newGuardedEnv(t)
	p := e.createProfile(e.keyA, "p")
	body := map[string]any{"phone_number": "+447400123456", "verify_profile_id": p, "custom_code": "4242"}
	first := e.do("POST", "/v2/verifications/sms", e.keyA, body, "Idempotency-Key", "k-1")
	first.ok(t)
	second := e.do("POST", "/v2/verifications/sms", e.keyA, body, "Idempotency-Key", "k-1")
	second.ok(t)
	if !bytes.Equal(first.raw, second.raw) || second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay %q (replayed=%q), want %q", second.raw, second.header.Get("Idempotent-Replayed"), first.raw)
	}
	// Another account's key of the same name is its own.
	pb := e.createProfile(e.keyB, "p")
	e.do("POST", "/v2/verifications/sms", e.keyB, map[string]any{"phone_number": "+447400123456", "verify_profile_id": pb},
		"Idempotency-Key", "k-1").ok(t)
	body["phone_number"] = "+447400123457"
	e.do("POST", "/v2/verifications/sms", e.keyA, body, "Idempotency-Key", "k-1").
		wantErr(t, 422, "10015", "parameter=Idempotency-Key")
	if n, _ := e.store.QueueDepth(context.Background()); n != 2 {
		t.Fatalf("%d jobs, want 2", n)
	}
}

func TestRateLimitAnswer(t *testing.T) {
	e := newGuardedEnv(t)
	p := e.createProfile(e.keyA, "p")
	for range 3 {
		e.trigger(e.keyA, p, "+447400123456")
	}
	r := e.do("POST", "/v2/verifications/sms", e.keyA, map[string]any{"phone_number": "+447400123456", "verify_profile_id": p})
	r.wantErr(t, 429, "V0003", "")
	if r.header.Get("Retry-After") == "" || r.header.Get("X-Should-Retry") != "false" {
		t.Fatalf("429 headers %v, want Retry-After and x-should-retry: false", r.header)
	}
	e.do("POST", "/v2/verifications/sms", e.keyA, map[string]any{"phone_number": "+12025550123", "verify_profile_id": p}).
		wantErr(t, 422, "V0001", "pointer=/phone_number")
	m := e.do("GET", "/metrics", "", nil)
	for _, want := range []string{`verifyd_guard_refusals_total{reason="V0003"} 1`, `verifyd_guard_refusals_total{reason="V0001"} 1`} {
		if !strings.Contains(string(m.raw), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestAdminFraudBlocks(t *testing.T) {
	e := newGuardedEnv(t)
	p := e.createProfile(e.keyA, "p")
	e.do("GET", "/v2/admin/fraud/blocks", e.keyA, nil).wantErr(t, 401, "10009", "") // an account key is not the admin token
	e.do("GET", "/v2/admin/fraud/blocks", "", nil).wantErr(t, 401, "10009", "")
	e.do("POST", "/v2/admin/fraud/blocks", "adm1n", map[string]any{"prefix": "44", "reason": "x", "duration_secs": 60}).
		wantErr(t, 422, "10015", "pointer=/prefix")
	b := e.do("POST", "/v2/admin/fraud/blocks", "adm1n", map[string]any{"prefix": "+447400", "reason": "NOC ticket 7", "duration_secs": 600}).ok(t)
	if b["prefix"] != "+447400" || b["manual"] != true || b["reason"] != "manual: NOC ticket 7" {
		t.Fatalf("block = %v", b)
	}
	if l := e.do("GET", "/v2/admin/fraud/blocks", "adm1n", nil).okList(t); len(l) != 1 {
		t.Fatalf("list = %v", l)
	}
	r := e.do("POST", "/v2/verifications/sms", e.keyA, map[string]any{"phone_number": "+447400123456", "verify_profile_id": p})
	r.wantErr(t, 422, "V0004", "pointer=/phone_number")
	e.do("DELETE", "/v2/admin/fraud/blocks/+447400", "adm1n", nil).ok(t)
	e.do("DELETE", "/v2/admin/fraud/blocks/%2B447400", "adm1n", nil).wantErr(t, 404, "10005", "")
	e.trigger(e.keyA, p, "+447400123456")
	st := e.do("GET", "/v2/admin/fraud/stats", "adm1n", nil).ok(t)
	if st["active_blocks"] != float64(0) {
		t.Fatalf("stats = %v", st)
	}
	// Without a token configured the admin routes do not exist.
	plain := newEnv(t)
	plain.do("GET", "/v2/admin/fraud/blocks", "", nil).wantErr(t, 404, "10005", "")
}
