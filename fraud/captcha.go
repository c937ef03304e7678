package fraud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/verifyd/verifyd"
)

// Siteverify endpoints of the supported CAPTCHA services.
const (
	TurnstileURL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
	HCaptchaURL  = "https://api.hcaptcha.com/siteverify"
)

// CaptchaVerifier checks a CAPTCHA token with a siteverify endpoint
// (Cloudflare Turnstile and hCaptcha speak the same protocol: a form POST of
// secret, response and remoteip; a JSON answer with success and
// error-codes).
type CaptchaVerifier struct {
	URL    string       // TurnstileURL, HCaptchaURL or a compatible endpoint
	Secret string       // the site's secret key; never logged
	Client *http.Client // nil: a client with a 5 s timeout
	// MaxBody caps the answer read (default 64 KiB).
	MaxBody int64
}

// NewCaptchaVerifier returns a verifier for url with a 5 s timeout.
func NewCaptchaVerifier(url, secret string) *CaptchaVerifier {
	return &CaptchaVerifier{URL: url, Secret: secret, Client: &http.Client{Timeout: 5 * time.Second}}
}

type siteverifyAnswer struct {
	Success    bool     `json:"success"`
	ErrorCodes []string `json:"error-codes"`
}

// Verify returns nil if the service accepts token, an EFORBIDDEN domain
// error if it rejects it (missing, invalid, expired or reused token), and a
// plain error when the service cannot be asked or refuses our own secret
// (an operator problem, never shown to the client).
func (v *CaptchaVerifier) Verify(ctx context.Context, token, remoteIP string) error {
	if token == "" {
		return verifyd.Errorf(verifyd.EFORBIDDEN, "A CAPTCHA token is required to send a code.")
	}
	form := url.Values{"secret": {v.Secret}, "response": {token}}
	if remoteIP != "" {
		form.Set("remoteip", remoteIP)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("fraud: captcha request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	client := v.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fraud: captcha siteverify: %w", redactSecret(err, v.Secret))
	}
	defer resp.Body.Close()
	limit := v.MaxBody
	if limit <= 0 {
		limit = 64 << 10
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("fraud: captcha siteverify: reading answer: %w", err)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("fraud: captcha siteverify: answer larger than %d bytes", limit)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fraud: captcha siteverify: HTTP %d", resp.StatusCode)
	}
	var a siteverifyAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return fmt.Errorf("fraud: captcha siteverify: bad JSON: %w", err)
	}
	if a.Success {
		return nil
	}
	for _, c := range a.ErrorCodes {
		if slices.Contains([]string{"missing-input-secret", "invalid-input-secret", "sitekey-secret-mismatch", "internal-error"}, c) {
			return fmt.Errorf("fraud: captcha siteverify refused our configuration: %s", strings.Join(a.ErrorCodes, ","))
		}
	}
	return verifyd.Errorf(verifyd.EFORBIDDEN, "The CAPTCHA check failed (missing, invalid, expired or already used token); solve it again.")
}

// redactSecret keeps the secret out of an error that might quote the
// request (url.Error quotes the URL only, but an operator may put the secret
// in a custom URL).
func redactSecret(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[secret]"))
}
