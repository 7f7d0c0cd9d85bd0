package interop

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// TestPipelinedNoHeadOfLineBlocking: in pipelined pooled mode (pipeline 8, the default
// max_open) a call is not queued behind another client's slow call while another backend
// connection can be opened. Client A (a Pyro4 proxy in its own process) calls a method
// of a real Pyro4 thread-pool daemon that sleeps 3 s; while it runs, client B (another
// process) makes 20 sequential fast calls, each timed in Python: every one is answered
// in under 50 ms, and the daemon saw them all on one connection that is not A's (that
// one opened for B's first call, then reused: no connection per call).
//
// Not parallel: the bound is generous against a 3 s stall, but the fewer tests share
// the CPUs meanwhile, the further it is from flaking on a loaded 2-core machine.
func TestPipelinedNoHeadOfLineBlocking(t *testing.T) {
	requirePyro4(t)
	const (
		slowSeconds = 3
		fastCalls   = 20
		bound       = 50 * time.Millisecond
	)
	src := script(t, "hol.py")
	daemon := pyro4test.StartDaemon(t, src, "daemon")
	p := pooledProxy(t, daemon.Line, config.Pool{Pipeline: 8})
	uri := p.uri("hol.svc")

	a := pyro4test.StartDaemon(t, src, "slow", uri, fmt.Sprint(slowSeconds))
	if a.Line != "ready" {
		t.Fatalf("client A printed %q, want ready", a.Line)
	}
	pooledWaitStdout(t, daemon, "slow-begin ")
	slowConn := strings.Fields(daemon.Stdout()[strings.Index(daemon.Stdout(), "slow-begin "):])[1]

	stdout, _ := pyro4test.RunPython(t, src, nil, "fast", uri, fmt.Sprint(fastCalls))
	var b struct {
		Calls []struct {
			Seconds float64 `json:"seconds"`
			Conn    string  `json:"conn"`
			OK      bool    `json:"ok"`
		} `json:"calls"`
	}
	if err := json.Unmarshal(stdout, &b); err != nil {
		t.Fatalf("client B printed %q: %v", stdout, err)
	}
	ended := strings.Contains(daemon.Stdout(), "slow-end") // before B's calls did
	if len(b.Calls) != fastCalls {
		t.Fatalf("client B made %d calls, want %d", len(b.Calls), fastCalls)
	}
	conns := map[string]int{}
	var slowest time.Duration
	for i, c := range b.Calls {
		d := time.Duration(c.Seconds * float64(time.Second))
		slowest = max(slowest, d)
		conns[c.Conn]++
		switch {
		case !c.OK:
			t.Errorf("fast call %d: wrong result", i)
		case d >= bound:
			t.Errorf("fast call %d took %v, want < %v: queued behind the slow call?", i, d.Round(time.Microsecond), bound)
		}
	}
	if conns[slowConn] > 0 {
		t.Errorf("%d of B's calls went on A's upstream connection %s", conns[slowConn], slowConn)
	}
	if len(conns) != 1 {
		t.Errorf("B's sequential calls came on %d upstream connections %v, want one", len(conns), conns)
	}
	t.Logf("A's slow call on %s; B's %d calls on %v, the slowest in %v", slowConn, fastCalls, conns, slowest.Round(time.Microsecond))
	if ended && !t.Failed() {
		t.Fatalf("A's slow call ended before B's calls did: the scenario proves nothing (a very loaded machine?)\n%s", daemon.Stdout())
	}

	faultWaitFor(t, "A's slow call to return", func() bool { return strings.Count(a.Stdout(), "\n") >= 2 })
	var ra struct {
		Conn    string  `json:"conn"`
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(a.Stdout(), "\n", 3)[1]), &ra); err != nil || ra.Conn != slowConn || ra.Seconds < slowSeconds {
		t.Errorf("client A: %q (%v), want its slow call answered after %d s, on %s", a.Stdout(), err, slowSeconds, slowConn)
	}
}
