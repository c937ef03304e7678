package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
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
	JobLease      time.Duration
	MaxAttempts   int
	Retention     time.Duration
	ShutdownGrace time.Duration
}

func defaultConfig() config {
	return config{Addr: "127.0.0.1:8080", DB: "verifyd.db", LogLevel: "info", MaxAttempts: 5,
		Retention: 30 * 24 * time.Hour, JobLease: 30 * time.Second, DBMaxConns: 16,
		ShutdownGrace: 15 * time.Second}
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
	lease, err := time.ParseDuration(env("VERIFYD_JOB_LEASE", c.JobLease.String()))
	if err != nil {
		lease = c.JobLease
	}
	fs.DurationVar(&c.JobLease, "job-lease", lease, "how long a node holds a delivery job; a dead node's jobs are taken over after it (VERIFYD_JOB_LEASE)")
	fs.StringVar(&c.KeysFile, "keys", env("VERIFYD_KEYS_FILE", c.KeysFile), "key file; default: beside the database (VERIFYD_KEYS_FILE)")
	fs.StringVar(&c.ConsoleOut, "console-out", env("VERIFYD_CONSOLE_OUT", c.ConsoleOut), "console sender output file; default standard output (VERIFYD_CONSOLE_OUT)")
	fs.StringVar(&c.DebugAddr, "debug-addr", env("VERIFYD_DEBUG_ADDR", c.DebugAddr), "if set, serve net/http/pprof on this (loopback) address (VERIFYD_DEBUG_ADDR)")
	fs.StringVar(&c.LogLevel, "log-level", env("VERIFYD_LOG_LEVEL", c.LogLevel), "debug, info, warn or error (VERIFYD_LOG_LEVEL)")
	maxAttempts, _ := strconv.Atoi(env("VERIFYD_MAX_ATTEMPTS", strconv.Itoa(c.MaxAttempts)))
	fs.IntVar(&c.MaxAttempts, "max-attempts", maxAttempts, "checks per verification, 1-10 (VERIFYD_MAX_ATTEMPTS)")
	retention, err := time.ParseDuration(env("VERIFYD_RETENTION", c.Retention.String()))
	if err != nil {
		retention = c.Retention
	}
	fs.DurationVar(&c.Retention, "retention", retention, "how long finished verifications are kept, e.g. 720h (VERIFYD_RETENTION)")
	return fs
}

func (c *config) validate() error {
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
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl}))
}

func (c *config) isPostgres() bool {
	return strings.HasPrefix(c.DB, "postgres://") || strings.HasPrefix(c.DB, "postgresql://")
}
