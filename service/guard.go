package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/fraud"
)

// Guards are the abuse and fraud controls of the trigger and check paths
// (README "Abuse and fraud controls", docs/fraud.md). A Service without
// Guards enforces none of them (unit tests and benchmarks); cmd/verifyd
// always wires them.
type Guards struct {
	// Fraud runs the destination allowlist, the number-type policy, prefix
	// blocks and the daily spend cap, and takes the send and completion
	// statistics. Nil: none of these.
	Fraud *fraud.Guard
	// Limiter enforces Limits. Nil: no rate limits.
	Limiter verifyd.Limiter
	// Limits are the operator's rate limits; nil means DefaultLimits().
	// A profile channel's "rate_limits" object replaces them key by key.
	Limits Limits
	// Captcha verifies the token of profiles that require one
	// ("captcha_required": true in the channel object). Nil: such
	// profiles cannot trigger (a configuration error, logged, 500).
	Captcha *fraud.CaptchaVerifier
	// DefaultDestinations, if not nil, replaces Options.DefaultDestinations
	// (SetGuards): the one operator default the API shows and the
	// allowlist enforces.
	DefaultDestinations []string
	// AdminToken authenticates the operator's admin API (fraud blocks);
	// empty: no admin API.
	AdminToken string
}

var defaultLimits = DefaultLimits()

func (g *Guards) limits() Limits {
	if g.Limits == nil {
		return defaultLimits
	}
	return g.Limits
}

// Rate is "Count events per Period".
type Rate struct {
	Count  int
	Period time.Duration
}

func (r Rate) String() string { return fmt.Sprintf("%d/%s", r.Count, shortDuration(r.Period)) }

// Limits maps a limit name to its rates (several rates on one key cap
// several windows, e.g. 3 per 10 min and 5 per hour). A name with no rates
// is not limited.
type Limits map[string][]Rate

// The limit names. Trigger limits: phone, ip, session (the D14 headers;
// absent header, no limit), profile and prefix. Check limits (D20): the
// account and the end-user IP; their keys never depend on whether a
// verification exists.
const (
	LimitPhone        = "phone"
	LimitIP           = "ip"
	LimitSession      = "session"
	LimitProfile      = "profile"
	LimitPrefix       = "prefix"
	LimitCheckAccount = "check_account"
	LimitCheckIP      = "check_ip"
)

// limitNames lists every name, in the order a trigger's limits are tried.
var limitNames = []string{LimitPhone, LimitIP, LimitSession, LimitProfile, LimitPrefix, LimitCheckAccount, LimitCheckIP}

// DefaultLimits returns the shipped limits: per phone 3 per 10 min and 5 per
// hour, per end-user IP 10 per hour, per end-user session 5 per hour
// (FRAUD.md §2.3), per profile 600 per minute and per prefix 100 per 10 min
// (spike limits), and on the check endpoints 1200 per minute per account and
// 30 per 10 min per end-user IP.
func DefaultLimits() Limits {
	return Limits{
		LimitPhone:        {{3, 10 * time.Minute}, {5, time.Hour}},
		LimitIP:           {{10, time.Hour}},
		LimitSession:      {{5, time.Hour}},
		LimitProfile:      {{600, time.Minute}},
		LimitPrefix:       {{100, 10 * time.Minute}},
		LimitCheckAccount: {{1200, time.Minute}},
		LimitCheckIP:      {{30, 10 * time.Minute}},
	}
}

// ParseLimits parses "name=RATES,name=RATES" where RATES is "off" or
// COUNT/PERIOD joined by "+", e.g. "phone=3/10m+5/1h,ip=off". Names not
// given keep their value in base (which is not modified).
func ParseLimits(base Limits, spec string) (Limits, error) {
	out := Limits{}
	for k, v := range base {
		out[k] = v
	}
	for _, f := range strings.Split(spec, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		name, rates, ok := strings.Cut(f, "=")
		name = strings.TrimSpace(name)
		if !ok || !slices.Contains(limitNames, name) {
			return nil, fmt.Errorf("limit %q: want NAME=RATES with NAME one of %s", f, strings.Join(limitNames, ", "))
		}
		rs, err := ParseRates(rates)
		if err != nil {
			return nil, fmt.Errorf("limit %s: %w", name, err)
		}
		out[name] = rs
	}
	return out, nil
}

// ParseRates parses "off" (or "") as no rates, else COUNT/PERIOD[+...]
// ("3/10m+5/1h").
func ParseRates(s string) ([]Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "off" {
		return []Rate{}, nil
	}
	var out []Rate
	for _, p := range strings.Split(s, "+") {
		c, d, ok := strings.Cut(strings.TrimSpace(p), "/")
		n, err1 := strconv.Atoi(c)
		per, err2 := time.ParseDuration(d)
		if !ok || err1 != nil || err2 != nil || n < 1 || per < time.Second {
			return nil, fmt.Errorf("rate %q: want COUNT/PERIOD such as 3/10m (count ≥ 1, period ≥ 1s)", p)
		}
		out = append(out, Rate{n, per})
	}
	return out, nil
}

func shortDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

// endUserKey is the context key of the request's end-user context.
type endUserKey struct{}

// EndUser is what the client says about its end user (API.md D14): the
// end-user IP and session feed the IP and session limits; CaptchaToken is
// the bot-check token of profiles that require one; Retry is set when the
// SDK marks the request as a retry (X-Stainless-Retry-Count ≥ 1, D13).
type EndUser struct {
	IP           string
	Session      string
	CaptchaToken string
	Retry        bool
}

// WithEndUser returns ctx carrying e for the trigger and check calls.
func WithEndUser(ctx context.Context, e EndUser) context.Context {
	return context.WithValue(ctx, endUserKey{}, e)
}

func endUserOf(ctx context.Context) EndUser {
	e, _ := ctx.Value(endUserKey{}).(EndUser)
	return e
}

// GuardObserver is an optional capability of an Observer: refusals by
// reason code (V0001, V0003, ...), and test-mode traffic.
type GuardObserver interface {
	Refused(code string)
}

// Profile channel keys that tune the guards for one profile and channel
// (stored and echoed like any unknown key, API.md D27).
const (
	keyRateLimits      = "rate_limits"      // {"phone": "3/10m+5/1h", "ip": "off", ...}
	keyNumberTypes     = "number_types"     // {"allow": [...]} or {"deny": [...]}
	keyCaptchaRequired = "captcha_required" // true
	keyTestNumbers     = "test_numbers"     // {"+447400000001": "12345"}
)

// triggerGuard is what the guards learned about a trigger that passed.
type triggerGuard struct {
	decision fraud.Decision
	checked  bool // the fraud guard ran: Sent must follow a commit
	spend    *fraud.Money
}

// classifyPhone validates a trigger's phone (D2) with the libphonenumber
// work the fraud guard needs, done once.
func classifyPhone(phone string) (fraud.Classification, error) {
	if err := CheckPhoneFormat(phone); err != nil {
		return fraud.Classification{}, err
	}
	c, err := fraud.Classify(phone)
	if err != nil || c.Type == fraud.Unknown {
		return fraud.Classification{}, &verifyd.Error{Code: verifyd.EPHONEINVALID, Message: "The phone number is not valid for its country."}
	}
	return c, nil
}

// checkTrigger runs the guards of a trigger, cheapest first and recording
// nothing until the last two steps: destination allowlist, number type,
// prefix blocks, daily spend (the fraud guard), then the rate limits (the
// first step that records: a request refused before costs no token, D6),
// then the CAPTCHA (a network call; a failed bot check has used its
// tokens). The phone was classified once by the caller.
func (s *Service) checkTrigger(ctx context.Context, acct *verifyd.Account, p *verifyd.Profile, ch verifyd.Channel, phone string, c fraud.Classification) (triggerGuard, error) {
	g := s.opts.Guards
	var tg triggerGuard
	if g == nil {
		return tg, nil
	}
	m := p.Channels[ch]
	if g.Fraud != nil {
		req := fraud.NewRequest(p, ch, phone)
		req.Number, req.Region, req.Type = c.Number, c.Region, c.Type
		if req.Destinations == nil {
			req.Destinations = s.opts.DefaultDestinations // one operator default (D24)
		}
		if pol, err := profilePolicy(ch, m[keyNumberTypes]); err != nil {
			s.log.Warn("profile number_types ignored", "profile_id", p.ID, "error", err)
		} else {
			req.Policy = pol
		}
		d, err := g.Fraud.Check(ctx, req)
		if err != nil {
			return tg, s.refusal(ctx, err, "/phone_number")
		}
		tg.decision, tg.checked, tg.spend = d, true, req.SpendLimit
	}
	if g.Limiter != nil {
		limits := s.triggerLimits(acct, p, ch, phone, tg.decision.Prefix, endUserOf(ctx))
		dec, err := g.Limiter.Allow(ctx, limits)
		if err != nil {
			return tg, s.refusal(ctx, err, "")
		}
		if err := dec.Err(); err != nil {
			return tg, s.refusal(ctx, err, "")
		}
	}
	if b, _ := m[keyCaptchaRequired].(bool); b {
		if g.Captcha == nil {
			return tg, errors.New("service: profile requires a CAPTCHA but no verifier is configured (--captcha-secret)")
		}
		eu := endUserOf(ctx)
		if err := g.Captcha.Verify(ctx, eu.CaptchaToken, eu.IP); err != nil {
			if verifyd.ErrorCode(err) == verifyd.EFORBIDDEN {
				err = &verifyd.Error{Code: verifyd.ECAPTCHA, Message: verifyd.ErrorMessage(err) +
					" Pass the token in the Verifyd-Captcha-Token header."}
			}
			return tg, s.refusal(ctx, err, "")
		}
	}
	return tg, nil
}

// refusal counts a guard's refusal by code and returns it; a guard that
// could not decide (storage or Redis down) is logged and answered 503: a
// verification that cannot be checked is not sent (fail closed).
func (s *Service) refusal(ctx context.Context, err error, pointer string) error {
	var e *verifyd.Error
	if !errors.As(err, &e) {
		s.log.LogAttrs(ctx, slog.LevelError, "guard unavailable", slog.String("error", err.Error()))
		s.observeRefusal(verifyd.EUNAVAILABLE)
		return verifyd.ErrUnavailable
	}
	s.observeRefusal(e.Code)
	if pointer != "" && e.Pointer == "" && (e.Code == verifyd.EDESTINATION || e.Code == verifyd.ENUMBERTYPE ||
		e.Code == verifyd.EPREFIXBLOCK || e.Code == verifyd.EPHONEINVALID) {
		return e.At(pointer)
	}
	return err
}

func (s *Service) observeRefusal(code string) {
	if o, ok := s.opts.Observer.(GuardObserver); ok {
		o.Refused(code)
	}
}

// triggerLimits builds the limits of one trigger: the operator's, replaced
// name by name by the profile channel's "rate_limits". Keys are scoped by
// account (profile: by profile).
func (s *Service) triggerLimits(acct *verifyd.Account, p *verifyd.Profile, ch verifyd.Channel, phone, prefix string, eu EndUser) []verifyd.Limit {
	base := s.opts.Guards.limits()
	over, _ := p.Channels[ch][keyRateLimits].(map[string]any)
	out := make([]verifyd.Limit, 0, 6)
	add := func(name, key string) {
		if key == "" {
			return
		}
		rates := base[name]
		if v, ok := over[name]; ok {
			if str, ok := v.(string); ok {
				if rs, err := ParseRates(str); err == nil {
					rates = rs
				} else {
					s.log.Warn("profile rate_limits entry ignored", "profile_id", p.ID, "name", name, "error", err)
				}
			}
		}
		for _, r := range rates {
			out = append(out, verifyd.Limit{Name: name, Key: key, Count: r.Count, Period: r.Period})
		}
	}
	add(LimitPhone, acct.ID+":"+phone)
	if eu.IP != "" {
		add(LimitIP, acct.ID+":"+eu.IP)
	}
	if eu.Session != "" {
		add(LimitSession, acct.ID+":"+eu.Session)
	}
	add(LimitProfile, p.ID)
	if prefix != "" {
		add(LimitPrefix, acct.ID+":"+prefix)
	}
	return out
}

// profilePolicy reads a channel's "number_types" override: {"allow":
// [types]} admits only those types, {"deny": [types]} refuses those (and
// replaces the operator's list for the channel and the common list).
func profilePolicy(ch verifyd.Channel, v any) (*fraud.Policy, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, nil
	}
	list := func(k string) ([]fraud.NumberType, bool) {
		xs, ok := m[k].([]any)
		if !ok {
			return nil, false
		}
		out := []fraud.NumberType{}
		for _, x := range xs {
			if s, ok := x.(string); ok {
				out = append(out, fraud.NumberType(s))
			}
		}
		return out, true
	}
	p := fraud.Policy{Allow: map[verifyd.Channel][]fraud.NumberType{}, Deny: map[verifyd.Channel][]fraud.NumberType{}}
	if a, ok := list("allow"); ok {
		p.Allow[ch] = a
	}
	if d, ok := list("deny"); ok {
		p.Deny[ch] = d
		p.Deny[fraud.AllChannels] = nil
	}
	if len(p.Allow) == 0 && len(p.Deny) == 0 {
		return nil, nil
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// sentTrigger records a committed trigger's send (the prefix statistics
// and the spend of the day, at trigger time: docs/fraud.md). Failures are
// logged: the verification is committed and will be sent.
func (s *Service) sentTrigger(ctx context.Context, tg triggerGuard, v *verifyd.Verification) {
	g := s.opts.Guards
	if g == nil || g.Fraud == nil || !tg.checked {
		return
	}
	err := g.Fraud.Sent(ctx, fraud.Attempt{ProfileID: v.ProfileID, Channel: v.Type, Phone: v.PhoneNumber,
		Prefix: tg.decision.Prefix, Region: tg.decision.Region, SpendLimit: tg.spend})
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "fraud: recording a send failed", slog.String("verification_id", v.ID),
			slog.String("error", err.Error()))
	}
}

// checkLimits runs the check endpoints' limits (D20) before any lookup:
// per account, and per end-user IP when the D14 header is present.
func (s *Service) checkLimits(ctx context.Context, acct *verifyd.Account) error {
	g := s.opts.Guards
	if g == nil || g.Limiter == nil {
		return nil
	}
	limits := make([]verifyd.Limit, 0, 3)
	for _, r := range g.limits()[LimitCheckAccount] {
		limits = append(limits, verifyd.Limit{Name: LimitCheckAccount, Key: acct.ID, Count: r.Count, Period: r.Period})
	}
	if ip := endUserOf(ctx).IP; ip != "" {
		for _, r := range g.limits()[LimitCheckIP] {
			limits = append(limits, verifyd.Limit{Name: LimitCheckIP, Key: acct.ID + ":" + ip, Count: r.Count, Period: r.Period})
		}
	}
	dec, err := g.Limiter.Allow(ctx, limits)
	if err == nil {
		err = dec.Err()
	}
	if err != nil {
		return s.refusal(ctx, err, "")
	}
	return nil
}

// completed feeds an accepted check to the conversion statistics.
func (s *Service) completed(ctx context.Context, v *verifyd.Verification) {
	g := s.opts.Guards
	if g == nil || g.Fraud == nil || v == nil || v.DeliveryStatus == DeliveryTest {
		return
	}
	if err := g.Fraud.Completed(ctx, v.PhoneNumber, v.CreatedAt); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "fraud: recording a completion failed", slog.String("verification_id", v.ID),
			slog.String("error", err.Error()))
	}
}

// Fraud blocks for the operator's admin API.

// FraudBlocks lists the prefix blocks in force (monitor-only ones too).
func (s *Service) FraudBlocks(ctx context.Context) ([]fraud.Block, error) {
	f, err := s.fraudGuard()
	if err != nil {
		return nil, err
	}
	return f.Blocks(ctx)
}

// BlockPrefix adds a manual block on prefix for d.
func (s *Service) BlockPrefix(ctx context.Context, prefix, reason string, d time.Duration) (fraud.Block, error) {
	f, err := s.fraudGuard()
	if err != nil {
		return fraud.Block{}, err
	}
	return f.BlockPrefix(ctx, prefix, reason, d)
}

// LiftBlock ends the block in force on exactly prefix.
func (s *Service) LiftBlock(ctx context.Context, prefix string) (fraud.Block, error) {
	f, err := s.fraudGuard()
	if err != nil {
		return fraud.Block{}, err
	}
	return f.Lift(ctx, prefix)
}

// FraudMonitorStats returns this node's monitor-mode counters since start.
func (s *Service) FraudMonitorStats() (blocks, refusals int64, err error) {
	f, err := s.fraudGuard()
	if err != nil {
		return 0, 0, err
	}
	b, r := f.MonitorStats()
	return b, r, nil
}

func (s *Service) fraudGuard() (*fraud.Guard, error) {
	if s.opts.Guards == nil || s.opts.Guards.Fraud == nil {
		return nil, verifyd.Errorf(verifyd.ENOTFOUND, "The fraud guard is not enabled.")
	}
	return s.opts.Guards.Fraud, nil
}

// SetGuards installs the guards and, when g.DefaultDestinations is not nil,
// the operator default for whitelisted_destinations (D24). Call it before
// the service serves requests (cmd/verifyd builds the guards after opening
// the store).
func (s *Service) SetGuards(g *Guards) {
	s.opts.Guards = g
	if g != nil && g.DefaultDestinations != nil {
		s.opts.DefaultDestinations = g.DefaultDestinations
	}
}

// AdminToken returns the operator's admin token (Guards.AdminToken), ""
// when none is configured.
func (s *Service) AdminToken() string {
	if s.opts.Guards == nil {
		return ""
	}
	return s.opts.Guards.AdminToken
}
