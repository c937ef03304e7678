package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/service"
	"github.com/verifyd/verifyd/sqlite"
)

// Phone numbers the tests use: valid US numbers (the operator default
// destinations are US), one of the wrong shape, one invalid for its country.
const (
	phoneA       = "+13035551234"
	phoneB       = "+12025550123"
	phoneBadForm = "13035551234"
	phoneInvalid = "+15555555555"
)

// fixedCode is what the test code source hands out: the first n digits.
func fixedCode(n int) (string, error) { return "1234567890"[:n], nil }

// syncBuffer collects log output written from server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// env is a real HTTP server over a real service on a real SQLite store,
// with two accounts A and B.
type env struct {
	t       *testing.T
	srv     *httptest.Server
	api     *Server
	svc     *service.Service
	store   *sqlite.Store
	reg     *prometheus.Registry
	logs    *syncBuffer
	acctA   *verifyd.Account
	acctB   *verifyd.Account
	keyA    string
	keyB    string
	metrics *Metrics
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "verifyd.db"))
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
	e.svc = service.New(store, keys, service.Options{
		DefaultDestinations: []string{"US"}, Codes: fixedCode, Observer: e.metrics,
	})
	e.acctA, e.keyA = e.account("a")
	e.acctB, e.keyB = e.account("b")
	e.api = New(e.svc, Options{
		Logger:     slog.New(slog.NewJSONHandler(e.logs, nil)),
		Registerer: e.reg, Gatherer: e.reg, Metrics: e.metrics,
	})
	e.srv = httptest.NewServer(e.api)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) account(name string) (*verifyd.Account, string) {
	e.t.Helper()
	ctx := context.Background()
	acct, err := e.svc.CreateAccount(ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	key, _, err := e.svc.CreateAPIKey(ctx, acct.ID, "k")
	if err != nil {
		e.t.Fatal(err)
	}
	return acct, key
}

// resp is a decoded response.
type resp struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// do sends a request. body: nil (none), a string (sent as is) or a value
// (JSON-encoded). hdr are name/value pairs; Content-Type defaults to JSON
// when there is a body. key "" sends no Authorization.
func (e *env) do(method, path, key string, body any, hdr ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	r := &resp{status: res.StatusCode, header: res.Header}
	if r.raw, err = io.ReadAll(res.Body); err != nil {
		e.t.Fatal(err)
	}
	if method != http.MethodHead && !strings.HasPrefix(path, "/metrics") {
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			e.t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
		}
		if err := json.Unmarshal(r.raw, &r.body); err != nil {
			e.t.Fatalf("%s %s: body is not a JSON object: %v: %s", method, path, err, r.raw)
		}
	}
	return r
}

// ok asserts a 200 and returns data as an object.
func (r *resp) ok(t *testing.T) map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.raw)
	}
	d, ok := r.body["data"].(map[string]any)
	if !ok {
		t.Fatalf("data is not an object: %s", r.raw)
	}
	return d
}

// okList asserts a 200 and returns data as an array.
func (r *resp) okList(t *testing.T) []any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", r.status, r.raw)
	}
	d, ok := r.body["data"].([]any)
	if !ok {
		t.Fatalf("data is not an array: %s", r.raw)
	}
	return d
}

// wantErr asserts an error response: status, the first error's code, and
// its source ("pointer=/x" or "parameter=y", "" for none). It checks the
// envelope's shape too: title, meta.url for Telnyx codes only.
func (r *resp) wantErr(t *testing.T, status int, code, source string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	errs, ok := r.body["errors"].([]any)
	if !ok || len(errs) == 0 {
		t.Fatalf("no errors array: %s", r.raw)
	}
	if _, ok := r.body["data"]; ok {
		t.Errorf("error response carries data: %s", r.raw)
	}
	e := errs[0].(map[string]any)
	if e["code"] != code {
		t.Fatalf("code %v, want %s: %s", e["code"], code, r.raw)
	}
	if title, _ := e["title"].(string); title == "" {
		t.Errorf("no title: %s", r.raw)
	}
	meta, _ := e["meta"].(map[string]any)
	if strings.HasPrefix(code, "V") {
		if meta != nil {
			t.Errorf("V-code with meta: %s", r.raw)
		}
	} else if meta["url"] != "https://developers.telnyx.com/docs/overview/errors/"+code {
		t.Errorf("meta.url %v: %s", meta["url"], r.raw)
	}
	src, _ := e["source"].(map[string]any)
	got := ""
	if src != nil {
		for k, v := range src {
			got = k + "=" + v.(string)
		}
	}
	if got != source {
		t.Errorf("source %q, want %q: %s", got, source, r.raw)
	}
	return e
}

// fields asserts that obj has exactly the keys named.
func fields(t *testing.T, obj map[string]any, keys ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
		if _, ok := obj[k]; !ok {
			t.Errorf("missing key %q in %v", k, obj)
		}
	}
	for k := range obj {
		if !want[k] {
			t.Errorf("unexpected key %q in %v", k, obj)
		}
	}
}

// createProfile creates a profile for key and returns its ID.
func (e *env) createProfile(key, name string) string {
	e.t.Helper()
	d := e.do("POST", "/v2/verify_profiles", key, map[string]any{"name": name}).ok(e.t)
	return d["id"].(string)
}

// trigger sends an SMS verification and returns its data.
func (e *env) trigger(key, profileID, phone string, extra ...any) map[string]any {
	e.t.Helper()
	body := map[string]any{"phone_number": phone, "verify_profile_id": profileID}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i].(string)] = extra[i+1]
	}
	return e.do("POST", "/v2/verifications/sms", key, body).ok(e.t)
}

const unknownID = "00000000-0000-4000-8000-000000000000"

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func asErrorList(err error, l *errorList) bool { return errors.As(err, l) }

func asDomain(err error, e **verifyd.Error) bool { return errors.As(err, e) }

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
