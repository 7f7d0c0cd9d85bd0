package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
)

// This file: the checks over a run and the report, bench/SOAK.md with its chart.

// report is what a run came to.
type report struct {
	Begin, SoakStart, SoakEnd, End time.Time
	Opt                            options
	Version, Config                string
	Machine, MachineEnd            string // CPUs and load average at the start and at the end
	Warm, Soak                     *ledger
	Faults                         []Fault // in order of Start once analysed
	Recoveries                     []Recovery
	Samples                        []Sample
	Phases                         []phaseMark
	Leak                           LeakCheck
	Panics                         float64
	Exit                           string
	ExitOK                         bool
	LogCounts                      []logCount
	Checks                         []Check

	backDelay map[*Failure]time.Duration // from its fault's end to its client's next success; -1: none
}

// phaseMark is when a phase of the run began.
type phaseMark struct {
	At   time.Time
	Name string
}

// Check is one assertion over the run.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// failures are the run's failed calls: the warm-up's, then the soak's.
func (r *report) failures() []*Failure {
	var fs []*Failure
	for _, l := range []*ledger{r.Warm, r.Soak} {
		for i := range l.failures {
			fs = append(fs, &l.failures[i])
		}
	}
	return fs
}

func (r *report) fault(seq int) *Fault {
	for i := range r.Faults {
		if r.Faults[i].Seq == seq {
			return &r.Faults[i]
		}
	}
	return nil
}

// analyse matches failures to faults, measures each failed client's return and makes
// the checks.
func (r *report) analyse() {
	slices.SortFunc(r.Faults, func(a, b Fault) int { return a.Start.Compare(b.Start) })
	explain(r.Soak.failures, r.Faults)
	overlaps(r.Recoveries, r.Faults, holds)
	r.backDelay = map[*Failure]time.Duration{}
	backs := map[string][]Back{}
	for _, l := range []*ledger{r.Warm, r.Soak} {
		for _, b := range l.backs {
			backs[b.Client] = append(backs[b.Client], b)
		}
	}
	for _, bs := range backs {
		slices.SortFunc(bs, func(a, b Back) int { return a.End.Compare(b.End) })
	}
	for _, x := range r.failures() {
		bs := backs[x.Client]
		i, _ := slices.BinarySearchFunc(bs, x.End, func(b Back, t time.Time) int { return b.End.Compare(t) })
		if i == len(bs) {
			r.backDelay[x] = -1
			continue
		}
		from := x.End
		if f := r.fault(x.Fault); f != nil {
			from = f.End
		}
		r.backDelay[x] = max(bs[i].End.Sub(from), 0)
	}
	r.Checks = r.checks()
}

// count counts the failures for which keep holds.
func (r *report) count(keep func(*Failure) bool) (n int, first *Failure) {
	for _, x := range r.failures() {
		if keep(x) {
			if n++; first == nil {
				first = x
			}
		}
	}
	return n, first
}

// calls counts the soak's and the warm-up's calls: succeeded and failed.
func (r *report) calls() (ok, failed int64) {
	for _, l := range []*ledger{r.Warm, r.Soak} {
		for _, s := range l.sources {
			ok += s.OK
		}
		failed += int64(len(l.failures))
	}
	return ok, failed
}

func (r *report) describe(x *Failure) string {
	return fmt.Sprintf("%s at %s on %s (%s): %.200s", x.Client, r.at(x.End), x.Path, x.Op, x.Reason)
}

// at is t from the start of the soak (negative in the warm-up).
func (r *report) at(t time.Time) string {
	d := t.Sub(r.SoakStart)
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	return fmt.Sprintf("%s%d:%06.3f", sign, int(d/time.Minute), (d % time.Minute).Seconds())
}

// checks are the assertions of the soak.
func (r *report) checks() []Check {
	ok, failed := r.calls()
	var cs []Check
	add := func(name string, pass bool, detail string, args ...any) {
		cs = append(cs, Check{name, pass, fmt.Sprintf(detail, args...)})
	}
	one := func(n int, first *Failure) string {
		if first == nil {
			return ""
		}
		return fmt.Sprintf("; the first: %s", r.describe(first))
	}

	n, first := r.count(func(x *Failure) bool { return x.Cause == CauseWrong })
	add("no reply delivered to the wrong call", n == 0, "%d of %d calls%s", n, ok+failed, one(n, first))
	n, first = r.count(func(x *Failure) bool { return x.Cause != CauseRefused && x.Cause != CauseClosed })
	add("every failed call is a pyro-dispatch: refusal or a closed connection", n == 0, "%d of %d failures are neither%s", n, failed, one(n, first))
	n, first = r.count(func(x *Failure) bool { return x.Fault == 0 })
	add("every failure is explained by a fault injected at that moment", n == 0, "%d of %d failures unexplained%s", n, failed, one(n, first))

	worst, unmeasured, overlapped := Recovery{After: -1}, 0, 0
	for _, rc := range r.Recoveries {
		if rc.Overlap != 0 {
			overlapped++
		} else if rc.After < 0 {
			unmeasured++
		} else if rc.After > worst.After {
			worst = rc
		}
	}
	detail := fmt.Sprintf("worst %v (fault %d, %s, on %s) of %d recoveries (a fault × a path with a probe); %d more measured with a later fault that overlapped them",
		worst.After.Round(time.Millisecond), worst.Fault, kindOf(r.fault(worst.Fault)), worst.Path, len(r.Recoveries)-overlapped, overlapped)
	if unmeasured > 0 {
		detail += fmt.Sprintf("; on %d no call succeeded after the fault's end", unmeasured)
	}
	add("calls succeed again within 2 s of the end of each fault", worst.After <= recoveryBound && unmeasured == 0, "%s", detail)

	n, first = r.count(func(x *Failure) bool { return r.backDelay[x] < 0 })
	add("every client that failed succeeded again", n == 0, "%d failed calls with no success of their client after them%s", n, one(n, first))

	var problems []string
	for _, f := range r.Faults {
		if f.Problem != "" {
			problems = append(problems, fmt.Sprintf("fault %d (%s): %s", f.Seq, f.Kind, f.Problem))
		}
	}
	add("every fault did what it should (bad connections closed, backends back, reloads done)", len(problems) == 0,
		"%d faults, %d with a problem%s", len(r.Faults), len(problems), prefixed("; ", strings.Join(first3(problems), "; ")))

	add("no leak: goroutines, file descriptors and RSS back within 10 % of the idle baseline; no goroutine outlives its connection",
		len(r.Leak.Problems) == 0, "%s", or(strings.Join(r.Leak.Problems, "; "),
			fmt.Sprintf("goroutines %d → %d, fds %d → %d, RSS %s → %s; %d session goroutines, %d pipelined readers for %d pipelined connections, %d pool upkeeps for %d pools",
				r.Leak.Base.Goroutines, r.Leak.Final.Goroutines, r.Leak.Base.FDs, r.Leak.Final.FDs, sizeText(r.Leak.Base.RSS), sizeText(r.Leak.Final.RSS),
				r.Leak.Final.Dump.Sessions, r.Leak.Final.Dump.MuxReaders, r.Leak.Final.PipelinedConns, r.Leak.Final.Dump.Upkeeps, r.Leak.Final.Pools)))
	add("no panic recovered in the dispatcher", r.Panics == 0, "pyro_dispatch_panics_total %v", r.Panics)

	var idle, silent []string
	for _, name := range r.Soak.order {
		s := r.Soak.sources[name]
		if s.OK == 0 {
			idle = append(idle, name)
		}
		if s.Python && !s.Summary {
			silent = append(silent, name)
		}
	}
	add("every client of the load made calls all along and ended cleanly", len(idle) == 0 && len(silent) == 0,
		"%d sources; without a success: %v; Python clients without their summary: %v", len(r.Soak.order), idle, silent)
	add("the dispatcher drained and exited 0 on SIGTERM", r.ExitOK, "%s", r.Exit)
	return cs
}

// holds reports whether faults of kind hold up calls on their paths while they last.
func holds(kind string) bool {
	i := kindIndex(kind)
	return i >= 0 && faultKinds[i].holds
}

func kindOf(f *Fault) string {
	if f == nil {
		return "none"
	}
	return f.Kind
}

func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func first3(s []string) []string { return s[:min(len(s), 3)] }

// sizeText writes a byte count: 64 B, 256 KiB, 8 MiB, 41.2 MiB.
func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// logCount is how many times the dispatcher logged one message at one level.
type logCount struct {
	Level, Msg string
	N          int
}

// logCounts counts the warnings and errors in the dispatcher's JSON log by message.
func logCounts(path string) []logCount {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	counts := map[[2]string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l struct{ Level, Msg string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Level != "info" && l.Level != "debug" {
			counts[[2]string{l.Level, l.Msg}]++
		}
	}
	var out []logCount
	for k, n := range counts {
		out = append(out, logCount{k[0], k[1], n})
	}
	slices.SortFunc(out, func(a, b logCount) int { return cmp.Or(cmp.Compare(b.N, a.N), strings.Compare(a.Msg, b.Msg)) })
	return out
}

// write writes the chart and the report.
func (r *report) write(out, chart string) error {
	for _, p := range []string{out, chart} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	if err := r.chart().WriteSVG(&b); err != nil {
		return err
	}
	if err := os.WriteFile(chart, b.Bytes(), 0o644); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(out), chart)
	if err != nil {
		rel = chart
	}
	b.Reset()
	r.markdown(&b, filepath.ToSlash(rel))
	return os.WriteFile(out, b.Bytes(), 0o644)
}

// kindIndex is a fault kind's index in faultKinds (the final reload is a reload).
func kindIndex(kind string) int {
	if kind == "final_reload" {
		kind = "reload"
	}
	return slices.IndexFunc(faultKinds, func(k faultKind) bool { return k.name == kind })
}

// chart is the picture of the run: resources and calls over time, faults along the top.
func (r *report) chart() *bench.TimeChart {
	since := func(t time.Time) time.Duration { return t.Sub(r.Begin) }
	series := func(name string, v func(Sample) float64) bench.TimeSeries {
		s := bench.TimeSeries{Name: name}
		for _, sm := range r.Samples {
			s.At, s.V = append(s.At, since(sm.At)), append(s.V, v(sm))
		}
		return s
	}
	band := func(base float64) *[2]float64 { return &[2]float64{0, base * (1 + leakSlack)} }
	mib := func(v float64) string { return fmt.Sprintf("%g MiB", v) }
	c := &bench.TimeChart{
		Title:    "pyro-dispatch soak: the dispatcher's resources and the load over time",
		Subtitle: fmt.Sprintf("%v of load and faults (%d faults, ticks along the top); green: the idle baseline + 10 %%, where the resources must come back", r.Opt.duration, len(r.Faults)),
		Foot:     fmt.Sprintf("%s · %s · seed %d", r.Begin.Format("2006-01-02 15:04 MST"), r.Version, r.Opt.seed),
		End:      since(r.End),
		Panels: []bench.TimePanel{
			{Title: "RSS", Format: mib, Series: []bench.TimeSeries{series("RSS", func(s Sample) float64 { return float64(s.RSS) / (1 << 20) })},
				Band: band(float64(r.Leak.Base.RSS) / (1 << 20)), BandLabel: "baseline + 10 %"},
			{Title: "goroutines", Series: []bench.TimeSeries{series("goroutines", func(s Sample) float64 { return float64(s.Goroutines) })},
				Band: band(float64(r.Leak.Base.Goroutines)), BandLabel: "baseline + 10 %"},
			{Title: "file descriptors", Series: []bench.TimeSeries{series("fds", func(s Sample) float64 { return float64(s.FDs) })},
				Band: band(float64(r.Leak.Base.FDs)), BandLabel: "baseline + 10 %"},
			{Title: "client connections", Series: []bench.TimeSeries{series("clients", func(s Sample) float64 { return float64(s.Clients) })}},
			r.callsPanel(since),
			{Title: "the machine's load average (1 min): the soak's processes and any other work", Format: func(v float64) string { return fmt.Sprintf("%g", v) },
				Series: []bench.TimeSeries{series("load", func(s Sample) float64 { return s.Load })}},
		},
	}
	for _, k := range faultKinds {
		c.MarkKinds = append(c.MarkKinds, k.name)
	}
	for _, f := range r.Faults {
		c.Marks = append(c.Marks, bench.TimeMark{At: since(f.Start), Kind: kindIndex(f.Kind), Title: fmt.Sprintf("fault %d %s", f.Seq, f.Kind)})
	}
	for i, p := range r.Phases {
		to := r.End
		if i+1 < len(r.Phases) {
			to = r.Phases[i+1].At
		}
		c.Spans = append(c.Spans, bench.TimeSpan{From: since(p.At), To: since(to), Label: p.Name})
	}
	return c
}

// callsPanel shows the Go load's successful calls per second and every client's failed
// calls per second, by sampleEvery slot.
func (r *report) callsPanel(since func(time.Time) time.Duration) bench.TimePanel {
	ok := map[int64]float64{}
	failed := map[int64]float64{}
	for _, l := range []*ledger{r.Warm, r.Soak} {
		for k, n := range l.okBySlot {
			ok[k] += float64(n)
		}
		for _, x := range l.failures {
			failed[slot(x.End)]++
		}
	}
	per := sampleEvery.Seconds()
	p := bench.TimePanel{Title: "calls per second"}
	for _, m := range []struct {
		name string
		n    map[int64]float64
	}{{"succeeded (Go load)", ok}, {"failed (all clients)", failed}} {
		s := bench.TimeSeries{Name: m.name}
		first, last := slot(r.Begin), slot(r.End)
		for k := first; k <= last; k++ {
			s.At = append(s.At, since(time.Unix(k*int64(per), 0)))
			s.V = append(s.V, m.n[k]/per)
		}
		p.Series = append(p.Series, s)
	}
	return p
}

// markdown writes the report.
func (r *report) markdown(w io.Writer, chart string) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	ok, failed := r.calls()
	passed := !slices.ContainsFunc(r.Checks, func(c Check) bool { return !c.OK })
	verdict := "**every check passed**"
	if !passed {
		verdict = "**some checks failed** (marked ✗)"
	}
	p("# Soak: pyro-dispatch under load and faults\n\n")
	p("Written by `make soak SOAK=%v` (`bench/cmd/soak`) on %s at `%s`: %v of load and faults after a %v warm-up, on a machine with %s at the start (%s at the end; the last panel of the chart has it all along). %d calls, %d of them failed, %d faults: %s.\n\n",
		r.Opt.duration, r.Begin.Format("2006-01-02 15:04 MST"), r.Version, r.SoakEnd.Sub(r.SoakStart).Round(time.Second), r.Opt.warmup,
		r.Machine, r.MachineEnd, ok+failed, failed, len(r.Faults), verdict)
	p("| check | | |\n| --- | --- | --- |\n")
	for _, c := range r.Checks {
		mark := "✓"
		if !c.OK {
			mark = "✗"
		}
		p("| %s | %s | %s |\n", c.Name, mark, mdCell(c.Detail))
	}

	p("\n## What ran\n\n")
	p("- **The dispatcher**: the built binary, `pyro-dispatch serve --config` (the configuration is at the end), with six listeners: `session`, `pooled` (`max_open` %d, `wait_timeout` %v) and `pipelined` (`max_open` %d, `pipeline` %d), each also as `-hmac` (the clients' HMAC key checked, the daemons' signed). Its admin listener gives `/metrics` and the goroutine dump (`/debug/pprof/goroutine`); RSS and file descriptors come from `/proc/PID`.\n",
		pooledMaxOpen, poolWait, pipelinedMaxOpen, pipelinedDepth)
	p("- **Backend groups of two members**: `go` (two `pyro-dispatch echo` daemons, object `echo`; reloads add a third, `go-c`), `py` and `pyhmac` (two Python processes, each a real Pyro4 daemon and an HMAC one: `interop/testdata/soak_daemon.py`), with health checks (not for `pyhmac`: they are unsigned) and passive ejection. Plain listeners route `echo` to `go` and `soak.*` (and `Pyro.Daemon`, for item streams) to `py`; HMAC listeners route to `pyhmac`.\n")
	p("- **The load**, every call with a payload unique to its client and call, every reply compared with its request: the Go load generator (`bench.Run` with `Unique`: a tag of the stream, connection and call at the start of x and every KiB), and real Pyro4 clients (`interop/testdata/soak_client.py`, one JSON line per failure and a summary). The `probe` streams' successes measure recovery.\n\n")
	p("| client | path | what | calls ok | failed: refused / closed / other |\n| --- | --- | --- | ---: | --- |\n")
	for _, name := range r.Soak.order {
		s := r.Soak.sources[name]
		what := s.What
		if len(s.Ops) > 0 {
			var ops []string
			for _, op := range slices.Sorted(maps.Keys(s.Ops)) {
				ops = append(ops, fmt.Sprintf("%s %d", op, s.Ops[op]))
			}
			what += " (ok: " + strings.Join(ops, ", ") + ")"
		}
		p("| `%s` | %s | %s | %d | %d / %d / %d |\n", name, s.Path, mdCell(what), s.OK, s.Failed[CauseRefused], s.Failed[CauseClosed],
			s.Failed[CauseWrong]+s.Failed[CauseTimeout]+s.Failed[CauseOther])
	}

	p("\n## Faults and the failures they explain\n\n")
	p("A failure is explained by a fault when its call overlaps the fault (from its start to %v after its end), goes over a path the fault disturbs (a listener and group), and failed in a way that fault may cause: a backend lost (killed) may close the connections of the calls it had or get calls refused (`pyro-dispatch: …`) while no member can take them; an exhausted pool may get calls refused; no other fault may fail any call but the faulty client's own. Recovery: the first call of a probe stream on each disturbed path that started after the fault's end, measured to its success.\n\n", recoveryBound)
	p("| fault | what it does | injected | failures explained: refused / closed | worst recovery | problems |\n| --- | --- | ---: | --- | ---: | ---: |\n")
	for _, k := range faultKinds {
		n, problems := 0, 0
		var worst time.Duration = -1
		for _, f := range r.Faults {
			if kindIndex(f.Kind) != kindIndex(k.name) {
				continue
			}
			n++
			if f.Problem != "" {
				problems++
			}
			for _, rc := range r.Recoveries {
				if rc.Fault == f.Seq && rc.Overlap == 0 {
					worst = max(worst, rc.After)
				}
			}
		}
		var refused, closed int
		for _, x := range r.Soak.failures {
			if f := r.fault(x.Fault); f != nil && kindIndex(f.Kind) == kindIndex(k.name) {
				if x.Cause == CauseRefused {
					refused++
				} else {
					closed++
				}
			}
		}
		rec := "—"
		if worst >= 0 {
			rec = worst.Round(time.Millisecond).String()
		}
		p("| `%s` | %s | %d | %d / %d | %s | %d |\n", k.name, k.what, n, refused, closed, rec, problems)
	}

	p("\n### Failures by cause\n\n| cause | failed calls | explained by a fault | unexplained |\n| --- | ---: | ---: | ---: |\n")
	for _, c := range causes {
		n, _ := r.count(func(x *Failure) bool { return x.Cause == c })
		u, _ := r.count(func(x *Failure) bool { return x.Cause == c && x.Fault == 0 })
		p("| %s | %d | %d | %d |\n", c, n, n-u, u)
	}
	var un []*Failure
	for _, x := range r.failures() {
		if x.Fault == 0 {
			un = append(un, x)
		}
	}
	if len(un) > 0 {
		p("\nUnexplained failures (the first %d of %d; times from the start of the soak):\n\n", min(len(un), 20), len(un))
		for _, x := range un[:min(len(un), 20)] {
			p("- %s\n", mdCell(r.describe(x)))
		}
	}
	reasons := map[string]int{}
	for _, x := range r.failures() {
		reasons[string(x.Cause)+": "+normalize(x.Reason)]++
	}
	p("\nThe reasons the clients saw, by how often (addresses and numbers elided):\n\n| failed calls | cause: reason |\n| ---: | --- |\n")
	keys := slices.SortedFunc(maps.Keys(reasons), func(a, b string) int { return cmp.Or(cmp.Compare(reasons[b], reasons[a]), strings.Compare(a, b)) })
	for _, k := range keys[:min(len(keys), 25)] {
		p("| %d | %s |\n", reasons[k], mdCell(k))
	}

	p("\n### Recovery\n\n")
	var rs []Recovery
	overlapped := 0
	for _, rc := range r.Recoveries {
		if rc.Overlap != 0 {
			overlapped++
		} else if rc.After >= 0 {
			rs = append(rs, rc)
		}
	}
	slices.SortFunc(rs, func(a, b Recovery) int { return cmp.Compare(b.After, a.After) })
	p("%d recoveries measured: a fault × a path with a probe (the HMAC paths have none: their clients are the Python ones); %d more overlapped a later fault that held calls on their path (a backend killed, stalled or its pool exhausted, a client not reading), whose own recovery then counts. The slowest:\n\n| fault | kind | path | from its end to a success |\n| ---: | --- | --- | ---: |\n", len(rs), overlapped)
	for _, rc := range rs[:min(len(rs), 10)] {
		p("| %d | %s | %s | %v |\n", rc.Fault, kindOf(r.fault(rc.Fault)), rc.Path, rc.After.Round(time.Millisecond))
	}
	var worstBack time.Duration
	var worstX *Failure
	for x, d := range r.backDelay {
		if d > worstBack {
			worstBack, worstX = d, x
		}
	}
	if worstX != nil {
		p("\nEvery client that failed came back: the longest from a fault's end to that client's next success was %v (%s, whose calls come at its own pace).\n", worstBack.Round(time.Millisecond), worstX.Client)
	}

	p("\n## Resources\n\n![RSS, goroutines, file descriptors, client connections and calls over the run](%s)\n\n", chart)
	p("The baseline is the idle dispatcher after the warm-up (no client connected, every pool and handshake the load needs made; medians of 3 samples a second apart); the end is the same %v after the load stopped.\n\n", r.Leak.Settle.Round(time.Second))
	peak := Sample{}
	for _, s := range r.Samples {
		peak.RSS, peak.FDs, peak.Goroutines, peak.Clients = max(peak.RSS, s.RSS), max(peak.FDs, s.FDs), max(peak.Goroutines, s.Goroutines), max(peak.Clients, s.Clients)
	}
	p("| | baseline | peak | end | end / baseline |\n| --- | ---: | ---: | ---: | ---: |\n")
	p("| RSS | %s | %s | %s | %.2f |\n", sizeText(r.Leak.Base.RSS), sizeText(peak.RSS), sizeText(r.Leak.Final.RSS), ratio(r.Leak.Final.RSS, r.Leak.Base.RSS))
	p("| goroutines | %d | %d | %d | %.2f |\n", r.Leak.Base.Goroutines, peak.Goroutines, r.Leak.Final.Goroutines, ratio(int64(r.Leak.Final.Goroutines), int64(r.Leak.Base.Goroutines)))
	p("| file descriptors | %d | %d | %d | %.2f |\n", r.Leak.Base.FDs, peak.FDs, r.Leak.Final.FDs, ratio(int64(r.Leak.Final.FDs), int64(r.Leak.Base.FDs)))
	p("| client connections | %d | %d | %d | |\n", r.Leak.Base.Clients, peak.Clients, r.Leak.Final.Clients)
	p("\nGoroutine dump at the end (`/debug/pprof/goroutine?debug=2`): %d goroutines, %d serving a client (`%s`), %d reading a pipelined upstream connection (`%s`) for the %d such connections open, %d keeping a pool (`%s`) for the %d pools (a pooled handshake on a member; %d at the baseline: a handshake or member the warm-up had not used makes one more).",
		r.Leak.Final.Dump.Total, r.Leak.Final.Dump.Sessions, sessionFunc, r.Leak.Final.Dump.MuxReaders, muxReaderFunc, r.Leak.Final.PipelinedConns,
		r.Leak.Final.Dump.Upkeeps, upkeepFunc, r.Leak.Final.Pools, r.Leak.Base.Pools)
	if len(r.Leak.Grown) == 0 {
		p(" No kind of goroutine is more numerous than at the baseline.\n")
	} else {
		p(" More numerous than at the baseline:\n\n| goroutine (innermost function of the module ← created by) | baseline | end |\n| --- | ---: | ---: |\n")
		for _, g := range r.Leak.Grown {
			p("| `%s` | %d | %d |\n", g.Sig, g.Base, g.Final)
		}
	}

	p("\n## The dispatcher's log\n\nWarnings and errors by message (info lines not counted):\n\n| level | message | lines |\n| --- | --- | ---: |\n")
	for _, c := range r.LogCounts[:min(len(r.LogCounts), 30)] {
		p("| %s | %s | %d |\n", c.Level, mdCell(c.Msg), c.N)
	}

	p("\n## How to run it\n\n```\nmake soak SOAK=30m        # bench/cmd/soak: builds, installs Pyro4 if missing, writes bench/SOAK.md and bench/charts/soak.svg\n```\n\n")
	p("Seed %d (`--seed`; the timing differs anyway). The run's work directory had the configuration, the logs of every process and the fault log `faults.jsonl` (one JSON object a fault).\n", r.Opt.seed)
	p("\n<details><summary>Fault log: %d faults (times from the start of the soak)</summary>\n\n| # | at | kind | target | lasted | what happened |\n| ---: | ---: | --- | --- | ---: | --- |\n", len(r.Faults))
	for _, f := range r.Faults {
		what := f.Detail
		if r := []rune(what); len(r) > 120 {
			what = string(r[:120]) + "…"
		}
		if f.Problem != "" {
			what += " — **problem**: " + f.Problem
		}
		p("| %d | %s | %s | %s | %v | %s |\n", f.Seq, r.at(f.Start), f.Kind, f.Target, f.End.Sub(f.Start).Round(time.Millisecond), mdCell(what))
	}
	p("\n</details>\n\n<details><summary>The configuration (variant 0; reloads switch between it and two others)</summary>\n\n```yaml\n%s```\n\n</details>\n", r.Config)
}

func ratio(a, b int64) float64 { return float64(a) / float64(max(b, 1)) }

// mdCell makes s fit in a markdown table cell.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// normalize elides what differs between failures of one kind: addresses, numbers, tags.
func normalize(reason string) string {
	var b strings.Builder
	digits := false
	for _, c := range reason[:min(len(reason), 160)] {
		if c >= '0' && c <= '9' {
			if !digits {
				b.WriteByte('N')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(c)
	}
	return b.String()
}
