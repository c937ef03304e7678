// Package twilio is a verifyd.Sender for Twilio Programmable Messaging, and
// the http.Handler that takes Twilio's signed status callbacks and reports
// them to a verifyd.ReceiptSink.
package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/verifyd/verifyd"
)

// DefaultBaseURL is Twilio's REST API.
const DefaultBaseURL = "https://api.twilio.com"

// maxResponse caps how much of a Twilio response is read.
const maxResponse = 1 << 20

// Config configures a Sender. Build it in cmd; nothing here reads the
// environment.
type Config struct {
	// Name is the sender's name in SendResult and Receipt; default "twilio".
	Name string
	// BaseURL is the API root; default DefaultBaseURL. Tests point it at an
	// httptest server.
	BaseURL    string
	AccountSID string
	// AuthToken authenticates API calls (Basic AccountSID:AuthToken) and
	// signs status callbacks. Never logged.
	AuthToken string
	// From is the sending number or short code; MessagingServiceSID (MG…)
	// may replace or accompany it. At least one is required.
	From                string
	MessagingServiceSID string
	// UseAlphaSender sends Message.AlphaSender, when set, as From. Twilio
	// refuses alphanumeric senders for some countries (a permanent error),
	// so it is off unless routes keep such destinations away.
	UseAlphaSender bool
	// CallbackURL is the public URL Twilio posts status callbacks to, exactly
	// as Twilio sees it (scheme, host, path, query): it is sent as
	// StatusCallback and is the URL signatures are checked over, since
	// verifyd may sit behind a proxy. Empty: no callbacks are requested.
	CallbackURL string
	// Timeout bounds one API call; default 10 s. Ignored with HTTPClient.
	Timeout time.Duration
	// HTTPClient, if set, is used as is (it should have a timeout).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock receipts are stamped with; default time.Now.
	Now func() time.Time
}

// Validate reports a missing or malformed setting.
func (c *Config) Validate() error {
	switch {
	case c.AccountSID == "":
		return errors.New("twilio: account SID is required")
	case c.AuthToken == "":
		return errors.New("twilio: auth token is required")
	case c.From == "" && c.MessagingServiceSID == "":
		return errors.New("twilio: a From number or a messaging service SID is required")
	}
	if c.BaseURL != "" {
		if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("twilio: base URL %q is not an http(s) URL", c.BaseURL)
		}
	}
	if c.CallbackURL != "" {
		if u, err := url.Parse(c.CallbackURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("twilio: callback URL %q is not an absolute http(s) URL", c.CallbackURL)
		}
	}
	return nil
}

// Sender sends SMS through Twilio. It is safe for concurrent use.
type Sender struct {
	cfg      Config
	endpoint string
	client   *http.Client
	log      *slog.Logger
}

// New returns a Sender for cfg, with defaults filled in.
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = "twilio"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sender{cfg: cfg, client: cfg.HTTPClient, log: cfg.Logger}
	if s.client == nil {
		s.client = &http.Client{Timeout: cfg.Timeout}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.endpoint = strings.TrimRight(cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json"
	return s, nil
}

// Name is the sender's name, as in its SendResults and Receipts.
func (s *Sender) Name() string { return s.cfg.Name }

// message is the part of Twilio's message resource we read.
type message struct {
	SID          string  `json:"sid"`
	Status       string  `json:"status"`
	ErrorCode    *number `json:"error_code"`
	ErrorMessage string  `json:"error_message"`
	NumSegments  *number `json:"num_segments"`
}

// apiError is Twilio's error body.
type apiError struct {
	Code     *number `json:"code"`
	Message  string  `json:"message"`
	MoreInfo string  `json:"more_info"`
	Status   int     `json:"status"`
}

// number reads a JSON number or a numeric string (Twilio sends
// num_segments as "1").
type number int

func (n *number) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return err
	}
	*n = number(v)
	return nil
}

func (n *number) int() int {
	if n == nil {
		return 0
	}
	return int(*n)
}

// Send creates one message. A refusal Twilio will repeat for this message
// (invalid or unsubscribed number, no permission for the destination, …)
// is a *verifyd.Error with code ECHANNEL; a rate limit, a server error, a
// credentials problem or a network failure is a plain error, worth a retry
// or another sender.
func (s *Sender) Send(ctx context.Context, m *verifyd.Message) (*verifyd.SendResult, error) {
	if m.Channel != "" && m.Channel != verifyd.SMS {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Twilio sender %s sends SMS only, not %s.", s.cfg.Name, m.Channel)
	}
	form := url.Values{}
	form.Set("To", m.To)
	from := s.cfg.From
	if s.cfg.UseAlphaSender && m.AlphaSender != "" {
		from = m.AlphaSender
	}
	if from != "" {
		form.Set("From", from)
	}
	if s.cfg.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", s.cfg.MessagingServiceSID)
	}
	form.Set("Body", m.Text)
	if s.cfg.CallbackURL != "" {
		form.Set("StatusCallback", s.cfg.CallbackURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("twilio %s: %w", s.cfg.Name, err)
	}
	req.SetBasicAuth(s.cfg.AccountSID, s.cfg.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error names the endpoint (account SID, no secret).
		return nil, fmt.Errorf("twilio %s: %w", s.cfg.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("twilio %s: reading response: %w", s.cfg.Name, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, s.classify(resp.StatusCode, body)
	}
	var msg message
	if err := json.Unmarshal(body, &msg); err != nil || msg.SID == "" {
		// Twilio took it (2xx) but we cannot tell which message it is. A
		// retry may send twice; that is better than not sending.
		return nil, fmt.Errorf("twilio %s: HTTP %d with an unreadable message resource", s.cfg.Name, resp.StatusCode)
	}
	if msg.Status == "failed" || msg.Status == "undelivered" {
		return nil, verifyd.Errorf(verifyd.ECHANNEL, "Twilio refused the message: %d %s", msg.ErrorCode.int(), msg.ErrorMessage)
	}
	s.log.DebugContext(ctx, "twilio message created", "sender", s.cfg.Name, "message", m.ID, "sid", msg.SID, "status", msg.Status)
	return &verifyd.SendResult{
		Sender:            s.cfg.Name,
		ProviderMessageID: msg.SID,
		Parts:             msg.NumSegments.int(),
		Status:            verifyd.DeliverySent,
	}, nil
}

// classify turns a non-2xx answer into an error. 4xx answers are about the
// message (permanent) except those about us or the moment: 401 (bad
// credentials), 404 (unknown account), 408 and 429.
func (s *Sender) classify(status int, body []byte) error {
	var e apiError
	if json.Unmarshal(body, &e) != nil || e.Message == "" {
		e.Message = http.StatusText(status)
	}
	code := e.Code.int()
	switch {
	case status >= 400 && status < 500 && status != http.StatusUnauthorized && status != http.StatusNotFound &&
		status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		return verifyd.Errorf(verifyd.ECHANNEL, "Twilio refused the message: %d %s", code, e.Message)
	default:
		return fmt.Errorf("twilio %s: HTTP %d: %d %s", s.cfg.Name, status, code, e.Message)
	}
}

// compile-time check that Sender is a verifyd.Sender.
var _ verifyd.Sender = (*Sender)(nil)
