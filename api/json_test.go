package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/verifyd/verifyd"
)

func TestIsJSONMediaType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, " Application/JSON ": true,
		"application/vnd.api+json": true, "text/plain": false, "application/jsonp": false, "+json": false,
		"application/x-www-form-urlencoded": false, "multipart/form-data; boundary=x": false,
	} {
		if got := isJSONMediaType(ct); got != want {
			t.Errorf("isJSONMediaType(%q) = %v", ct, got)
		}
	}
}

// FuzzDecodeTrigger drives the trigger decoding path (body read, JSON,
// types, required fields) and the error writer: no panics, and every
// refusal is a mapped client error rendered in the envelope.
func FuzzDecodeTrigger(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"phone_number":"+13035551234","verify_profile_id":"x"}`,
		`{"phone_number":1}`, `{"timeout_secs":1e400}`, `{"timeout_secs":-0.0}`, `{"custom_code":{"a":[1,{}]}}`,
		`{"phone_number":"\ud800"}`, `{"a":` + strings.Repeat("[", 10000), ` {"extension":null} `, "\xff",
		`{"phone_number":"+1","verify_profile_id":"v","phone_number":null}`, `{"PHONE_NUMBER":"+1"}`,
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{}`), "text/plain")
	s := &Server{log: discardLogger()}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest("POST", "/v2/verifications/sms", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		var b triggerBody
		err := decode(req, &b)
		if err == nil {
			err = b.check()
		}
		if err == nil {
			if b.PhoneNumber == nil || b.VerifyProfileID == nil {
				t.Fatalf("accepted without required fields: %q", body)
			}
			return
		}
		var list errorList
		var de *verifyd.Error
		switch {
		case asErrorList(err, &list):
		case asDomain(err, &de):
			if _, ok := errorTable[de.Code]; !ok || de.Code == verifyd.EINTERNAL {
				t.Fatalf("unmapped or internal error %v for %q", err, body)
			}
		default:
			t.Fatalf("not a domain error: %T %v", err, err)
		}
		rec := httptest.NewRecorder()
		s.writeError(rec, req, err)
		if rec.Code < 400 || rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		var env struct {
			Errors []struct {
				Code  string `json:"code"`
				Title string `json:"title"`
			} `json:"errors"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || len(env.Errors) == 0 ||
			env.Errors[0].Code == "" || env.Errors[0].Title == "" {
			t.Fatalf("bad envelope %s (%v)", rec.Body.Bytes(), err)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("500 for %q", body)
		}
	})
}
