package metrics

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// HTTP are the HTTP gateway listeners' metrics: requests by status code, their duration
// and those in flight, by listener.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight *prometheus.GaugeVec
}

// NewHTTP makes the HTTP gateway metrics and registers them in reg (a Metrics' Registry).
func NewHTTP(reg prometheus.Registerer) (*HTTP, error) {
	h := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_http_requests_total",
			Help: "HTTP gateway requests, by listener and status code."}, []string{"listener", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pyro_dispatch_http_request_duration_seconds",
			Help: "Time from an HTTP gateway request's headers to the end of its response, by listener.", Buckets: LatencyBuckets}, []string{"listener"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pyro_dispatch_http_requests_in_flight",
			Help: "HTTP gateway requests being served, by listener."}, []string{"listener"}),
	}
	for _, c := range []prometheus.Collector{h.requests, h.duration, h.inflight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// Listener returns the metrics of one HTTP listener, resolved once so that recording a
// request allocates nothing (but the first one of each status code).
func (h *HTTP) Listener(name string) *HTTPStats {
	return &HTTPStats{name: name, h: h, duration: h.duration.WithLabelValues(name), inflight: h.inflight.WithLabelValues(name)}
}

// HTTPStats are one HTTP listener's metrics. A nil *HTTPStats records nothing.
type HTTPStats struct {
	name     string
	h        *HTTP
	duration prometheus.Observer
	inflight prometheus.Gauge
	codes    [600]atomic.Pointer[prometheus.Counter] // by status code
}

// Begin counts a request in flight.
func (s *HTTPStats) Begin() {
	if s != nil {
		s.inflight.Inc()
	}
}

// Done records a request that ended with status after d.
func (s *HTTPStats) Done(status int, d time.Duration) {
	if s == nil {
		return
	}
	s.inflight.Dec()
	s.duration.Observe(d.Seconds())
	if status < 0 || status >= len(s.codes) {
		s.h.requests.WithLabelValues(s.name, strconv.Itoa(status)).Inc()
		return
	}
	c := s.codes[status].Load()
	if c == nil {
		counter := s.h.requests.WithLabelValues(s.name, strconv.Itoa(status))
		s.codes[status].CompareAndSwap(nil, &counter)
		c = s.codes[status].Load()
	}
	(*c).Inc()
}
