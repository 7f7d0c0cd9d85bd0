// Package metrics holds a dispatcher's Prometheus metrics: their names, labels and
// buckets, per-member call statistics the data path updates without allocating, and a
// per-second history of the totals for dashboards. It opens no socket: the admin
// listener serves Registry.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Outcome is how a call ended, the outcome label of pyro_dispatch_calls_total.
type Outcome uint8

// The outcomes of a call.
const (
	OK          Outcome = iota // a reply
	Exception                  // a reply carrying an exception
	Oneway                     // sent; no reply expected
	Refused                    // answered by the dispatcher before any daemon saw it (no backend, policy, limit)
	Denied                     // refused by a route's deny
	BackendLost                // the backend failed after the call may have reached it: client closed
	Timeout                    // no reply within timeouts.call: client closed
	ClientGone                 // the client left before its reply
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{"ok", "exception", "oneway", "refused", "denied", "backend_lost", "timeout", "client_gone"}

func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// Failed reports whether the outcome counts as an error (for error ratios).
func (o Outcome) Failed() bool { return o >= Refused && o != ClientGone }

// None is the group and member label of a call refused before any member was chosen.
const None = "none"

// Other is the object and method label of calls whose object metrics.objects does not name.
const Other = "other"

// LatencyBuckets are the call duration histogram's buckets, in seconds: a forwarding
// proxy's calls take from tens of microseconds to seconds.
var LatencyBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5, 5, 10, 30}

// Metrics are one dispatcher's metrics. Safe for concurrent use.
type Metrics struct {
	// Registry holds every metric, the Go runtime's and the process's included.
	Registry *prometheus.Registry

	calls         *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	reqBytes      *prometheus.CounterVec
	repBytes      *prometheus.CounterVec
	objectCalls   *prometheus.CounterVec
	accepted      *prometheus.CounterVec
	refusedConns  *prometheus.CounterVec
	reloads       *prometheus.CounterVec
	handshakes    *prometheus.CounterVec
	memberActions *prometheus.CounterVec
	panics        *prometheus.CounterVec

	stats sync.Map // statsKey -> *CallStats
	hist  *History
	errs  *ErrorLog
	slow  slowCalls
}

type statsKey struct{ listener, group, member string }

// New makes the metrics and registers them, with the Go and process collectors.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	member := []string{"listener", "group", "member"}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_calls_total",
		Help: "Calls (INVOKE and PING) by listener, backend group and member, and how they ended."}, append(member, "outcome"))
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pyro_dispatch_call_duration_seconds",
		Help: "Time from a request's first byte to the end of its reply, by listener, group and member.", Buckets: LatencyBuckets}, member)
	m.reqBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_request_bytes_total",
		Help: "Request payload bytes forwarded, by listener, group and member."}, member)
	m.repBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_reply_bytes_total",
		Help: "Reply payload bytes relayed, by listener, group and member."}, member)
	m.objectCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_object_calls_total",
		Help: `Calls by listener, object and method, for the objects metrics.objects names ("other" for the rest).`}, []string{"listener", "object", "method", "outcome"})
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_client_connections_accepted_total",
		Help: "Client connections accepted, by listener."}, []string{"listener"})
	m.refusedConns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_client_connections_refused_total",
		Help: "Client connections refused, by listener and cause (limit, rate, tls, hmac, policy, denied, backend)."}, []string{"listener", "cause"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_reloads_total",
		Help: "Configuration reloads, by result (ok, failed)."}, []string{"result"})
	m.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_handshake_cache_total",
		Help: "Pooled-mode CONNECTs answered from the handshake cache (hit) or by a backend (miss), by listener."}, []string{"listener", "result"})
	m.memberActions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_member_actions_total",
		Help: "Members drained and enabled through the admin API, by group, member and action."}, []string{"group", "member", "action"})
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pyro_dispatch_panics_total",
		Help: "Panics recovered while serving a client connection (that connection closed) or a shared upstream connection (its calls failed as on the daemon's loss), by listener."}, []string{"listener"})
	m.Registry.MustRegister(m.calls, m.duration, m.reqBytes, m.repBytes, m.objectCalls, m.accepted, m.refusedConns,
		m.reloads, m.handshakes, m.memberActions, m.panics,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.hist = newHistory(m)
	m.errs = NewErrorLog()
	return m
}

// CallStats are the call metrics of one member of one group as seen from one listener:
// the counters and histogram resolved once, so that recording a call allocates nothing.
type CallStats struct {
	listener string
	calls    [NumOutcomes]prometheus.Counter
	duration prometheus.Observer
	req, rep prometheus.Counter
	m        *Metrics
}

// Calls returns the statistics of listener's calls to member of group (None for both
// when none was chosen). Callers keep what it returns: the lookup is a map access.
func (m *Metrics) Calls(listener, group, member string) *CallStats {
	k := statsKey{listener, group, member}
	if cs, ok := m.stats.Load(k); ok {
		return cs.(*CallStats)
	}
	cs := &CallStats{
		listener: listener,
		duration: m.duration.WithLabelValues(listener, group, member),
		req:      m.reqBytes.WithLabelValues(listener, group, member),
		rep:      m.repBytes.WithLabelValues(listener, group, member),
		m:        m,
	}
	for o := range NumOutcomes {
		cs.calls[o] = m.calls.WithLabelValues(listener, group, member, o.String())
	}
	actual, _ := m.stats.LoadOrStore(k, cs)
	return actual.(*CallStats)
}

// Done records one call: its outcome, duration and payload bytes each way.
func (cs *CallStats) Done(o Outcome, d time.Duration, reqBytes, repBytes int) {
	cs.calls[o].Inc()
	if o != Refused && o != Denied {
		cs.duration.Observe(d.Seconds())
	}
	if reqBytes > 0 {
		cs.req.Add(float64(reqBytes))
	}
	if repBytes > 0 {
		cs.rep.Add(float64(repBytes))
	}
	cs.m.hist.record(o, d)
}

// Forget drops the series of a member that left a group (a reload), so that labels
// stay bounded.
func (m *Metrics) Forget(group, member string) {
	labels := prometheus.Labels{"group": group, "member": member}
	m.calls.DeletePartialMatch(labels)
	m.duration.DeletePartialMatch(labels)
	m.reqBytes.DeletePartialMatch(labels)
	m.repBytes.DeletePartialMatch(labels)
	m.stats.Range(func(k, _ any) bool {
		if sk := k.(statsKey); sk.group == group && sk.member == member {
			m.stats.Delete(k)
		}
		return true
	})
}

// ObjectCall counts a call by object and method (Other for both when the object is not
// one metrics.objects names).
func (m *Metrics) ObjectCall(listener, object, method string, o Outcome) {
	m.objectCalls.WithLabelValues(listener, object, method, o.String()).Inc()
}

// Accepted counts a client connection a listener accepted.
func (m *Metrics) Accepted(listener string) { m.accepted.WithLabelValues(listener).Inc() }

// RefusedConnection counts a client connection refused for cause.
func (m *Metrics) RefusedConnection(listener, cause string) {
	m.refusedConns.WithLabelValues(listener, cause).Inc()
}

// Reloaded counts a reload.
func (m *Metrics) Reloaded(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("failed").Inc()
	}
}

// Handshake counts a pooled CONNECT answered from the cache (hit) or not.
func (m *Metrics) Handshake(listener string, hit bool) {
	if hit {
		m.handshakes.WithLabelValues(listener, "hit").Inc()
	} else {
		m.handshakes.WithLabelValues(listener, "miss").Inc()
	}
}

// MemberAction counts an admin drain or enable.
func (m *Metrics) MemberAction(group, member, action string) {
	m.memberActions.WithLabelValues(group, member, action).Inc()
}

// Panicked counts a panic recovered while serving one of listener's clients.
func (m *Metrics) Panicked(listener string) { m.panics.WithLabelValues(listener).Inc() }

// History returns the per-second history of the totals.
func (m *Metrics) History() *History { return m.hist }

// Errors returns the log of recent warnings and errors (tee it into the logger with
// zap.WrapCore).
func (m *Metrics) Errors() *ErrorLog { return m.errs }
