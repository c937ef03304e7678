package api

import "testing"

func TestTemplate(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v2/verify_profiles/templates", e.keyA, nil)
	if len(r.okList(t)) != 0 {
		t.Fatalf("want empty: %s", r.raw)
	}
	fields(t, r.body, "data") // no meta (§2.4)

	d := e.do("POST", "/v2/verify_profiles/templates", e.keyA, map[string]any{"text": "Your {{app_name}} code: {{code}} & more"}).ok(t)
	fields(t, d, "id", "text")
	id := d["id"].(string)
	if d["text"] != "Your {{app_name}} code: {{code}} & more" {
		t.Errorf("text %q", d["text"])
	}
	u := e.do("PATCH", "/v2/verify_profiles/templates/"+id, e.keyA, map[string]any{"text": "{{code}}"}).ok(t)
	if u["id"] != id || u["text"] != "{{code}}" {
		t.Errorf("updated %v", u)
	}
	r = e.do("GET", "/v2/verify_profiles/templates", e.keyA, nil)
	if l := r.okList(t); len(l) != 1 || l[0].(map[string]any)["text"] != "{{code}}" {
		t.Errorf("list %s", r.raw)
	}
	fields(t, r.body, "data")

	e.do("POST", "/v2/verify_profiles/templates", e.keyA, "{}").wantErr(t, 422, "10004", "pointer=/text")
	e.do("POST", "/v2/verify_profiles/templates", e.keyA, "").wantErr(t, 422, "10004", "pointer=/text")
	e.do("POST", "/v2/verify_profiles/templates", e.keyA, map[string]any{"text": "no code"}).wantErr(t, 422, "10015", "pointer=/text")
	e.do("POST", "/v2/verify_profiles/templates", e.keyA, map[string]any{"text": 3}).wantErr(t, 422, "10015", "pointer=/text")
	e.do("PATCH", "/v2/verify_profiles/templates/"+id, e.keyA, "{}").wantErr(t, 422, "10004", "pointer=/text")
	e.do("PATCH", "/v2/verify_profiles/templates/"+unknownID, e.keyA, map[string]any{"text": "{{code}}"}).wantErr(t, 404, "10005", "")
	e.do("PATCH", "/v2/verify_profiles/templates/nope", e.keyA, map[string]any{"text": "{{code}}"}).wantErr(t, 400, "10006", "parameter=template_id")
	e.do("GET", "/v2/verify_profiles/templates/"+id, e.keyA, nil).wantErr(t, 405, "10015", "")
}
