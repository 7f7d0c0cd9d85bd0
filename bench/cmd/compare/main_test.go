package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// TestReport runs small workloads against an in-process echo daemon (every "proxy" is
// the same daemon), writes them as bench/compare.sh does, and checks the report.
func TestReport(t *testing.T) {
	s := &bench.EchoServer{}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	addr := s.Addr().String()

	dir := t.TempDir()
	charts := filepath.Join(dir, "charts")
	if err := os.MkdirAll(charts, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("machine.txt", "date\t2026-01-01\nnproc\t2\nload_start\t1.00 2.00 3.00\nload_bench_start\t1.10 2.00 3.00\nload_end\t2.00 2.10 3.00\nquick\t1\n"+
		"stat_bench_start\tcpu  1000 0 500 2000 0 0 100 400 0 0\nstat_end\tcpu  1500 0 700 2100 0 0 150 450 0 0\n")
	write("setup.txt", "echo\t"+dir+"/pyro-dispatch echo --listen "+addr+"\n")
	var wl strings.Builder
	for _, w := range []struct {
		id      string
		conns   int
		payload int
	}{{"small-16-c64", 8, 16}, {"small-16-c1", 1, 16}, {replicas, 8, 16}, {"large-64MiB-c1", 1, 64 << 10}} {
		names := []string{direct, pd, pipelined, haproxy, nginx}
		switch {
		case w.id == replicas: // as bench/compare.sh runs it: HAProxy first, no direct
			names = []string{haproxy, pd, pipelined}
		case strings.HasPrefix(w.id, "large-64MiB"):
			names = append(names, spliceRelay)
		}
		var targets []bench.Target
		for _, n := range names {
			targets = append(targets, bench.Target{Name: n, Addr: addr})
		}
		res, err := bench.Run(context.Background(), bench.Config{Targets: targets, Conns: w.conns, Calls: 200, Payload: w.payload,
			Serializer: frame.JSON, Rounds: 2, CPU: map[string][]int{pd: {os.Getpid()}, pipelined: {os.Getpid()}, haproxy: {os.Getpid()}}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, w.id+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := res.WriteJSON(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		group := "small"
		switch {
		case strings.HasPrefix(w.id, "large"):
			group = "large"
		case w.id == replicas:
			group = replicas
		}
		wl.WriteString(w.id + "\t" + group + "\t" + w.id + " title\t" + filepath.Join(charts, w.id+".svg") + "\t" + dir + "/pyro-dispatch bench -t x\n")
	}
	wl.WriteString("python\tpython\tPython clients\t" + filepath.Join(charts, "python.svg") + "\t/usr/bin/python3 bench/python/load.py\n")
	write("workloads.txt", wl.String())
	write("replicas-session.yaml", "backends:\n  - name: replicas\n    balance: least_inflight\n")
	write(idleFile, "# go test -run '^$' -bench BenchmarkPooledIdleMemory -benchtime 1x -count 3 ./interop\n"+
		"goos: linux\npkg: github.com/pyro-dispatch/pyro-dispatch/interop\n"+
		"BenchmarkPooledIdleMemory-2   \t       1\t 823924689 ns/op\t     12137 handshakes/s\t      4235 rss-B/idle-client\t      7849 rss-unparked-B/idle-client\n"+
		"BenchmarkPooledIdleMemory-2   \t       1\t 801234567 ns/op\t     12500 handshakes/s\t      2900 rss-B/idle-client\t      7700 rss-unparked-B/idle-client\n"+
		"BenchmarkPooledIdleMemory-2   \t       1\t 811234567 ns/op\t     12400 handshakes/s\t      3000 rss-B/idle-client\t      7800 rss-unparked-B/idle-client\n"+
		"PASS\nok  \tgithub.com/pyro-dispatch/pyro-dispatch/interop\t12.3s\n")

	type round struct {
		Round   int        `json:"round"`
		Start   time.Time  `json:"start"`
		Calls   int64      `json:"calls"`
		Elapsed float64    `json:"elapsed_s"`
		CPU     *float64   `json:"cpu_s,omitempty"`
		Latency [][2]int64 `json:"latency_ns"`
	}
	type tgt struct {
		Name       string  `json:"name"`
		Addr       string  `json:"addr"`
		CPUSampled bool    `json:"cpu_sampled"`
		Rounds     []round `json:"rounds"`
	}
	cpu := 0.5
	py := map[string]any{
		"start": time.Now(), "elapsed_s": 3.0, "description": "python clients",
		"config": map[string]any{"procs": 2, "threads": 2, "payload_bytes": 1024, "duration_s": 1, "warmup_s": 0.1, "rounds": 1},
		"order":  []bench.RoundRef{{Target: direct, Round: 1}, {Target: pd, Round: 1}, {Target: pydisp, Round: 1}, {Target: haproxy, Round: 1}},
		"targets": []tgt{
			{direct, "PYRO:echo@a", false, []round{{1, time.Now(), 10000, 1, nil, [][2]int64{{400000, 9000}, {900000, 1000}}}}},
			{pd, "PYRO:echo@b", true, []round{{1, time.Now(), 9500, 1, &cpu, [][2]int64{{450000, 9500}}}}},
			{pydisp, "PYRO:echo@c", true, []round{{1, time.Now(), 4000, 1, &cpu, [][2]int64{{1500000, 4000}}}}},
			{haproxy, "PYRO:echo@d", true, []round{{1, time.Now(), 9000, 1, &cpu, [][2]int64{{470000, 9000}}}}},
		},
	}
	raw, _ := json.Marshal(py)
	write("python-raw.json", string(raw))

	out := filepath.Join(dir, "RESULTS.md")
	o := options{dir: dir, out: out, charts: charts, root: "/nowhere", elapsed: 421}
	if err := o.run(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	for _, want := range []string{
		"7 min 01 s", "Smoke run", "| load average (1, 5, 15 min) when `make bench` started | 1.00 2.00 3.00 |",
		"| CPU time stolen by the hypervisor during the measurements (`/proc/stat` steal) | 5.6 % |", // 50 of 900 ticks
		"Load average (1, 5, 15 min) on 2 CPUs: 1.10 2.00 3.00 when the measurements started, 2.00 2.10 3.00 at the end. " +
			"CPU time stolen by the hypervisor during the measurements: 5.6 %.\n\n",
		"## Targets: ", " met in session mode, ", " in pipelined pooled mode", "| small, 16 B, 64 conns | calls/s ≥ 1.0 × HAProxy's (session mode); calls/s ≥ 1.5 × HAProxy's (pipelined) | ",
		"| **pyro-dispatch (pipelined)** |", "| small, 16 B, 1 conn | added p50",
		"| 64 MiB, 1 conn | MB/s ≥ 1.5 × HAProxy's | ", "– not measured", // 1 KiB and 4 conns were not run
		"; physical limit (plain Go splice relay) ", "| plain Go splice relay (no Pyro4) | ",
		"| 64 MiB, 4 conns | MB/s ≥ 1.5 × HAProxy's | not measured | – not measured | not measured | – not measured |",
		"| Python clients | calls/s ≥ 0.8 × direct | 9,500 / 10,000 calls/s = **0.95×** (per round 0.95×); HAProxy 9,000 calls/s = 0.90× of direct (per round 0.90×) | ✅ met | not measured | – not measured |",
		"| pooled mode, 10,000 idle clients | RSS per idle pooled client ≤ 3 KiB (pipelined) | " +
			"– (session mode keeps a backend connection per client) | – not a goal | **3,000 B** = 2.93 KiB, median of 3 runs " +
			"(4,235 / 2,900 / 3,000 B); unparked, before pool.park_after: 7,800 B (7,849 / 7,700 / 7,800 B) | ✅ met (rounds disagree) |",
		"\ngo test -run '^$' -bench BenchmarkPooledIdleMemory -benchtime 1x -count 3 ./interop\n```\n",
		"`--mode pooled --pool-pipeline 16 --pool-max-open 4`",
		"| Python clients | calls/s ≥ 1.9 × Python SerializedBlob dispatcher | 9,500 / 4,000 calls/s = **2.38×**",
		"| Python dispatcher calls/s vs direct, Python clients | 0.48× | 1 KiB: 0.40× |",
		"### Small-16-c64 title", "(charts/small-16-c64.svg)", "| **pyro-dispatch** |", "MB/s from mean latency",
		"| Python SerializedBlob dispatcher | 4,000 |", "52.6µs", // 0.5 s over 9,500 calls
		"$TMP/pyro-dispatch echo --listen", "$TMP/pyro-dispatch bench -t x",
		// the replicas workload: a target row for each mode, its own section and table, its configs
		"## Targets: ", " of 11 met in session mode, ", " of 12 in pipelined pooled mode",
		"| 3 replicas, least in-flight, 16 B, 64 conns | calls/s ≥ 1.0 × HAProxy leastconn's (session mode); calls/s ≥ 1.2 × HAProxy leastconn's (pipelined) | ",
		"### Replicas title\n", "(charts/replicas.svg)",
		"| target | calls/s | min–max | MB/s | p50 | p99 | p50 − HAProxy | CPU/call | vs HAProxy | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n| HAProxy | ",
		"[`bench/haproxy-replicas.cfg`](haproxy-replicas.cfg)",
		"  ```yaml\n  # $TMP/replicas-session.yaml\n  backends:\n    - name: replicas\n      balance: least_inflight\n  ```\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
	if _, err := os.Stat(filepath.Join(charts, "python.svg")); err != nil {
		t.Error(err)
	}
	// The workloads in the order of their groups: small, then replicas, then large.
	if i, j, k := strings.Index(md, "### Small-16-c64 title"), strings.Index(md, "### Replicas title"), strings.Index(md, "### Large-64MiB-c1 title"); !(i >= 0 && i < j && j < k) {
		t.Errorf("workload sections out of order: small at %d, replicas at %d, large at %d", i, j, k)
	}
	// The replicas table has no direct columns; the small ones keep theirs.
	sec := md[strings.Index(md, "### Replicas title"):]
	sec = sec[:strings.Index(sec, "\n### ")]
	if strings.Contains(sec, "direct") {
		t.Errorf("replicas section mentions direct:\n%s", sec)
	}
	// The splice relay is a target of the 64 MiB tables only, never a judged one.
	if strings.Contains(md, "**plain Go splice relay") || strings.Count(md, "| plain Go splice relay (no Pyro4) | ") != 1 {
		t.Errorf("splice relay rows wrong")
	}
}

// fakeTarget is a target whose rounds had these calls/s; its median is given.
func fakeTarget(name string, median float64, rounds ...float64) *target {
	t := &target{name: name, med: stats{CallsPerSec: median}}
	for i, v := range rounds {
		t.rounds = append(t.rounds, roundJSON{Round: i + 1, stats: stats{CallsPerSec: v}})
	}
	return t
}

func TestReplicaChecks(t *testing.T) {
	w := &workload{id: replicas, targets: []*target{
		fakeTarget(haproxy, 30000, 30000, 30000, 30000),
		fakeTarget(pd, 31500, 28000, 31500, 33000),        // 1.05×: met for ≥ 1.0×, rounds on both sides
		fakeTarget(pipelined, 34500, 34500, 34000, 35000), // 1.15×: missed for ≥ 1.2×, every round below
	}}
	byID := map[string]*workload{replicas: w}
	cases := []struct {
		cfg, goal, measured string
		met, split          bool
	}{
		{pd, "calls/s ≥ 1.0 × HAProxy leastconn's", "31,500 / 30,000 calls/s = **1.05×** (per round 0.93×–1.10×)", true, true},
		{pipelined, "calls/s ≥ 1.2 × HAProxy leastconn's", "34,500 / 30,000 calls/s = **1.15×** (per round 1.13×–1.17×)", false, false},
	}
	for _, c := range cases {
		var got *check
		for _, ch := range targetChecks(byID, idleMemory{}, c.cfg) {
			if ch.workload == "3 replicas, least in-flight, 16 B, 64 conns" {
				got = &ch
			}
		}
		if got == nil {
			t.Fatalf("%s: no replicas check", c.cfg)
		}
		if got.goal != c.goal || got.measured != c.measured || got.met != c.met || !got.ok || got.split != c.split {
			t.Errorf("%s: got %+v, want goal %q, measured %q, met %v, split %v", c.cfg, *got, c.goal, c.measured, c.met, c.split)
		}
	}
	if v := replicaCheck(w, pd).verdict(); v != "✅ met (rounds disagree)" {
		t.Errorf("session verdict %q", v)
	}
	if v := replicaCheck(w, pipelined).verdict(); v != "❌ missed" {
		t.Errorf("pipelined verdict %q", v)
	}
	// Just under the goal is missed, exactly on it is met.
	w.targets[1] = fakeTarget(pd, 29900)
	if c := replicaCheck(w, pd); c.met || !c.ok {
		t.Errorf("0.997× judged met: %+v", c)
	}
	w.targets[2] = fakeTarget(pipelined, 36000)
	if c := replicaCheck(w, pipelined); !c.met {
		t.Errorf("1.2× judged missed: %+v", c)
	}
	// Without the workload, or without HAProxy in it: not measured, same row for both modes.
	for _, ws := range []map[string]*workload{{}, {replicas: {id: replicas, targets: []*target{fakeTarget(pd, 1), fakeTarget(pipelined, 1)}}}} {
		for _, cfg := range judged {
			c := replicaCheck(ws[replicas], cfg)
			if c.ok || c.met || c.measured != "not measured" || c.verdict() != "– not measured" {
				t.Errorf("%s without data: %+v", cfg, c)
			}
		}
	}
	// Every judged configuration has the check at the same row of the targets table.
	var rows [][]check
	for _, cfg := range judged {
		rows = append(rows, targetChecks(byID, idleMemory{}, cfg))
	}
	for k := range rows[0] {
		if rows[0][k].workload != rows[1][k].workload {
			t.Errorf("row %d: %q against %q", k, rows[0][k].workload, rows[1][k].workload)
		}
	}
}

func TestRowGoal(t *testing.T) {
	rows := [][]check{{{goal: "a"}, {goal: "x"}, {goal: "m", none: true}}, {{goal: "a"}, {goal: "y"}, {goal: "m"}}}
	if g := rowGoal(rows, 0); g != "a" {
		t.Errorf("shared goal: %q", g)
	}
	if g := rowGoal(rows, 1); g != "x (session mode); y (pipelined)" {
		t.Errorf("goals per mode: %q", g)
	}
	if g := rowGoal(rows, 2); g != "m (pipelined)" {
		t.Errorf("a goal of one mode: %q", g)
	}
}

// at is a target with the given median and rounds.
func at(name string, med stats, rounds ...stats) *target {
	t := &target{name: name, med: med}
	for i, r := range rounds {
		t.rounds = append(t.rounds, roundJSON{Round: i + 1, stats: r})
	}
	return t
}

// cpuStats has calls/s and CPU per call (µs).
func cpuStats(calls, cpu float64) stats { return stats{CallsPerSec: calls, CPUPerCall: &cpu} }

// p50Stats has a p50 latency (µs).
func p50Stats(p50 float64) stats {
	var s stats
	s.Latency.P50 = p50
	return s
}

// TestTargetChecks judges fixture numbers on both sides of every goal, for both modes.
func TestTargetChecks(t *testing.T) {
	small := func(id string, h, s, p stats) *workload {
		d := p50Stats(80)
		return &workload{id: id, targets: []*target{at(direct, d, d, d), at(haproxy, h, h, h), at(pd, s, s, s), at(pipelined, p, p, p)}}
	}
	mb := func(v float64) stats { return stats{MBPerSec: v} }
	byID := map[string]*workload{
		// calls/s: session mode exactly 1.0× (met) and 0.99× (missed); pipelined 1.49× (missed) and 1.5× (met).
		// CPU per call: session mode level with HAProxy (met), then 14.5 over 14 µs (missed, rounds 13 and 15 disagree);
		// pipelined exactly 10 µs (met), then 10.1 µs (missed).
		// The echo floors only at 16 B: C 11 µs (rounds 10–12), Go 13.5 µs (13–14).
		"small-16-c64": small("small-16-c64", cpuStats(40000, 14), cpuStats(40000, 14), cpuStats(59600, 10)),
		"small-1KiB-c64": {id: "small-1KiB-c64", targets: []*target{at(haproxy, cpuStats(40000, 14), cpuStats(40000, 14), cpuStats(40000, 14)),
			at(pd, cpuStats(39600, 14.5), cpuStats(39600, 13), cpuStats(39600, 15)), at(pipelined, cpuStats(60000, 10.1))}},
		// added p50 over direct's 80 µs, HAProxy's +40 µs: session mode +40 (1.0×, met) and +40.2 (1.005×, missed);
		// pipelined +32 (0.8×, met) and +32.2 (0.805×, missed).
		"small-16-c1":   small("small-16-c1", p50Stats(120), p50Stats(120), p50Stats(112)),
		"small-1KiB-c1": small("small-1KiB-c1", p50Stats(120), p50Stats(120.2), p50Stats(112.2)),
		// MB/s over HAProxy's 1,000: 1.5× met, 1.49× missed; the splice relay only with 1 connection.
		"large-64MiB-c1": {id: "large-64MiB-c1", targets: []*target{at(direct, mb(3000)), at(haproxy, mb(1000)), at(pd, mb(1500)),
			at(pipelined, mb(1490)), at(spliceRelay, mb(2000))}},
		"large-64MiB-c4": {id: "large-64MiB-c4", targets: []*target{at(haproxy, mb(1000)), at(pd, mb(1490)), at(pipelined, mb(1500))}},
		// Python clients: 0.8× direct and 1.9× the Python dispatcher (met), just under both (missed).
		// HAProxy beside: 0.75× direct.
		"python": {id: "python", targets: []*target{at(direct, stats{CallsPerSec: 10000}), at(pydisp, stats{CallsPerSec: 4200}),
			at(pd, stats{CallsPerSec: 8000}), at(pipelined, stats{CallsPerSec: 7979}), at(haproxy, stats{CallsPerSec: 7500})}},
	}
	byID["small-16-c64"].targets = append(byID["small-16-c64"].targets,
		at(echoFloorC, cpuStats(80000, 11), cpuStats(80000, 10), cpuStats(80000, 12), cpuStats(80000, 11)),
		at(echoFloorGo, cpuStats(70000, 13.5), cpuStats(70000, 13), cpuStats(70000, 14), cpuStats(70000, 13.5)))
	idle := idleMemory{rss: []float64{3100, 3072, 3000}, rssOff: []float64{7900, 7800, 7700}} // median 3,072 B: met
	want := map[string][]string{
		pd: {"✅ met", "❌ missed", "– not measured", "✅ met", "❌ missed (rounds disagree)", "✅ met", "❌ missed",
			"✅ met", "❌ missed", "✅ met", "✅ met", "– not a goal"},
		pipelined: {"❌ missed", "✅ met", "– not measured", "✅ met", "❌ missed", "✅ met", "❌ missed",
			"❌ missed", "✅ met", "❌ missed", "❌ missed", "✅ met (rounds disagree)"},
	}
	for _, cfg := range judged {
		cs := targetChecks(byID, idle, cfg)
		var got []string
		for _, c := range cs {
			got = append(got, c.verdict())
		}
		if strings.Join(got, ", ") != strings.Join(want[cfg], ", ") {
			t.Errorf("%s verdicts:\n got %q\nwant %q", cfg, got, want[cfg])
		}
	}
	pdc, pipe := targetChecks(byID, idle, pd), targetChecks(byID, idle, pipelined)
	for _, c := range []struct{ got, want string }{
		{pdc[0].goal, "calls/s ≥ 1.0 × HAProxy's"},
		{pipe[0].goal, "calls/s ≥ 1.5 × HAProxy's"},
		{pdc[0].measured, "40,000 / 40,000 calls/s = **1.00×** (per round 1.00×–1.00×)"},
		{pdc[3].goal, "proxy CPU per call ≤ HAProxy's (same run)"},
		{pipe[3].goal, "proxy CPU ≤ 10 µs per call"},
		{pdc[4].measured, "14.5µs / HAProxy 14.0µs = **1.04×** (per round 0.93×–1.07×; rounds 13.0µs–15.0µs); " +
			"floors (client side only): C echo not measured, Go echo not measured"},
		{pipe[3].measured, "**10.0µs** (rounds 10.0µs–10.0µs); HAProxy 14.0µs; " +
			"floors (client side only): C echo 11.0µs (rounds 10.0µs–12.0µs), Go echo 13.5µs (rounds 13.0µs–14.0µs)"},
		{pdc[5].goal, "added p50 over direct ≤ 1.0 × HAProxy's"},
		{pipe[5].goal, "added p50 over direct ≤ 0.8 × HAProxy's"},
		{pipe[5].measured, "+32.0µs, HAProxy +40.0µs over direct's 80.0µs = **0.80×** (per round 0.80×–0.80×)"},
		{pdc[9].measured, "8,000 / 10,000 calls/s = **0.80×** (per round –); HAProxy 7,500 calls/s = 0.75× of direct (per round –)"},
		{pdc[7].goal, "MB/s ≥ 1.5 × HAProxy's"},
		{pdc[7].workload, "64 MiB, 1 conn"},
		{pdc[7].measured, "1,500 / 1,000 MB/s = **1.50×** (per round –); from mean latency –; " +
			"physical limit (plain Go splice relay) 2,000 MB/s: 0.75× of it"},
		{pdc[8].workload, "64 MiB, 4 conns"},
		{pdc[8].measured, "1,490 / 1,000 MB/s = **1.49×** (per round –); from mean latency –; physical limit (plain Go splice relay) not measured"},
		{pdc[9].goal, "calls/s ≥ 0.8 × direct"},
		{pdc[10].goal, "calls/s ≥ 1.9 × Python SerializedBlob dispatcher"},
		{pdc[11].measured, "– (session mode keeps a backend connection per client)"},
		{pipe[11].goal, "RSS per idle pooled client ≤ 3 KiB"},
		{pipe[11].workload, "pooled mode, 10,000 idle clients"},
		{pipe[11].measured, "**3,072 B** = 3.00 KiB, median of 3 runs (3,100 / 3,072 / 3,000 B); unparked, before pool.park_after: 7,800 B (7,900 / 7,800 / 7,700 B)"},
	} {
		if c.got != c.want {
			t.Errorf("got  %q\nwant %q", c.got, c.want)
		}
	}
	// Without HAProxy's CPU, session mode's CPU goal is not measured; pipelined keeps its own.
	byID["small-16-c64"].get(haproxy).med.CPUPerCall = nil
	if c := cpuCheck(byID["small-16-c64"], pd, "16"); c.ok || c.verdict() != "– not measured" || c.measured != "14.0µs (rounds 14.0µs–14.0µs); HAProxy's not measured; floors (client side only): C echo 11.0µs (rounds 10.0µs–12.0µs), Go echo 13.5µs (rounds 13.0µs–14.0µs)" {
		t.Errorf("session CPU without HAProxy's: %+v", c)
	}
	if c := cpuCheck(byID["small-16-c64"], pipelined, "16"); !c.ok || !c.met {
		t.Errorf("pipelined CPU without HAProxy's: %+v", c)
	}
}

// TestIdleMemory parses the benchmark's output and judges its median against 3 KiB.
func TestIdleMemory(t *testing.T) {
	out := []string{
		"# go test -run '^$' -bench BenchmarkPooledIdleMemory -benchtime 1x -count 1 ./interop",
		"goos: linux",
		"BenchmarkPooledIdleMemory-2   \t       1\t 823924689 ns/op\t     12137 handshakes/s\t      3073 rss-B/idle-client\t      7849 rss-unparked-B/idle-client",
		"BenchmarkPooledIdleHeap-2   \t       1\t 823924689 ns/op\t     100 heap-B/idle-client",
		"PASS",
	}
	m := parseIdleMemory(out)
	if m.cmd != "go test -run '^$' -bench BenchmarkPooledIdleMemory -benchtime 1x -count 1 ./interop" || m.failed ||
		len(m.rss) != 1 || m.rss[0] != 3073 || m.rssOff[0] != 7849 {
		t.Fatalf("parsed %+v", m)
	}
	c := idleCheck(m, pipelined) // 1 B over the goal
	if c.met || !c.ok || c.split || c.verdict() != "❌ missed" ||
		c.measured != "**3,073 B** = 3.00 KiB, median of 1 run (3,073 B); unparked, before pool.park_after: 7,849 B (7,849 B)" {
		t.Errorf("3,073 B: %+v", c)
	}
	if c := idleCheck(idleMemory{rss: []float64{2000, 3000, 3500, 4000}, rssOff: []float64{1, 2, 3, 4}}, pipelined); c.met || !c.split {
		t.Errorf("median 3,250 of an even count judged %+v", c) // (3,000 + 3,500) / 2 > 3,072
	}
	// A failed run, or none at all: not measured, whatever was printed before the failure.
	failed := parseIdleMemory(append(out[:3:3], "--- FAIL: BenchmarkPooledIdleMemory-2", "FAIL"))
	for _, m := range []idleMemory{failed, {}, parseIdleMemory([]string{"FAIL\tgithub.com/pyro-dispatch/pyro-dispatch/interop [build failed]"})} {
		c := idleCheck(m, pipelined)
		if c.ok || c.met || c.verdict() != "– not measured" || !strings.HasPrefix(c.measured, "not measured") {
			t.Errorf("%+v judged %+v", m, c)
		}
	}
	if c := idleCheck(m, pd); !c.none || c.met || c.verdict() != "– not a goal" {
		t.Errorf("session mode: %+v", c)
	}
}

// TestPairRatios leaves out rounds without a figure on either side.
func TestPairRatios(t *testing.T) {
	a := at(pd, stats{}, cpuStats(1, 2), stats{}, cpuStats(1, 3))
	b := at(haproxy, stats{}, cpuStats(1, 4), cpuStats(1, 4), stats{})
	if got := pairRatios(a, b, cpuUS); len(got) != 1 || got[0] != 0.5 {
		t.Errorf("got %v, want [0.5]", got)
	}
}

func TestSteal(t *testing.T) {
	for _, c := range []struct {
		start, end, want string
	}{
		{"cpu  100 0 100 700 0 0 0 100", "cpu  200 0 200 1400 0 0 0 200", "10.0 %"},
		{"cpu  100 0 100 700 0 0 0 100 5 0", "cpu  100 0 100 700 0 0 0 100 9 0", ""}, // no time passed
		{"", "cpu  200 0 200 1400 0 0 0 200", ""},
		{"cpu0 100 0 100 700 0 0 0 100", "cpu  200 0 200 1400 0 0 0 200", ""}, // not the total line
		{"cpu  100 0 100 700 0 0 x 100", "cpu  200 0 200 1400 0 0 0 200", ""},
		{"cpu  100 0 100 700", "cpu  200 0 200 1400", ""}, // no steal column
	} {
		if got := steal(pairs{{"stat_bench_start", c.start}, {"stat_end", c.end}}); got != c.want {
			t.Errorf("steal(%q, %q) = %q, want %q", c.start, c.end, got, c.want)
		}
	}
}
