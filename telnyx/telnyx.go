// Package telnyx is a verifyd.Sender for the Telnyx Messaging API v2, and
// the http.Handler that takes Telnyx's Ed25519-signed message webhooks and
// reports delivery to a verifyd.ReceiptSink.
package telnyx

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/verifyd/verifyd"
)

// DefaultBaseURL is Telnyx's API root.
const DefaultBaseURL = "https://api.telnyx.com"

// DefaultTolerance is how old a webhook's timestamp may be.
const DefaultTolerance = 5 * time.Minute

// maxResponse caps how much of a Telnyx response is read.
const maxResponse = 1 << 20

// Config configures a Sender. Build it in cmd; nothing here reads the
// environment.
type Config struct {
	// Name is the sender's name in SendResult and Receipt; default "telnyx".
	Name string
	// BaseURL is the API root; default DefaultBaseURL. Tests point it at an
	// httptest server.
	BaseURL string
	// APIKey authenticates API calls (Bearer). Never logged.
	APIKey string
	// From is the sending number, short code or alphanumeric sender ID.
	// MessagingProfileID (a number pool, or required with an alphanumeric
	// From) may replace or accompany it. At least one is required.
	From               string
	MessagingProfileID string
	// UseAlphaSender sends Message.AlphaSender, when set, as from. Telnyx
	// needs a messaging profile for that and refuses it for some countries
	// (a permanent error), so it is off by default.
	UseAlphaSender bool
	// WebhookURL is the public URL Telnyx posts message events to; sent as
	// webhook_url with every message. Empty: the messaging profile's
	// webhook settings apply.
	WebhookURL string
	// PublicKey is the account's Ed25519 public key, base64 of its 32 raw
	// bytes, that webhooks are verified with. Without it the webhook
	// handler refuses everything.
	PublicKey string
	// Tolerance is how far a webhook's telnyx-timestamp may be from now;
	// default DefaultTolerance.
	Tolerance time.Duration
	// Timeout bounds one API call; default 10 s. Ignored with HTTPClient.
	Timeout time.Duration
	// HTTPClient, if set, is used as is (it should have a timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock for timestamp checks and receipts; default time.Now.
	Now func() time.Time
}

// Validate reports a missing or malformed setting.
func (c *Config) Validate() error {
	switch {
	case c.APIKey == "":
		return errors.New("telnyx: API key is required")
	case c.From == "" && c.MessagingProfileID == "":
		return errors.New("telnyx: a from number or a messaging profile ID is required")
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("telnyx: base URL %q is not an http(s) URL", c.BaseURL)
		}
	}
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("telnyx: webhook URL %q is not an absolute http(s) URL", c.WebhookURL)
		}
	}
	if c.PublicKey != "" {
		if _, err := parsePublicKey(c.PublicKey); err != nil {
			return err
		}
	}
	return nil
}

func parsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("telnyx: public key must be base64 of 32 bytes")
	}
	return ed25519.PublicKey(b), nil
}

// Sender sends SMS through Telnyx. It is safe for concurrent use.
type Sender struct {
	cfg      Config
	endpoint string
	key      ed25519.PublicKey // nil: webhooks refused
	client   *http.Client
	log      *slog.Logger
}

// New returns a Sender for cfg, with defaults filled in.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "telnyx"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sender{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger}
	if cfg.PublicKey != "" {
		s.key, _ = parsePublicKey(cfg.PublicKey) // checked by Validate
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: cfg.Timeout}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.endpoint = strings.TrimRight(cfg.BaseURL, "/") + "/v2/messages"
	return s, nil
}

// Name is the sender's name, as in its SendResults and Receipts.
func (s *Sender) Name() string { return s.cfg.Name }

// request is the body of POST /v2/messages.
type request struct {
	From               string `json:"from,omitempty"`
	To                 string `json:"to"`
	Text               string `json:"text"`
	MessagingProfileID string `json:"messaging_profile_id,omitempty"`
	WebhookURL         string `json:"webhook_url,omitempty"`
}

// recipient is one entry of a message's "to".
type recipient struct {
	PhoneNumber string `json:"phone_number"`
	Status      string `json:"status"`
}

// apiError is one entry of an "errors" array.
type apiError struct {
	Code   code   `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

// code reads an error code sent as a string or a number.
type code string

func (c *code) UnmarshalJSON(b []byte) error {
	*c = code(strings.Trim(string(bytes.TrimSpace(b)), `"`))
	if *c == "null" {
		*c = ""
	}
	return nil
}

func (e apiError) String() string {
	text := e.Title
	if e.Detail != "" && e.Detail != e.Title {
		text = strings.TrimSpace(text + " " + e.Detail)
	}
	return strings.TrimSpace(string(e.Code) + " " + text)
}

// response is the part of the create answer we read.
type response struct {
	Data *struct {
		ID    string      `json:"id"`
		Parts int         `json:"parts"`
		To    []recipient `json:"to"`
	} `json:"data"`
	Errors []apiError `json:"errors"`
}

// Send creates one message. A refusal Telnyx will repeat for this message
// (invalid or blocked number, destination not allowed, …) is a
// *verifyd.Error with code ECHANNEL; a rate limit, a server error, a
// credentials problem or a network failure is a plain error, worth a retry
// or another sender.
func (s *Sender) Send(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	if m.Channel != "" && m.Channel != verifyd.SMS {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Telnyx sender %s sends SMS only, not %s.", s.cfg.Name, m.Channel)
	}
	body := request{From: s.cfg.From, To: m.To, Text: m.Text, MessagingProfileID: s.cfg.MessagingProfileID, WebhookURL: s.cfg.WebhookURL}
	if s.cfg.UseAlphaSender && m.AlphaSender != "" {
		body.From = m.AlphaSender
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("telnyx %s: %w", s.cfg.Name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("telnyx %s: %w", s.cfg.Name, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("telnyx %s: %w", s.cfg.Name, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("telnyx %s: reading response: %w", s.cfg.Name, err)
	}
	var r response
	jerr := json.Unmarshal(rb, &r)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, s.classify(resp.StatusCode, r.Errors)
	}
	if jerr != nil || r.Data == nil || r.Data.ID == "" {
		// Telnyx took it (2xx) but we cannot tell which message it is. A
		// retry may send twice; that is better than not sending.
		return nil, fmt.Errorf("telnyx %s: HTTP %d with an unreadable message", s.cfg.Name, resp.StatusCode)
	}
	if len(r.Data.To) > 0 && r.Data.To[0].Status == "sending_failed" {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Telnyx refused the message: %s", r.Data.To[0].Status)
	}
	s.log.DebugContext(ctx, "telnyx message created", "sender", s.cfg.Name, "message", m.ID, "id", r.Data.ID)
	return &verifyd.SendResult{
		Sender:            s.cfg.Name,
		ProviderMessageID: r.Data.ID,
		Parts:             r.Data.Parts,
		Status:            verifyd.DeliverySent,
	}, nil
}

// classify turns a non-2xx answer into an error. 4xx answers are about the
// message (permanent) except those about us or the moment: 401 (bad API
// key), 404, 408 and 429.
func (s *Sender) classify(status int, errs []apiError) error {
	text := http.StatusText(status)
	if len(errs) > 0 {
		text = errs[0].String()
	}
	switch {
	case status >= 400 && status < 500 && status != http.StatusUnauthorized && status != http.StatusNotFound &&
		status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		return verifyd.Errorf(verifyd.ECHANNEL, "Telnyx refused the message: %s", text)
	default:
		return fmt.Errorf("telnyx %s: HTTP %d: %s", s.cfg.Name, status, text)
	}
}

// compile-time check that Sender is a verifyd.Sender.
var _ verifyd.Sender = (*Sender)(nil)
