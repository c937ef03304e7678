package api

import (
	"context"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/verifyd/verifyd"
	"github.com/verifyd/verifyd/internal/metrics"
	"github.com/verifyd/verifyd/service"
)

// Metrics are verifyd's Prometheus metrics. Count makes it a
// service.Observer, so cmd passes the same value to the service and to the
// API server.
type Metrics struct {
	verifications *prometheus.CounterVec
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	fraud         *fraudMetrics // fraud.go
}

var _ service.Observer = (*Metrics)(nil)

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered). Registering on a registry that already holds them reuses
// the registered collectors.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_verifications_total",
			Help: "Verification events by channel and outcome (triggered, accepted, rejected, or a delivery status).",
		}, []string{"channel", "outcome"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_http_requests_total",
			Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "verifyd_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	m.fraud = newFraudMetrics(reg)
	if reg != nil {
		m.verifications = metrics.Register(reg, m.verifications)
		m.requests = metrics.Register(reg, m.requests)
		m.duration = metrics.Register(reg, m.duration)
	}
	return m
}

// Count counts one verification event (service.Observer).
func (m *Metrics) Count(ch verifyd.Channel, outcome string) {
	m.verifications.WithLabelValues(string(ch), outcome).Inc()
}

func (m *Metrics) observeHTTP(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, statusLabel(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}

// statusLabel avoids an allocation for the common statuses.
func statusLabel(code int) string {
	switch code {
	case 200:
		return "200"
	case 400:
		return "400"
	case 401:
		return "401"
	case 404:
		return "404"
	case 422:
		return "422"
	case 429:
		return "429"
	case 500:
		return "500"
	}
	return strconv.Itoa(code)
}

// registerQueueDepth exports the delivery queue depth, read on scrape with
// a short timeout (NaN when the store does not answer in time).
func registerQueueDepth(reg prometheus.Registerer, svc *service.Service) {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "verifyd_queue_depth",
		Help: "Delivery jobs not yet finished (available or running).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := svc.QueueDepth(ctx)
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	})
	if err := reg.Register(g); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			panic(err)
		}
		// A second server on the same registry: the first one's gauge stays.
	}
}
