package main

import (
	"encoding/xml"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
)

func TestConfigVariants(t *testing.T) {
	w, err := newWorld(options{work: t.TempDir()}, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	for v := range configVariants {
		cfg, err := config.ParseConfig([]byte(w.configYAML(v)))
		if err != nil {
			t.Fatalf("variant %d: %v", v, err)
		}
		if len(cfg.Listeners) != len(listenerNames) {
			t.Errorf("variant %d: %d listeners", v, len(cfg.Listeners))
		}
		members := map[string]int{}
		for _, g := range cfg.Backends {
			members[g.Name] = len(g.Members)
		}
		want := map[string]int{groupGo: 2, groupPy: 2, groupPyHMAC: 2}
		if v == 1 {
			want[groupGo] = 3
		}
		for g, n := range want {
			if members[g] != n {
				t.Errorf("variant %d: group %s has %d members, want %d", v, g, members[g], n)
			}
		}
	}
	if err := w.writeConfig(2); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(w.configPath()); err != nil || !strings.Contains(string(b), "variant 2") {
		t.Errorf("written: %s, %v", b, err)
	}
}

// The load covers every path: each plain one has a probe, each listener a real Pyro4
// client; the Go streams' names (and so their calls' tags) are distinct.
func TestLoadCoversEveryPath(t *testing.T) {
	probed, names := map[Path]bool{}, map[string]bool{}
	for _, g := range goTargets(1) {
		probed[g.path] = probed[g.path] || g.probe
		if names[g.name] {
			t.Errorf("two streams named %s", g.name)
		}
		names[g.name] = true
	}
	python := map[string]bool{}
	for _, c := range pyClients {
		python[c.listener] = true
	}
	for _, l := range listenerNames {
		if !python[l] {
			t.Errorf("no Python client on %s", l)
		}
		for _, p := range pathsOf(l) {
			if !hmacListener(l) && !probed[p] {
				t.Errorf("no probe on %s", p)
			}
		}
	}
}

// fakeReport is a small run: two faults, three failures (one unexplained), a leak.
func fakeReport() *report {
	r := &report{Begin: at(-40), SoakStart: at(0), SoakEnd: at(60), End: at(200), Version: "v1-test", Machine: "2 CPUs",
		Config: "listeners: []\n", Opt: options{duration: time.Minute, warmup: 30 * time.Second, seed: 7}}
	r.Warm, r.Soak = newLedger(nil), newLedger(nil)
	src := r.Soak.source("go:session/py/probe", "session→py", "echo(x)", false)
	src.OK = 1000
	py := r.Soak.source("py:pooled-json", "pooled→py", "real Pyro4 client", true)
	py.OK, py.Summary = 500, true
	r.Warm.source("go:session/py/probe", "session→py", "echo(x)", false).OK = 300
	sessPy := Path{"session", "py"}
	r.Faults = []Fault{
		{Seq: 2, Kind: "reload", Start: at(30), End: at(30.01), Paths: []Path{sessPy}, Detail: "SIGHUP | variant 1"},
		{Seq: 1, Kind: "backend_kill", Start: at(10), End: at(11), Paths: []Path{sessPy}, Causes: killed, Detail: "SIGKILL pid 1"},
	}
	r.Soak.fail(src, Failure{Client: "go:session/py/probe#0", Path: sessPy, Op: "call", Start: at(10.1), End: at(10.2), Cause: CauseClosed, Reason: "EOF"})
	r.Soak.fail(py, Failure{Client: "py:pooled-json", Path: Path{"pooled", "py"}, Op: "echo", Start: at(40), End: at(40.1), Cause: CauseTimeout, Reason: "Pyro4.errors.TimeoutError: receiving: timeout"})
	r.Soak.backs = []Back{{Client: "go:session/py/probe#0", Start: at(11.1), End: at(11.15)}}
	r.Recoveries = []Recovery{{Fault: 1, Path: sessPy, End: at(11), After: 150 * time.Millisecond}, {Fault: 2, Path: sessPy, End: at(30.01), After: 5 * time.Millisecond}}
	r.Samples = []Sample{{At: at(-40), RSS: 20 << 20, FDs: 30, Goroutines: 40}, {At: at(30), RSS: 90 << 20, FDs: 200, Goroutines: 300, Clients: 50},
		{At: at(190), RSS: 60 << 20, FDs: 31, Goroutines: 41}}
	r.Phases = []phaseMark{{at(-40), "warm-up"}, {at(0), "soak"}, {at(60), "settle"}}
	r.Leak = LeakCheck{Base: snapshot{Sample: Sample{RSS: 40 << 20, FDs: 30, Goroutines: 40}},
		Final: snapshot{Sample: Sample{RSS: 60 << 20, FDs: 31, Goroutines: 41}}, Settle: 130 * time.Second}
	r.Leak.judge()
	r.Exit, r.ExitOK = "exited 0 12ms after SIGTERM", true
	r.LogCounts = []logCount{{"warn", "closing client", 12}}
	r.analyse()
	return r
}

func TestChecks(t *testing.T) {
	r := fakeReport()
	if r.Faults[0].Seq != 1 || r.Soak.failures[0].Fault != 1 || r.Soak.failures[1].Fault != 0 {
		t.Fatalf("faults %+v, failures %+v", r.Faults, r.Soak.failures)
	}
	got := map[string]bool{}
	for _, c := range r.Checks {
		got[c.Name] = c.OK
	}
	for name, ok := range map[string]bool{
		"no reply delivered to the wrong call":                                 true,
		"every failed call is a pyro-dispatch: refusal or a closed connection": false, // the timeout
		"every failure is explained by a fault injected at that moment":        false, // the timeout
		"calls succeed again within 2 s of the end of each fault":              true,
		"every client that failed succeeded again":                             false, // py:pooled-json never did
		"no panic recovered in the dispatcher":                                 true,
		"the dispatcher drained and exited 0 on SIGTERM":                       true,
	} {
		if v, found := got[name]; !found || v != ok {
			t.Errorf("check %q: %v (found %v), want %v", name, v, found, ok)
		}
	}
	leak := r.Checks[slicesIndex(r.Checks, "no leak")]
	if leak.OK || !strings.Contains(leak.Detail, "RSS 62914560 at the end, +50.0% over the baseline") {
		t.Errorf("leak check %+v", leak)
	}
	// A recovery past 2 s fails its check.
	r.Recoveries[0].After = 2500 * time.Millisecond
	r.analyse()
	if c := r.Checks[slicesIndex(r.Checks, "calls succeed again")]; c.OK || !strings.Contains(c.Detail, "worst 2.5s (fault 1, backend_kill") {
		t.Errorf("recovery check %+v", c)
	}
}

func slicesIndex(cs []Check, prefix string) int {
	for i, c := range cs {
		if strings.HasPrefix(c.Name, prefix) {
			return i
		}
	}
	return -1
}

func TestReportWrite(t *testing.T) {
	r := fakeReport()
	dir := t.TempDir()
	out, chart := filepath.Join(dir, "bench", "SOAK.md"), filepath.Join(dir, "bench", "charts", "soak.svg")
	if err := r.write(out, chart); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# Soak: pyro-dispatch under load and faults",
		"| no reply delivered to the wrong call | ✓ | 0 of 1802 calls |",
		"| every failure is explained by a fault injected at that moment | ✗ | 1 of 2 failures unexplained; the first: py:pooled-json at 0:40.100 on pooled→py (echo)",
		"| `go:session/py/probe` | session→py | echo(x) | 1000 | 0 / 1 / 0 |",
		"| `backend_kill` |", "| 1 | 0 / 1 | 150ms | 0 |",
		"| timeout | 1 | 0 | 1 |",
		"![RSS, goroutines, file descriptors, client connections and calls over the run](charts/soak.svg)",
		"| RSS | 40 MiB | 90 MiB | 60 MiB | 1.50 |",
		"| warn | closing client | 12 |",
		"| 2 | 0:30.000 | reload |  | 10ms | SIGHUP \\| variant 1 |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	svg, err := os.ReadFile(chart)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("chart is not XML: %v", err)
			}
			break
		}
	}
	for _, want := range []string{"goroutines", "file descriptors", "fault 1 backend_kill", "baseline + 10 %"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}
