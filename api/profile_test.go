package api

import (
	"reflect"
	"testing"
)

var profileKeys = []string{"id", "record_type", "name", "webhook_url", "webhook_failover_url", "language",
	"daily_spend_limit", "daily_spend_limit_enabled", "sms", "call", "flashcall", "whatsapp",
	"created_at", "updated_at"}

func TestProfile_CreateDefaults(t *testing.T) {
	e := newEnv(t)
	d := e.do("POST", "/v2/verify_profiles", e.keyA, map[string]any{"name": "Acme"}).ok(t)
	fields(t, d, profileKeys...)
	want := map[string]any{
		"record_type": "verification_profile", "name": "Acme", "webhook_url": nil, "webhook_failover_url": nil,
		"language": "en-US", "daily_spend_limit": nil, "daily_spend_limit_enabled": false,
		"sms": map[string]any{"app_name": nil, "code_length": 5.0, "default_verification_timeout_secs": 300.0,
			"messaging_template_id": nil, "whitelisted_destinations": []any{"US"}, "alpha_sender": nil},
		"call": map[string]any{"app_name": nil, "code_length": 5.0, "default_verification_timeout_secs": 300.0,
			"messaging_template_id": nil, "whitelisted_destinations": []any{"US"}},
		"flashcall": map[string]any{"app_name": nil, "default_verification_timeout_secs": 300.0,
			"whitelisted_destinations": []any{"US"}},
		"whatsapp": map[string]any{"app_name": nil, "code_length": 5.0, "default_verification_timeout_secs": 300.0,
			"messaging_template_id": nil, "whitelisted_destinations": []any{"US"},
			"sender_phone_number": nil, "template_id": nil, "waba_id": nil},
	}
	for k, v := range want {
		if !reflect.DeepEqual(d[k], v) {
			t.Errorf("%s = %#v, want %#v", k, d[k], v)
		}
	}
	for _, k := range []string{"created_at", "updated_at"} {
		if !reTimestamp.MatchString(d[k].(string)) {
			t.Errorf("%s = %v", k, d[k])
		}
	}
}

func TestProfile_CRUD(t *testing.T) {
	e := newEnv(t)
	tpl := e.do("POST", "/v2/verify_profiles/templates", e.keyA, map[string]any{"text": "Code {{code}}"}).ok(t)["id"]
	d := e.do("POST", "/v2/verify_profiles", e.keyA, map[string]any{
		"name": "Acme", "webhook_url": "https://example.com/hook", "language": "de-DE",
		"daily_spend_limit": 12.5, "daily_spend_limit_enabled": true,
		"sms":               map[string]any{"code_length": 6, "app_name": "Acme", "messaging_template_id": tpl, "custom_flag": "x"},
		"call":              map[string]any{"default_timeout_secs": 120},
		"flashcall":         map[string]any{"whitelisted_destinations": []string{"GB", "US"}},
		"ignored_top_level": 1,
	}).ok(t)
	id := d["id"].(string)
	sms := d["sms"].(map[string]any)
	if sms["code_length"] != 6.0 || sms["app_name"] != "Acme" || sms["messaging_template_id"] != tpl || sms["custom_flag"] != "x" {
		t.Errorf("sms %v", sms)
	}
	call := d["call"].(map[string]any)
	if _, ok := call["default_timeout_secs"]; ok || call["default_verification_timeout_secs"] != 120.0 {
		t.Errorf("alias (D26): call %v", call)
	}
	if fc := d["flashcall"].(map[string]any); !reflect.DeepEqual(fc["whitelisted_destinations"], []any{"GB", "US"}) {
		t.Errorf("flashcall %v", fc)
	}
	if d["webhook_url"] != "https://example.com/hook" || d["language"] != "de-DE" ||
		d["daily_spend_limit"] != 12.5 || d["daily_spend_limit_enabled"] != true {
		t.Errorf("profile %v", d)
	}
	if _, ok := d["ignored_top_level"]; ok {
		t.Errorf("unknown top-level key echoed")
	}

	if g := e.do("GET", "/v2/verify_profiles/"+id, e.keyA, nil).ok(t); !reflect.DeepEqual(g, d) {
		t.Errorf("GET differs from create:\n%v\n%v", g, d)
	}

	// PATCH deep-merges channel objects (D25).
	p := e.do("PATCH", "/v2/verify_profiles/"+id, e.keyA, map[string]any{
		"sms": map[string]any{"code_length": 7, "app_name": nil}, "webhook_url": nil, "flashcall": map[string]any{"app_name": "F"},
	}).ok(t)
	sms = p["sms"].(map[string]any)
	if sms["code_length"] != 7.0 || sms["app_name"] != nil || sms["messaging_template_id"] != tpl || sms["custom_flag"] != "x" {
		t.Errorf("merged sms %v", sms)
	}
	if p["webhook_url"] != nil || p["name"] != "Acme" || p["flashcall"].(map[string]any)["app_name"] != "F" {
		t.Errorf("patched %v", p)
	}

	r := e.do("DELETE", "/v2/verify_profiles/"+id, e.keyA, nil)
	if del := r.ok(t); del["id"] != id || del["record_type"] != "verification_profile" {
		t.Errorf("deleted record %v", del)
	}
	e.do("GET", "/v2/verify_profiles/"+id, e.keyA, nil).wantErr(t, 404, "10005", "")
	e.do("DELETE", "/v2/verify_profiles/"+id, e.keyA, nil).wantErr(t, 404, "10005", "")
}

func TestProfile_List(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v2/verify_profiles", e.keyA, nil)
	if len(r.okList(t)) != 0 {
		t.Fatalf("want empty: %s", r.raw)
	}
	wantMeta(t, r, 1, 25, 0, 0)
	var ids []string
	for _, n := range []string{"a", "b", "c", "b"} {
		ids = append(ids, e.createProfile(e.keyA, n))
	}
	r = e.do("GET", "/v2/verify_profiles", e.keyA, nil)
	data := r.okList(t)
	if len(data) != 4 {
		t.Fatalf("got %d profiles", len(data))
	}
	for i, p := range data { // oldest first (D23)
		fields(t, p.(map[string]any), profileKeys...)
		if p.(map[string]any)["id"] != ids[i] {
			t.Errorf("order: data[%d] = %v", i, p.(map[string]any)["id"])
		}
	}
	wantMeta(t, r, 1, 25, 1, 4)

	r = e.do("GET", "/v2/verify_profiles?filter%5Bname%5D=b&page%5Bsize%5D=1&page%5Bnumber%5D=2", e.keyA, nil)
	if data := r.okList(t); len(data) != 1 || data[0].(map[string]any)["id"] != ids[3] {
		t.Errorf("filter page 2: %s", r.raw)
	}
	wantMeta(t, r, 2, 1, 2, 2)
	r = e.do("GET", "/v2/verify_profiles?filter[name]=B", e.keyA, nil) // case-sensitive
	if len(r.okList(t)) != 0 {
		t.Errorf("filter is case-sensitive: %s", r.raw)
	}
	e.do("GET", "/v2/verify_profiles?page[size]=500", e.keyA, nil).wantErr(t, 422, "10015", "parameter=page[size]")
	e.do("GET", "/v2/verify_profiles?page[number]=0", e.keyA, nil).wantErr(t, 422, "10015", "parameter=page[number]")
}

func TestProfile_Errors(t *testing.T) {
	e := newEnv(t)
	id := e.createProfile(e.keyA, "Acme")
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code, source       string
	}{
		{"MissingName", "POST", "/v2/verify_profiles", map[string]any{"language": "en-US"}, 422, "10004", "pointer=/name"},
		{"EmptyBody", "POST", "/v2/verify_profiles", "", 422, "10004", "pointer=/name"},
		{"NameType", "POST", "/v2/verify_profiles", map[string]any{"name": 5}, 422, "10015", "pointer=/name"},
		{"WebhookURL", "POST", "/v2/verify_profiles", map[string]any{"name": "x", "webhook_url": "ftp://x"}, 422, "10003", "pointer=/webhook_url"},
		{"CodeLength", "POST", "/v2/verify_profiles", map[string]any{"name": "x", "sms": map[string]any{"code_length": 3}}, 422, "10015", "pointer=/sms/code_length"},
		{"Template", "POST", "/v2/verify_profiles", map[string]any{"name": "x", "sms": map[string]any{"messaging_template_id": unknownID}}, 422, "10017", "pointer=/sms/messaging_template_id"},
		{"ArrayBody", "POST", "/v2/verify_profiles", `["name"]`, 400, "10015", ""},
		{"BadJSON", "PATCH", "/v2/verify_profiles/" + id, `{"name"`, 400, "10015", ""},
		{"PatchType", "PATCH", "/v2/verify_profiles/" + id, map[string]any{"sms": "x"}, 422, "10015", "pointer=/sms"},
		{"PatchUnknown", "PATCH", "/v2/verify_profiles/" + unknownID, map[string]any{"name": "y"}, 404, "10005", ""},
		{"GetBadID", "GET", "/v2/verify_profiles/xyz", nil, 400, "10006", "parameter=verify_profile_id"},
		{"PatchBadID", "PATCH", "/v2/verify_profiles/xyz", map[string]any{}, 400, "10006", "parameter=verify_profile_id"},
		{"DeleteBadID", "DELETE", "/v2/verify_profiles/xyz", nil, 400, "10006", "parameter=verify_profile_id"},
		{"GetUnknown", "GET", "/v2/verify_profiles/" + unknownID, nil, 404, "10005", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do(tc.method, tc.path, e.keyA, tc.body).wantErr(t, tc.status, tc.code, tc.source)
		})
	}
}
