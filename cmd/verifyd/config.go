package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/verifyd/verifyd/internal/logjson"
)

// config is every setting of the binary. Defaults, then environment, then
// flags (flags win).
type config struct {
	Addr          string
	DB            string
	KeysFile      string
	ConsoleOut    string
	LogLevel      string
	DebugAddr     string
	DBSchema      string
	DBMaxConns    int
	DBWriters     int
	JobLease      time.Duration
	MaxAttempts   int
	Retention     time.Duration
	ShutdownGrace time.Duration
	// ConfigFile is the YAML file of senders and routes (configfile.go);
	// empty: the console sender for every channel.
	ConfigFile string

	// Webhook delivery (D34, D36).
	WebhookAllow       string // comma-separated CIDRs (or "loopback", "private") webhooks may reach besides public addresses
	WebhookAttempts    int
	WebhookBackoff     time.Duration
	WebhookMaxBackoff  time.Duration
	WebhookConcurrency int
	WebhookPerEndpoint int

	// Abuse and fraud controls (fraudconfig.go).
	Fraud fraudConfig
}

func defaultConfig() config {
	return config{Addr: "127.0.0.1:8080", DB: "verifyd.db", LogLevel: "info", MaxAttempts: 5,
		Retention: 30 * 24 * time.Hour, JobLease: 30 * time.Second, DBMaxConns: 16, DBWriters: 1,
		ShutdownGrace: 15 * time.Second, WebhookAttempts: 5, WebhookBackoff: 2 * time.Second,
		WebhookMaxBackoff: 5 * time.Minute, WebhookConcurrency: 128, WebhookPerEndpoint: 16}
}

// flags binds the common flags, with env equivalents as their defaults.
func (c *config) flags(name string, getenv func(string) string, stderr io.Writer) *flag.FlagSet {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", env("VERIFYD_ADDR", c.Addr), "listen address (VERIFYD_ADDR)")
	fs.StringVar(&c.DB, "db", env("VERIFYD_DB", c.DB), "SQLite database path, or a postgres:// URL (VERIFYD_DB)")
	fs.StringVar(&c.DBSchema, "db-schema", env("VERIFYD_DB_SCHEMA", c.DBSchema), "PostgreSQL schema to use, created if missing (VERIFYD_DB_SCHEMA; default: the URL's search_path)")
	maxConns, _ := strconv.Atoi(env("VERIFYD_DB_MAX_CONNS", strconv.Itoa(c.DBMaxConns)))
	fs.IntVar(&c.DBMaxConns, "db-max-conns", maxConns, "PostgreSQL connection pool size (VERIFYD_DB_MAX_CONNS)")
	writers, _ := strconv.Atoi(env("VERIFYD_DB_WRITERS", strconv.Itoa(c.DBWriters)))
	fs.IntVar(&c.DBWriters, "db-writers", writers, "PostgreSQL: goroutines that each run concurrent triggers and checks as one transaction; 0 = every one its own (VERIFYD_DB_WRITERS)")
	durVar(fs, env, &c.JobLease, "job-lease", "VERIFYD_JOB_LEASE", "how long a node holds a delivery job, at least the send timeout + 15 s; a dead node's jobs are taken over after it (VERIFYD_JOB_LEASE)")
	fs.StringVar(&c.KeysFile, "keys", env("VERIFYD_KEYS_FILE", c.KeysFile), "key file; default: beside the database (VERIFYD_KEYS_FILE)")
	fs.StringVar(&c.ConfigFile, "config", env("VERIFYD_CONFIG", c.ConfigFile), "YAML file of senders (SMPP, Twilio, Telnyx, SIP) and routes; default: the console sender (VERIFYD_CONFIG)")
	fs.StringVar(&c.ConsoleOut, "console-out", env("VERIFYD_CONSOLE_OUT", c.ConsoleOut), "console sender output file; default standard output (VERIFYD_CONSOLE_OUT)")
	fs.StringVar(&c.DebugAddr, "debug-addr", env("VERIFYD_DEBUG_ADDR", c.DebugAddr), "if set, serve net/http/pprof on this (loopback) address (VERIFYD_DEBUG_ADDR)")
	fs.StringVar(&c.LogLevel, "log-level", env("VERIFYD_LOG_LEVEL", c.LogLevel), "debug, info, warn or error (VERIFYD_LOG_LEVEL)")
	maxAttempts, _ := strconv.Atoi(env("VERIFYD_MAX_ATTEMPTS", strconv.Itoa(c.MaxAttempts)))
	fs.IntVar(&c.MaxAttempts, "max-attempts", maxAttempts, "checks per verification, 1-10 (VERIFYD_MAX_ATTEMPTS)")
	durVar(fs, env, &c.Retention, "retention", "VERIFYD_RETENTION", "how long finished verifications are kept, e.g. 720h (VERIFYD_RETENTION)")
	fs.StringVar(&c.WebhookAllow, "webhook-allow", env("VERIFYD_WEBHOOK_ALLOW", c.WebhookAllow), "address ranges webhooks may reach although internal: comma-separated CIDRs, or loopback / private (VERIFYD_WEBHOOK_ALLOW; default none)")
	intVar(fs, env, &c.WebhookAttempts, "webhook-attempts", "VERIFYD_WEBHOOK_ATTEMPTS", "webhook attempts per URL before the failover URL (VERIFYD_WEBHOOK_ATTEMPTS)")
	durVar(fs, env, &c.WebhookBackoff, "webhook-backoff", "VERIFYD_WEBHOOK_BACKOFF", "first webhook retry delay, doubling each retry (VERIFYD_WEBHOOK_BACKOFF)")
	durVar(fs, env, &c.WebhookMaxBackoff, "webhook-max-backoff", "VERIFYD_WEBHOOK_MAX_BACKOFF", "longest webhook retry delay (VERIFYD_WEBHOOK_MAX_BACKOFF)")
	intVar(fs, env, &c.WebhookConcurrency, "webhook-concurrency", "VERIFYD_WEBHOOK_CONCURRENCY", "webhook POSTs in flight per node (VERIFYD_WEBHOOK_CONCURRENCY)")
	intVar(fs, env, &c.WebhookPerEndpoint, "webhook-per-endpoint", "VERIFYD_WEBHOOK_PER_ENDPOINT", "webhook POSTs in flight per receiver host (VERIFYD_WEBHOOK_PER_ENDPOINT)")
	c.Fraud.flags(fs, env)
	return fs
}

// intVar binds an int flag whose default comes from env key; an env value
// that is not a number leaves *dst.
func intVar(fs *flag.FlagSet, env func(string, string) string, dst *int, name, key, usage string) {
	v, err := strconv.Atoi(env(key, strconv.Itoa(*dst)))
	if err != nil {
		v = *dst
	}
	fs.IntVar(dst, name, v, usage)
}

// durVar binds a duration flag whose default comes from env key; an env
// value that is not a duration leaves *dst.
func durVar(fs *flag.FlagSet, env func(string, string) string, dst *time.Duration, name, key, usage string) {
	v, err := time.ParseDuration(env(key, dst.String()))
	if err != nil {
		v = *dst
	}
	fs.DurationVar(dst, name, v, usage)
}

// webhookAllow parses --webhook-allow.
func (c *config) webhookAllow() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(c.WebhookAllow, ",") {
		switch f = strings.TrimSpace(f); f {
		case "":
		case "loopback":
			out = append(out, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		case "private":
			out = append(out, netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
				netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7"))
		default:
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("--webhook-allow: %q is not a CIDR, loopback or private", f)
			}
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

func (c *config) validate() error {
	if _, err := c.webhookAllow(); err != nil {
		return err
	}
	if err := c.Fraud.validate(); err != nil {
		return err
	}
	if c.WebhookAttempts < 1 || c.WebhookAttempts > 20 {
		return fmt.Errorf("--webhook-attempts must be 1-20, got %d", c.WebhookAttempts)
	}
	if c.WebhookBackoff <= 0 || c.WebhookMaxBackoff < c.WebhookBackoff {
		return fmt.Errorf("--webhook-backoff must be positive and at most --webhook-max-backoff")
	}
	if c.WebhookConcurrency < 1 || c.WebhookPerEndpoint < 1 {
		return fmt.Errorf("--webhook-concurrency and --webhook-per-endpoint must be at least 1")
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 10 {
		return fmt.Errorf("--max-attempts must be 1-10, got %d", c.MaxAttempts)
	}
	if c.Retention < time.Hour {
		return fmt.Errorf("--retention must be at least 1h, got %v", c.Retention)
	}
	if c.JobLease < time.Second {
		return fmt.Errorf("--job-lease must be at least 1s, got %v", c.JobLease)
	}
	if c.KeysFile == "" && !c.isPostgres() {
		c.KeysFile = c.DB + ".keys" // with PostgreSQL: --keys or the environment (loadKeys)
	}
	return nil
}

func (c *config) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	return slog.New(logjson.New(w, &slog.HandlerOptions{Level: lvl}))
}

func (c *config) isPostgres() bool {
	return strings.HasPrefix(c.DB, "postgres://") || strings.HasPrefix(c.DB, "postgresql://")
}
