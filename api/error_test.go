package api

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/verifyd/verifyd"
)

// TestWriteError checks the one table: status, wire code, title, meta.url
// (Telnyx codes only), source, and the retry headers.
func TestWriteError(t *testing.T) {
	logs := &syncBuffer{}
	s := &Server{log: discardLogger()}
	for _, tc := range []struct {
		err        error
		status     int
		code       string
		title      string
		retryAfter string
		noRetry    bool
	}{
		{&verifyd.Error{Code: verifyd.ENOTFOUND, Message: "m"}, 404, "10005", "Resource not found", "", false},
		{&verifyd.Error{Code: verifyd.EINVALIDID, Message: "m", Parameter: "p"}, 400, "10006", "Invalid ID", "", false},
		{&verifyd.Error{Code: verifyd.EINVALID, Message: "m", Pointer: "/x"}, 422, "10015", "Bad Request", "", false},
		{&verifyd.Error{Code: verifyd.EREQUIRED, Message: "m"}, 422, "10004", "Missing required parameter", "", false},
		{&verifyd.Error{Code: verifyd.EPHONEFORMAT, Message: "m"}, 422, "10016", "Phone number must be in +E.164 format", "", false},
		{&verifyd.Error{Code: verifyd.EPHONEINVALID, Message: "m"}, 422, "10002", "Invalid phone number", "", false},
		{&verifyd.Error{Code: verifyd.EREFERENCE, Message: "m"}, 422, "10017", "Associated resource does not exist", "", false},
		{&verifyd.Error{Code: verifyd.EURL, Message: "m"}, 422, "10003", "Invalid URL", "", false},
		{&verifyd.Error{Code: verifyd.EUNAUTHORIZED, Message: "m"}, 401, "10009", "Authentication failed", "", false},
		{&verifyd.Error{Code: verifyd.EFORBIDDEN, Message: "m"}, 403, "10010", "Authorization failed", "", false},
		{&verifyd.Error{Code: verifyd.ECONFLICT, Message: "m"}, 409, "10012", "Duplicate resource", "", false},
		{verifyd.ErrUnavailable, 503, "10007", "Unexpected error", "1", false},
		{&verifyd.Error{Code: verifyd.EDESTINATION, Message: "m"}, 422, "V0001", "Destination not allowed", "", false},
		{&verifyd.Error{Code: verifyd.ENUMBERTYPE, Message: "m"}, 422, "V0002", "Number type blocked", "", false},
		{&verifyd.Error{Code: verifyd.ERATELIMITED, Message: "m", RetryAfter: 60}, 429, "V0003", "Rate limited", "60", true},
		{&verifyd.Error{Code: verifyd.EPREFIXBLOCK, Message: "m"}, 422, "V0004", "Prefix blocked by fraud guard", "", false},
		{&verifyd.Error{Code: verifyd.ESPENDLIMIT, Message: "m"}, 422, "V0005", "Daily spend limit reached", "", false},
		{&verifyd.Error{Code: verifyd.ENOTPENDING, Message: "m"}, 422, "V0006", "Verification not pending", "", false},
		{&verifyd.Error{Code: verifyd.EMAXATTEMPTS, Message: "m"}, 429, "V0007", "Max attempts exceeded", "1", true},
		{&verifyd.Error{Code: verifyd.EEXPIRED, Message: "m"}, 422, "V0008", "Verification expired", "", false},
		{&verifyd.Error{Code: verifyd.ECHANNEL, Message: "m"}, 422, "V0009", "Channel not available", "", false},
		{errors.New("db: disk I/O error at /var/secret"), 500, "10007", "Unexpected error", "", false},
		{&verifyd.Error{Code: verifyd.EINTERNAL, Message: "secret internals"}, 500, "10007", "Unexpected error", "", false},
		{&verifyd.Error{Code: "no_such_code", Message: "secret internals"}, 500, "10007", "Unexpected error", "", false},
	} {
		t.Run(tc.code+"_"+tc.title, func(t *testing.T) {
			s.log = slogTo(logs)
			rec := httptest.NewRecorder()
			s.writeError(rec, httptest.NewRequest("GET", "/x", nil), tc.err)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			var env struct {
				Errors []map[string]any `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || len(env.Errors) != 1 {
				t.Fatalf("envelope %s", rec.Body)
			}
			e := env.Errors[0]
			if e["code"] != tc.code || e["title"] != tc.title || e["detail"] == "" {
				t.Errorf("error %v", e)
			}
			meta, _ := e["meta"].(map[string]any)
			if strings.HasPrefix(tc.code, "V") == (meta != nil) {
				t.Errorf("meta %v for %s", meta, tc.code)
			}
			if strings.Contains(rec.Body.String(), "secret") {
				t.Errorf("internal text leaked: %s", rec.Body)
			}
			if got := rec.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if got := rec.Header().Get("X-Should-Retry") == "false"; got != tc.noRetry {
				t.Errorf("x-should-retry false: %v, want %v", got, tc.noRetry)
			}
		})
	}
	if strings.Count(logs.String(), "disk I/O error") != 1 || strings.Count(logs.String(), "no_such_code") != 1 ||
		strings.Count(logs.String(), "internal error") != 3 {
		t.Errorf("internal errors not logged: %s", logs)
	}
}
