package main

import (
	"bytes"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// A dump in the debug=2 format: a session, a pipelined reader, a pool's upkeep.
const dumpText = `goroutine 1 [chan receive, 31 minutes]:
main.runServe({0xc000128000, 0x2, 0x2}, {0x11c4e60, 0xc000012018}, {0x11c4e60, 0xc000012020})
	/src/cmd/pyro-dispatch/serve.go:290 +0xb4a
main.main()
	/src/cmd/pyro-dispatch/main.go:50 +0x1c5

goroutine 812 [IO wait]:
internal/poll.runtime_pollWait(0x7f, 0x72)
	/usr/local/go/src/runtime/netpoll.go:351 +0x85
github.com/pyro-dispatch/pyro-dispatch/frame.(*Reader).fill(0xc0001, 0x18)
	/src/frame/reader.go:120 +0x55
github.com/pyro-dispatch/pyro-dispatch/dispatch.(*Session).run(0xc0002)
	/src/dispatch/session.go:140 +0x33
created by github.com/pyro-dispatch/pyro-dispatch/dispatch.(*Server).acceptLoop in goroutine 12
	/src/dispatch/server.go:470 +0x1e5

goroutine 901 [IO wait, 2 minutes]:
github.com/pyro-dispatch/pyro-dispatch/frame.(*Reader).fill(0xc0003, 0x18)
	/src/frame/reader.go:120 +0x55
github.com/pyro-dispatch/pyro-dispatch/dispatch.(*muxConn).readLoop(0xc0004)
	/src/dispatch/mux.go:280 +0x33
created by github.com/pyro-dispatch/pyro-dispatch/dispatch.(*mux).open in goroutine 812
	/src/dispatch/mux.go:262 +0x1e5

goroutine 77 [select]:
github.com/pyro-dispatch/pyro-dispatch/pool.(*Pool).upkeep(0xc0005)
	/src/pool/pool.go:600 +0x1aa
created by github.com/pyro-dispatch/pyro-dispatch/pool.New in goroutine 812
	/src/pool/pool.go:250 +0x3a5
`

func TestParseGoroutines(t *testing.T) {
	gs := parseGoroutines(dumpText + `
goroutine 9 [IO wait]:
net/http.(*connReader).backgroundRead(0xc0006)
	/usr/local/go/src/net/http/server.go:690 +0x37
created by net/http.(*connReader).startBackgroundRead in goroutine 8
	/usr/local/go/src/net/http/server.go:686 +0xb6
`)
	if len(gs) != 5 || gs[4].createdBy != "net/http.(*connReader).startBackgroundRead" {
		t.Fatalf("%d goroutines, want 5: %+v", len(gs), gs)
	}
	gs = gs[:4]
	if len(gs) != 4 {
		t.Fatalf("%d goroutines, want 4: %+v", len(gs), gs)
	}
	if g := gs[1]; g.state != "IO wait" || g.frames[0] != "internal/poll.runtime_pollWait" ||
		g.createdBy != "github.com/pyro-dispatch/pyro-dispatch/dispatch.(*Server).acceptLoop" {
		t.Errorf("goroutine 812: %+v", g)
	}
	d := summarize(parseGoroutines(dumpText + "\ngoroutine 9 [IO wait]:\nnet/http.(*connReader).backgroundRead(0x1)\n\t/x.go:1\ncreated by net/http.(*connReader).startBackgroundRead in goroutine 8\n\t/x.go:2\n"))
	if d.Total != 5 || d.Sessions != 1 || d.MuxReaders != 1 || d.Upkeeps != 1 || len(d.BySig) != 4 {
		t.Errorf("summary %+v: the admin listener's own goroutines are not counted by signature", d)
	}
	if n := d.BySig["frame.(*Reader).fill ← dispatch.(*mux).open"]; n != 1 {
		t.Errorf("signatures %v", d.BySig)
	}

	// The test binary's own dump parses too, this test among its goroutines.
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	own := parseGoroutines(b.String())
	found := false
	for _, g := range own {
		found = found || g.has("TestParseGoroutines")
	}
	if len(own) < 2 || !found {
		t.Errorf("own dump: %d goroutines, this test's found: %v", len(own), found)
	}
}

func TestLeakJudge(t *testing.T) {
	base := Sample{RSS: 40 << 20, FDs: 50, Goroutines: 80}
	idle := summarize(parseGoroutines(dumpText))
	idle.Sessions = 0
	c := LeakCheck{Base: snapshot{Sample: base, Dump: idle, Pools: 1, PipelinedConns: 1},
		Final: snapshot{Sample: Sample{RSS: 44 << 20, FDs: 55, Goroutines: 88}, Dump: idle, Pools: 1, PipelinedConns: 1}}
	c.judge()
	if len(c.Problems) != 0 || len(c.Grown) != 0 {
		t.Errorf("at +10%%: %v %v", c.Problems, c.Grown)
	}
	if !settled(c.Final.Sample, base) || settled(Sample{RSS: 45 << 20, FDs: 50, Goroutines: 80}, base) ||
		settled(Sample{RSS: 40 << 20, FDs: 50, Goroutines: 80, Clients: 1}, base) {
		t.Error("settled is wrong")
	}

	leaky := summarize(parseGoroutines(dumpText + "\n" + dumpText))
	c = LeakCheck{Base: snapshot{Sample: base, Dump: idle},
		Final: snapshot{Sample: Sample{RSS: 45 << 20, FDs: 56, Goroutines: 89, Clients: 2}, Dump: leaky, Pools: 1, PipelinedConns: 1}}
	c.judge()
	want := []string{"RSS 47185920 at the end, +12.5% over the baseline", "file descriptors 56", "goroutines 89",
		"2 client connections counted", "2 goroutines in dispatch.(*Session).run", "2 goroutines in dispatch.(*muxConn).readLoop for 1",
		"2 goroutines in pool.(*Pool).upkeep for 1 pools"}
	if len(c.Problems) != len(want) {
		t.Fatalf("problems %q, want %d", c.Problems, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(c.Problems[i], w) {
			t.Errorf("problem %d: %q, want it to start with %q", i, c.Problems[i], w)
		}
	}
	if len(c.Grown) != 4 || c.Grown[1] != (sigDelta{"frame.(*Reader).fill ← dispatch.(*mux).open", 1, 2}) {
		t.Errorf("grown %+v", c.Grown)
	}
}

func TestMetricAndVmRSS(t *testing.T) {
	expo := []byte(`# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 93
go_goroutines_other 5
pyro_dispatch_client_connections{listener="a"} 3
pyro_dispatch_client_connections{listener="b"} 4
pyro_dispatch_panics_total{listener="a"} 0
`)
	for name, want := range map[string]float64{"go_goroutines": 93, "pyro_dispatch_client_connections": 7, "pyro_dispatch_panics_total": 0} {
		if got, err := metric(expo, name); err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := metric(expo, "nope"); err == nil {
		t.Error("a missing metric was found")
	}
	rss, err := vmRSS([]byte("Name:\tpyro-dispatch\nVmHWM:\t  90000 kB\nVmRSS:\t   51234 kB\nThreads:\t8\n"))
	if err != nil || rss != 51234<<10 {
		t.Errorf("VmRSS %d, %v", rss, err)
	}
}

func TestMedianSample(t *testing.T) {
	ss := []Sample{{RSS: 3, FDs: 9, At: time.Unix(1, 0)}, {RSS: 1, FDs: 7}, {RSS: 2, FDs: 8}}
	if medianOf(ss, func(s Sample) int64 { return s.RSS }) != 2 || medianOf(ss, func(s Sample) int64 { return int64(s.FDs) }) != 8 {
		t.Error("median")
	}
}
