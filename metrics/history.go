package metrics

import (
	"sync"
	"sync/atomic"
	"time"
)

// HistorySeconds is how far back History reaches.
const HistorySeconds = 300

// History keeps, for each of the last HistorySeconds seconds, the calls that ended,
// how many failed, and their durations in LatencyBuckets: the figures of a dashboard's
// charts, without a goroutine (a second's slot is reset by the first call that ends in
// it). Recording is a few atomic additions.
type History struct {
	slots [HistorySeconds]slot
	mu    sync.Mutex // serializes resets of a slot
	now   func() time.Time
}

type slot struct {
	sec     atomic.Int64
	calls   atomic.Uint64
	errors  atomic.Uint64
	buckets [len(bucketBounds) + 1]atomic.Uint64
}

// bucketBounds are LatencyBuckets as durations.
var bucketBounds = func() [18]time.Duration {
	var b [18]time.Duration
	for i, s := range LatencyBuckets {
		b[i] = time.Duration(s * float64(time.Second))
	}
	return b
}()

func newHistory(*Metrics) *History { return &History{now: time.Now} }

func (h *History) slotFor(sec int64) *slot {
	s := &h.slots[sec%HistorySeconds]
	if s.sec.Load() != sec {
		h.mu.Lock()
		if s.sec.Load() != sec {
			s.calls.Store(0)
			s.errors.Store(0)
			for i := range s.buckets {
				s.buckets[i].Store(0)
			}
			s.sec.Store(sec)
		}
		h.mu.Unlock()
	}
	return s
}

func (h *History) record(o Outcome, d time.Duration) {
	s := h.slotFor(h.now().Unix())
	s.calls.Add(1)
	if o.Failed() {
		s.errors.Add(1)
	}
	if o == Refused || o == Denied {
		return
	}
	i := 0
	for i < len(bucketBounds) && d > bucketBounds[i] {
		i++
	}
	s.buckets[i].Add(1)
}

// Point is one second of History.
type Point struct {
	Time   int64   `json:"t"`      // Unix seconds
	Calls  uint64  `json:"calls"`  // calls that ended in that second
	Errors uint64  `json:"errors"` // of them, failed (Outcome.Failed)
	P50    float64 `json:"p50"`    // seconds, estimated from the histogram buckets; 0 without calls
	P99    float64 `json:"p99"`
}

// Last returns the last n complete seconds, oldest first (at most HistorySeconds).
func (h *History) Last(n int) []Point {
	n = min(n, HistorySeconds-1)
	now := h.now().Unix()
	out := make([]Point, 0, n)
	for sec := now - int64(n); sec < now; sec++ {
		p := Point{Time: sec}
		s := &h.slots[sec%HistorySeconds]
		if s.sec.Load() == sec {
			p.Calls, p.Errors = s.calls.Load(), s.errors.Load()
			var counts [len(bucketBounds) + 1]uint64
			for i := range counts {
				counts[i] = s.buckets[i].Load()
			}
			p.P50, p.P99 = quantile(&counts, 0.5), quantile(&counts, 0.99)
		}
		out = append(out, p)
	}
	return out
}

// quantile estimates the q-quantile of durations counted in buckets, interpolating
// linearly within the bucket it falls in (as Prometheus' histogram_quantile does).
func quantile(counts *[len(bucketBounds) + 1]uint64, q float64) float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen uint64
	for i, c := range counts {
		if c == 0 || float64(seen+c) < rank {
			seen += c
			continue
		}
		lo := 0.0
		if i > 0 {
			lo = LatencyBuckets[i-1]
		}
		if i == len(LatencyBuckets) { // past the last bound: report that bound
			return LatencyBuckets[i-1]
		}
		hi := LatencyBuckets[i]
		return lo + (hi-lo)*(rank-float64(seen))/float64(c)
	}
	return LatencyBuckets[len(LatencyBuckets)-1]
}
