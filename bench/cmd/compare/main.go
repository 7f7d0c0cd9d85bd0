// Command compare writes bench/RESULTS.md from the raw results of a comparison run
// (bench/compare.sh, `make bench`): the JSON of every `pyro-dispatch bench` workload and
// of bench/python/load.py, the machine facts and the commands that were run. It also
// draws the chart of the Python workload, which the Python load generator cannot.
//
//	compare --dir RUNDIR --out bench/RESULTS.md --charts bench/charts [--root DIR] [--elapsed SECONDS]
//
// RUNDIR holds machine.txt and setup.txt (NAME<TAB>VALUE lines), workloads.txt
// (ID<TAB>GROUP<TAB>TITLE<TAB>CHART<TAB>COMMAND lines), ID.json per workload,
// python-raw.json, the pyro-dispatch configs of the replicas workload
// (replicas-session.yaml, replicas-pipelined.yaml), and idle-memory.txt: "# COMMAND",
// then the output of the memory benchmark of pooled mode (go test -bench).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
)

func main() {
	var o options
	flag.StringVar(&o.dir, "dir", "", "run directory with the raw results")
	flag.StringVar(&o.out, "out", "bench/RESULTS.md", "Markdown report to write")
	flag.StringVar(&o.charts, "charts", "bench/charts", "chart directory (the Python chart is drawn here)")
	flag.StringVar(&o.root, "root", "", "repository root, shortened to . in the commands shown")
	flag.IntVar(&o.elapsed, "elapsed", 0, "seconds the whole run took so far")
	flag.Parse()
	if o.dir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: compare --dir RUNDIR [--out FILE] [--charts DIR] [--root DIR] [--elapsed S]")
		os.Exit(2)
	}
	if err := o.run(); err != nil {
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	dir, out, charts, root string
	elapsed                int
}

// Target names as bench/compare.sh gives them.
const (
	direct    = "direct"
	pd        = "pyro-dispatch"
	pipelined = "pyro-dispatch-pipelined"
	procs1    = "pyro-dispatch-procs1"
	adminOn   = "pyro-dispatch-admin"
	haproxy   = "haproxy"
	nginx     = "nginx"
	pydisp    = "python-dispatcher"
	// spliceRelay is bench/cmd/splicerelay, a plain TCP relay: the physical limit of the
	// 64 MiB workloads, not a judged configuration.
	spliceRelay = "splice-relay"
	// echoFloorC is bench/floor/echofloor.c, a C echo that makes only the system calls a
	// proxy's client side needs per call: the floor of proxy CPU per call in the small
	// workloads at 64 connections, not a judged configuration; echoFloorGo is its Go
	// twin, bench/cmd/echofloor.
	echoFloorC  = "echo-floor-c"
	echoFloorGo = "echo-floor-go"
)

// replicas is the id (and group) of the workload with three echo daemons behind
// pyro-dispatch (balance: least_inflight) and HAProxy (balance leastconn); it has no
// direct target, its reference is HAProxy.
const replicas = "replicas"

// replicaGoal is the calls/s target over HAProxy leastconn's in the replicas
// workload: session mode at least level with it, pipelined pooled mode 1.2× ahead.
var replicaGoal = map[string]float64{pd: 1.0, pipelined: 1.2}

// replicaConfigs are the pyro-dispatch configs of the replicas workload that
// bench/compare.sh writes into the run directory, shown in the report.
var replicaConfigs = []string{"replicas-session.yaml", "replicas-pipelined.yaml"}

// --- the JSON of `pyro-dispatch bench --json` ---------------------------------------

type report struct {
	Start       time.Time `json:"start"`
	Elapsed     float64   `json:"elapsed_s"`
	Description string    `json:"description"`
	Config      struct {
		Conns   int     `json:"conns"`
		Payload int     `json:"payload_bytes"`
		Rounds  int     `json:"rounds"`
		Dur     float64 `json:"duration_s"`
	} `json:"config"`
	Targets []struct {
		Name   string      `json:"name"`
		Addr   string      `json:"addr"`
		Median stats       `json:"median"`
		Rounds []roundJSON `json:"rounds"`
	} `json:"targets"`
}

type stats struct {
	Calls       int64             `json:"calls"`
	Bytes       int64             `json:"bytes"`
	Errors      int64             `json:"errors"`
	ErrorsBy    map[string]int64  `json:"errors_by_kind"`
	Samples     map[string]string `json:"error_samples"`
	CallsPerSec float64           `json:"calls_per_sec"`
	MBPerSec    float64           `json:"mb_per_sec"`
	CPUPerCall  *float64          `json:"cpu_us_per_call"`
	Latency     struct {
		P50  float64 `json:"p50"`
		P99  float64 `json:"p99"`
		Mean float64 `json:"mean"`
	} `json:"latency_us"`
}

type roundJSON struct {
	Round int `json:"round"`
	stats
}

// --- the model of the report --------------------------------------------------------

type workload struct {
	id, group, title, chart, cmd string
	desc                         string
	conns, payload, rounds       int
	targets                      []*target
}

type target struct {
	name, addr string
	med        stats
	rounds     []roundJSON
}

func (w *workload) get(name string) *target {
	for _, t := range w.targets {
		if t.name == name {
			return t
		}
	}
	return nil
}

func (o *options) run() error {
	machine, err := readPairs(filepath.Join(o.dir, "machine.txt"))
	if err != nil {
		return err
	}
	setup, err := readPairs(filepath.Join(o.dir, "setup.txt"))
	if err != nil {
		return err
	}
	lines, err := readLines(filepath.Join(o.dir, "workloads.txt"))
	if err != nil {
		return err
	}
	var ws []*workload
	for _, l := range lines {
		f := strings.SplitN(l, "\t", 5)
		if len(f) != 5 {
			return fmt.Errorf("workloads.txt: bad line %q", l)
		}
		w := &workload{id: f[0], group: f[1], title: f[2], chart: f[3], cmd: f[4]}
		file := filepath.Join(o.dir, w.id+".json")
		if w.group == "python" {
			file = filepath.Join(o.dir, "python.json")
			if err := o.pythonResult(filepath.Join(o.dir, "python-raw.json"), file, w.chart); err != nil {
				fmt.Fprintf(os.Stderr, "compare: python workload: %v\n", err)
				continue
			}
		}
		if err := w.load(file); err != nil {
			fmt.Fprintf(os.Stderr, "compare: %s: %v\n", w.id, err)
			continue
		}
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		return errors.New("no workload has results")
	}
	idle, err := readIdleMemory(filepath.Join(o.dir, idleFile))
	if err != nil {
		fmt.Fprintf(os.Stderr, "compare: memory per idle client: %v\n", err)
	}
	var b strings.Builder
	o.write(&b, machine, setup, ws, idle)
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(o.out, []byte(b.String()), 0o644)
}

func (w *workload) load(file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	w.desc, w.conns, w.payload, w.rounds = r.Description, r.Config.Conns, r.Config.Payload, r.Config.Rounds
	for _, t := range r.Targets {
		w.targets = append(w.targets, &target{name: t.Name, addr: t.Addr, med: t.Median, rounds: t.Rounds})
	}
	return nil
}

// --- the Python workload -----------------------------------------------------------

type pyRaw struct {
	Start       time.Time `json:"start"`
	Elapsed     float64   `json:"elapsed_s"`
	Description string    `json:"description"`
	Config      struct {
		Procs   int     `json:"procs"`
		Threads int     `json:"threads"`
		Payload int     `json:"payload_bytes"`
		Dur     float64 `json:"duration_s"`
		Warmup  float64 `json:"warmup_s"`
		Rounds  int     `json:"rounds"`
	} `json:"config"`
	Order   []bench.RoundRef `json:"order"`
	Targets []struct {
		Name       string `json:"name"`
		Addr       string `json:"addr"`
		CPUSampled bool   `json:"cpu_sampled"`
		Rounds     []struct {
			Round   int               `json:"round"`
			Start   time.Time         `json:"start"`
			Calls   int64             `json:"calls"`
			Errors  int64             `json:"errors"`
			ByKind  map[string]int64  `json:"errors_by_kind"`
			Samples map[string]string `json:"error_samples"`
			Elapsed float64           `json:"elapsed_s"`
			CPU     *float64          `json:"cpu_s"`
			Latency [][2]int64        `json:"latency_ns"`
		} `json:"rounds"`
	} `json:"targets"`
}

// pythonResult turns load.py's output into a bench.Result, to chart it and to write it
// as the JSON of `pyro-dispatch bench`.
func (o *options) pythonResult(rawFile, jsonFile, chart string) error {
	raw, err := os.ReadFile(rawFile)
	if err != nil {
		return err
	}
	var p pyRaw
	if err := json.Unmarshal(raw, &p); err != nil {
		return err
	}
	res := &bench.Result{Start: p.Start, Elapsed: time.Duration(p.Elapsed * float64(time.Second)), Order: p.Order}
	res.Config = bench.Config{Conns: p.Config.Procs * p.Config.Threads, Payload: p.Config.Payload, Rounds: p.Config.Rounds,
		Duration: time.Duration(p.Config.Dur * float64(time.Second)), Warmup: time.Duration(p.Config.Warmup * float64(time.Second)),
		Mode: bench.ModeBlob, Description: p.Description, CPU: map[string][]int{}}
	for _, t := range p.Targets {
		tr := &bench.TargetResult{Target: bench.Target{Name: t.Name, Addr: t.Addr}, CPUSampled: t.CPUSampled}
		res.Config.Targets = append(res.Config.Targets, tr.Target)
		for _, r := range t.Rounds {
			h := bench.NewHistogram()
			for _, vc := range r.Latency {
				if err := h.RecordValues(max(vc[0], 1), vc[1]); err != nil {
					return err
				}
			}
			s := bench.Stats{Calls: r.Calls, Errors: r.Errors, ErrorsByKind: r.ByKind, ErrorSamples: r.Samples,
				Elapsed: time.Duration(r.Elapsed * float64(time.Second))}
			if t.CPUSampled {
				s.CPU, s.CPUPerCall = -1, -1
				if r.CPU != nil {
					s.CPU = time.Duration(*r.CPU * float64(time.Second))
				}
			}
			tr.Rounds = append(tr.Rounds, bench.NewRoundResult(r.Round, r.Start, s, h))
		}
		res.Targets = append(res.Targets, tr)
	}
	res.Summarize()
	if err := writeFile(chart, res.WriteChart); err != nil {
		return err
	}
	if err := writeFile(strings.TrimSuffix(jsonFile, ".json")+".txt", res.WriteTable); err != nil {
		return err
	}
	return writeFile(jsonFile, res.WriteJSON)
}

func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// --- input helpers ------------------------------------------------------------------

func readLines(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimRight(sc.Text(), "\r"); l != "" {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// pairs are NAME<TAB>VALUE lines, in file order.
type pairs [][2]string

func (p pairs) get(k string) string {
	for _, kv := range p {
		if kv[0] == k {
			return kv[1]
		}
	}
	return ""
}

func readPairs(name string) (pairs, error) {
	lines, err := readLines(name)
	if err != nil {
		return nil, err
	}
	var out pairs
	for _, l := range lines {
		k, v, _ := strings.Cut(l, "\t")
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// --- numbers ------------------------------------------------------------------------

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func fmtRatio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "×"
}

// us formats microseconds as a latency.
func us(v float64) string { return bench.FormatLatency(time.Duration(v * 1e3)) }

// usSigned formats a latency difference.
func usSigned(v float64) string {
	if v < 0 {
		return "−" + us(-v)
	}
	return "+" + us(v)
}

func (t *target) cpu() string {
	if t.med.CPUPerCall == nil {
		return "–"
	}
	return us(*t.med.CPUPerCall)
}

// spread returns the min and max over rounds of f.
func (t *target) spread(f func(stats) float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, r := range t.rounds {
		if v := f(r.stats); !math.IsNaN(v) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	return lo, hi
}

// pairRatios returns the ratio of a's to b's f in each round (rounds of one index ran
// next to each other) where both have one, sorted.
func pairRatios(a, b *target, f func(stats) float64) []float64 {
	var out []float64
	for i := 0; i < len(a.rounds) && i < len(b.rounds); i++ {
		if n, d := f(a.rounds[i].stats), f(b.rounds[i].stats); d > 0 && !math.IsNaN(n) {
			out = append(out, n/d)
		}
	}
	sort.Float64s(out)
	return out
}

func fmtRange(v []float64, format func(float64) string) string {
	switch len(v) {
	case 0:
		return "–"
	case 1:
		return format(v[0])
	}
	return format(v[0]) + "–" + format(v[len(v)-1])
}

func cps(s stats) float64 { return s.CallsPerSec }
func mbs(s stats) float64 { return s.MBPerSec }

// littleMBs is the closed-loop throughput that the mean latency implies (Little's law:
// conns calls are in flight at all times), in MB/s: a cross-check of MB/s that does not
// depend on where the measured window cuts the few long calls of a round.
func (w *workload) littleMBs(t *target) float64 {
	if t.med.Latency.Mean <= 0 || t.med.Calls == 0 {
		return 0
	}
	perCall := float64(t.med.Bytes) / float64(t.med.Calls)
	return float64(w.conns) / (t.med.Latency.Mean / 1e6) * perCall / 1e6
}

// --- the report ---------------------------------------------------------------------

var displayName = map[string]string{
	direct: "direct", pd: "pyro-dispatch", pipelined: "pyro-dispatch (pipelined)",
	procs1: "pyro-dispatch (--procs 1)", adminOn: "pyro-dispatch (admin listener, metrics on)", haproxy: "HAProxy", nginx: "nginx",
	pydisp: "Python SerializedBlob dispatcher", spliceRelay: "plain Go splice relay (no Pyro4)",
	echoFloorC: "C echo floor (no Pyro4, client side only)", echoFloorGo: "Go echo floor (the same in Go)",
}

func name(n string) string {
	if d, ok := displayName[n]; ok {
		return d
	}
	return n
}

func (o *options) rel(p string) string {
	if r, err := filepath.Rel(filepath.Dir(o.out), p); err == nil {
		return filepath.ToSlash(r)
	}
	return p
}

func (o *options) shortCmd(c string) string {
	c = strings.ReplaceAll(c, o.dir, "$TMP")
	if o.root != "" {
		c = strings.ReplaceAll(c, o.root+"/", "")
	}
	return c
}

func (o *options) write(b *strings.Builder, machine, setup pairs, ws []*workload, idle idleMemory) {
	byID := map[string]*workload{}
	for _, w := range ws {
		byID[w.id] = w
	}
	fmt.Fprintf(b, "# pyro-dispatch against direct, HAProxy and nginx\n\n")
	fmt.Fprintf(b, "Generated by `make bench` (`bench/compare.sh`, report by `bench/cmd/compare`) on %s; ", machine.get("date"))
	if o.elapsed > 0 {
		fmt.Fprintf(b, "the whole run took %d min %02d s on this machine.", o.elapsed/60, o.elapsed%60)
	}
	b.WriteString(" Do not edit: run `make bench` again.\n\n")
	if machine.get("quick") == "1" {
		b.WriteString("> **Smoke run** (`BENCH_QUICK=1`): one short round per target; the numbers mean little.\n\n")
	}
	b.WriteString("Everything runs on 127.0.0.1 on one machine: the load generator, the Go echo daemon (`pyro-dispatch echo`), and " +
		"the proxy under test all share its cores, so a closed loop measures the whole system's saturation point, where " +
		"the proxy's CPU is taken from the load generator and the backend. Rounds of all targets of a workload are " +
		"interleaved (A B C D A B C D …); each figure is the **median over rounds**, with the min–max over rounds beside it.\n\n")

	o.writeMachine(b, machine)
	o.writeTargets(b, machine, byID, idle)
	o.writeAdmin(b, ws)
	o.writeReference(b, byID)

	b.WriteString("## Results by workload\n\n")
	b.WriteString("Columns: median over rounds; *min–max* over rounds; **CPU/call** is the CPU time (user + system, from " +
		"`/proc/PID/stat`, in 10 ms ticks) of the proxy process (nginx: master and workers) during each round's measured time, " +
		"divided by the calls of the round — for `direct` there is no proxy; *vs direct* and *vs HAProxy* are ratios of " +
		"medians (calls/s; MB/s for the large calls); *p50 − direct* is the latency a target adds at the median. " +
		"The 3-replica workload has no direct target: its reference is HAProxy with `balance leastconn` over the same " +
		"three echo daemons.\n\n")
	for _, group := range []string{"small", replicas, "large", "python"} {
		for _, w := range ws {
			if w.group == group {
				o.writeWorkload(b, w)
			}
		}
	}
	o.writeMethod(b, setup, ws, idle)
}

func (o *options) writeMachine(b *strings.Builder, m pairs) {
	b.WriteString("## Machine\n\n| | |\n| --- | --- |\n")
	rows := [][2]string{
		{"CPUs (`nproc`)", m.get("nproc")}, {"CPU model", m.get("cpu")}, {"memory", m.get("memory")},
		{"kernel", m.get("kernel")}, {"Go", m.get("go")}, {"HAProxy", m.get("haproxy")}, {"nginx", m.get("nginx")},
		{"Python", m.get("python")},
		{"load average (1, 5, 15 min) when `make bench` started", m.get("load_start")},
		{"load average when the measurements started", m.get("load_bench_start")},
		{"load average at the end", m.get("load_end")},
		{"CPU time stolen by the hypervisor during the measurements (`/proc/stat` steal)", steal(m)},
	}
	for _, r := range rows {
		if r[1] != "" {
			fmt.Fprintf(b, "| %s | %s |\n", r[0], r[1])
		}
	}
	b.WriteString("\nThe machine is shared with other jobs. The load average counts the benchmark's own processes too " +
		"(a loaded round keeps the load generator, the proxy and the daemon runnable on the two CPUs); the stolen " +
		"time is what other virtual machines on the same host took from this one's CPUs while the measurements ran. " +
		"Both widen the min–max spreads; the interleaved rounds spread that disturbance over all targets alike.\n\n")
}

// steal is the share of the CPU time that the hypervisor gave to others between the
// two /proc/stat "cpu" lines of the run ("stat_bench_start", "stat_end"), or "" when
// either is missing or unreadable.
func steal(m pairs) string {
	a, b := cpuTimes(m.get("stat_bench_start")), cpuTimes(m.get("stat_end"))
	if len(a) < 8 || len(b) < 8 {
		return ""
	}
	var total float64
	for i := range 8 { // user nice system idle iowait irq softirq steal; guest is in user
		total += b[i] - a[i]
	}
	if total <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f %%", 100*(b[7]-a[7])/total)
}

// cpuTimes parses the "cpu" line of /proc/stat into its counters.
func cpuTimes(line string) []float64 {
	f := strings.Fields(line)
	if len(f) < 2 || f[0] != "cpu" {
		return nil
	}
	v := make([]float64, 0, len(f)-1)
	for _, s := range f[1:] {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil
		}
		v = append(v, x)
	}
	return v
}

// check is one target of the issue, met or missed.
type check struct {
	goal, workload, measured string
	met                      bool
	ok                       bool // measured at all
	split                    bool // some rounds on each side of the goal
	none                     bool // not a goal of this configuration
}

// straddles tells whether sorted per-round values lie on both sides of goal.
func straddles(v []float64, goal float64) bool {
	return len(v) > 1 && v[0] < goal && v[len(v)-1] > goal
}

// adminGoal is the least share of its calls/s pyro-dispatch keeps with the admin listener
// and its metrics on.
const adminGoal = 0.97

// writeAdmin compares pyro-dispatch with its admin listener and metrics on to the same
// without, on every small workload of the run.
func (o *options) writeAdmin(b *strings.Builder, ws []*workload) {
	var rows []string
	worst := math.Inf(1)
	for _, w := range ws {
		a, p := w.get(adminOn), w.get(pd)
		if w.group != "small" || a == nil || p == nil {
			continue
		}
		r := ratio(a.med.CallsPerSec, p.med.CallsPerSec)
		worst = math.Min(worst, r)
		rows = append(rows, fmt.Sprintf("| %s | %.0f | %.0f | %s | %s | %s / %s |\n", w.title, p.med.CallsPerSec, a.med.CallsPerSec,
			fmtRatio(r), fmtRange(pairRatios(a, p, cps), fmtRatio), p.cpu(), a.cpu()))
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("## The admin listener's cost\n\n")
	fmt.Fprintf(b, "pyro-dispatch in session mode without and with `--admin` (every call counted by outcome and timed in "+
		"the Prometheus histogram, the session's call noted for the API), same run, rounds interleaved. Goal: at least "+
		"%.0f%% of the calls/s; worst median ratio here **%s** (%s).\n\n", adminGoal*100, fmtRatio(worst),
		map[bool]string{true: "met", false: "missed"}[worst >= adminGoal])
	b.WriteString("| workload | calls/s without | calls/s with | ratio | per round | CPU/call without / with |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		b.WriteString(r)
	}
	b.WriteString("\n")
}

// judged are the pyro-dispatch configurations whose targets the report judges: session
// mode (the transparent default) and pooled mode with pipelining.
var judged = []string{pd, pipelined}

func (o *options) writeTargets(b *strings.Builder, machine pairs, byID map[string]*workload, idle idleMemory) {
	rows := make([][]check, len(judged))
	met, goals := make([]int, len(judged)), make([]int, len(judged))
	for i, cfg := range judged {
		rows[i] = targetChecks(byID, idle, cfg)
		for _, c := range rows[i] {
			if !c.none {
				goals[i]++
			}
			if c.met {
				met[i]++
			}
		}
	}
	fmt.Fprintf(b, "## Targets: %d of %d met in session mode, %d of %d in pipelined pooled mode\n\n", met[0], goals[0], met[1], goals[1])
	b.WriteString("The targets of the issue, judged for pyro-dispatch in session mode (the transparent default: one backend " +
		"connection per client, so the same four socket operations per call as HAProxy) and in pooled mode with " +
		"pipelining (`--mode pooled --pool-pipeline 16 --pool-max-open 4`: calls of different clients share up to 4 backend " +
		"connections, up to 16 in flight on each, several requests per write; see README), on the ratio of medians of this run; *per round* gives " +
		"the same ratio for each round, whose targets ran next to each other, and *rounds disagree* marks a verdict " +
		"that some rounds contradict: on this shared machine such a verdict is not settled by this run.\n\n")
	if l0, l1 := machine.get("load_bench_start"), machine.get("load_end"); l0 != "" && l1 != "" {
		fmt.Fprintf(b, "Load average (1, 5, 15 min) on %s CPUs: %s when the measurements started, %s at the end.",
			machine.get("nproc"), l0, l1)
		if st := steal(machine); st != "" {
			fmt.Fprintf(b, " CPU time stolen by the hypervisor during the measurements: %s.", st)
		}
		b.WriteString("\n\n")
	}
	b.WriteString("| workload | target | session mode | | pipelined pooled mode | |\n| --- | --- | --- | --- | --- | --- |\n")
	for k := range rows[0] {
		c := rows[0][k]
		fmt.Fprintf(b, "| %s | %s |", c.workload, rowGoal(rows, k))
		for i := range judged {
			c := rows[i][k]
			fmt.Fprintf(b, " %s | %s |", c.measured, c.verdict())
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	b.WriteString("**What remains and why** (profiles and what was tried: [bench/README.md](README.md), " +
		"\"Session mode against HAProxy, side by side\", \"System calls the scheduler does not see\", \"Where session " +
		"mode's last 12 % goes\", \"One Go scheduler per core\", \"The floor of a proxy's client side\" and \"Performance II: where each goal ends\"). On loopback nearly all of a proxy's CPU is kernel work per socket operation, " +
		"the receiver's TCP processing included, so a transparent proxy, pyro-dispatch in session mode or HAProxy, " +
		"pays for four of them per call. Session mode makes no more system calls than HAProxy (a read per write: " +
		"once a client is calm its socket is not read before each wait), as raw system calls the Go scheduler " +
		"does not see, and is switched out less often; what " +
		"it pays on top is the goroutines' parking and wake-ups around those calls, on two cores shared with the " +
		"load generator and the daemon (the Go echo floor beside the CPU goals, the C one's program in Go, shows " +
		"that cost around the same two system calls), which neither an event loop nor an io_uring relay in Go removed: measured " +
		"process by process, about half of its calls/s gap is CPU left idle (while the Go scheduler wakes its parked " +
		"threads: two one-thread processes on one port left 1–3 % idle instead of 8 %), half " +
		"the whole pipeline's CPU per call. Pipelined mode shares the backend side's operations among the " +
		"calls written together, which is what puts it past HAProxy; what is left is the client side's read and " +
		"write per call, the floor of any proxy: the C echo floor beside the CPU goals makes only those two system " +
		"calls per call and parses no more than the header, so its CPU per call is what they cost on this machine " +
		"with nothing else around them, and the Go echo floor what they cost a Go program, before any of the " +
		"backend side's work. One connection measures thread wake-ups, which this shared " +
		"machine makes noisy. A 64 MiB " +
		"call keeps three processes busy on two cores instead of two, and the proxy's share is the kernel's splice " +
		"and TCP work: the plain Go splice relay, which parses nothing and only splices, shows what that work alone " +
		"allows, and pyro-dispatch moves large payloads at about its rate (a larger splice pipe did not raise it). Python clients are CPU-bound: every µs " +
		"of proxy CPU per call is theirs, and a proxy's hop adds wake-ups to the clients too; HAProxy in front of " +
		"the same daemon, measured in the same rounds, shows what a plain TCP proxy leaves them.\n\n")
}

// rowGoal is the goal of the k-th check of every configuration: one text when they all
// share it, else each with its configuration ("…; … (pipelined)"), leaving out those
// whose check is not a goal of theirs.
func rowGoal(rows [][]check, k int) string {
	var goals, parts []string
	for i := range rows {
		if c := rows[i][k]; !c.none {
			goals = append(goals, c.goal)
			parts = append(parts, c.goal+" ("+modeName[judged[i]]+")")
		}
	}
	if len(goals) == len(rows) && len(slices.Compact(goals)) == 1 {
		return goals[0]
	}
	return strings.Join(parts, "; ")
}

// modeName names the judged configurations in the targets table.
var modeName = map[string]string{pd: "session mode", pipelined: "pipelined"}

func (c check) verdict() string {
	v := "❌ missed"
	switch {
	case c.none:
		return "– not a goal"
	case !c.ok:
		v = "– not measured"
	case c.met:
		v = "✅ met"
	}
	if c.split {
		v += " (rounds disagree)"
	}
	return v
}

// Goals of the issue that differ between the judged configurations: calls/s over
// HAProxy's with 64 connections of small calls, and the p50 added at 1 connection over
// HAProxy's.
var (
	smallGoal   = map[string]float64{pd: 1.0, pipelined: 1.5}
	latencyGoal = map[string]float64{pd: 1.0, pipelined: 0.8}
)

// cpuLimit is the proxy CPU per call (µs) a configuration may use with 64 connections
// of small calls; a configuration without one may use at most HAProxy's in the same run.
var cpuLimit = map[string]float64{pipelined: 10}

// idleGoal is the most RSS (bytes) per idle client of pooled mode, for the configuration
// judged on it; session mode keeps a backend connection per client and has no such goal.
var idleGoal = map[string]float64{pipelined: 3 << 10}

// Goals of the issue shared by the judged configurations.
const (
	largeGoal  = 1.5 // MB/s over HAProxy's, 64 MiB calls
	pythonGoal = 0.8 // calls/s over direct's, Python clients
	pydispGoal = 1.9 // calls/s over the Python SerializedBlob dispatcher's, Python clients
)

// smallPayloads are the payloads of the small workloads, as in their ids.
var smallPayloads = []string{"16", "1KiB"}

// targetChecks judges the targets for the pyro-dispatch configuration cfg; idle
// holds the runs of the memory benchmark of pooled mode.
func targetChecks(byID map[string]*workload, idle idleMemory, cfg string) []check {
	var cs []check
	for _, p := range smallPayloads {
		cs = append(cs, smallCheck(byID["small-"+p+"-c64"], cfg, p))
	}
	cs = append(cs, replicaCheck(byID[replicas], cfg))
	for _, p := range smallPayloads {
		cs = append(cs, cpuCheck(byID["small-"+p+"-c64"], cfg, p))
	}
	for _, p := range smallPayloads {
		cs = append(cs, latencyCheck(byID["small-"+p+"-c1"], cfg, p))
	}
	for _, c := range []int{1, 4} {
		cs = append(cs, largeCheck(byID[fmt.Sprintf("large-64MiB-c%d", c)], cfg, c))
	}
	cs = append(cs, pythonChecks(byID["python"], cfg)...)
	return append(cs, idleCheck(idle, cfg))
}

// notMeasured is the check of goal in workload wl before anything is measured.
func notMeasured(goal, wl string) check {
	return check{goal: goal, workload: wl, measured: "not measured"}
}

// ratioCheck completes c with a's f over b's (in unit, per round too), met when the
// ratio of medians is at least goal.
func ratioCheck(c check, a, b *target, f func(stats) float64, unit string, goal float64) check {
	r := ratio(f(a.med), f(b.med))
	per := pairRatios(a, b, f)
	c.measured = fmt.Sprintf("%s / %s %s = **%s** (per round %s)", bench.FormatCount(f(a.med)), bench.FormatCount(f(b.med)), unit,
		fmtRatio(r), fmtRange(per, fmtRatio))
	c.met, c.ok, c.split = r >= goal, true, straddles(per, goal)
	return c
}

// smallCheck judges cfg's calls/s over HAProxy's with 64 connections of small calls of
// payload p (goal: smallGoal).
func smallCheck(w *workload, cfg, p string) check {
	goal := smallGoal[cfg]
	c := notMeasured(fmt.Sprintf("calls/s ≥ %.1f × HAProxy's", goal), fmt.Sprintf("small, %s, 64 conns", label(p)))
	if w == nil || w.get(cfg) == nil || w.get(haproxy) == nil {
		return c
	}
	return ratioCheck(c, w.get(cfg), w.get(haproxy), cps, "calls/s", goal)
}

// replicaCheck judges cfg's calls/s in the replicas workload against HAProxy
// leastconn's over the same three echo daemons (goal: replicaGoal).
func replicaCheck(w *workload, cfg string) check {
	goal := replicaGoal[cfg]
	c := notMeasured(fmt.Sprintf("calls/s ≥ %.1f × HAProxy leastconn's", goal), "3 replicas, least in-flight, 16 B, 64 conns")
	if w == nil || w.get(cfg) == nil || w.get(haproxy) == nil || goal == 0 {
		return c
	}
	return ratioCheck(c, w.get(cfg), w.get(haproxy), cps, "calls/s", goal)
}

// cpuUS is the CPU per call of a round or median in µs, NaN when it was not sampled.
func cpuUS(s stats) float64 {
	if s.CPUPerCall == nil {
		return math.NaN()
	}
	return *s.CPUPerCall
}

// cpuCheck judges cfg's proxy CPU per call with 64 connections of small calls of
// payload p: at most cpuLimit[cfg], or without one at most HAProxy's in the same run.
func cpuCheck(w *workload, cfg, p string) check {
	limit, fixed := cpuLimit[cfg]
	goal := "proxy CPU per call ≤ HAProxy's (same run)"
	if fixed {
		goal = fmt.Sprintf("proxy CPU ≤ %g µs per call", limit)
	}
	c := notMeasured(goal, fmt.Sprintf("small, %s, 64 conns", label(p)))
	if w == nil || w.get(cfg) == nil || w.get(cfg).med.CPUPerCall == nil {
		return c
	}
	a, h := w.get(cfg), get(w, haproxy)
	v, hv := cpuUS(a.med), cpuUS(h.med)
	lo, hi := a.spread(cpuUS)
	if fixed {
		c.measured = fmt.Sprintf("**%s** (rounds %s–%s)", us(v), us(lo), us(hi))
		if hv > 0 {
			c.measured += "; HAProxy " + us(hv)
		}
		c.measured += floorNote(w)
		c.met, c.ok, c.split = v <= limit, true, lo < limit && hi > limit
		return c
	}
	if !(hv > 0) {
		c.measured = fmt.Sprintf("%s (rounds %s–%s); HAProxy's not measured", us(v), us(lo), us(hi)) + floorNote(w)
		return c
	}
	per := pairRatios(a, h, cpuUS)
	c.measured = fmt.Sprintf("%s / HAProxy %s = **%s** (per round %s; rounds %s–%s)", us(v), us(hv), fmtRatio(v/hv),
		fmtRange(per, fmtRatio), us(lo), us(hi)) + floorNote(w)
	c.met, c.ok, c.split = v <= hv, true, straddles(per, 1)
	return c
}

// floorNote gives the echo floors' CPU per call in w beside a CPU check: what the client
// side's read and write of a call cost at the least, before any work for the backend,
// in C and in Go.
func floorNote(w *workload) string {
	note := "; floors (client side only):"
	for i, f := range []struct{ target, lang string }{{echoFloorC, "C"}, {echoFloorGo, "Go"}} {
		if i > 0 {
			note += ","
		}
		note += " " + f.lang + " echo "
		t := w.get(f.target)
		if t == nil || t.med.CPUPerCall == nil {
			note += "not measured"
			continue
		}
		lo, hi := t.spread(cpuUS)
		note += fmt.Sprintf("%s (rounds %s–%s)", us(cpuUS(t.med)), us(lo), us(hi))
	}
	return note
}

// latencyCheck judges the p50 that cfg adds over direct at 1 connection of small calls
// of payload p against the p50 that HAProxy adds (goal: latencyGoal).
func latencyCheck(w *workload, cfg, p string) check {
	goal := latencyGoal[cfg]
	c := notMeasured(fmt.Sprintf("added p50 over direct ≤ %.1f × HAProxy's", goal), fmt.Sprintf("small, %s, 1 conn", label(p)))
	if w == nil || w.get(cfg) == nil || w.get(haproxy) == nil || w.get(direct) == nil {
		return c
	}
	d, a, h := w.get(direct), w.get(cfg), w.get(haproxy)
	addA, addH := a.med.Latency.P50-d.med.Latency.P50, h.med.Latency.P50-d.med.Latency.P50
	r := ratio(addA, addH)
	p50 := func(s stats) float64 { return s.Latency.P50 }
	// per round: (a_i − d_i) / (h_i − d_i)
	var per []float64
	for i := 0; i < len(d.rounds) && i < len(a.rounds) && i < len(h.rounds); i++ {
		if den := p50(h.rounds[i].stats) - p50(d.rounds[i].stats); den > 0 {
			per = append(per, (p50(a.rounds[i].stats)-p50(d.rounds[i].stats))/den)
		}
	}
	sort.Float64s(per)
	c.measured = fmt.Sprintf("%s, HAProxy %s over direct's %s = **%s** (per round %s)", usSigned(addA), usSigned(addH),
		us(d.med.Latency.P50), fmtRatio(r), fmtRange(per, fmtRatio))
	c.met, c.ok, c.split = addH > 0 && r <= goal, true, straddles(per, goal)
	return c
}

// largeCheck judges cfg's MB/s over HAProxy's with conns connections of 64 MiB calls
// (goal: largeGoal), and gives the plain splice relay's MB/s beside: the physical limit.
func largeCheck(w *workload, cfg string, conns int) check {
	c := notMeasured(fmt.Sprintf("MB/s ≥ %.1f × HAProxy's", largeGoal), "64 MiB, "+plural(conns))
	if w == nil || w.get(cfg) == nil || w.get(haproxy) == nil {
		return c
	}
	a, h := w.get(cfg), w.get(haproxy)
	c = ratioCheck(c, a, h, mbs, "MB/s", largeGoal)
	c.measured += "; from mean latency " + fmtRatio(ratio(w.littleMBs(a), w.littleMBs(h)))
	if s := w.get(spliceRelay); s != nil && s.med.MBPerSec > 0 {
		c.measured += fmt.Sprintf("; physical limit (plain Go splice relay) %s MB/s: %s of it", bench.FormatCount(s.med.MBPerSec),
			fmtRatio(ratio(a.med.MBPerSec, s.med.MBPerSec)))
	} else {
		c.measured += "; physical limit (plain Go splice relay) not measured"
	}
	return c
}

// plural is "1 conn" or "N conns".
func plural(conns int) string {
	if conns == 1 {
		return "1 conn"
	}
	return fmt.Sprintf("%d conns", conns)
}

// pythonChecks judges cfg's calls/s with Python clients over direct's (goal: pythonGoal),
// with HAProxy's over direct's beside it (what a plain TCP proxy reaches with the same
// clients), and over the Python SerializedBlob dispatcher's (goal: pydispGoal).
func pythonChecks(w *workload, cfg string) []check {
	const wl = "Python clients"
	cd := notMeasured(fmt.Sprintf("calls/s ≥ %.1f × direct", pythonGoal), wl)
	cp := notMeasured(fmt.Sprintf("calls/s ≥ %.1f × Python SerializedBlob dispatcher", pydispGoal), wl)
	if w == nil || w.get(cfg) == nil || w.get(direct) == nil || w.get(pydisp) == nil {
		return []check{cd, cp}
	}
	a, d := w.get(cfg), w.get(direct)
	cd = ratioCheck(cd, a, d, cps, "calls/s", pythonGoal)
	if h := w.get(haproxy); h != nil {
		cd.measured += fmt.Sprintf("; HAProxy %s calls/s = %s of direct (per round %s)", bench.FormatCount(cps(h.med)),
			fmtRatio(ratio(cps(h.med), cps(d.med))), fmtRange(pairRatios(h, d, cps), fmtRatio))
	} else {
		cd.measured += "; HAProxy not measured"
	}
	return []check{cd, ratioCheck(cp, a, w.get(pydisp), cps, "calls/s", pydispGoal)}
}

// idleFile is the output of the memory benchmark of pooled mode in the run directory:
// "# COMMAND" on its first line, then what the command printed.
const idleFile = "idle-memory.txt"

// idleBench is the name of that benchmark (interop/scale_test.go), idleClients the idle
// clients it opens.
const (
	idleBench   = "BenchmarkPooledIdleMemory"
	idleClients = "10,000"
)

// idleMemory is what the memory benchmark of pooled mode printed.
type idleMemory struct {
	cmd    string    // the command that ran it
	failed bool      // go test reported a failure
	rss    []float64 // rss-B/idle-client of each run, parked clients
	rssOff []float64 // rss-unparked-B/idle-client of each run, before they parked
}

// readIdleMemory reads the memory benchmark's output (idleFile).
func readIdleMemory(name string) (idleMemory, error) {
	lines, err := readLines(name)
	if err != nil {
		return idleMemory{}, err
	}
	return parseIdleMemory(lines), nil
}

// parseIdleMemory takes the command and the benchmark lines of go test's output:
// "BenchmarkPooledIdleMemory-2 1 823924689 ns/op 12137 handshakes/s 4235 rss-B/idle-client …".
func parseIdleMemory(lines []string) idleMemory {
	var m idleMemory
	for _, l := range lines {
		if cmd, ok := strings.CutPrefix(l, "# "); ok && m.cmd == "" {
			m.cmd = cmd
			continue
		}
		if strings.HasPrefix(l, "FAIL") || strings.HasPrefix(l, "--- FAIL") {
			m.failed = true
		}
		f := strings.Fields(l)
		if len(f) < 2 || (f[0] != idleBench && !strings.HasPrefix(f[0], idleBench+"-")) {
			continue
		}
		units := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				units[f[i+1]] = v
			}
		}
		rss, ok1 := units["rss-B/idle-client"]
		off, ok2 := units["rss-unparked-B/idle-client"]
		if ok1 && ok2 {
			m.rss, m.rssOff = append(m.rss, rss), append(m.rssOff, off)
		}
	}
	return m
}

// median is the median of v (the mean of the middle two of an even count).
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// bytesList formats figures in bytes: "4,235 / 4,310 B".
func bytesList(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = bench.FormatCount(x)
	}
	return strings.Join(parts, " / ") + " B"
}

// idleCheck judges the median RSS per parked idle client of pooled mode (goal:
// idleGoal; a configuration without one shows no figure).
func idleCheck(m idleMemory, cfg string) check {
	goal, ok := idleGoal[cfg]
	c := notMeasured(fmt.Sprintf("RSS per idle pooled client ≤ %g KiB", goal/1024),
		"pooled mode, "+idleClients+" idle clients")
	switch {
	case !ok:
		c.none, c.measured = true, "– (session mode keeps a backend connection per client)"
		return c
	case m.failed:
		c.measured = "not measured (the benchmark failed)"
		return c
	case len(m.rss) == 0:
		return c
	}
	v := median(m.rss)
	runs := "1 run"
	if len(m.rss) > 1 {
		runs = fmt.Sprintf("%d runs", len(m.rss))
	}
	c.measured = fmt.Sprintf("**%s B** = %s KiB, median of %s (%s); unparked, before pool.park_after: %s B (%s)",
		bench.FormatCount(v), bench.FormatFigure(v/1024), runs, bytesList(m.rss), bench.FormatCount(median(m.rssOff)), bytesList(m.rssOff))
	c.met, c.ok, c.split = v <= goal, true, straddles(slices.Sorted(slices.Values(m.rss)), goal)
	return c
}

func label(p string) string {
	if p == "16" {
		return "16 B"
	}
	return strings.Replace(p, "KiB", " KiB", 1)
}

func (o *options) writeReference(b *strings.Builder, byID map[string]*workload) {
	b.WriteString("## The reference figures, and this run\n\n")
	b.WriteString("The issue's figures for HAProxy and the Python dispatcher, measured on this kind of machine (2 cores, loopback, " +
		"Go load generator with json → Go echo backend), next to the same figures of this run: how far this machine and " +
		"this load resemble the reference.\n\n")
	b.WriteString("| figure | reference | this run |\n| --- | --- | --- |\n")
	both := func(ids []string, labels []string, f func(w *workload) string) string {
		var parts []string
		for i, id := range ids {
			if w := byID[id]; w != nil {
				parts = append(parts, labels[i]+": "+f(w))
			}
		}
		if len(parts) == 0 {
			return "not measured"
		}
		return strings.Join(parts, "; ")
	}
	small64 := []string{"small-16-c64", "small-1KiB-c64"}
	small1 := []string{"small-16-c1", "small-1KiB-c1"}
	sizes := []string{"16 B", "1 KiB"}
	fmt.Fprintf(b, "| HAProxy calls/s vs direct, small calls, 64 conns | 0.50× | %s |\n", both(small64, sizes, func(w *workload) string {
		return fmtRatio(ratio(get(w, haproxy).med.CallsPerSec, get(w, direct).med.CallsPerSec))
	}))
	fmt.Fprintf(b, "| HAProxy CPU per call, 64 conns | about 16 µs | %s |\n", both(small64, sizes, func(w *workload) string {
		return get(w, haproxy).cpu()
	}))
	fmt.Fprintf(b, "| HAProxy added p50, 1 conn | about 77 µs | %s |\n", both(small1, sizes, func(w *workload) string {
		return usSigned(get(w, haproxy).med.Latency.P50 - get(w, direct).med.Latency.P50)
	}))
	fmt.Fprintf(b, "| HAProxy MB/s vs direct, 64 MiB | 0.38× | %s |\n", both([]string{"large-64MiB-c1", "large-64MiB-c4"},
		[]string{"1 conn", "4 conns"}, func(w *workload) string {
			return fmtRatio(ratio(get(w, haproxy).med.MBPerSec, get(w, direct).med.MBPerSec))
		}))
	fmt.Fprintf(b, "| Python dispatcher calls/s vs direct, Python clients | 0.48× | %s |\n", both([]string{"python"}, []string{"1 KiB"},
		func(w *workload) string {
			return fmtRatio(ratio(get(w, pydisp).med.CallsPerSec, get(w, direct).med.CallsPerSec))
		}))
	b.WriteString("\n")
}

// get returns the target, or an empty one so that figures come out as NaN and "–".
func get(w *workload, n string) *target {
	if t := w.get(n); t != nil {
		return t
	}
	return &target{name: n}
}

func (o *options) writeWorkload(b *strings.Builder, w *workload) {
	large := w.group == "large"
	fmt.Fprintf(b, "### %s\n\n", upperFirst(w.title))
	fmt.Fprintf(b, "%s. Chart: [%s](%s).\n\n", w.desc, filepath.Base(w.chart), o.rel(w.chart))
	d, h := w.get(direct), w.get(haproxy)
	switch {
	case large:
		b.WriteString("| target | MB/s | min–max | calls/s | p50 | p99 | p50 − direct | MB/s from mean latency | CPU/call | vs direct | vs HAProxy | errors |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	case d == nil: // the replicas workload: HAProxy is the reference
		b.WriteString("| target | calls/s | min–max | MB/s | p50 | p99 | p50 − HAProxy | CPU/call | vs HAProxy | errors |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	default:
		b.WriteString("| target | calls/s | min–max | MB/s | p50 | p99 | p50 − direct | CPU/call | vs direct | vs HAProxy | errors |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	}
	metric := cps
	if large {
		metric = mbs
	}
	for _, t := range w.targets {
		lo, hi := t.spread(metric)
		vsD, vsH, added := "–", "–", "–"
		if d != nil {
			vsD = fmtRatio(ratio(metric(t.med), metric(d.med)))
			if t != d {
				added = usSigned(t.med.Latency.P50 - d.med.Latency.P50)
			}
		}
		if h != nil {
			vsH = fmtRatio(ratio(metric(t.med), metric(h.med)))
		}
		mb := "–"
		if t.med.MBPerSec > 0 {
			mb = bench.FormatFigure(t.med.MBPerSec)
		}
		errs := strconv.FormatInt(t.med.Errors, 10)
		if t.med.Errors > 0 {
			var kinds []string
			for k, n := range t.med.ErrorsBy {
				kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
			}
			slices.Sort(kinds)
			errs = "**" + errs + "** (" + strings.Join(kinds, ", ") + ")"
		}
		nm := name(t.name)
		if slices.Contains(judged, t.name) {
			nm = "**" + nm + "**"
		}
		switch {
		case large:
			fmt.Fprintf(b, "| %s | %s | %s–%s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", nm, bench.FormatFigure(t.med.MBPerSec), bench.FormatFigure(lo), bench.FormatFigure(hi),
				bench.FormatCount(t.med.CallsPerSec), us(t.med.Latency.P50), us(t.med.Latency.P99), added, bench.FormatFigure(w.littleMBs(t)), t.cpu(), vsD, vsH, errs)
		case d == nil:
			addedH := "–"
			if h != nil && t != h {
				addedH = usSigned(t.med.Latency.P50 - h.med.Latency.P50)
			}
			fmt.Fprintf(b, "| %s | %s | %s–%s | %s | %s | %s | %s | %s | %s | %s |\n", nm, bench.FormatCount(t.med.CallsPerSec), bench.FormatCount(lo), bench.FormatCount(hi),
				mb, us(t.med.Latency.P50), us(t.med.Latency.P99), addedH, t.cpu(), vsH, errs)
		default:
			fmt.Fprintf(b, "| %s | %s | %s–%s | %s | %s | %s | %s | %s | %s | %s | %s |\n", nm, bench.FormatCount(t.med.CallsPerSec), bench.FormatCount(lo), bench.FormatCount(hi),
				mb, us(t.med.Latency.P50), us(t.med.Latency.P99), added, t.cpu(), vsD, vsH, errs)
		}
	}
	// Flag wide spreads: a round more than 25 % off its target's median.
	var noisy []string
	for _, t := range w.targets {
		lo, hi := t.spread(metric)
		if m := metric(t.med); m > 0 && (hi > 1.25*m || lo < 0.75*m) {
			noisy = append(noisy, fmt.Sprintf("%s %s–%s", name(t.name), fmtRatio(lo/m), fmtRatio(hi/m)))
		}
	}
	if len(noisy) > 0 {
		fmt.Fprintf(b, "\nSpread over 25 %% of the median (min and max round over the median): %s.\n", strings.Join(noisy, "; "))
	}
	for _, t := range w.targets {
		if len(t.med.Samples) > 0 {
			for k, s := range t.med.Samples {
				fmt.Fprintf(b, "\nFirst %s error of %s: `%s`\n", k, name(t.name), strings.ReplaceAll(s, "`", "'"))
			}
		}
	}
	b.WriteString("\n")
}

// writeReplicas describes the replicas workload and shows its pyro-dispatch configs.
func (o *options) writeReplicas(b *strings.Builder, ws []*workload) {
	if !slices.ContainsFunc(ws, func(w *workload) bool { return w.id == replicas }) {
		return
	}
	b.WriteString("- **3 replicas**: three more Go echo daemons (`pyro-dispatch echo --quiet`); pyro-dispatch `serve --config` " +
		"with one backend group of the three, `balance: least_inflight` (a new client connection in session mode, a call in " +
		"pooled mode, goes to the member with the fewest in flight), in session mode and in pooled mode with " +
		"pipelining (`pool: {pipeline: 16, max_open: 4}`), against HAProxy `balance leastconn`; " +
		"16 B calls on 64 connections, the rounds of the small workloads. CPU per call is the proxy's alone, not the echo " +
		"daemons'. The configs (ports of this run):\n")
	for _, name := range replicaConfigs {
		raw, err := os.ReadFile(filepath.Join(o.dir, name))
		if err != nil {
			continue
		}
		fmt.Fprintf(b, "\n  ```yaml\n  # $TMP/%s\n", name)
		for _, l := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
			fmt.Fprintf(b, "  %s\n", l)
		}
		b.WriteString("  ```\n")
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (o *options) writeMethod(b *strings.Builder, setup pairs, ws []*workload, idle idleMemory) {
	b.WriteString("## How it was measured\n\n")
	b.WriteString("- **Go workloads**: `pyro-dispatch bench` (bench/HARNESS.md): every connection does the Pyro4 handshake " +
		"and then sequential `echo(x)` calls in json, x a str of the payload size, closed loop; every reply is checked. " +
		"calls/s = calls started in the measured time / (end of warmup to last reply); MB/s counts request and reply " +
		"bytes on the wire. The echo daemon answers as a Pyro4 daemon does, every reply with a correlation id (the " +
		"request's, which pyro-dispatch injects, or a fresh one), so a reply is as long directly as through a proxy.\n")
	b.WriteString("- **Large payloads**: a round of 64 MiB calls holds only a few calls per connection, and the calls in flight " +
		"when the warmup ends are not counted although they use part of the measured time, which understates the " +
		"throughput of a slower target a little more than that of a faster one; *MB/s from mean latency* " +
		"(connections ÷ mean latency × bytes per call, Little's law for a closed loop) does not have that bias and is " +
		"given as a cross-check.\n")
	b.WriteString("- **Python workload**: `bench/python/load.py`, 4 client processes × 4 threads, each thread with its own " +
		"`Pyro4.Proxy` (serpent, Pyro4's default), calling `blob(SerializedBlob(info, (x,)))` with x a 1 KiB str and " +
		"checking that x comes back; fresh processes and connections every round. *direct*: the Go echo daemon's blob " +
		"method; *pyro-dispatch*: the same through pyro-dispatch; *HAProxy*: the same through HAProxy (as below), what a " +
		"plain TCP proxy reaches with these clients; *Python SerializedBlob dispatcher*: " +
		"`bench/python/dispatcher.py`, Pyro4's blob-dispatch example reduced to one listener: a Python Pyro4 daemon " +
		"whose process_blob forwards the still-serialized blob through a Proxy of its own thread to the echo daemon's " +
		"blob method and returns the result.\n")
	b.WriteString("- **CPU per call**: `--cpu NAME=PID` of `pyro-dispatch bench` (and of load.py) reads utime + stime of the " +
		"process and its descendants from /proc at the end of the warmup and after the round's last reply. On loopback " +
		"most of it is kernel time, and not only the proxy's own: the kernel delivers a TCP segment to the receiving " +
		"socket in the sender's context (softirq), so a proxy's CPU per call also holds the receive work of the echo " +
		"daemon and the client for the segments it sends (`perf record` of HAProxy and pyro-dispatch under the 64-connection " +
		"load puts 80–90 % of their samples in the kernel, mostly under tcp_sendmsg → net_rx_action → tcp_v4_rcv). " +
		"The figures compare proxies with each other on this machine; they are not the proxies' user-space cost.\n")
	b.WriteString("- **HAProxy**: [`bench/haproxy.cfg`](haproxy.cfg): mode tcp, `nbthread` = number of CPUs, timeouts 1 h, " +
		"no logging, `option splice-auto`; for the 3 replicas [`bench/haproxy-replicas.cfg`](haproxy-replicas.cfg), the same " +
		"with `balance leastconn` over three `server` lines. **nginx**: [`bench/nginx.conf`](nginx.conf): `stream { upstream; server { listen; " +
		"proxy_pass } }`, `worker_processes auto`, as root in a temporary prefix with its own pid file and error log, " +
		"no access log. **pyro-dispatch**: `serve` with defaults (session mode); *pipelined*: `--mode pooled --pool-pipeline 16 --pool-max-open 4` (calls of different clients pipelined on up to 4 shared backend connections, up to 16 in flight on each); *--procs 1*: session mode with GOMAXPROCS 1 (small calls only).\n")
	b.WriteString("- **Plain Go splice relay** (64 MiB calls only): `bench/cmd/splicerelay`, a TCP relay in front of the " +
		"echo daemon that copies each direction with `io.Copy` between the two sockets (splice(2) on Linux) and parses " +
		"nothing: the physical limit of a user-space relay between the same two sockets as a proxy's.\n")
	b.WriteString("- **C echo floor** (small calls at 64 connections only): `bench/floor/echofloor.c`, a Pyro4 echo in C " +
		"that reads only the 24-byte header and answers each request with its own bytes (CONNECTOK for CONNECT, RESULT " +
		"for INVOKE): one recv and one send per call on the client's socket, level-triggered epoll, one thread per CPU " +
		"with its own SO_REUSEPORT listener as HAProxy's threads. Its CPU per call is what a proxy's client side costs " +
		"with nothing else around it, before any work for the backend. It is measured in a closed loop at its own " +
		"calls/s, 1.5–2.5 times a proxy's, where each wake-up serves more sockets; at a proxy's rate the same two calls " +
		"cost more (bench/README.md, \"The floor of a proxy's client side\"). **Go echo floor**: the same program in Go " +
		"(`bench/cmd/echofloor`), a goroutine per connection with the net package as a Go server is usually written: " +
		"what Go costs around the same two system calls.\n")
	fmt.Fprintf(b, "- **Memory per idle client**: `%s` (interop/scale_test.go), each run a new dispatcher binary in pooled "+
		"mode (`--pool-max-open 8`) in front of a Go backend; %s clients connect, handshake and stay idle. RSS (VmRSS) "+
		"after minus before, per client, once they are parked (pool.park_after, 1 s, and a sweep), and before that "+
		"(*unparked*); the median of the runs is judged.\n", idleBench, idleClients)
	o.writeReplicas(b, ws)
	b.WriteString("\n")
	b.WriteString("### Commands\n\n```sh\nmake bench    # = bench/compare.sh; $TMP is its temporary directory\n\n# servers\n")
	for _, kv := range setup {
		fmt.Fprintf(b, "%s &    # %s\n", o.shortCmd(kv[1]), kv[0])
	}
	b.WriteString("\n# measurements, one after the other\n")
	for _, w := range ws {
		fmt.Fprintf(b, "%s\n", o.shortCmd(w.cmd))
	}
	if idle.cmd != "" {
		fmt.Fprintf(b, "%s\n", o.shortCmd(idle.cmd))
	}
	b.WriteString("```\n")
}
