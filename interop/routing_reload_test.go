package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/config"
)

// This file: reloads while clients call, in process (dispatch.Server.Reload) and by
// SIGHUP to the pyro-dispatch binary with its configuration file rewritten. Two valid
// configurations alternate, every third reload is an invalid one; the Go clients of
// routing_load_test.go must see no failed call, and every call (pooled mode) or
// connection (session mode) started after a reload took effect must reach the group the
// new routes name.

// routeReloads is how many reloads each test makes.
const routeReloads = 20

// routeStep is one reload of a sequence: its kind ("A", "B" or "invalid") and the
// replicas the routes in service send calls to after it.
type routeStep struct {
	kind string
	to   []string
}

// routeSteps returns the reload sequence: B, A, invalid, B, A, invalid, ... starting from
// A in service; A sends every echo call to blue (r0), B to green (r1, r2); an invalid
// configuration leaves the routes as they were.
func routeSteps() []routeStep {
	blue, green := []string{"r0"}, []string{"r1", "r2"}
	steps := make([]routeStep, routeReloads)
	cur := blue
	for i := range steps {
		switch i % 3 {
		case 0:
			steps[i], cur = routeStep{"B", green}, green
		case 1:
			steps[i], cur = routeStep{"A", blue}, blue
		default:
			steps[i] = routeStep{"invalid", cur}
		}
	}
	return steps
}

// routeStepCheck lets the clients call for 100 ms under the routes of step and checks
// that the replicas step names took calls (a call reaching another is counted as wrong
// by the load itself).
func routeStepCheck(t *testing.T, l *routeLoad, i int, step routeStep) {
	t.Helper()
	before, _ := l.servedBy()
	time.Sleep(100 * time.Millisecond)
	after, _ := l.servedBy()
	d := routeDiff(after, before)
	n := int64(0)
	for _, r := range step.to {
		n += d[r]
	}
	if n == 0 {
		t.Errorf("reload %d (%s): no call reached %v in 100 ms after it (served %v)", i+1, step.kind, step.to, d)
	}
}

// routeLoadDone stops the load and requires no failed call and no call (or connection)
// that reached a replica the routes in service when it started did not name.
func routeLoadDone(t *testing.T, l *routeLoad) {
	t.Helper()
	l.finish(t)
	routeNoFailures(t, l)
	served, total := l.servedBy()
	l.mu.Lock()
	wrong, ex := l.wrong, l.wrongEx
	l.mu.Unlock()
	t.Logf("%d calls %v, %d to a replica the routes did not name", total, served, wrong)
	if wrong > 0 {
		t.Errorf("%d calls reached a replica the routes in service did not name, such as %v", wrong, ex)
	}
}

// TestRoutingReloadUnderLoad: 20 reloads by dispatch.Server.Reload while 32 Go clients
// call, in pooled mode (routes per call) and session mode (routes per connection: each
// client reconnects every 5 calls). A (blue: r0) and B (green: r1, r2, with green's
// members and balance changed too) alternate, every third reload is invalid (a route to
// a group that does not exist) and refused, leaving the routes as they were. No call
// fails, and every call (connection) started after a reload returned reaches the group
// of the routes in service.
func TestRoutingReloadUnderLoad(t *testing.T) {
	// Not parallel: a data race the race detector finds here would fail every test
	// running at the time.
	for _, mode := range []string{config.ModePooled, config.ModeSession} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			reps := routeEchoReplicas(t, 0, 0, 0)
			t.Logf("replicas r0, r1, r2: %v", reps.addrs)
			configs := map[string]func() ([]config.Backend, []config.Route){
				"A": func() ([]config.Backend, []config.Route) {
					green := reps.group("green", config.BalanceRoundRobin)
					green.Members = green.Members[1:2]
					return []config.Backend{{Name: "blue", Members: []config.Member{{Address: reps.addrs[0]}}}, green},
						[]config.Route{routeTo("green", config.Match{Object: config.StringList{"nothing.*"}}), {To: "blue"}}
				},
				"B": func() ([]config.Backend, []config.Route) {
					green := reps.group("green", config.BalanceLeastInflight)
					green.Members = green.Members[1:]
					return []config.Backend{{Name: "blue", Members: []config.Member{{Address: reps.addrs[0]}}}, green},
						[]config.Route{routeTo("green", config.Match{Object: config.StringList{"echo"}}), {To: "blue"}}
				},
				"invalid": func() ([]config.Backend, []config.Route) {
					return []config.Backend{{Name: "blue", Members: []config.Member{{Address: reps.addrs[0]}}}},
						[]config.Route{{To: "nowhere"}}
				},
			}
			groups, routes := configs["A"]()
			p := routeProxy(t, mode, groups, routes)
			spec := routeSpec{addr: p.addr, object: bench.EchoObject, clients: 32, pause: time.Millisecond, call: routeEchoCall, classify: reps.classify}
			if mode == config.ModeSession {
				spec.perConn, spec.reconnect = true, 5
			}
			cur := []string{"r0"}
			l := routeStart(t, spec)
			l.allow(cur...)
			time.Sleep(100 * time.Millisecond)
			for i, step := range routeSteps() {
				l.allow(append(append([]string(nil), cur...), step.to...)...) // while it reloads
				groups, routes := configs[step.kind]()
				err := p.srv.Reload(routeFullConfig(mode, groups, routes))
				switch {
				case step.kind == "invalid" && err == nil:
					t.Fatalf("reload %d: an invalid configuration was put in service", i+1)
				case step.kind != "invalid" && err != nil:
					t.Fatalf("reload %d (%s): %v", i+1, step.kind, err)
				}
				cur = step.to
				l.allow(cur...)
				routeStepCheck(t, l, i, step)
			}
			routeLoadDone(t, l)
		})
	}
}

// routeYAML is the configuration file of the SIGHUP test: kind A or B (see
// TestRoutingReloadUnderLoad), or one of three invalid files (n picks which).
func routeYAML(kind string, n int, listen string, addrs []string) string {
	head := fmt.Sprintf("backends:\n  - name: blue\n    members: [%s]\n", addrs[0])
	tail := fmt.Sprintf("listeners:\n  - name: edge\n    listen: %s\n    mode: pooled\n", listen)
	logs := "log:\n  level: info\n  format: json\n"
	switch kind {
	case "A":
		return head + fmt.Sprintf("  - name: green\n    members: [%s]\n", addrs[1]) + tail +
			"    routes:\n      - match: {object: \"nothing.*\"}\n        to: green\n      - to: blue\n" + logs
	case "B":
		return head + fmt.Sprintf("  - name: green\n    members: [%s, {address: %s, weight: 2}]\n    balance: least_inflight\n", addrs[1], addrs[2]) + tail +
			"    routes:\n      - match: {object: \"~^ech.$\", method: \"echo\"}\n        to: green\n      - to: blue\n" + logs
	}
	switch n % 3 {
	case 0:
		return head + tail + "    routes:\n      - to: nowhere\n" + logs // no such group
	case 1:
		return head + tail + "    routes:\n      - match: {object: \"~(\"}\n        to: blue\n" + logs // bad regular expression
	default:
		return head + tail + "    routes: [\n" + logs // not YAML
	}
}

// routeWriteFile replaces the file at path with text at once (rename), so that the
// dispatcher never reads half of it.
func routeWriteFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestRoutingReloadSIGHUP: the pyro-dispatch binary serves --config FILE (pooled, routes
// A); 20 times the file is rewritten (B, A, invalid: a route to a missing group, a bad
// regular expression, broken YAML) and the process gets SIGHUP, while 32 Go clients
// call. Each SIGHUP logs "reloaded" or, for the invalid files, "reload failed: the
// running configuration stays"; no call fails, and every call started after the log line
// reaches the group of the routes in service. SIGTERM then ends it with exit code 0.
func TestRoutingReloadSIGHUP(t *testing.T) {
	t.Parallel()
	bin := buildDispatcher(t, t.TempDir())
	reps := routeEchoReplicas(t, 0, 0, 0)
	t.Logf("replicas r0, r1, r2: %v", reps.addrs)
	listen := cliFreePort(t)
	file := filepath.Join(t.TempDir(), "pyro-dispatch.yaml")
	routeWriteFile(t, file, routeYAML("A", 0, listen, reps.addrs))
	p := cliStart(t, bin, "serve", "--config", file)
	p.ready(t)

	l := routeStart(t, routeSpec{addr: listen, object: bench.EchoObject, clients: 32, pause: time.Millisecond, call: routeEchoCall, classify: reps.classify})
	cur := []string{"r0"}
	l.allow(cur...)
	time.Sleep(100 * time.Millisecond)
	const okMsg, failMsg = "reloaded", "reload failed: the running configuration stays"
	for i, step := range routeSteps() {
		oks, fails := len(p.logLines(okMsg)), len(p.logLines(failMsg))
		routeWriteFile(t, file, routeYAML(step.kind, i/3, listen, reps.addrs))
		l.allow(append(append([]string(nil), cur...), step.to...)...) // while it reloads
		p.signal(t, syscall.SIGHUP)
		faultWaitFor(t, fmt.Sprintf("the log line of reload %d", i+1), func() bool {
			return len(p.logLines(okMsg)) > oks || len(p.logLines(failMsg)) > fails
		})
		gotOK, gotFail := len(p.logLines(okMsg)) > oks, len(p.logLines(failMsg)) > fails
		if gotOK != (step.kind != "invalid") || gotFail != (step.kind == "invalid") {
			t.Fatalf("reload %d (%s): logged reloaded %v, reload failed %v\n%s", i+1, step.kind, gotOK, gotFail, p.stderr.String())
		}
		if step.kind == "invalid" {
			f := p.logLines(failMsg)[fails]
			if e := fmt.Sprint(f["error"]); !strings.Contains(e, "line ") && !strings.Contains(e, "nowhere") {
				t.Errorf("reload %d: the refusal does not say what is wrong: %q", i+1, e)
			}
		}
		cur = step.to
		l.allow(cur...)
		routeStepCheck(t, l, i, step)
	}
	routeLoadDone(t, l)
	valid, invalid := 0, 0
	for _, step := range routeSteps() {
		if step.kind == "invalid" {
			invalid++
		} else {
			valid++
		}
	}
	if oks, fails := len(p.logLines(okMsg)), len(p.logLines(failMsg)); oks != valid || fails != invalid {
		t.Errorf("%d reloaded and %d reload failed lines, want %d and %d", oks, fails, valid, invalid)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.exit(t, faultWait); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
}
