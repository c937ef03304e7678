package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/api"
	"github.com/verifyd/verifyd/internal/logbuf"
	"github.com/verifyd/verifyd/service"
	"github.com/verifyd/verifyd/webhook"
)

// app is an opened database with the core on top: what every command needs.
type app struct {
	cfg   config
	store verifyd.Store
	svc   *service.Service
	log   *slog.Logger
}

func openApp(ctx context.Context, cfg config, getenv func(string) string, stderr io.Writer, obs service.Observer, mods ...func(*service.Options)) (*app, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.logger(stderr)
	keys, err := loadKeys(cfg.KeysFile, getenv)
	if err != nil {
		return nil, err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	opts := service.Options{MaxAttempts: cfg.MaxAttempts, Retention: cfg.Retention, Logger: log, Observer: obs}
	for _, mod := range mods {
		mod(&opts)
	}
	svc := service.New(store, keys, opts)
	return &app{cfg: cfg, store: store, svc: svc, log: log}, nil
}

// accountID returns id, or the default account's ID when id is "".
func (a *app) accountID(ctx context.Context, id string) (string, error) {
	if id != "" {
		return id, nil
	}
	acct, _, err := a.defaultAccount(ctx)
	if err != nil {
		return "", err
	}
	return acct.ID, nil
}

// defaultAccount returns the first account, creating "default" if there is
// none; created reports whether it did.
func (a *app) defaultAccount(ctx context.Context) (acct *verifyd.Account, created bool, err error) {
	accts, err := a.svc.Accounts(ctx)
	if err != nil {
		return nil, false, err
	}
	if len(accts) > 0 {
		return accts[0], false, nil
	}
	acct, err = a.svc.CreateAccount(ctx, "default")
	return acct, true, err
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	if err := cfg.flags("serve", getenv, stderr).Parse(args); err != nil {
		return err
	}
	// The server's log (one access record per request) leaves through a
	// buffer that one goroutine writes out: no write system call per request.
	// Deferred first, so it runs last: everything logged on the way out is
	// written before serve returns.
	logs := logbuf.New(stderr)
	defer logs.Close()
	stderr = logs
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := api.NewMetrics(reg)
	var fc *fileConfig // senders and routes; nil: the console sender
	if cfg.ConfigFile != "" {
		var err error
		if fc, err = loadConfigFile(cfg.ConfigFile, getenv); err != nil {
			return err
		}
	}
	a, err := openApp(ctx, cfg, getenv, stderr, metrics, fc.serviceOptions)
	if err != nil {
		return err
	}
	defer a.store.Close()

	// Abuse and fraud controls: in process, or shared through --redis.
	guards, closeGuards, err := a.cfg.Fraud.build(a.log, metrics)
	if err != nil {
		return err
	}
	defer closeGuards()
	a.svc.SetGuards(guards)

	// First start: a default account and its first key, shown once.
	acct, created, err := a.defaultAccount(ctx)
	if err != nil {
		return err
	}
	if created {
		secret, _, err := a.svc.CreateAPIKey(ctx, acct.ID, "default")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Created account %q (%s). Its API key, shown once — keep it:\n%s\n", acct.Name, acct.ID, secret)
	}

	// Senders: closed after the worker stopped (defers run after it).
	senders, err := openDelivery(fc, a.cfg, a.svc, reg, a.log, stdout)
	if err != nil {
		return err
	}
	defer senders.close()
	if err := senders.start(context.WithoutCancel(ctx)); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", a.cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           senders.handler(api.New(a.svc, api.Options{Logger: a.log, Registerer: reg, Gatherer: reg, Metrics: metrics})),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	worker := a.svc.NewWorker(senders.sender, senders.workerOptions(a.cfg.JobLease))
	worker.Start(context.WithoutCancel(ctx))

	allow, _ := a.cfg.webhookAllow() // validated by openApp
	hooks := webhook.New(a.store, a.svc, webhook.NewClient(webhook.ClientOptions{Policy: webhook.Policy{Allow: allow}}),
		webhook.Options{AttemptsPerURL: a.cfg.WebhookAttempts, Backoff: a.cfg.WebhookBackoff,
			MaxBackoff: a.cfg.WebhookMaxBackoff, Concurrency: a.cfg.WebhookConcurrency,
			PerEndpoint: a.cfg.WebhookPerEndpoint, Logger: a.log, Metrics: webhook.NewMetrics(reg)})
	hooks.Start(context.WithoutCancel(ctx))

	if a.cfg.DebugAddr != "" {
		dbg := &http.Server{Addr: a.cfg.DebugAddr, Handler: debugMux(), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = dbg.ListenAndServe() }()
		defer dbg.Close()
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("listening", "addr", ln.Addr().String(), "sender", senders.describe())

	select {
	case err = <-errc:
	case <-ctx.Done():
		a.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownGrace)
		err = srv.Shutdown(sctx) // in-flight requests finish
		cancel()
	}
	worker.Stop() // in-flight sends finish; unclaimed jobs stay queued
	hooks.Stop()  // in-flight POSTs are cancelled; their deliveries are due again
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	a.log.Info("stopped")
	return err
}

func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg := defaultConfig()
	if err := cfg.flags("migrate", getenv, stderr).Parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	store, err := openStore(ctx, cfg) // applies migrations
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "migrations applied")
	return nil
}

// debugMux serves the profiler, for finding where time goes under load.
func debugMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}
