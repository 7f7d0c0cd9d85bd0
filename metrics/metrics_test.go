package metrics

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Calls and Done: the counters of the right outcome, the histogram (not for refusals),
// bytes; the same CallStats for the same labels; Forget drops the member's series.
func TestCallStats(t *testing.T) {
	m := New()
	cs := m.Calls("l", "g", "a:1")
	if m.Calls("l", "g", "a:1") != cs {
		t.Fatal("a second CallStats for the same labels")
	}
	cs.Done(OK, time.Millisecond, 10, 20)
	cs.Done(OK, time.Millisecond, 10, 20)
	cs.Done(Exception, time.Millisecond, 5, 0)
	cs.Done(Refused, 0, 3, 0)
	if v := testutil.ToFloat64(m.calls.WithLabelValues("l", "g", "a:1", "ok")); v != 2 {
		t.Errorf("ok = %v", v)
	}
	if v := testutil.ToFloat64(m.calls.WithLabelValues("l", "g", "a:1", "refused")); v != 1 {
		t.Errorf("refused = %v", v)
	}
	if v := testutil.ToFloat64(m.reqBytes.WithLabelValues("l", "g", "a:1")); v != 28 {
		t.Errorf("request bytes = %v", v)
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("%d histograms", n)
	}
	if allocs := testing.AllocsPerRun(100, func() { cs.Done(OK, time.Millisecond, 1, 1) }); allocs != 0 {
		t.Errorf("Done allocates %v", allocs)
	}
	m.Forget("g", "a:1")
	if n := testutil.CollectAndCount(m.calls); n != 0 {
		t.Errorf("%d call series after Forget", n)
	}
	if problems, err := testutil.GatherAndLint(m.Registry); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// Panicked counts by listener, in the registry the admin listener serves.
func TestPanicked(t *testing.T) {
	m := New()
	m.Panicked("a")
	m.Panicked("a")
	m.Panicked("b")
	if v := testutil.ToFloat64(m.panics.WithLabelValues("a")); v != 2 {
		t.Errorf("listener a: %v panics", v)
	}
	if n, err := testutil.GatherAndCount(m.Registry, "pyro_dispatch_panics_total"); err != nil || n != 2 {
		t.Errorf("%d series in the registry (%v), want 2", n, err)
	}
}

// History: per-second counts and quantiles estimated within the buckets.
func TestHistory(t *testing.T) {
	h := newHistory(nil)
	now := time.Unix(1_000_000, 0)
	h.now = func() time.Time { return now }
	for range 98 {
		h.record(OK, 300*time.Microsecond) // in the 250-500 µs bucket
	}
	h.record(BackendLost, 40*time.Millisecond) // 25-50 ms
	h.record(Refused, 0)                       // counted, not timed
	now = now.Add(time.Second)
	pts := h.Last(3)
	if len(pts) != 3 {
		t.Fatalf("%d points", len(pts))
	}
	p := pts[2]
	if p.Time != now.Unix()-1 || p.Calls != 100 || p.Errors != 2 {
		t.Fatalf("last second %+v", p)
	}
	if p.P50 < 250e-6 || p.P50 > 500e-6 || p.P99 < 25e-3 || p.P99 > 50e-3 {
		t.Errorf("p50 %v, p99 %v", p.P50, p.P99)
	}
	if pts[0].Calls != 0 || pts[1].Calls != 0 {
		t.Errorf("earlier seconds %+v", pts[:2])
	}
	// The slot of a second HistorySeconds later is reset before it is reused.
	now = now.Add(HistorySeconds * time.Second)
	h.record(OK, time.Millisecond)
	now = now.Add(time.Second)
	if p := h.Last(1)[0]; p.Calls != 1 {
		t.Errorf("reused slot %+v", p)
	}
	var empty [len(bucketBounds) + 1]uint64
	if q := quantile(&empty, 0.5); q != 0 || math.IsNaN(q) {
		t.Errorf("quantile of nothing %v", q)
	}
}

// Slow keeps the slowest calls, slowest first, at most SlowCallsKept.
func TestSlowest(t *testing.T) {
	m := New()
	corr := []byte{0x3e, 0x89, 0x7f, 0x22, 0x63, 0x57, 0x40, 0xbe, 0xa2, 0xb7, 0x8f, 0x6e, 0xc4, 0x59, 0x9a, 0xc1}
	for i := range 50 {
		m.Slow(time.Duration(i)*time.Millisecond, "l", "a:1", corr, "obj", "m", OK)
	}
	s := m.Slowest()
	if len(s) != SlowCallsKept || s[0].Seconds != 0.049 || s[len(s)-1].Seconds != 0.030 {
		t.Fatalf("kept %d, from %v to %v", len(s), s[0].Seconds, s[len(s)-1].Seconds)
	}
	if s[0].Corr != "3e897f22-6357-40be-a2b7-8f6ec4599ac1" || s[0].Object != "obj" {
		t.Errorf("%+v", s[0])
	}
	if allocs := testing.AllocsPerRun(100, func() { m.Slow(time.Microsecond, "l", "a:1", corr, "", "", OK) }); allocs != 0 {
		t.Errorf("a fast call allocates %v", allocs)
	}
}

// ErrorLog keeps warnings and worse, with their fields, the last ErrorLogSize.
func TestErrorLog(t *testing.T) {
	el := NewErrorLog()
	log := zap.New(el).With(zap.String("listener", "l"))
	log.Info("not kept")
	for i := range ErrorLogSize + 5 {
		log.Warn("kept", zap.Int("i", i))
	}
	log.Error("last", zap.Error(errTest))
	e := el.Entries()
	if len(e) != ErrorLogSize {
		t.Fatalf("%d entries", len(e))
	}
	last := e[len(e)-1]
	if last.Message != "last" || last.Level != zapcore.ErrorLevel.String() || last.Fields["listener"] != "l" || last.Fields["error"] != "boom" {
		t.Errorf("%+v", last)
	}
	if e[0].Fields["i"] != "6" {
		t.Errorf("oldest kept %+v", e[0])
	}
}

type testError string

func (e testError) Error() string { return string(e) }

const errTest = testError("boom")
