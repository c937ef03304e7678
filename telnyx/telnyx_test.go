package telnyx_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/telnyx"
)

const testKey = "KEY0123_secret"

// fakeTelnyx is a loopback stand-in for POST /v2/messages.
type fakeTelnyx struct {
	mu     sync.Mutex
	reqs   []recorded
	status int
	body   string
}

type recorded struct {
	method, path, auth, contentType string
	body                            map[string]any
}

func (f *fakeTelnyx) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), body})
	status, rb := f.status, f.body
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, rb)
}

func (f *fakeTelnyx) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func newFake(t *testing.T, status int, body string) (*fakeTelnyx, *httptest.Server) {
	t.Helper()
	f := &fakeTelnyx{status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func mustNew(t *testing.T, cfg telnyx.Config) *telnyx.Sender {
	t.Helper()
	s, err := telnyx.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testMessage() *verifyd.Message {
	return &verifyd.Message{ID: "job-1", Channel: verifyd.SMS, To: "+15551234567", Text: "Your code is 123456", AlphaSender: "Acme"}
}

const created = `{"data":{"record_type":"message","id":"40385f64-5717-4562-b3fc-2c963f66afa6","direction":"outbound","type":"SMS",
 "from":{"phone_number":"+15550001111"},"to":[{"phone_number":"+15551234567","status":"queued"}],
 "text":"Your code is 123456","parts":2,"encoding":"GSM-7","errors":[]}}`

func TestSender_Send(t *testing.T) {
	f, srv := newFake(t, http.StatusOK, created)
	s := mustNew(t, telnyx.Config{Name: "telnyx-eu", BaseURL: srv.URL, APIKey: testKey, From: "+15550001111",
		WebhookURL: "https://verifyd.example/callbacks/telnyx/telnyx-eu"})
	res, err := s.Send(context.Background(), testMessage())
	if err != nil {
		t.Fatal(err)
	}
	want := verifyd.SendResult{Sender: "telnyx-eu", ProviderMessageID: "40385f64-5717-4562-b3fc-2c963f66afa6", Parts: 2, Status: verifyd.DeliverySent}
	if *res != want {
		t.Fatalf("result = %+v, want %+v", *res, want)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests = %d", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/v2/messages" {
		t.Errorf("request = %s %s", r.method, r.path)
	}
	if r.auth != "Bearer "+testKey {
		t.Errorf("Authorization = %q", r.auth)
	}
	if r.contentType != "application/json" {
		t.Errorf("Content-Type = %q", r.contentType)
	}
	wantBody := map[string]any{"from": "+15550001111", "to": "+15551234567", "text": "Your code is 123456",
		"webhook_url": "https://verifyd.example/callbacks/telnyx/telnyx-eu"}
	if !equalJSON(r.body, wantBody) {
		t.Errorf("body = %v, want %v", r.body, wantBody)
	}
}

func TestSender_Send_ProfileAndAlphaSender(t *testing.T) {
	f, srv := newFake(t, http.StatusOK, created)
	s := mustNew(t, telnyx.Config{BaseURL: srv.URL, APIKey: testKey, MessagingProfileID: "mp-1", UseAlphaSender: true})
	if _, err := s.Send(context.Background(), testMessage()); err != nil {
		t.Fatal(err)
	}
	wantBody := map[string]any{"from": "Acme", "to": "+15551234567", "text": "Your code is 123456", "messaging_profile_id": "mp-1"}
	if got := f.requests()[0].body; !equalJSON(got, wantBody) {
		t.Errorf("body = %v, want %v", got, wantBody)
	}
}

func equalJSON(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestSender_Send_Errors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		permanent bool
		text      string
	}{
		{"InvalidTo", 400, `{"errors":[{"code":"40310","title":"Invalid 'to' address","detail":"The 'to' address should be in E.164 format.","source":{"pointer":"/to"}}]}`, true, "40310"},
		{"Blocked", 403, `{"errors":[{"code":"40300","title":"Blocked due to STOP message"}]}`, true, "40300"},
		{"Unprocessable", 422, `{"errors":[{"code":10015,"title":"Invalid value"}]}`, true, "10015"},
		{"BadKey", 401, `{"errors":[{"code":"10009","title":"Authentication failed"}]}`, false, "10009"},
		{"RateLimited", 429, `{"errors":[{"code":"10011","title":"Too many requests"}]}`, false, "429"},
		{"ServerError", 503, `<html>unavailable</html>`, false, "503"},
		{"OKButUnreadable", 200, `{"data":{}}`, false, "unreadable"},
		{"SendingFailed", 200, `{"data":{"id":"m1","parts":1,"to":[{"phone_number":"+15551234567","status":"sending_failed"}]}}`, true, "sending_failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newFake(t, tc.status, tc.body)
			s := mustNew(t, telnyx.Config{BaseURL: srv.URL, APIKey: testKey, From: "+15550001111"})
			res, err := s.Send(context.Background(), testMessage())
			if err == nil {
				t.Fatalf("no error; result %+v", res)
			}
			if got := verifyd.ErrorCode(err) == verifyd.ECHANNEL; got != tc.permanent {
				t.Errorf("permanent = %v, want %v (err %v)", got, tc.permanent, err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error leaks the API key: %q", err)
			}
		})
	}
}

func TestSender_Send_NetworkError(t *testing.T) {
	_, srv := newFake(t, 200, created)
	base := srv.URL
	srv.Close()
	s := mustNew(t, telnyx.Config{BaseURL: base, APIKey: testKey, From: "+15550001111"})
	_, err := s.Send(context.Background(), testMessage())
	var e *verifyd.Error
	if err == nil || errors.As(err, &e) {
		t.Fatalf("err = %v, want a plain (transient) error", err)
	}
}

func TestSender_Send_NotSMS(t *testing.T) {
	f, srv := newFake(t, 200, created)
	s := mustNew(t, telnyx.Config{BaseURL: srv.URL, APIKey: testKey, From: "+15550001111"})
	m := testMessage()
	m.Channel = verifyd.Flashcall
	if _, err := s.Send(context.Background(), m); verifyd.ErrorCode(err) != verifyd.ECHANNEL {
		t.Fatalf("err = %v, want ECHANNEL", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("%d requests reached Telnyx", n)
	}
}

func TestConfig_Validate(t *testing.T) {
	for name, cfg := range map[string]telnyx.Config{
		"NoKey":        {From: "+1"},
		"NoFrom":       {APIKey: "k"},
		"BadBase":      {APIKey: "k", From: "+1", BaseURL: "api.telnyx.com"},
		"RelativeHook": {APIKey: "k", From: "+1", WebhookURL: "/hook"},
		"ShortKey":     {APIKey: "k", From: "+1", PublicKey: "AAAA"},
		"NotBase64":    {APIKey: "k", From: "+1", PublicKey: "not base64!"},
	} {
		if _, err := telnyx.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}
