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
	}{{"small-16-c64", 8, 16}, {"small-16-c1", 1, 16}, {"large-64MiB-c1", 1, 64 << 10}} {
		var targets []bench.Target
		for _, n := range []string{direct, pd, pipelined, haproxy, nginx} {
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
		if strings.HasPrefix(w.id, "large") {
			group = "large"
		}
		wl.WriteString(w.id + "\t" + group + "\t" + w.id + " title\t" + filepath.Join(charts, w.id+".svg") + "\t" + dir + "/pyro-dispatch bench -t x\n")
	}
	wl.WriteString("python\tpython\tPython clients\t" + filepath.Join(charts, "python.svg") + "\t/usr/bin/python3 bench/python/load.py\n")
	write("workloads.txt", wl.String())

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
}
