package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// summarize fills every target's Median, Latency and Ratio from its rounds.
func (r *Result) summarize() {
	for _, t := range r.Targets {
		t.Latency = newHistogram()
		t.Median = Stats{ErrorsByKind: map[string]int64{}, ErrorSamples: map[string]string{}}
		var cps, mbs, el, p50, p90, p99, p999, mx, mean, cpc []float64
		for _, rr := range t.Rounds {
			if rr.CPUPerCall >= 0 && t.CPUSampled {
				t.Median.CPU += rr.CPU
				cpc = append(cpc, float64(rr.CPUPerCall))
			}
			t.Latency.Merge(rr.Latency)
			t.Median.Calls += rr.Calls
			t.Median.Bytes += rr.Bytes
			t.Median.Errors += rr.Errors
			for k, n := range rr.ErrorsByKind {
				t.Median.ErrorsByKind[k] += n
			}
			for k, s := range rr.ErrorSamples {
				if _, ok := t.Median.ErrorSamples[k]; !ok {
					t.Median.ErrorSamples[k] = s
				}
			}
			cps = append(cps, rr.CallsPerSec)
			mbs = append(mbs, rr.MBPerSec)
			el = append(el, float64(rr.Elapsed))
			p50 = append(p50, float64(rr.P50))
			p90 = append(p90, float64(rr.P90))
			p99 = append(p99, float64(rr.P99))
			p999 = append(p999, float64(rr.P999))
			mx = append(mx, float64(rr.Max))
			mean = append(mean, float64(rr.Mean))
		}
		m := &t.Median
		m.CallsPerSec, m.MBPerSec = median(cps), median(mbs)
		m.Elapsed = time.Duration(median(el))
		m.P50, m.P90, m.P99 = time.Duration(median(p50)), time.Duration(median(p90)), time.Duration(median(p99))
		m.P999, m.Max, m.Mean = time.Duration(median(p999)), time.Duration(median(mx)), time.Duration(median(mean))
		if t.CPUSampled {
			m.CPUPerCall = time.Duration(median(cpc))
			if len(cpc) == 0 {
				m.CPU, m.CPUPerCall = -1, -1
			}
		}
	}
	if len(r.Targets) == 0 {
		return
	}
	first := r.Targets[0].Median
	for _, t := range r.Targets {
		t.Ratio = Ratio{
			CallsPerSec: ratio(t.Median.CallsPerSec, first.CallsPerSec),
			P50:         ratio(float64(t.Median.P50), float64(first.P50)),
			P99:         ratio(float64(t.Median.P99), float64(first.P99)),
		}
	}
}

// Summarize fills every target's Median, Latency and Ratio from its Rounds, as Run does.
// It is for results assembled from another load generator's rounds (NewRoundResult),
// to report and chart them like the rounds of Run.
func (r *Result) Summarize() { r.summarize() }

// NewRoundResult returns a round measured elsewhere: s gives Calls, Bytes, Errors (and
// optionally ErrorsByKind, ErrorSamples, CPU) and Elapsed; the rates and CPUPerCall are
// computed from them and the percentiles from h, which holds latencies in nanoseconds.
func NewRoundResult(round int, start time.Time, s Stats, h *hdrhistogram.Histogram) *RoundResult {
	if h == nil {
		h = newHistogram()
	}
	if s.ErrorsByKind == nil {
		s.ErrorsByKind = map[string]int64{}
	}
	if s.ErrorSamples == nil {
		s.ErrorSamples = map[string]string{}
	}
	if s.CPU > 0 && s.Calls > 0 {
		s.CPUPerCall = s.CPU / time.Duration(s.Calls)
	}
	rr := &RoundResult{Round: round, Start: start, Stats: s, Latency: h}
	rr.Stats.fill(h)
	return rr
}

// NewHistogram returns an empty latency histogram as Run uses (nanoseconds, 1ns to 1h,
// 3 significant digits), for NewRoundResult.
func NewHistogram() *hdrhistogram.Histogram { return newHistogram() }

// median returns the median of v (the mean of the middle two for an even count), 0 for
// none. It sorts v.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	sort.Float64s(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Describe returns a one-line description of the run's load: Config.Description when set.
func (c Config) Describe() string {
	if c.Description != "" {
		return c.Description
	}
	var b strings.Builder
	switch c.Mode {
	case ModeOneway:
		fmt.Fprintf(&b, "oneway %s(x)", MethodOneway)
	case ModeBlob:
		fmt.Fprintf(&b, "%s(SerializedBlob)", MethodBlob)
	default:
		fmt.Fprintf(&b, "%s(x)", MethodEcho)
	}
	fmt.Fprintf(&b, " on %q, x = %s str, %v, %d conn", c.Object, formatBytes(int64(c.Payload)), c.Serializer, c.Conns)
	if c.Conns != 1 {
		b.WriteString("s")
	}
	b.WriteString(" per target, ")
	if c.Rate > 0 {
		fmt.Fprintf(&b, "open loop at %s calls/s", FormatCount(c.Rate))
	} else {
		b.WriteString("closed loop")
	}
	if c.Calls > 0 {
		fmt.Fprintf(&b, ", %d calls", c.Calls)
	} else {
		fmt.Fprintf(&b, ", %v", c.Duration)
	}
	fmt.Fprintf(&b, " × %d round", c.Rounds)
	if c.Rounds != 1 {
		b.WriteString("s")
	}
	if c.Warmup > 0 {
		fmt.Fprintf(&b, " (each after %v warmup)", c.Warmup)
	}
	return b.String()
}

// WriteTable writes the report for people: one line per target with its medians over
// rounds and its ratios to the first target, the calls/s of every round when there are
// several, and the errors by kind with a sample message each.
func (r *Result) WriteTable(w io.Writer) error {
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "pyro-dispatch bench: %s\n", r.Config.Describe())
	if r.Config.Rounds > 1 {
		fmt.Fprintf(bw, "medians over rounds run interleaved (%s)\n", orderString(r.Order, 8))
	}
	fmt.Fprintln(bw)
	// Right-aligned numbers; names and addresses padded to read left-aligned.
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
	first := ""
	nameW, addrW := len("target"), len("address")
	for _, t := range r.Targets {
		nameW, addrW = max(nameW, len(t.Name)), max(addrW, len(t.Addr))
	}
	if len(r.Targets) > 0 {
		first = r.Targets[0].Name
	}
	cpuCol := false
	for _, t := range r.Targets {
		cpuCol = cpuCol || t.CPUSampled
	}
	cpuHead := ""
	if cpuCol {
		cpuHead = "CPU/call\t"
	}
	fmt.Fprintf(tw, "%-*s\t%-*s\tcalls/s\tMB/s\tp50\tp90\tp99\tp99.9\tmax\t%serrors\tcalls/s vs %s\tp99 vs %s\t\n",
		nameW, "target", addrW, "address", cpuHead, first, first)
	for _, t := range r.Targets {
		m := t.Median
		cpu := ""
		if cpuCol {
			cpu = "-\t"
			if t.CPUSampled && m.CPUPerCall >= 0 {
				cpu = FormatLatency(m.CPUPerCall) + "\t"
			}
		}
		fmt.Fprintf(tw, "%-*s\t%-*s\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s%d\t%s\t%s\t\n",
			nameW, t.Name, addrW, t.Addr, FormatCount(m.CallsPerSec), m.MBPerSec,
			FormatLatency(m.P50), FormatLatency(m.P90), FormatLatency(m.P99), FormatLatency(m.P999), FormatLatency(m.Max),
			cpu, m.Errors, formatRatio(t.Ratio.CallsPerSec), formatRatio(t.Ratio.P99))
	}
	tw.Flush()
	if r.Config.Rounds > 1 {
		fmt.Fprintln(bw, "\ncalls/s by round:")
		tw = tabwriter.NewWriter(bw, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, t := range r.Targets {
			fmt.Fprintf(tw, "  %-*s\t", nameW, t.Name)
			for _, rr := range t.Rounds {
				fmt.Fprintf(tw, "%s\t", FormatCount(rr.CallsPerSec))
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	for _, t := range r.Targets {
		if t.Median.Errors == 0 {
			continue
		}
		fmt.Fprintf(bw, "\nerrors of %s:", t.Name)
		for _, k := range ErrorKinds {
			if n := t.Median.ErrorsByKind[k]; n > 0 {
				fmt.Fprintf(bw, " %d %s", n, k)
			}
		}
		fmt.Fprintln(bw)
		for _, k := range ErrorKinds {
			if s, ok := t.Median.ErrorSamples[k]; ok {
				fmt.Fprintf(bw, "  %s: %s\n", k, s)
			}
		}
	}
	return bw.err
}

// orderString lists the first n rounds in run order, as "direct#1 proxy#1 ...".
func orderString(order []RoundRef, n int) string {
	var parts []string
	for i, o := range order {
		if i == n {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, o.Target+"#"+strconv.Itoa(o.Round))
	}
	return strings.Join(parts, " ")
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// FormatLatency writes d with three significant digits: "45.1µs", "2.10ms", "1.25s".
func FormatLatency(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	f := float64(d)
	unit, div := "ns", 1.0
	switch {
	case f >= 1e9:
		unit, div = "s", 1e9
	case f >= 1e6:
		unit, div = "ms", 1e6
	case f >= 1e3:
		unit, div = "µs", 1e3
	}
	return FormatFigure(f/div) + unit
}

// FormatFigure formats v with three significant digits from 1 up (two decimals below
// 10, none from 100).
func FormatFigure(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// FormatCount formats a rate or count with thousands separators, or as 1.23M above a
// million.
func FormatCount(v float64) string {
	if v >= 1e6 {
		return FormatFigure(v/1e6) + "M"
	}
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func formatRatio(v float64) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "×"
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

// --- JSON ------------------------------------------------------------------------------

// JSON field types of WriteJSON; latencies are in microseconds, times in seconds.
type (
	jsonReport struct {
		Start    time.Time    `json:"start"`
		Elapsed  float64      `json:"elapsed_s"`
		Config   jsonConfig   `json:"config"`
		Order    []RoundRef   `json:"order"`
		Targets  []jsonTarget `json:"targets"`
		Describe string       `json:"description"`
	}
	jsonConfig struct {
		Targets    []Target         `json:"targets"`
		Object     string           `json:"object"`
		Conns      int              `json:"conns"`
		Duration   float64          `json:"duration_s,omitempty"`
		Calls      int64            `json:"calls,omitempty"`
		Payload    int              `json:"payload_bytes"`
		Serializer string           `json:"serializer"`
		Mode       Mode             `json:"mode"`
		Rate       float64          `json:"rate,omitempty"`
		Warmup     float64          `json:"warmup_s"`
		Rounds     int              `json:"rounds"`
		Timeout    float64          `json:"timeout_s"`
		CPU        map[string][]int `json:"cpu_pids,omitempty"`
	}
	jsonTarget struct {
		Name        string           `json:"name"`
		Addr        string           `json:"addr"`
		Median      jsonStats        `json:"median"`
		Ratio       jsonRatio        `json:"ratio_to_first"`
		Rounds      []jsonRound      `json:"rounds"`
		Percentiles []jsonPercentile `json:"percentiles"`
	}
	jsonRatio struct {
		CallsPerSec float64 `json:"calls_per_sec"`
		P50         float64 `json:"p50"`
		P99         float64 `json:"p99"`
	}
	jsonRound struct {
		Round int       `json:"round"`
		Start time.Time `json:"start"`
		jsonStats
	}
	jsonStats struct {
		Calls        int64             `json:"calls"`
		Bytes        int64             `json:"bytes"`
		Errors       int64             `json:"errors"`
		ErrorsByKind map[string]int64  `json:"errors_by_kind,omitempty"`
		ErrorSamples map[string]string `json:"error_samples,omitempty"`
		Elapsed      float64           `json:"elapsed_s"`
		CallsPerSec  float64           `json:"calls_per_sec"`
		MBPerSec     float64           `json:"mb_per_sec"`
		Latency      jsonLatency       `json:"latency_us"`
		// Only for a target whose CPU is sampled, and absent when a sample failed.
		CPU        *float64 `json:"cpu_s,omitempty"`
		CPUPerCall *float64 `json:"cpu_us_per_call,omitempty"`
	}
	jsonLatency struct {
		P50  float64 `json:"p50"`
		P90  float64 `json:"p90"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
		Max  float64 `json:"max"`
		Mean float64 `json:"mean"`
	}
	jsonPercentile struct {
		Percentile float64 `json:"percentile"`
		Latency    float64 `json:"latency_us"`
	}
)

func us(d time.Duration) float64 { return math.Round(float64(d)/1e1) / 1e2 }

func toJSONStats(s Stats, cpu bool) jsonStats {
	js := jsonStats{
		Calls: s.Calls, Bytes: s.Bytes, Errors: s.Errors, ErrorsByKind: s.ErrorsByKind, ErrorSamples: s.ErrorSamples,
		Elapsed: s.Elapsed.Seconds(), CallsPerSec: math.Round(s.CallsPerSec*10) / 10, MBPerSec: math.Round(s.MBPerSec*1000) / 1000,
		Latency: jsonLatency{P50: us(s.P50), P90: us(s.P90), P99: us(s.P99), P999: us(s.P999), Max: us(s.Max), Mean: us(s.Mean)},
	}
	if cpu && s.CPUPerCall >= 0 {
		c, pc := math.Round(s.CPU.Seconds()*1e4)/1e4, us(s.CPUPerCall)
		js.CPU, js.CPUPerCall = &c, &pc
	}
	return js
}

// CurvePercentiles are the percentiles of the latency curves in the JSON report and the
// chart.
var CurvePercentiles = []float64{0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100}

// percentiles returns the latency at each of CurvePercentiles, in nanoseconds.
func percentiles(h *hdrhistogram.Histogram) []int64 {
	out := make([]int64, len(CurvePercentiles))
	if h == nil || h.TotalCount() == 0 {
		return out
	}
	for i, p := range CurvePercentiles {
		switch p {
		case 0:
			out[i] = h.Min()
		case 100:
			out[i] = h.Max()
		default:
			out[i] = h.ValueAtQuantile(p)
		}
	}
	return out
}

// WriteJSON writes the whole result as JSON: the configuration, the run order, and per
// target the medians, the ratios to the first target, every round, and the latency at
// CurvePercentiles over all rounds. Latencies are in microseconds.
func (r *Result) WriteJSON(w io.Writer) error {
	c := r.Config
	out := jsonReport{
		Start: r.Start, Elapsed: r.Elapsed.Seconds(), Order: r.Order, Describe: c.Describe(),
		Config: jsonConfig{Targets: c.Targets, Object: c.Object, Conns: c.Conns, Duration: c.Duration.Seconds(),
			Calls: c.Calls, Payload: c.Payload, Serializer: c.Serializer.String(), Mode: c.Mode, Rate: c.Rate,
			Warmup: c.Warmup.Seconds(), Rounds: c.Rounds, Timeout: c.Timeout.Seconds(), CPU: c.CPU},
	}
	for _, t := range r.Targets {
		jt := jsonTarget{Name: t.Name, Addr: t.Addr, Median: toJSONStats(t.Median, t.CPUSampled),
			Ratio: jsonRatio{CallsPerSec: t.Ratio.CallsPerSec, P50: t.Ratio.P50, P99: t.Ratio.P99}}
		for _, rr := range t.Rounds {
			jt.Rounds = append(jt.Rounds, jsonRound{Round: rr.Round, Start: rr.Start, jsonStats: toJSONStats(rr.Stats, t.CPUSampled)})
		}
		for i, v := range percentiles(t.Latency) {
			jt.Percentiles = append(jt.Percentiles, jsonPercentile{Percentile: CurvePercentiles[i], Latency: us(time.Duration(v))})
		}
		out.Targets = append(out.Targets, jt)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
