package webhook

import (
	"github.com/verifyd/verifyd/internal/metrics"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the deliverer's Prometheus metrics.
type Metrics struct {
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
	lag      prometheus.Histogram
	inflight prometheus.Gauge
	queued   prometheus.Gauge
	deferred prometheus.Counter
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered; an already registered set is reused).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "verifyd_webhook_attempts_total",
			Help: "Webhook delivery attempts by outcome: delivered, retry (failed, will retry), failed (gave up).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "verifyd_webhook_attempt_duration_seconds",
			Help:    "Duration of one webhook POST, answered or not.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "verifyd_webhook_event_lag_seconds",
			Help:    "From an event's occurred_at to its successful delivery.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verifyd_webhook_inflight",
			Help: "Webhook POSTs in flight on this node (bounded by the deliverer's concurrency).",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "verifyd_webhook_queued",
			Help: "Claimed deliveries waiting on this node for a slot of their receiver (at most 4x the per-endpoint limit per receiver).",
		}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "verifyd_webhook_deferred_total",
			Help: "Deliveries put back for later because their receiver already had its limit of requests in flight (its queue is full).",
		}),
	}
	if reg != nil {
		m.attempts = metrics.Register(reg, m.attempts)
		m.latency = metrics.Register(reg, m.latency)
		m.lag = metrics.Register(reg, m.lag)
		m.inflight = metrics.Register(reg, m.inflight)
		m.queued = metrics.Register(reg, m.queued)
		m.deferred = metrics.Register(reg, m.deferred)
	}
	return m
}

func (m *Metrics) outcome(o string) { m.attempts.WithLabelValues(o).Inc() }
