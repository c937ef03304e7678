package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestServer_Auth(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ name, header string }{
		{"Missing", ""},
		{"Unknown", "Bearer vfy_unknown"},
		{"Basic", "Basic " + e.keyA},
		{"KeyOnly", e.keyA},
		{"EmptyBearer", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "/v2/verify_profiles", "", nil, "Authorization", tc.header)
			r.wantErr(t, 401, "10009", "")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("no WWW-Authenticate")
			}
		})
	}
	t.Run("SchemeCaseInsensitive", func(t *testing.T) {
		e.do("GET", "/v2/verify_profiles", "", nil, "Authorization", "bearer "+e.keyA).okList(t)
	})
	t.Run("AuthBeforeValidation", func(t *testing.T) {
		e.do("POST", "/v2/verifications/sms", "", "{").wantErr(t, 401, "10009", "")
		e.do("GET", "/v2/verifications/not-a-uuid", "", nil).wantErr(t, 401, "10009", "")
	})
	t.Run("Revoked", func(t *testing.T) {
		_, key := e.account("c")
		e.do("GET", "/v2/verify_profiles", key, nil).okList(t)
		keys, err := e.svc.APIKeys(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.HasPrefix(key, k.Prefix) {
				if err := e.svc.RevokeAPIKey(context.Background(), k.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		e.do("GET", "/v2/verify_profiles", key, nil).wantErr(t, 401, "10009", "")
	})
}

func TestServer_Routing(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ method, path string }{
		{"GET", "/"},
		{"GET", "/v2"},
		{"GET", "/v2/nothing"},
		{"POST", "/v2/verifications"},
		{"GET", "/v2/verified_numbers"},
		{"POST", "/v2/verified_numbers"},
		{"GET", "/v2/verified_numbers/+13035551234"},
		{"POST", "/v2/verifications/dtmf_confirm"},
		{"GET", "/v2/verifications/dtmf_confirm"},
		{"GET", "/v2/verifications/sms/extra"},
		{"DELETE", "/v2/verifications/dtmf_confirm"},
		{"GET", "/v2/verifications/by_phone_number"},
		{"GET", "/v1/verify_profiles"},
	} {
		t.Run("NotFound"+tc.method+tc.path, func(t *testing.T) {
			r := e.do(tc.method, tc.path, e.keyA, nil)
			r.wantErr(t, 404, "10005", "")
		})
	}
	for _, tc := range []struct{ method, path, allow string }{
		{"DELETE", "/v2/verifications/sms", "POST"},
		{"GET", "/v2/verifications/call", "POST"},
		{"PUT", "/v2/verify_profiles", "GET, HEAD, POST"},
		{"PUT", "/v2/verify_profiles/" + unknownID, "DELETE, GET, HEAD, PATCH"},
		{"DELETE", "/v2/verify_profiles/templates", "GET, HEAD, POST"},
		{"POST", "/v2/verifications/" + unknownID, "GET, HEAD"},
		{"GET", "/v2/verifications/" + unknownID + "/actions/verify", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"GET", "/v2/verifications/whatsapp", "POST"},
		{"PATCH", "/v2/verify_profiles/templates", "GET, HEAD, POST"},
	} {
		t.Run("MethodNotAllowed"+tc.method+tc.path, func(t *testing.T) {
			r := e.do(tc.method, tc.path, e.keyA, nil)
			r.wantErr(t, 405, "10015", "")
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			if r.header.Get("X-Content-Type-Options") != "" {
				t.Errorf("the mux's own headers leaked")
			}
		})
	}
	t.Run("NotFoundWithoutAuth", func(t *testing.T) {
		e.do("GET", "/v2/nothing", "", nil).wantErr(t, 404, "10005", "")
	})
}

// TestServer_Isolation: account B sees none of account A's resources.
func TestServer_Isolation(t *testing.T) {
	e := newEnv(t)
	pid := e.createProfile(e.keyA, "A")
	tid := e.do("POST", "/v2/verify_profiles/templates", e.keyA, map[string]any{"text": "{{code}}"}).ok(t)["id"].(string)
	vid := e.trigger(e.keyA, pid, phoneA)["id"].(string)
	B := e.keyB

	e.do("GET", "/v2/verify_profiles/"+pid, B, nil).wantErr(t, 404, "10005", "")
	e.do("PATCH", "/v2/verify_profiles/"+pid, B, map[string]any{"name": "x"}).wantErr(t, 404, "10005", "")
	e.do("DELETE", "/v2/verify_profiles/"+pid, B, nil).wantErr(t, 404, "10005", "")
	if r := e.do("GET", "/v2/verify_profiles", B, nil); len(r.okList(t)) != 0 {
		t.Errorf("B lists A's profiles: %s", r.raw)
	}
	if r := e.do("GET", "/v2/verify_profiles?filter[name]=A", B, nil); len(r.okList(t)) != 0 {
		t.Errorf("B lists A's profiles by name: %s", r.raw)
	}
	if r := e.do("GET", "/v2/verify_profiles/templates", B, nil); len(r.okList(t)) != 0 {
		t.Errorf("B lists A's templates: %s", r.raw)
	}
	e.do("PATCH", "/v2/verify_profiles/templates/"+tid, B, map[string]any{"text": "{{code}}"}).wantErr(t, 404, "10005", "")
	e.do("GET", "/v2/verifications/"+vid, B, nil).wantErr(t, 404, "10005", "")
	e.do("POST", "/v2/verifications/"+vid+"/actions/verify", B, map[string]any{"code": "12345"}).wantErr(t, 404, "10005", "")
	if r := e.do("GET", "/v2/verifications/by_phone_number/"+phoneA, B, nil); len(r.okList(t)) != 0 {
		t.Errorf("B lists A's verifications: %s", r.raw)
	}
	e.do("POST", "/v2/verifications/sms", B, map[string]any{"phone_number": phoneA, "verify_profile_id": pid}).
		wantErr(t, 422, "10017", "pointer=/verify_profile_id")
	e.do("POST", "/v2/verify_profiles", B, map[string]any{"name": "b", "sms": map[string]any{"messaging_template_id": tid}}).
		wantErr(t, 422, "10017", "pointer=/sms/messaging_template_id")

	// A's verification is untouched by B's attempts.
	if d := e.do("POST", "/v2/verifications/"+vid+"/actions/verify", e.keyA, map[string]any{"code": "12345"}).ok(t); d["response_code"] != "accepted" {
		t.Errorf("A's check after B's: %v", d)
	}
}

func TestServer_RequestIDAndLog(t *testing.T) {
	e := newEnv(t)
	pid := e.createProfile(e.keyA, "App")
	r := e.do("POST", "/v2/verifications/sms", e.keyA,
		map[string]any{"phone_number": phoneA, "verify_profile_id": pid, "custom_code": "24680"},
		"X-Request-Id", "client-req.42")
	r.ok(t)
	if got := r.header.Get("X-Request-Id"); got != "client-req.42" {
		t.Errorf("X-Request-Id %q, want the inbound one", got)
	}
	r = e.do("GET", "/v2/verify_profiles", e.keyA, nil, "X-Request-Id", "bad id\twith spaces")
	gen := r.header.Get("X-Request-Id")
	if gen == "" || strings.Contains(gen, " ") {
		t.Errorf("generated X-Request-Id %q", gen)
	}
	r2 := e.do("GET", "/v2/verify_profiles", e.keyA, nil)
	if r2.header.Get("X-Request-Id") == gen {
		t.Errorf("request ids repeat")
	}
	e.do("GET", "/v2/verifications/by_phone_number/+13035551234", e.keyA, nil).okList(t)

	logs := e.logs.String()
	for _, secret := range []string{e.keyA, "24680", "12345", phoneA, "Bearer"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	found := false
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		if line["request_id"] == "client-req.42" {
			found = true
			if line["method"] != "POST" || line["route"] != "/v2/verifications/sms" || line["status"] != 200.0 ||
				line["account_id"] != e.acctA.ID || line["duration_ms"] == nil {
				t.Errorf("access log line %v", line)
			}
		}
	}
	if !found {
		t.Errorf("no access log line for the request:\n%s", logs)
	}
}

func TestServer_PanicRecovery(t *testing.T) {
	e := newEnv(t)
	e.api.mux.HandleFunc("GET /v2/test/panic", func(http.ResponseWriter, *http.Request) { panic("secret internals") })
	r := e.do("GET", "/v2/test/panic", "", nil)
	er := r.wantErr(t, 500, "10007", "")
	if strings.Contains(string(r.raw), "secret internals") {
		t.Errorf("panic value leaked: %s", r.raw)
	}
	if er["detail"] == "" {
		t.Errorf("no detail")
	}
	if !strings.Contains(e.logs.String(), "secret internals") {
		t.Errorf("panic not logged")
	}
	if r := e.do("GET", "/healthz", "", nil); r.status != 200 { // still serving
		t.Errorf("healthz %d", r.status)
	}
}

func TestServer_HealthAndMetrics(t *testing.T) {
	e := newEnv(t)
	pid := e.createProfile(e.keyA, "App")
	id := e.trigger(e.keyA, pid, phoneA)["id"].(string)
	e.do("POST", "/v2/verifications/"+id+"/actions/verify", e.keyA, map[string]any{"code": "12345"}).ok(t)
	e.do("GET", "/v2/nothing", "", nil)

	if r := e.do("GET", "/healthz", "", nil); r.status != 200 || r.body["status"] != "ok" {
		t.Errorf("healthz %d %s", r.status, r.raw)
	}
	r := e.do("GET", "/readyz", "", nil)
	if r.status != 200 || r.body["status"] != "ready" {
		t.Errorf("readyz %d %s", r.status, r.raw)
	}

	m := e.do("GET", "/metrics", "", nil)
	if m.status != 200 {
		t.Fatalf("metrics status %d", m.status)
	}
	text := string(m.raw)
	for _, want := range []string{
		`verifyd_http_requests_total{method="POST",route="/v2/verifications/sms",status="200"} 1`,
		`verifyd_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`verifyd_http_request_duration_seconds_bucket{method="POST",route="/v2/verifications/{verification_id}/actions/verify",le=`,
		`verifyd_verifications_total{channel="sms",outcome="triggered"} 1`,
		`verifyd_verifications_total{channel="sms",outcome="accepted"} 1`,
		`verifyd_queue_depth 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(text, phoneA) || strings.Contains(text, id) {
		t.Errorf("raw paths in metric labels")
	}

	// Not ready once the store is gone.
	e.store.Close()
	r = e.do("GET", "/readyz", "", nil)
	r.wantErr(t, 503, "10007", "")
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if r := e.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Errorf("healthz %d after the store closed", r.status)
	}
}
