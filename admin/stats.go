package admin

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pyro-dispatch/pyro-dispatch/metrics"
)

// Defaults and bounds of GET /api/v1/stats.
const (
	DefaultStatsSeconds = 300 // ?seconds=: the history's length
	DefaultStatsObjects = 10  // ?objects=: the busiest objects listed
	RecentSeconds       = 10  // Stats.Recent's window
)

// Stats is the answer of GET /api/v1/stats: what the dashboard and `pyro-dispatch top`
// show, in one request.
type Stats struct {
	Time time.Time `json:"time"`
	// Metrics is false when the server keeps none (its configuration has no
	// admin.listen): every figure is then zero.
	Metrics bool `json:"metrics"`
	// History is one point per second (calls that ended in it, of them failed, p50 and
	// p99 in seconds), oldest first, the last complete second last: ?seconds= of them
	// (default 300; at most metrics.HistorySeconds-1).
	History []metrics.Point `json:"history"`
	// Last is the last complete second (History's last point).
	Last metrics.Point `json:"last"`
	// Recent averages the last RecentSeconds complete seconds.
	Recent Rate `json:"recent"`
	// Totals count since the start.
	Totals Totals `json:"totals"`
	// Members are the calls of each backend member since the start (over every
	// listener); group and member "none" are calls refused before a member was chosen.
	Members []MemberCalls `json:"members"`
	// Objects are the busiest objects and methods (those metrics.objects names; "other"
	// for the rest), busiest first: ?objects= of them (default 10).
	Objects []metrics.ObjectCount `json:"objects"`
	// Slowest are the slowest calls of the last minute, slowest first.
	Slowest []metrics.SlowCall `json:"slowest"`
	// Sessions is the number of client connections open now.
	Sessions int `json:"sessions"`
}

// Rate is an average over a few seconds.
type Rate struct {
	Seconds         int     `json:"seconds"`
	CallsPerSecond  float64 `json:"calls_per_second"`
	ErrorsPerSecond float64 `json:"errors_per_second"`
	ErrorRatio      float64 `json:"error_ratio"` // failed calls / calls; 0 without calls
}

// Totals are counts since the start, from the Prometheus metrics.
type Totals struct {
	Calls        uint64            `json:"calls"`
	Errors       uint64            `json:"errors"`   // calls whose outcome counts as failed
	Outcomes     map[string]uint64 `json:"outcomes"` // calls by outcome (ok, exception, ...)
	RequestBytes uint64            `json:"request_bytes"`
	ReplyBytes   uint64            `json:"reply_bytes"`
	Accepted     uint64            `json:"connections_accepted"`
	Refused      map[string]uint64 `json:"connections_refused"` // by cause
	Reloads      map[string]uint64 `json:"reloads"`             // by result (ok, failed)
}

// MemberCalls are the calls of one member of a group.
type MemberCalls struct {
	Group  string `json:"group"`
	Member string `json:"member"`
	Calls  uint64 `json:"calls"`
	Errors uint64 `json:"errors"`
}

func (a *Admin) stats(r *http.Request) (any, error) {
	seconds, err := intParam(r, "seconds", DefaultStatsSeconds, 1, metrics.HistorySeconds)
	if err != nil {
		return nil, err
	}
	nobj, err := intParam(r, "objects", DefaultStatsObjects, 0, 1000)
	if err != nil {
		return nil, err
	}
	return a.Stats(seconds, nobj), nil
}

// intParam reads ?name= as an int within [lo, hi], def when absent.
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, &statusError{http.StatusBadRequest, "?" + name + "= wants a whole number from " + strconv.Itoa(lo) + " to " + strconv.Itoa(hi)}
	}
	return n, nil
}

// Stats gathers the figures of GET /api/v1/stats: seconds of history and the nobj
// busiest objects.
func (a *Admin) Stats(seconds, nobj int) Stats {
	st := Stats{
		Time:     time.Now(),
		History:  []metrics.Point{},
		Members:  []MemberCalls{},
		Objects:  []metrics.ObjectCount{},
		Slowest:  []metrics.SlowCall{},
		Sessions: a.srv.Sessions(),
		Totals:   Totals{Outcomes: map[string]uint64{}, Refused: map[string]uint64{}, Reloads: map[string]uint64{}},
	}
	m := a.srv.Metrics()
	if m == nil {
		return st
	}
	st.Metrics = true
	hist := m.History().Last(max(seconds, RecentSeconds))
	if len(hist) > 0 {
		st.Last = hist[len(hist)-1]
		recent := hist[max(len(hist)-RecentSeconds, 0):]
		var calls, errs uint64
		for _, p := range recent {
			calls += p.Calls
			errs += p.Errors
		}
		st.Recent = Rate{Seconds: len(recent), CallsPerSecond: float64(calls) / float64(len(recent)),
			ErrorsPerSecond: float64(errs) / float64(len(recent))}
		if calls > 0 {
			st.Recent.ErrorRatio = float64(errs) / float64(calls)
		}
	}
	st.History = hist[max(len(hist)-seconds, 0):]
	objs := m.Objects()
	st.Objects = nonNil(objs[:min(nobj, len(objs))])
	st.Slowest = nonNil(m.Slowest())
	a.totals(&st)
	return st
}

// failed names the outcomes that count as errors.
var failed = func() map[string]bool {
	f := map[string]bool{}
	for o := range metrics.NumOutcomes {
		f[o.String()] = o.Failed()
	}
	return f
}()

// totals fills st.Totals and st.Members from the registry.
func (a *Admin) totals(st *Stats) {
	families, _ := a.srv.Metrics().Registry.Gather() // what could be gathered, on error
	type key struct{ group, member string }
	members := map[key]*MemberCalls{}
	var keys []key
	t := &st.Totals
	for _, f := range families {
		for _, pm := range f.GetMetric() {
			v := uint64(pm.GetCounter().GetValue())
			switch f.GetName() {
			case "pyro_dispatch_calls_total":
				outcome := label(pm, "outcome")
				t.Calls += v
				t.Outcomes[outcome] += v
				k := key{label(pm, "group"), label(pm, "member")}
				mc := members[k]
				if mc == nil {
					mc = &MemberCalls{Group: k.group, Member: k.member}
					members[k] = mc
					keys = append(keys, k)
				}
				mc.Calls += v
				if failed[outcome] {
					t.Errors += v
					mc.Errors += v
				}
			case "pyro_dispatch_request_bytes_total":
				t.RequestBytes += v
			case "pyro_dispatch_reply_bytes_total":
				t.ReplyBytes += v
			case "pyro_dispatch_client_connections_accepted_total":
				t.Accepted += v
			case "pyro_dispatch_client_connections_refused_total":
				t.Refused[label(pm, "cause")] += v
			case "pyro_dispatch_reloads_total":
				t.Reloads[label(pm, "result")] += v
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].group < keys[j].group || keys[i].group == keys[j].group && keys[i].member < keys[j].member
	})
	for _, k := range keys {
		st.Members = append(st.Members, *members[k])
	}
}

func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}
