package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/fraud"
	"github.com/verifyd/verifyd/ratelimit"
	"github.com/verifyd/verifyd/redis"
	"github.com/verifyd/verifyd/service"
)

// fraudConfig is the operator's abuse and fraud configuration (README
// "Abuse and fraud controls"). Per-profile settings live in the profiles'
// channel objects (rate_limits, number_types, captcha_required,
// test_numbers).
type fraudConfig struct {
	Redis         string // redis:// URL: limiter and fraud state shared by the cluster; empty: in process
	RedisPrefix   string // key prefix in Redis; nodes of one cluster share it
	AdminToken    string
	Destinations  string // operator default for whitelisted_destinations, comma-separated; empty: deny all (D24)
	Limits        string // overrides of service.DefaultLimits: "phone=3/10m+5/1h,ip=off"
	NumberTypes   string // global number-type deny lists: "*=premium_rate+pager,sms=fixed_line"
	Monitor       bool
	PrefixDigits  int
	Safe          string // numbers and prefixes never blocked, comma-separated
	Prices        string // "default=0.05,GB/sms=0.04,NG=0.25"
	CaptchaURL    string // siteverify URL, or turnstile / hcaptcha
	CaptchaSecret string
}

func (f *fraudConfig) flags(fs *flag.FlagSet, env func(string, string) string) {
	f.PrefixDigits = fraud.DefaultPrefixConfig().Digits
	fs.StringVar(&f.Redis, "redis", env("VERIFYD_REDIS_URL", f.Redis), "Redis URL for rate limits and fraud state shared by a cluster; default: in process (VERIFYD_REDIS_URL)")
	fs.StringVar(&f.RedisPrefix, "redis-prefix", env("VERIFYD_REDIS_PREFIX", "verifyd:"), "prefix of every Redis key; clusters sharing one Redis need their own (VERIFYD_REDIS_PREFIX)")
	fs.StringVar(&f.AdminToken, "admin-token", env("VERIFYD_ADMIN_TOKEN", f.AdminToken), "bearer token of the operator admin API (/v2/admin/fraud/...); default: no admin API (VERIFYD_ADMIN_TOKEN)")
	fs.StringVar(&f.Destinations, "default-destinations", env("VERIFYD_DEFAULT_DESTINATIONS", f.Destinations), "operator default whitelisted_destinations, comma-separated country codes or *; default none = deny all (VERIFYD_DEFAULT_DESTINATIONS)")
	fs.StringVar(&f.Limits, "limits", env("VERIFYD_LIMITS", f.Limits), "rate limits replacing the defaults by name, e.g. phone=3/10m+5/1h,ip=10/1h,session=off (VERIFYD_LIMITS)")
	fs.StringVar(&f.NumberTypes, "number-types", env("VERIFYD_NUMBER_TYPES", f.NumberTypes), "number types refused per channel, replacing the defaults for the channels named, e.g. *=premium_rate+shared_cost,sms=fixed_line (VERIFYD_NUMBER_TYPES)")
	monitor, _ := strconv.ParseBool(env("VERIFYD_FRAUD_MONITOR", "false"))
	fs.BoolVar(&f.Monitor, "fraud-monitor", monitor, "conversion guard in monitor mode: record would-be blocks, refuse nothing (VERIFYD_FRAUD_MONITOR)")
	intVar(fs, env, &f.PrefixDigits, "fraud-prefix-digits", "VERIFYD_FRAUD_PREFIX_DIGITS", "national digits after the country code that make a fraud prefix (VERIFYD_FRAUD_PREFIX_DIGITS)")
	fs.StringVar(&f.Safe, "fraud-safe", env("VERIFYD_FRAUD_SAFE", f.Safe), "numbers and prefixes the fraud guard never blocks, comma-separated E.164 (VERIFYD_FRAUD_SAFE)")
	fs.StringVar(&f.Prices, "prices", env("VERIFYD_PRICES", f.Prices), "price table for the daily spend cap, e.g. default=0.05,GB/sms=0.04,NG=0.25 (VERIFYD_PRICES)")
	fs.StringVar(&f.CaptchaURL, "captcha-url", env("VERIFYD_CAPTCHA_URL", "turnstile"), "CAPTCHA siteverify URL, or turnstile / hcaptcha (VERIFYD_CAPTCHA_URL)")
	fs.StringVar(&f.CaptchaSecret, "captcha-secret", env("VERIFYD_CAPTCHA_SECRET", f.CaptchaSecret), "CAPTCHA secret key; needed by profiles with captcha_required (VERIFYD_CAPTCHA_SECRET)")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// fraudConfig builds the fraud.Config (without its store and callbacks).
func (f *fraudConfig) fraudConfig() (fraud.Config, error) {
	cfg := fraud.DefaultConfig()
	cfg.Destinations = splitList(f.Destinations)
	cfg.Prefix.Monitor = f.Monitor
	cfg.Prefix.Digits = f.PrefixDigits
	cfg.Prefix.SafePrefixes = splitList(f.Safe)
	for _, kv := range splitList(f.Prices) {
		k, v, ok := strings.Cut(kv, "=")
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if !ok || err != nil || x < 0 {
			return cfg, fmt.Errorf("--prices: %q is not KEY=AMOUNT", kv)
		}
		if k = strings.TrimSpace(k); k == "default" {
			cfg.Prices.Default = fraud.Amount(x)
			continue
		}
		if cfg.Prices.Prices == nil {
			cfg.Prices.Prices = map[string]fraud.Money{}
		}
		cfg.Prices.Prices[k] = fraud.Amount(x)
	}
	for _, kv := range splitList(f.NumberTypes) {
		ch, types, ok := strings.Cut(kv, "=")
		if !ok {
			return cfg, fmt.Errorf("--number-types: %q is not CHANNEL=TYPE+TYPE", kv)
		}
		list := []fraud.NumberType{}
		for _, t := range strings.Split(types, "+") {
			if t = strings.TrimSpace(t); t != "" {
				list = append(list, fraud.NumberType(t))
			}
		}
		cfg.Policy.Deny[verifyd.Channel(strings.TrimSpace(ch))] = list
	}
	if err := cfg.Prefix.Validate(); err != nil {
		return cfg, err
	}
	if err := cfg.Policy.Validate(); err != nil {
		return cfg, fmt.Errorf("--number-types: %w", err)
	}
	return cfg, nil
}

func (f *fraudConfig) validate() error {
	if _, err := f.fraudConfig(); err != nil {
		return err
	}
	if _, err := service.ParseLimits(service.DefaultLimits(), f.Limits); err != nil {
		return fmt.Errorf("--limits: %w", err)
	}
	return nil
}

// guardMetrics is what the API metrics record of the guards.
type guardMetrics interface {
	FraudBlock(fraud.Block)
	SpendAlert(fraud.SpendAlert)
}

// build makes the guards: Redis-backed when --redis is set, else in
// process. close releases the Redis clients.
func (f *fraudConfig) build(log *slog.Logger, m guardMetrics) (g *service.Guards, close func(), err error) {
	cfg, err := f.fraudConfig()
	if err != nil {
		return nil, nil, err
	}
	limits, err := service.ParseLimits(service.DefaultLimits(), f.Limits)
	if err != nil {
		return nil, nil, err
	}
	cfg.OnBlock = func(b fraud.Block) {
		log.Warn("fraud block", "prefix", b.Prefix, "until", b.Until, "level", b.Level, "monitor_only", b.MonitorOnly, "reason", b.Reason)
		if m != nil {
			m.FraudBlock(b)
		}
	}
	cfg.OnSpend = func(a fraud.SpendAlert) {
		log.Warn("spend alert", "profile_id", a.ProfileID, "percent", a.Percent, "spent", a.Spent.String(), "limit", a.Limit.String())
		if m != nil {
			m.SpendAlert(a)
		}
	}
	g = &service.Guards{Limits: limits, AdminToken: f.AdminToken, DefaultDestinations: cfg.Destinations}
	if g.DefaultDestinations == nil {
		g.DefaultDestinations = []string{}
	}
	close = func() {}
	var store interface {
		fraud.Store
		fraud.Ledger
	}
	if f.Redis == "" {
		mem := fraud.NewMemStore()
		store, g.Limiter = mem, ratelimit.New(ratelimit.Options{})
	} else {
		rs, err := redis.OpenFraud(f.Redis, redis.FraudOptions{Prefix: f.RedisPrefix + "fraud:"})
		if err != nil {
			return nil, nil, err
		}
		rl, err := redis.New(f.Redis, redis.Options{Prefix: f.RedisPrefix + "rl:", OnError: func(err error) { log.Error("redis limiter", "error", err) }})
		if err != nil {
			rs.Close()
			return nil, nil, err
		}
		store, g.Limiter = rs, rl
		close = func() { _ = errors.Join(rs.Close(), rl.Close()) }
	}
	if g.Fraud, err = fraud.NewGuard(cfg, store, store); err != nil {
		close()
		return nil, nil, err
	}
	if f.CaptchaSecret != "" {
		url := f.CaptchaURL
		switch url {
		case "", "turnstile":
			url = fraud.TurnstileURL
		case "hcaptcha":
			url = fraud.HCaptchaURL
		}
		g.Captcha = fraud.NewCaptchaVerifier(url, f.CaptchaSecret)
	}
	return g, close, nil
}
