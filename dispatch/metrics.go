package dispatch

import (
	"context"
	"errors"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// Metrics returns the server's metrics; nil unless an admin listener is configured.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// objectLabels maps a call's object to its label in pyro_dispatch_object_calls_total:
// itself when metrics.objects names it, else metrics.Other.
type objectLabels []func(string) bool

func newObjectLabels(pats config.StringList) objectLabels {
	var o objectLabels
	for _, p := range pats {
		if f, err := config.CompilePattern(p); err == nil { // validated with the config
			o = append(o, f)
		}
	}
	return o
}

func (o objectLabels) label(object, method string) (string, string) {
	for _, f := range o {
		if f(object) {
			return object, method
		}
	}
	return metrics.Other, metrics.Other
}

// recordCall counts a call that ended with outcome o on member (nil: refused before one
// was chosen). The member's statistics are looked up when the member changes, not per
// call: no allocation.
func (s *Session) recordCall(member *routing.Member, h frame.Header, corr []byte, object, method string, d time.Duration, o metrics.Outcome, replyBytes int) {
	if s.cs == nil || member != s.csMember {
		group, addr := metrics.None, metrics.None
		if member != nil {
			group, addr = member.GroupName(), member.Addr
		}
		s.cs, s.csMember = s.srv.metrics.Calls(s.st.name, group, addr), member
	}
	s.cs.Done(o, d, h.DataLen, replyBytes)
	addr := metrics.None
	if member != nil {
		addr = member.Addr
	}
	s.srv.metrics.Slow(d, s.st.name, addr, corr, object, method, o)
	if len(s.srv.objects) > 0 && h.Type == frame.Invoke {
		obj, meth := s.srv.objects.label(object, method)
		s.srv.metrics.ObjectCall(s.st.name, obj, meth, o)
	}
}

// lostOutcome tells a call lost to timeouts.call from one lost with its backend.
func lostOutcome(err error) metrics.Outcome {
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return metrics.Timeout
	}
	return metrics.BackendLost
}

// refusedOutcome is the outcome of a call the dispatcher answered itself.
func refusedOutcome(why error) metrics.Outcome {
	var dn *deniedError
	if errors.As(why, &dn) {
		return metrics.Denied
	}
	return metrics.Refused
}

// stateCollector exports the server's state at scrape time: client connections,
// member health and load, and pooled connections, as gauges and counters read from
// the structures that keep them (nothing is counted twice on the data path).
type stateCollector struct{ s *Server }

var (
	descClients  = prometheus.NewDesc("pyro_dispatch_client_connections", "Client connections open now, by listener.", []string{"listener"}, nil)
	descParked   = prometheus.NewDesc("pyro_dispatch_parked_client_connections", "Client connections of pooled listeners parked now (idle past pool.park_after: no goroutine, no buffers), by listener.", []string{"listener"}, nil)
	descUp       = prometheus.NewDesc("pyro_dispatch_backend_up", "1 while a backend member takes calls, 0 while it is out (ejected, failing its health check, or drained).", []string{"group", "member"}, nil)
	descInFlight = prometheus.NewDesc("pyro_dispatch_backend_in_flight", "Calls (pooled mode) or client connections (session mode) on a member now.", []string{"group", "member"}, nil)
	descPoolConn = prometheus.NewDesc("pyro_dispatch_pool_connections", "Pooled upstream connections by listener, member and state (idle, in_use, dialing).", []string{"listener", "member", "state"}, nil)
	descPoolWait = prometheus.NewDesc("pyro_dispatch_pool_waiting", "Calls waiting for a pooled upstream connection, by listener and member.", []string{"listener", "member"}, nil)
	descDials    = prometheus.NewDesc("pyro_dispatch_pool_dials_total", "Pooled upstream connections dialed (with their handshake), by listener and member.", []string{"listener", "member"}, nil)
	descDialFail = prometheus.NewDesc("pyro_dispatch_pool_dial_failures_total", "Failed dials or handshakes of pooled upstream connections, by listener and member.", []string{"listener", "member"}, nil)
	descStale    = prometheus.NewDesc("pyro_dispatch_pool_stale_total", "Idle pooled connections found closed by their daemon when taken, and replaced, by listener and member.", []string{"listener", "member"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClients, descParked, descUp, descInFlight, descPoolConn, descPoolWait, descDials, descDialFail, descStale} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	cfg := s.Config()
	perListener, parked := map[string]int{}, map[string]int{}
	for _, l := range cfg.Listeners {
		perListener[l.Name] = 0
		if l.Mode == config.ModePooled {
			parked[l.Name] = 0
		}
	}
	s.mu.Lock()
	for sess := range s.sessions {
		perListener[sess.st.name]++
		if sess.isParked() {
			parked[sess.st.name]++
		}
	}
	s.mu.Unlock()
	for name, n := range perListener {
		ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(n), name)
	}
	for name, n := range parked {
		ch <- prometheus.MustNewConstMetric(descParked, prometheus.GaugeValue, float64(n), name)
	}
	t := s.table.Load()
	for _, b := range cfg.Backends {
		g := t.Group(b.Name)
		if g == nil {
			continue
		}
		for _, m := range g.Members() {
			up := 1.0
			if m.Out() {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, g.Name, m.Addr)
			ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(m.InFlight()), g.Name, m.Addr)
		}
	}
	for _, ps := range s.poolStats() {
		l, m := ps.Listener, ps.Member
		ch <- prometheus.MustNewConstMetric(descPoolConn, prometheus.GaugeValue, float64(ps.Idle), l, m, "idle")
		ch <- prometheus.MustNewConstMetric(descPoolConn, prometheus.GaugeValue, float64(ps.InUse), l, m, "in_use")
		ch <- prometheus.MustNewConstMetric(descPoolConn, prometheus.GaugeValue, float64(ps.Dialing), l, m, "dialing")
		ch <- prometheus.MustNewConstMetric(descPoolWait, prometheus.GaugeValue, float64(ps.Waiting), l, m)
		ch <- prometheus.MustNewConstMetric(descDials, prometheus.CounterValue, float64(ps.Dials), l, m)
		ch <- prometheus.MustNewConstMetric(descDialFail, prometheus.CounterValue, float64(ps.DialFailures), l, m)
		ch <- prometheus.MustNewConstMetric(descStale, prometheus.CounterValue, float64(ps.Stale), l, m)
	}
}
