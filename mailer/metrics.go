package mailer

import (
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the engine's Prometheus series, on a registry of its own so
// that several engines (tests) never collide.
type metrics struct {
	reg         *prometheus.Registry
	deliveries  *prometheus.CounterVec
	suspensions *prometheus.CounterVec
	queueDepth  *prometheus.GaugeVec
	rate        *prometheus.GaugeVec
	inflight    func() float64
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_mailer_deliveries_total",
			Help: "Delivery outcomes by destination and status (sent, deferred, bounced, failed, suppressed).",
		}, []string{"destination", "status"}),
		suspensions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_mailer_suspensions_total",
			Help: "Times a destination lane was suspended after a slow-down reply or connection failure.",
		}, []string{"destination"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_mailer_queue_depth",
			Help: "Messages waiting in a destination's ready queue.",
		}, []string{"destination"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_mailer_send_rate",
			Help: "Messages accepted per second by a destination over the last ten seconds.",
		}, []string{"destination"}),
	}
	m.reg.MustRegister(m.deliveries, m.suspensions, m.queueDepth, m.rate,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_mailer_inflight",
			Help: "Deliveries leased by this node and held in memory.",
		}, func() float64 {
			if m.inflight == nil {
				return 0
			}
			return m.inflight()
		}))
	return m
}

func (m *metrics) outcome(dest, status string) {
	if dest == "" {
		dest = "none"
	}
	m.deliveries.WithLabelValues(dest, status).Inc()
}

// MetricsHandler serves the engine's metrics in the Prometheus format;
// main mounts it (e.g. at /metrics).
func (e *Engine) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(e.metrics.reg, promhttp.HandlerOpts{})
}

// DestinationStatus is a destination's live state for the dashboard.
type DestinationStatus struct {
	Key            string  // "rule:google", "mx:mx.example.net", "domain:example.org"
	Rule           string  // the domain rule that shapes it
	Pool           string  // IP pool ("default" without one)
	Queued         int     // messages waiting in memory
	Connections    int     // open connection workers
	Rate           float64 // accepted messages per second, last ten seconds
	PerSecond      float64 // the rule's limit (0: unlimited)
	SuspendedUntil time.Time
}

// Destinations returns the current state of every destination, busiest
// first.
func (e *Engine) Destinations() []DestinationStatus {
	e.mu.Lock()
	dests := make([]*destination, 0, len(e.dests))
	for _, d := range e.dests {
		dests = append(dests, d)
	}
	e.mu.Unlock()
	now := time.Now()
	out := make([]DestinationStatus, 0, len(dests))
	for _, d := range dests {
		d.mu.Lock()
		s := DestinationStatus{Key: d.routeKey, Rule: d.rule.Name, Pool: d.poolKey, Queued: d.queued(),
			Connections: d.workers, PerSecond: d.rule.PerSecond, SuspendedUntil: d.suspended}
		d.mu.Unlock()
		for _, l := range d.lanes {
			if until, sus := l.suspendedUntil(now); sus && until.After(s.SuspendedUntil) && len(d.lanes) == 1 {
				s.SuspendedUntil = until
			}
		}
		s.Rate = d.meter.rate(now)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rate > out[j].Rate })
	return out
}
