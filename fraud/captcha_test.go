package fraud

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/verifyd/verifyd"
)

// fakeSiteverify is a local siteverify: token "good" passes, "huge" gets an
// oversized answer, "hang" waits for the client to give up; the secret must
// be "s3cret".
func fakeSiteverify(t *testing.T) (*httptest.Server, *[]string) {
	t.Helper()
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		seen = append(seen, r.PostForm.Encode())
		ans := map[string]any{"success": false, "error-codes": []string{"invalid-input-response"}}
		switch {
		case r.PostForm.Get("secret") != "s3cret":
			ans["error-codes"] = []string{"invalid-input-secret"}
		case r.PostForm.Get("response") == "good":
			ans = map[string]any{"success": true, "hostname": "example.com"}
		case r.PostForm.Get("response") == "huge":
			ans["pad"] = strings.Repeat("x", 100<<10)
		case r.PostForm.Get("response") == "hang":
			<-r.Context().Done()
			return
		}
		_ = json.NewEncoder(w).Encode(ans)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestCaptchaVerifier(t *testing.T) {
	srv, seen := fakeSiteverify(t)
	ctx := context.Background()
	v := NewCaptchaVerifier(srv.URL, "s3cret")

	if err := v.Verify(ctx, "good", "203.0.113.7"); err != nil {
		t.Fatalf("good token: %v", err)
	}
	if len(*seen) != 1 || (*seen)[0] != "remoteip=203.0.113.7&response=good&secret=s3cret" {
		t.Errorf("form sent %v", *seen)
	}
	wantCode(t, v.Verify(ctx, "bad", ""), verifyd.EFORBIDDEN)
	wantCode(t, v.Verify(ctx, "", ""), verifyd.EFORBIDDEN)
	if len(*seen) != 2 {
		t.Errorf("an empty token was sent to siteverify")
	}

	// Our own misconfiguration is an internal error, not the client's fault.
	wrong := NewCaptchaVerifier(srv.URL, "nope")
	if err := wrong.Verify(ctx, "good", ""); err == nil || verifyd.ErrorCode(err) != verifyd.EINTERNAL {
		t.Errorf("wrong secret: %v", err)
	} else if strings.Contains(err.Error(), "nope") {
		t.Errorf("error quotes the secret: %v", err)
	}

	if err := v.Verify(ctx, "huge", ""); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized answer: %v", err)
	}

	v.Client = &http.Client{Timeout: 50 * time.Millisecond}
	if err := v.Verify(ctx, "hang", ""); err == nil || verifyd.ErrorCode(err) != verifyd.EINTERNAL {
		t.Errorf("hanging siteverify: %v", err)
	}
}

func TestGuard_Captcha(t *testing.T) {
	srv, _ := fakeSiteverify(t)
	g, _, _ := testGuard(t, func(c *Config) { c.Captcha = NewCaptchaVerifier(srv.URL, "s3cret") })
	ctx := context.Background()
	r := Request{Channel: verifyd.SMS, Phone: "+447400123456", CaptchaRequired: true, CaptchaToken: "good"}
	if _, err := g.Check(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.CaptchaToken = "bad"
	wantCode(t, func() error { _, err := g.Check(ctx, r); return err }(), verifyd.EFORBIDDEN)
	// Cheaper refusals come first: no siteverify call for a barred country.
	r.Destinations = []string{"DE"}
	wantCode(t, func() error { _, err := g.Check(ctx, r); return err }(), verifyd.EDESTINATION)
}
