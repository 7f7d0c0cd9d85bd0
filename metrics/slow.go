package metrics

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// SlowCallsKept is how many of the slowest recent calls are kept.
const SlowCallsKept = 20

// slowWindow is how recent a kept slow call must be.
const slowWindow = time.Minute

// SlowCall is one of the slowest calls of the last minute.
type SlowCall struct {
	Time     time.Time `json:"time"`
	Seconds  float64   `json:"seconds"`
	Listener string    `json:"listener"`
	Member   string    `json:"member"`
	Corr     string    `json:"corr"`
	Object   string    `json:"object,omitempty"`
	Method   string    `json:"method,omitempty"`
	Outcome  string    `json:"outcome"`
}

// slowCalls keeps the SlowCallsKept slowest calls of the last minute. A call faster
// than the slowest kept ones costs one atomic load.
type slowCalls struct {
	floor atomic.Int64 // nanoseconds a call must exceed to be kept (once the list is full)
	mu    sync.Mutex
	calls []SlowCall
}

// Slow offers a finished call with its correlation id (16 bytes, or none); it is kept
// only when among the slowest.
func (m *Metrics) Slow(d time.Duration, listener, member string, corr []byte, object, method string, o Outcome) {
	sc := &m.slow
	if int64(d) <= sc.floor.Load() {
		return
	}
	now := time.Now()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	kept := sc.calls[:0]
	for _, c := range sc.calls { // drop those older than the window
		if now.Sub(c.Time) < slowWindow {
			kept = append(kept, c)
		}
	}
	sc.calls = append(kept, SlowCall{Time: now, Seconds: d.Seconds(), Listener: listener, Member: member, Corr: corrString(corr),
		Object: object, Method: method, Outcome: o.String()})
	sort.Slice(sc.calls, func(i, j int) bool { return sc.calls[i].Seconds > sc.calls[j].Seconds })
	if len(sc.calls) > SlowCallsKept {
		sc.calls = sc.calls[:SlowCallsKept]
	}
	if len(sc.calls) == SlowCallsKept {
		sc.floor.Store(int64(sc.calls[len(sc.calls)-1].Seconds * float64(time.Second)))
	} else {
		sc.floor.Store(0)
	}
}

// Slowest returns the slowest calls of the last minute, slowest first.
func (m *Metrics) Slowest() []SlowCall {
	sc := &m.slow
	now := time.Now()
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var out []SlowCall
	for _, c := range sc.calls {
		if now.Sub(c.Time) < slowWindow {
			out = append(out, c)
		}
	}
	if len(out) < SlowCallsKept {
		sc.floor.Store(0) // old ones expired: faster calls may be kept again
	}
	return out
}

// ObjectCount is the calls of one object and method (pyro_dispatch_object_calls_total,
// outcomes summed).
type ObjectCount struct {
	Listener string  `json:"listener"`
	Object   string  `json:"object"`
	Method   string  `json:"method"`
	Calls    float64 `json:"calls"`
	Errors   float64 `json:"errors"`
}

// Objects returns the calls per object and method since the start, busiest first.
func (m *Metrics) Objects() []ObjectCount {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		m.objectCalls.Collect(ch)
		close(ch)
	}()
	type key struct{ l, o, me string }
	agg := map[key]*ObjectCount{}
	for pm := range ch {
		var d dto.Metric
		if pm.Write(&d) != nil {
			continue
		}
		lv := map[string]string{}
		for _, lp := range d.GetLabel() {
			lv[lp.GetName()] = lp.GetValue()
		}
		k := key{lv["listener"], lv["object"], lv["method"]}
		oc := agg[k]
		if oc == nil {
			oc = &ObjectCount{Listener: k.l, Object: k.o, Method: k.me}
			agg[k] = oc
		}
		v := d.GetCounter().GetValue()
		oc.Calls += v
		if o := outcomeByName(lv["outcome"]); o.Failed() {
			oc.Errors += v
		}
	}
	out := make([]ObjectCount, 0, len(agg))
	for _, oc := range agg {
		out = append(out, *oc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Calls > out[j].Calls })
	return out
}

func corrString(b []byte) string {
	id, err := uuid.FromBytes(b)
	if err != nil {
		return ""
	}
	return id.String()
}

func outcomeByName(s string) Outcome {
	for o := range NumOutcomes {
		if o.String() == s {
			return o
		}
	}
	return NumOutcomes
}
