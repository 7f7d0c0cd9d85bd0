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
	write("machine.txt", "date\t2026-01-01\nnproc\t2\nload_start\t1.00 2.00 3.00\nquick\t1\n")
	write("setup.txt", "echo\t"+dir+"/pyro-dispatch echo --listen "+addr+"\n")
	var wl strings.Builder
	for _, w := range []struct {
		id      string
		conns   int
		payload int
	}{{"small-16-c64", 8, 16}, {"small-16-c1", 1, 16}, {replicas, 8, 16}, {"large-64MiB-c1", 1, 64 << 10}} {
		names := []string{direct, pd, pipelined, haproxy, nginx}
		if w.id == replicas { // as bench/compare.sh runs it: HAProxy first, no direct
			names = []string{haproxy, pd, pipelined}
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
		"order":  []bench.RoundRef{{Target: direct, Round: 1}, {Target: pd, Round: 1}, {Target: pydisp, Round: 1}},
		"targets": []tgt{
			{direct, "PYRO:echo@a", false, []round{{1, time.Now(), 10000, 1, nil, [][2]int64{{400000, 9000}, {900000, 1000}}}}},
			{pd, "PYRO:echo@b", true, []round{{1, time.Now(), 9500, 1, &cpu, [][2]int64{{450000, 9500}}}}},
			{pydisp, "PYRO:echo@c", true, []round{{1, time.Now(), 4000, 1, &cpu, [][2]int64{{1500000, 4000}}}}},
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
		"## Targets: ", " met in session mode, ", " in pipelined pooled mode", "| small, 16 B, 64 conns | calls/s ≥ 1.2 × HAProxy's | ",
		"| **pyro-dispatch (pipelined)** |", "| small, 16 B, 1 conn | added p50",
		"| 64 MiB, 1 conn | MB/s ≥ 0.9 × direct |", "– not measured", // 1 KiB and 4 conns were not run
		"| Python clients | calls/s ≥ 0.9 × direct | 9,500 / 10,000 calls/s = **0.95×** (per round 0.95×) | ✅ met | not measured | – not measured |",
		"| Python clients | calls/s ≥ 1.9 × Python SerializedBlob dispatcher | 9,500 / 4,000 calls/s = **2.38×**",
		"| Python dispatcher calls/s vs direct, Python clients | 0.48× | 1 KiB: 0.40× |",
		"### Small-16-c64 title", "(charts/small-16-c64.svg)", "| **pyro-dispatch** |", "MB/s from mean latency",
		"| Python SerializedBlob dispatcher | 4,000 |", "52.6µs", // 0.5 s over 9,500 calls
		"$TMP/pyro-dispatch echo --listen", "$TMP/pyro-dispatch bench -t x",
		// the replicas workload: a target row for each mode, its own section and table, its configs
		"## Targets: ", " of 11 met in session mode, ",
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
		for _, ch := range targetChecks(byID, c.cfg) {
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
		rows = append(rows, targetChecks(byID, cfg))
	}
	for k := range rows[0] {
		if rows[0][k].workload != rows[1][k].workload {
			t.Errorf("row %d: %q against %q", k, rows[0][k].workload, rows[1][k].workload)
		}
	}
}

func TestRowGoal(t *testing.T) {
	rows := [][]check{{{goal: "a"}, {goal: "x"}}, {{goal: "a"}, {goal: "y"}}}
	if g := rowGoal(rows, 0); g != "a" {
		t.Errorf("shared goal: %q", g)
	}
	if g := rowGoal(rows, 1); g != "x (session mode); y (pipelined)" {
		t.Errorf("goals per mode: %q", g)
	}
}
