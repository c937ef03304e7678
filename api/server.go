// Package api is verifyd's HTTP layer: the Telnyx Verify API v2 routes
// (API.md), the error envelope, authentication, health and metrics, on the
// standard library mux. It sees the core service only, never a store.
package api

import (
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verifyd/verifyd/service"
)

// Options configure a Server. Zero values take defaults.
type Options struct {
	// Logger receives the access log and internal errors; nil discards.
	Logger *slog.Logger
	// Registerer receives the queue-depth gauge (and the metrics, when
	// Metrics is nil); Gatherer is served on /metrics. Both nil: a private
	// registry serves as both. Gatherer nil and Registerer a
	// *prometheus.Registry: that registry is gathered.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Metrics are the counters the server records into; nil: NewMetrics
	// on Registerer. Pass the same value as the service's Observer.
	Metrics *Metrics
	// AdminToken authenticates the operator's admin routes (fraud blocks);
	// empty: those routes answer 404.
	AdminToken string
}

// Server is the HTTP API. It implements http.Handler.
type Server struct {
	svc     *service.Service
	log     *slog.Logger
	metrics *Metrics
	gather  prometheus.Gatherer
	mux     *http.ServeMux
	// adminToken is Options.AdminToken.
	adminToken string

	ridPrefix string
	ridSeq    atomic.Uint64
}

// New returns the HTTP API over svc.
func New(svc *service.Service, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil && opts.Gatherer == nil {
		reg := prometheus.NewRegistry()
		opts.Registerer, opts.Gatherer = reg, reg
	}
	if opts.Gatherer == nil {
		if g, ok := opts.Registerer.(prometheus.Gatherer); ok {
			opts.Gatherer = g
		}
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(opts.Registerer)
	}
	if opts.Registerer != nil {
		registerQueueDepth(opts.Registerer, svc)
	}
	s := &Server{
		svc: svc, log: opts.Logger, metrics: opts.Metrics, gather: opts.Gatherer,
		mux: http.NewServeMux(), ridPrefix: newRequestIDPrefix(), adminToken: opts.AdminToken,
	}
	s.routes()
	return s
}
