package twilio_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/twilio"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "s3cret-token"
)

// fakeTwilio is a loopback stand-in for Twilio's Messages endpoint: it
// records each request and answers with status and body.
type fakeTwilio struct {
	mu     sync.Mutex
	reqs   []recorded
	status int
	body   string
}

type recorded struct {
	method, path, auth, contentType string
	form                            url.Values
}

func (f *fakeTwilio) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(b))
	f.mu.Lock()
	f.reqs = append(f.reqs, recorded{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), form})
	status, body := f.status, f.body
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func (f *fakeTwilio) only(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) != 1 {
		t.Fatalf("requests = %d, want 1", len(f.reqs))
	}
	return f.reqs[0]
}

func newFake(t *testing.T, status int, body string) (*fakeTwilio, *httptest.Server) {
	t.Helper()
	f := &fakeTwilio{status: status, body: body}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func mustNew(t *testing.T, cfg twilio.Config) *twilio.Sender {
	t.Helper()
	s, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testMessage() *verifyd.Message {
	return &verifyd.Message{ID: "job-1", Channel: verifyd.SMS, To: "+15551234567", Text: "Your code is 123456", Code: "123456", AlphaSender: "Acme"}
}

const created = `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued","num_segments":"2","error_code":null,"error_message":null}`

func TestSender_Send(t *testing.T) {
	f, srv := newFake(t, http.StatusCreated, created)
	s := mustNew(t, twilio.Config{Name: "twilio-us", BaseURL: srv.URL, AccountSID: testSID, AuthToken: testToken,
		From: "+15550001111", CallbackURL: "https://verifyd.example/callbacks/twilio/twilio-us"})

	res, err := s.Send(context.Background(), testMessage())
	if err != nil {
		t.Fatal(err)
	}
	want := verifyd.SendResult{Sender: "twilio-us", ProviderMessageID: "SM0123456789abcdef0123456789abcdef", Parts: 2, Status: verifyd.DeliverySent}
	if *res != want {
		t.Fatalf("result = %+v, want %+v", *res, want)
	}

	r := f.only(t)
	if r.method != http.MethodPost || r.path != "/2010-04-01/Accounts/"+testSID+"/Messages.json" {
		t.Errorf("request = %s %s", r.method, r.path)
	}
	if wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testSID+":"+testToken)); r.auth != wantAuth {
		t.Errorf("Authorization = %q, want %q", r.auth, wantAuth)
	}
	if r.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", r.contentType)
	}
	wantForm := url.Values{
		"To":             {"+15551234567"},
		"From":           {"+15550001111"},
		"Body":           {"Your code is 123456"},
		"StatusCallback": {"https://verifyd.example/callbacks/twilio/twilio-us"},
	}
	if r.form.Encode() != wantForm.Encode() {
		t.Errorf("form = %v, want %v", r.form, wantForm)
	}
}

func TestSender_Send_MessagingServiceAndAlphaSender(t *testing.T) {
	f, srv := newFake(t, http.StatusCreated, `{"sid":"SMx","status":"accepted","num_segments":1}`)
	s := mustNew(t, twilio.Config{BaseURL: srv.URL, AccountSID: testSID, AuthToken: testToken,
		MessagingServiceSID: "MG123", UseAlphaSender: true})
	res, err := s.Send(context.Background(), testMessage())
	if err != nil {
		t.Fatal(err)
	}
	if res.Sender != "twilio" || res.Parts != 1 {
		t.Errorf("result = %+v", res)
	}
	form := f.only(t).form
	if form.Get("MessagingServiceSid") != "MG123" || form.Get("From") != "Acme" {
		t.Errorf("form = %v", form)
	}
	if _, ok := form["StatusCallback"]; ok {
		t.Errorf("StatusCallback sent without a callback URL: %v", form)
	}
}

func TestSender_Send_Errors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		permanent bool
		text      string
	}{
		{"InvalidTo", 400, `{"code":21211,"message":"The 'To' number +1555 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}`, true, "21211"},
		{"Unsubscribed", 400, `{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}`, true, "21610"},
		{"NoPermission", 400, `{"code":21408,"message":"Permission to send an SMS has not been enabled for the region","status":400}`, true, "21408"},
		{"Forbidden", 403, `{"code":20003,"message":"Permission denied","status":403}`, true, "20003"},
		{"BadCredentials", 401, `{"code":20003,"message":"Authenticate","status":401}`, false, "401"},
		{"RateLimited", 429, `{"code":20429,"message":"Too Many Requests","status":429}`, false, "429"},
		{"ServerError", 500, `{"code":20500,"message":"Internal Server Error","status":500}`, false, "500"},
		{"BadGatewayHTML", 502, `<html>bad gateway</html>`, false, "502"},
		{"CreatedButFailed", 201, `{"sid":"SMf","status":"failed","error_code":30007,"error_message":"Carrier violation"}`, true, "30007"},
		{"CreatedUnreadable", 201, `not json`, false, "unreadable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newFake(t, tc.status, tc.body)
			s := mustNew(t, twilio.Config{BaseURL: srv.URL, AccountSID: testSID, AuthToken: testToken, From: "+15550001111"})
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
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error leaks the auth token: %q", err)
			}
		})
	}
}

func TestSender_Send_NetworkError(t *testing.T) {
	_, srv := newFake(t, 201, created)
	base := srv.URL
	srv.Close() // nothing listens there any more
	s := mustNew(t, twilio.Config{BaseURL: base, AccountSID: testSID, AuthToken: testToken, From: "+15550001111"})
	_, err := s.Send(context.Background(), testMessage())
	if err == nil || verifyd.ErrorCode(err) == verifyd.ECHANNEL {
		t.Fatalf("err = %v, want a transient error", err)
	}
	var e *verifyd.Error
	if errors.As(err, &e) {
		t.Fatalf("err = %v is a domain error", err)
	}
}

func TestSender_Send_NotSMS(t *testing.T) {
	f, srv := newFake(t, 201, created)
	s := mustNew(t, twilio.Config{BaseURL: srv.URL, AccountSID: testSID, AuthToken: testToken, From: "+15550001111"})
	m := testMessage()
	m.Channel = verifyd.Call
	if _, err := s.Send(context.Background(), m); verifyd.ErrorCode(err) != verifyd.ECHANNEL {
		t.Fatalf("err = %v, want ECHANNEL", err)
	}
	f.mu.Lock()
	n := len(f.reqs)
	f.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d requests reached Twilio", n)
	}
}

func TestConfig_Validate(t *testing.T) {
	for name, cfg := range map[string]twilio.Config{
		"NoSID":        {AuthToken: "t", From: "+1"},
		"NoToken":      {AccountSID: "AC", From: "+1"},
		"NoFrom":       {AccountSID: "AC", AuthToken: "t"},
		"BadBase":      {AccountSID: "AC", AuthToken: "t", From: "+1", BaseURL: "ftp://x"},
		"RelativeHook": {AccountSID: "AC", AuthToken: "t", From: "+1", CallbackURL: "/callbacks/twilio"},
	} {
		if _, err := twilio.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}
