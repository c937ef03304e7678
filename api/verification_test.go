package api

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var reTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$`)

var verificationKeys = []string{"id", "record_type", "type", "phone_number", "verify_profile_id",
	"custom_code", "status", "timeout_secs", "delivery_status", "created_at", "updated_at"}

func TestVerification_Trigger(t *testing.T) {
	e := newEnv(t)
	pid := e.createProfile(e.keyA, "App")

	t.Run("SMS", func(t *testing.T) {
		d := e.trigger(e.keyA, pid, phoneA)
		fields(t, d, verificationKeys...)
		if d["record_type"] != "verification" || d["type"] != "sms" || d["phone_number"] != phoneA ||
			d["verify_profile_id"] != pid || d["status"] != "pending" || d["timeout_secs"] != 300.0 ||
			d["custom_code"] != nil {
			t.Errorf("unexpected verification: %v", d)
		}
		for _, k := range []string{"created_at", "updated_at"} {
			if !reTimestamp.MatchString(d[k].(string)) {
				t.Errorf("%s = %v, want the D37 shape", k, d[k])
			}
		}
	})
	t.Run("CallWithExtensionAndTimeout", func(t *testing.T) {
		d := e.do("POST", "/v2/verifications/call", e.keyA, map[string]any{
			"phone_number": phoneB, "verify_profile_id": pid, "extension": "1ww2#", "timeout_secs": 60,
			"unknown_key": true,
		}).ok(t)
		if d["type"] != "call" || d["timeout_secs"] != 60.0 {
			t.Errorf("unexpected verification: %v", d)
		}
	})
	t.Run("Flashcall", func(t *testing.T) {
		d := e.do("POST", "/v2/verifications/flashcall", e.keyA, map[string]any{
			"phone_number": phoneB, "verify_profile_id": pid, "custom_code": "4242"}).ok(t)
		if d["type"] != "flashcall" || d["custom_code"] != nil {
			t.Errorf("unexpected verification: %v", d)
		}
	})
	t.Run("WhatsAppNotAvailable", func(t *testing.T) {
		r := e.do("POST", "/v2/verifications/whatsapp", e.keyA, map[string]any{"phone_number": phoneA, "verify_profile_id": pid})
		if e := r.wantErr(t, 422, "V0009", ""); e["title"] != "Channel not available" {
			t.Errorf("title %v", e["title"])
		}
	})
	t.Run("CustomCodeEchoedOnlyByTrigger", func(t *testing.T) {
		d := e.trigger(e.keyA, pid, "+13035550100", "custom_code", "987654")
		if d["custom_code"] != "987654" {
			t.Fatalf("custom_code %v, want echo", d["custom_code"])
		}
		g := e.do("GET", "/v2/verifications/"+d["id"].(string), e.keyA, nil).ok(t)
		if _, ok := g["custom_code"]; !ok || g["custom_code"] != nil {
			t.Errorf("GET custom_code %v, want null", g["custom_code"])
		}
		for _, v := range e.do("GET", "/v2/verifications/by_phone_number/+13035550100", e.keyA, nil).okList(t) {
			if v.(map[string]any)["custom_code"] != nil {
				t.Errorf("list custom_code %v, want null", v)
			}
		}
	})
}

func TestVerification_TriggerErrors(t *testing.T) {
	e := newEnv(t)
	pid := e.createProfile(e.keyA, "App")
	path := "/v2/verifications/sms"
	body := func(kv ...any) map[string]any {
		m := map[string]any{"phone_number": phoneA, "verify_profile_id": pid}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name   string
		body   any
		hdr    []string
		status int
		code   string
		source string
	}{
		{"EmptyBody", "", nil, 422, "10004", "pointer=/phone_number"},
		{"EmptyObject", "{}", nil, 422, "10004", "pointer=/phone_number"},
		{"MissingProfile", map[string]any{"phone_number": phoneA}, nil, 422, "10004", "pointer=/verify_profile_id"},
		{"NullPhone", body("phone_number", nil), nil, 422, "10004", "pointer=/phone_number"},
		{"BadJSON", `{"phone_number":`, nil, 400, "10015", ""},
		{"Garbage", `not json`, nil, 400, "10015", ""},
		{"ArrayBody", `[1,2]`, nil, 400, "10015", ""},
		{"NullBody", `null`, nil, 400, "10015", ""},
		{"TrailingGarbage", `{"phone_number":"+13035551234"} x`, nil, 400, "10015", ""},
		{"WrongTypeTimeout", body("timeout_secs", "300"), nil, 422, "10015", "pointer=/timeout_secs"},
		{"FractionalTimeout", body("timeout_secs", 30.5), nil, 422, "10015", "pointer=/timeout_secs"},
		{"WrongTypePhone", body("phone_number", 13035551234), nil, 422, "10015", "pointer=/phone_number"},
		{"WrongTypeProfile", body("verify_profile_id", []int{1}), nil, 422, "10015", "pointer=/verify_profile_id"},
		{"TimeoutRange", body("timeout_secs", 5), nil, 422, "10015", "pointer=/timeout_secs"},
		{"CustomCodePattern", body("custom_code", "12a4"), nil, 422, "10015", "pointer=/custom_code"},
		{"PhoneFormat", body("phone_number", phoneBadForm), nil, 422, "10016", "pointer=/phone_number"},
		{"PhoneFormatSpaces", body("phone_number", "+1 303 555 1234"), nil, 422, "10016", "pointer=/phone_number"},
		{"PhoneInvalid", body("phone_number", phoneInvalid), nil, 422, "10002", "pointer=/phone_number"},
		{"UnknownProfile", body("verify_profile_id", unknownID), nil, 422, "10017", "pointer=/verify_profile_id"},
		{"MalformedProfile", body("verify_profile_id", "nope"), nil, 422, "10017", "pointer=/verify_profile_id"},
		{"MediaType", body(), []string{"Content-Type", "text/plain"}, 415, "10014", ""},
		{"MediaTypeForm", body(), []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "10014", ""},
		{"TooLarge", `{"phone_number":"` + strings.Repeat("1", 70000) + `"}`, nil, 413, "10015", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.do("POST", path, e.keyA, tc.body, tc.hdr...).wantErr(t, tc.status, tc.code, tc.source)
		})
	}
	t.Run("BothRequiredMissing", func(t *testing.T) {
		r := e.do("POST", path, e.keyA, "{}")
		r.wantErr(t, 422, "10004", "pointer=/phone_number")
		errs := r.body["errors"].([]any)
		if len(errs) != 2 || errs[1].(map[string]any)["source"].(map[string]any)["pointer"] != "/verify_profile_id" {
			t.Errorf("want both missing fields reported: %s", r.raw)
		}
	})
	t.Run("JSONVariantsAccepted", func(t *testing.T) {
		for _, ct := range []string{"application/json; charset=utf-8", "application/vnd.api+json", "APPLICATION/JSON", ""} {
			r := e.do("POST", path, e.keyA, body(), "Content-Type", ct)
			if r.status != 200 {
				t.Errorf("Content-Type %q: status %d: %s", ct, r.status, r.raw)
			}
		}
	})
}

func TestVerification_Get(t *testing.T) {
	e := newEnv(t)
	pid := e.createProfile(e.keyA, "App")
	v := e.trigger(e.keyA, pid, phoneA)
	id := v["id"].(string)

	d := e.do("GET", "/v2/verifications/"+id, e.keyA, nil).ok(t)
	fields(t, d, verificationKeys...)
	for _, k := range verificationKeys {
		if k != "updated_at" && d[k] != v[k] {
			t.Errorf("%s: GET %v, trigger %v", k, d[k], v[k])
		}
	}
	e.do("GET", "/v2/verifications/"+unknownID, e.keyA, nil).wantErr(t, 404, "10005", "")
	e.do("GET", "/v2/verifications/"+id, e.keyB, nil).wantErr(t, 404, "10005", "")
	e.do("GET", "/v2/verifications/not-a-uuid", e.keyA, nil).wantErr(t, 400, "10006", "parameter=verification_id")
}

func TestVerification_ListByPhone(t *testing.T) {
	e := newEnv(t)
	p1 := e.createProfile(e.keyA, "One")
	p2 := e.createProfile(e.keyA, "Two")
	var ids []string
	for _, pid := range []string{p1, p2, p1} {
		ids = append(ids, e.trigger(e.keyA, pid, phoneA)["id"].(string))
	}
	e.trigger(e.keyA, p1, phoneB)

	for _, path := range []string{"/v2/verifications/by_phone_number/+13035551234",
		"/v2/verifications/by_phone_number/%2B13035551234", "/v2/verifications/by_phone_number/%2b13035551234"} {
		t.Run(path, func(t *testing.T) {
			r := e.do("GET", path, e.keyA, nil)
			data := r.okList(t)
			if len(data) != 3 {
				t.Fatalf("got %d verifications, want 3: %s", len(data), r.raw)
			}
			for i, v := range data { // newest first
				if got := v.(map[string]any)["id"]; got != ids[2-i] {
					t.Errorf("data[%d].id = %v, want %s", i, got, ids[2-i])
				}
				fields(t, v.(map[string]any), verificationKeys...)
			}
			wantMeta(t, r, 1, 25, 1, 3)
		})
	}
	t.Run("Paging", func(t *testing.T) {
		r := e.do("GET", "/v2/verifications/by_phone_number/+13035551234?page[size]=2&page[number]=2", e.keyA, nil)
		if d := r.okList(t); len(d) != 1 || d[0].(map[string]any)["id"] != ids[0] {
			t.Errorf("page 2: %s", r.raw)
		}
		wantMeta(t, r, 2, 2, 2, 3)
		r = e.do("GET", "/v2/verifications/by_phone_number/+13035551234?page%5Bsize%5D=2&page%5Bnumber%5D=9", e.keyA, nil)
		if d := r.okList(t); len(d) != 0 {
			t.Errorf("past the end: %s", r.raw)
		}
		wantMeta(t, r, 9, 2, 2, 3)
	})
	t.Run("Empty", func(t *testing.T) {
		r := e.do("GET", "/v2/verifications/by_phone_number/+13035550100", e.keyA, nil)
		if d := r.okList(t); len(d) != 0 {
			t.Errorf("want empty: %s", r.raw)
		}
		wantMeta(t, r, 1, 25, 0, 0)
	})
	t.Run("OtherAccount", func(t *testing.T) {
		r := e.do("GET", "/v2/verifications/by_phone_number/+13035551234", e.keyB, nil)
		if d := r.okList(t); len(d) != 0 {
			t.Errorf("account B sees A's verifications: %s", r.raw)
		}
		wantMeta(t, r, 1, 25, 0, 0)
	})
	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct{ query, param string }{
			{"page[size]=0", "page[size]"}, {"page[size]=251", "page[size]"}, {"page[size]=x", "page[size]"},
			{"page[size]=", "page[size]"}, {"page[number]=0", "page[number]"}, {"page[number]=-1", "page[number]"},
			{"page[number]=1.5", "page[number]"},
		} {
			e.do("GET", "/v2/verifications/by_phone_number/+13035551234?"+tc.query, e.keyA, nil).
				wantErr(t, 422, "10015", "parameter="+tc.param)
		}
		e.do("GET", "/v2/verifications/by_phone_number/13035551234", e.keyA, nil).
			wantErr(t, 422, "10016", "parameter=phone_number")
		// A + sent as a space-encoded form is not repaired (D2).
		e.do("GET", "/v2/verifications/by_phone_number/%2013035551234", e.keyA, nil).
			wantErr(t, 422, "10016", "parameter=phone_number")
	})
}

func wantMeta(t *testing.T, r *resp, number, size, pages, total int) {
	t.Helper()
	m, ok := r.body["meta"].(map[string]any)
	if !ok {
		t.Fatalf("no meta: %s", r.raw)
	}
	fields(t, m, "page_number", "page_size", "total_pages", "total_results")
	if m["page_number"] != float64(number) || m["page_size"] != float64(size) ||
		m["total_pages"] != float64(pages) || m["total_results"] != float64(total) {
		t.Errorf("meta %v, want page_number %d page_size %d total_pages %d total_results %d",
			m, number, size, pages, total)
	}
}

func TestVerification_CheckByID(t *testing.T) {
	e := newEnv(t)
	pid := e.createProfile(e.keyA, "App")
	verify := func(id, key string, body any) *resp {
		return e.do("POST", "/v2/verifications/"+id+"/actions/verify", key, body)
	}
	t.Run("Accepted", func(t *testing.T) {
		id := e.trigger(e.keyA, pid, phoneA)["id"].(string)
		d := verify(id, e.keyA, map[string]any{"code": "12346"}).ok(t)
		fields(t, d, "phone_number", "response_code")
		if d["phone_number"] != phoneA || d["response_code"] != "rejected" {
			t.Errorf("wrong code: %v", d)
		}
		d = verify(id, e.keyA, map[string]any{"code": "12345"}).ok(t)
		if d["response_code"] != "accepted" {
			t.Errorf("right code: %v", d)
		}
		d = verify(id, e.keyA, map[string]any{"code": "12345"}).ok(t)
		if d["response_code"] != "rejected" {
			t.Errorf("single use: %v", d)
		}
		if g := e.do("GET", "/v2/verifications/"+id, e.keyA, nil).ok(t); g["status"] != "accepted" {
			t.Errorf("status %v", g["status"])
		}
	})
	t.Run("Status", func(t *testing.T) {
		id := e.trigger(e.keyA, pid, phoneB, "custom_code", "5555")["id"].(string)
		if d := verify(id, e.keyA, map[string]any{"status": "accepted"}).ok(t); d["response_code"] != "accepted" {
			t.Errorf("status accepted: %v", d)
		}
		verify(id, e.keyA, map[string]any{"status": "accepted"}).wantErr(t, 422, "V0006", "")
	})
	t.Run("Errors", func(t *testing.T) {
		id := e.trigger(e.keyA, pid, "+13035550100")["id"].(string)
		verify(id, e.keyA, "{}").wantErr(t, 422, "10004", "pointer=/code")
		verify(id, e.keyA, "").wantErr(t, 422, "10004", "pointer=/code")
		verify(id, e.keyA, map[string]any{"code": "1", "status": "accepted"}).wantErr(t, 422, "10015", "pointer=/status")
		verify(id, e.keyA, map[string]any{"status": "accepted"}).wantErr(t, 422, "10015", "pointer=/status")
		verify(id, e.keyA, map[string]any{"code": 12345}).wantErr(t, 422, "10015", "pointer=/code")
		verify(id, e.keyA, `{"code":`).wantErr(t, 400, "10015", "")
		verify(unknownID, e.keyA, map[string]any{"code": "12345"}).wantErr(t, 404, "10005", "")
		verify(id, e.keyB, map[string]any{"code": "12345"}).wantErr(t, 404, "10005", "")
		verify("123", e.keyA, map[string]any{"code": "12345"}).wantErr(t, 400, "10006", "parameter=verification_id")
	})
}

func TestVerification_CheckByPhone(t *testing.T) {
	e := newEnv(t)
	pid := e.createProfile(e.keyA, "App")
	e.trigger(e.keyA, pid, phoneA)
	verify := func(path, key string, body any) *resp {
		return e.do("POST", "/v2/verifications/by_phone_number/"+path+"/actions/verify", key, body)
	}
	d := verify("+13035551234", e.keyA, map[string]any{"code": "00000", "verify_profile_id": pid}).ok(t)
	fields(t, d, "phone_number", "response_code")
	if d["phone_number"] != phoneA || d["response_code"] != "rejected" {
		t.Errorf("wrong code: %v", d)
	}
	d = verify("%2B13035551234", e.keyA, map[string]any{"code": "12345", "verify_profile_id": pid}).ok(t)
	if d["phone_number"] != phoneA || d["response_code"] != "accepted" {
		t.Errorf("right code via %%2B: %v", d)
	}
	// No enumeration: an unknown number is a plain rejection (D18).
	d = verify("+13035550100", e.keyA, map[string]any{"code": "12345", "verify_profile_id": pid}).ok(t)
	if d["response_code"] != "rejected" {
		t.Errorf("unknown number: %v", d)
	}

	r := verify("+13035551234", e.keyA, "{}")
	r.wantErr(t, 422, "10004", "pointer=/code")
	if errs := r.body["errors"].([]any); len(errs) != 2 {
		t.Errorf("want code and verify_profile_id reported: %s", r.raw)
	}
	verify("+13035551234", e.keyA, map[string]any{"code": "1"}).wantErr(t, 422, "10004", "pointer=/verify_profile_id")
	verify("+13035551234", e.keyA, map[string]any{"verify_profile_id": pid}).wantErr(t, 422, "10004", "pointer=/code")
	verify("+13035551234", e.keyA, map[string]any{"code": "1", "verify_profile_id": unknownID}).
		wantErr(t, 422, "10017", "pointer=/verify_profile_id")
	verify("+13035551234", e.keyB, map[string]any{"code": "12345", "verify_profile_id": pid}).
		wantErr(t, 422, "10017", "pointer=/verify_profile_id")
	verify("3035551234", e.keyA, map[string]any{"code": "1", "verify_profile_id": pid}).
		wantErr(t, 422, "10016", "parameter=phone_number")
	verify("+13035551234", e.keyA, map[string]any{"code": true, "verify_profile_id": pid}).
		wantErr(t, 422, "10015", "pointer=/code")
}

// TestVerification_MaxAttempts exhausts a verification with wrong codes; the
// next trigger for (profile, phone) is refused with V0007 and headers that
// stop the SDK from retrying (D6, D10).
func TestVerification_MaxAttempts(t *testing.T) {
	e := newEnv(t)
	pid := e.createProfile(e.keyA, "App")
	id := e.trigger(e.keyA, pid, phoneA)["id"].(string)
	for range 5 {
		e.do("POST", "/v2/verifications/"+id+"/actions/verify", e.keyA, map[string]any{"code": "99999"}).ok(t)
	}
	if g := e.do("GET", "/v2/verifications/"+id, e.keyA, nil).ok(t); g["status"] != "invalid" {
		t.Fatalf("status %v, want invalid", g["status"])
	}
	r := e.do("POST", "/v2/verifications/sms", e.keyA, map[string]any{"phone_number": phoneA, "verify_profile_id": pid})
	er := r.wantErr(t, http.StatusTooManyRequests, "V0007", "")
	if er["title"] != "Max attempts exceeded" || er["detail"] == "" {
		t.Errorf("error %v", er)
	}
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
	if got := r.header.Get("X-Should-Retry"); got != "false" {
		t.Errorf("x-should-retry %q, want false", got)
	}
}
