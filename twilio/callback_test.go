package twilio_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/twilio"
)

const publicURL = "https://verifyd.example/callbacks/twilio/twilio-us?x=1"

// sink records receipts and answers with err.
type sink struct {
	mu  sync.Mutex
	got []verifyd.Receipt
	err error
}

func (s *sink) Receipt(_ context.Context, r *verifyd.Receipt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, *r)
	return s.err
}

func (s *sink) receipts() []verifyd.Receipt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]verifyd.Receipt(nil), s.got...)
}

// sign computes X-Twilio-Signature independently of the package.
func sign(token, fullURL string, p url.Values) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	data := fullURL
	for _, k := range keys {
		for _, v := range p[k] {
			data += k + v
		}
	}
	mac := hmac.New(sha1.New, []byte(token))
	mac.Write([]byte(data))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

var at = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func callbackSender(t *testing.T, logs *bytes.Buffer) *twilio.Sender {
	t.Helper()
	cfg := twilio.Config{Name: "twilio-us", AccountSID: testSID, AuthToken: testToken, From: "+15550001111",
		CallbackURL: publicURL, Now: func() time.Time { return at }}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	return mustNew(t, cfg)
}

func statusParams(status, errorCode string) url.Values {
	p := url.Values{
		"AccountSid":    {testSID},
		"MessageSid":    {"SM42"},
		"SmsSid":        {"SM42"},
		"MessageStatus": {status},
		"SmsStatus":     {status},
		"From":          {"+15550001111"},
		"To":            {"+15551234567"},
		"ApiVersion":    {"2010-04-01"},
	}
	if errorCode != "" {
		p.Set("ErrorCode", errorCode)
	}
	return p
}

// post sends body to h as Twilio would, through the internal URL (the
// proxy rewrote it), with signature sig ("" = no header).
func post(h http.Handler, body, sig string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "http://10.0.0.5:8080/callbacks/twilio/twilio-us?x=1", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set(twilio.SignatureHeader, sig)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestSignature_TwilioExample(t *testing.T) {
	// The worked example of Twilio's webhook security guide.
	p := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"},
		"From": {"+12349013030"}, "To": {"+18005551212"}}
	const u, want = "https://mycompany.com/myapp.php?foo=1&bar=2", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
	if got := twilio.Signature("12345", u, p); got != want {
		t.Fatalf("Signature = %q, want %q", got, want)
	}
	if !twilio.ValidSignature("12345", u, p, want) {
		t.Fatal("the documented signature is not valid")
	}
	if twilio.ValidSignature("12345", u, p, "") {
		t.Fatal("an empty signature is valid")
	}
}

func TestCallbackHandler_Receipts(t *testing.T) {
	for _, tc := range []struct {
		status, errorCode string
		want              *verifyd.Receipt
	}{
		{"delivered", "", &verifyd.Receipt{Sender: "twilio-us", ProviderMessageID: "SM42", Status: verifyd.DeliveryDelivered, At: at}},
		{"undelivered", "30003", &verifyd.Receipt{Sender: "twilio-us", ProviderMessageID: "SM42", Status: verifyd.DeliveryFailed, Cause: "30003", At: at}},
		{"failed", "30008", &verifyd.Receipt{Sender: "twilio-us", ProviderMessageID: "SM42", Status: verifyd.DeliveryFailed, Cause: "30008", At: at}},
		{"failed", "", &verifyd.Receipt{Sender: "twilio-us", ProviderMessageID: "SM42", Status: verifyd.DeliveryFailed, Cause: "failed", At: at}},
		{"sent", "", nil},
		{"queued", "", nil},
		{"accepted", "", nil},
		{"sending", "", nil},
	} {
		t.Run(tc.status+tc.errorCode, func(t *testing.T) {
			snk := &sink{}
			h := callbackSender(t, nil).CallbackHandler(snk)
			p := statusParams(tc.status, tc.errorCode)
			rec := post(h, p.Encode(), sign(testToken, publicURL, p))
			if rec.Code != http.StatusOK {
				t.Fatalf("status = %d, want 200 (%s)", rec.Code, rec.Body)
			}
			got := snk.receipts()
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("receipts = %+v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0] != *tc.want {
				t.Fatalf("receipts = %+v, want %+v", got, *tc.want)
			}
		})
	}
}

func TestCallbackHandler_Refused(t *testing.T) {
	p := statusParams("delivered", "")
	good := sign(testToken, publicURL, p)
	tampered := statusParams("undelivered", "30003")
	for _, tc := range []struct {
		name, body, sig string
	}{
		{"MissingHeader", p.Encode(), ""},
		{"TamperedBody", tampered.Encode(), good},
		{"ExtraParam", p.Encode() + "&Injected=1", good},
		{"WrongToken", p.Encode(), sign("another-token", publicURL, p)},
		{"InternalURL", p.Encode(), sign(testToken, "http://10.0.0.5:8080/callbacks/twilio/twilio-us?x=1", p)},
		{"Garbage", p.Encode(), "bm90IGEgc2lnbmF0dXJl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			snk := &sink{}
			rec := post(callbackSender(t, &logs).CallbackHandler(snk), tc.body, tc.sig)
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status = %d, want 403", rec.Code)
			}
			if n := len(snk.receipts()); n != 0 {
				t.Fatalf("sink got %d receipts", n)
			}
			if strings.Contains(logs.String(), testToken) {
				t.Fatalf("log leaks the auth token: %s", logs.String())
			}
		})
	}
}

func TestCallbackHandler_UnknownMessage(t *testing.T) {
	var logs bytes.Buffer
	snk := &sink{err: verifyd.ErrNotFound}
	p := statusParams("delivered", "")
	rec := post(callbackSender(t, &logs).CallbackHandler(snk), p.Encode(), sign(testToken, publicURL, p))
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", rec.Code)
	}
	if len(snk.receipts()) != 1 {
		t.Fatal("sink was not called")
	}
	if !strings.Contains(logs.String(), "unknown message") || !strings.Contains(logs.String(), "SM42") {
		t.Fatalf("not logged: %q", logs.String())
	}
}

func TestCallbackHandler_SinkFailure(t *testing.T) {
	snk := &sink{err: verifyd.ErrUnavailable}
	p := statusParams("delivered", "")
	rec := post(callbackSender(t, nil).CallbackHandler(snk), p.Encode(), sign(testToken, publicURL, p))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500 so Twilio tries again", rec.Code)
	}
}

func TestCallbackHandler_BodyCapped(t *testing.T) {
	snk := &sink{}
	p := statusParams("delivered", "")
	p.Set("Padding", strings.Repeat("a", 70<<10))
	rec := post(callbackSender(t, nil).CallbackHandler(snk), p.Encode(), sign(testToken, publicURL, p))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", rec.Code)
	}
	if len(snk.receipts()) != 0 {
		t.Fatal("sink was called")
	}
}

// A real round trip: the sender asks for callbacks at a loopback URL, and a
// signed callback posted there reaches the sink.
func TestCallbackHandler_OverHTTP(t *testing.T) {
	snk := &sink{}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cb := srv.URL + "/callbacks/twilio/twilio-us"
	s := mustNew(t, twilio.Config{Name: "twilio-us", AccountSID: testSID, AuthToken: testToken, From: "+1555", CallbackURL: cb})
	mux.Handle("POST /callbacks/twilio/twilio-us", s.CallbackHandler(snk))

	p := statusParams("undelivered", "30005")
	req, _ := http.NewRequest(http.MethodPost, cb, strings.NewReader(p.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(twilio.SignatureHeader, sign(testToken, cb, p))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	got := snk.receipts()
	if len(got) != 1 || got[0].Status != verifyd.DeliveryFailed || got[0].Cause != "30005" || got[0].ProviderMessageID != "SM42" {
		t.Fatalf("receipts = %+v", got)
	}
}
