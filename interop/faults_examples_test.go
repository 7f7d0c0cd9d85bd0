package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// This file: faults the way Pyro4 clients expect them, shown with the Debian
// pyro4-examples that deal with them (autoretry, autoreconnect, disconnects, circular,
// timeout). Their servers and clients run as minimal copies in testdata/fx_ex_*.py (no
// name server, no fixed port, no keyboard: each file says what it changed), once with the
// client talking to the daemon itself ("direct") and once through the dispatcher in each
// of sessModes, and the outcome through the dispatcher must be the one seen directly;
// in pooled modes the pool may hide a daemon's close of an idle connection.
// faults_pyro4_test.go has the finer-grained cases. Helpers are named fx*.

// fxDirect is the way a client talks to the daemon itself, without the dispatcher.
const fxDirect = "direct"

// fxEachWay runs f as a parallel subtest directly and in each of sessModes.
func fxEachWay(t *testing.T, f func(t *testing.T, way string)) {
	t.Helper()
	t.Run(fxDirect, func(t *testing.T) {
		t.Parallel()
		f(t, fxDirect)
	})
	sessEachMode(t, f)
}

// fxPooled reports whether a way shares backend connections between clients, so that a
// daemon's close of an idle connection may stay hidden from the client.
func fxPooled(way string) bool { return way == config.ModePooled || way == sessPipelined }

// fxShortDial keeps a dial to a dead backend short.
func fxShortDial(c *config.Config) { c.Timeouts.Dial = 2 * time.Second }

// fxVia returns the address a client of backend talks to: backend itself directly, else
// that of a dispatcher started in mode way (sessMode) in front of backend, more applied.
func fxVia(t *testing.T, way, backend string, more ...func(*config.Config)) string {
	t.Helper()
	if way == fxDirect {
		return backend
	}
	return startProxy(t, backend, sessMode(way, append([]func(*config.Config){fxShortDial}, more...)...)).addr
}

// fxRouted returns a configuration change routing each object id of backends (object id ->
// daemon address) to its own backend group, in place of the listener's backend.
func fxRouted(backends map[string]string) func(*config.Config) {
	return func(c *config.Config) {
		l := &c.Listeners[0]
		l.Backend, l.Routes, c.Backends = nil, nil, nil
		objects := make([]string, 0, len(backends))
		for o := range backends {
			objects = append(objects, o)
		}
		slices.Sort(objects)
		for i, o := range objects {
			group := fmt.Sprintf("g%d", i)
			c.Backends = append(c.Backends, routeGroup(group, backends[o]))
			l.Routes = append(l.Routes, routeTo(group, config.Match{Object: config.StringList{o}}))
		}
	}
}

// fxLocation returns the location ("127.0.0.1:PORT") of a PYRO: URI.
func fxLocation(t testing.TB, uri string) string {
	t.Helper()
	_, loc, ok := strings.Cut(uri, "@")
	if !ok || !strings.HasPrefix(uri, "PYRO:") {
		t.Fatalf("%q is not a PYRO: URI", uri)
	}
	return loc
}

// fxRelocate returns uri with its location replaced by addr.
func fxRelocate(t testing.TB, uri, addr string) string {
	t.Helper()
	fxLocation(t, uri)
	object, _, _ := strings.Cut(strings.TrimPrefix(uri, "PYRO:"), "@")
	return pyroURI(object, addr)
}

var fxURIs = regexp.MustCompile(`PYRO:\S+`)

// fxServer starts a testdata script with args and waits until it printed n PYRO: URIs,
// which it returns in the order printed. It is killed when the test ends.
func fxServer(t *testing.T, name string, n int, args ...string) (*pyro4test.Process, []string) {
	t.Helper()
	p := pyro4test.StartDaemon(t, script(t, name), args...)
	var uris []string
	faultWaitFor(t, fmt.Sprintf("%d URIs from %s", n, name), func() bool {
		uris = fxURIs.FindAllString(p.Stdout(), -1)
		return len(uris) >= n || hostileExited(p)
	})
	if len(uris) < n {
		t.Fatalf("%s exited after printing %d URIs\n--- stdout:\n%s\n--- stderr:\n%s", name, len(uris), p.Stdout(), p.Stderr())
	}
	return p, uris[:n]
}

// fxExample starts an example server (fxServer, one URI) and returns it with the URI its
// client uses: the server's own directly, else the dispatcher's (fxVia).
func fxExample(t *testing.T, way, name string) (*pyro4test.Process, string) {
	t.Helper()
	srv, uris := fxServer(t, name, 1)
	return srv, fxRelocate(t, uris[0], fxVia(t, way, fxLocation(t, uris[0])))
}

// fxRing picks a free port for each node of a call cycle and returns them, with the URI
// of node n's object prefix+n as the nodes and their clients call it: at the node's own
// port directly, else at a dispatcher in mode way that routes each object to its node.
func fxRing(t *testing.T, way, prefix string, nodes []string) (addrs map[string]string, at func(n string) string) {
	t.Helper()
	addrs, objects := map[string]string{}, map[string]string{}
	for _, n := range nodes {
		addrs[n] = faultClosedPort(t)
		objects[prefix+n] = addrs[n]
	}
	if way == fxDirect {
		return addrs, func(n string) string { return pyroURI(prefix+n, addrs[n]) }
	}
	p := startProxy(t, "", sessMode(way, fxShortDial, fxRouted(objects)))
	return addrs, func(n string) string { return p.uri(prefix + n) }
}

// fxRun runs a testdata script with args to its end within `within` and returns its
// stdout; a non-zero exit or the deadline fails the test with both outputs.
func fxRun(t *testing.T, within time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	out, _ := pyro4test.RunPythonContext(ctx, t, script(t, name), nil, args...)
	return string(out)
}

// fxWaitOutput waits until a running process printed s on stdout, failing at once if it
// exits first, or after faultWait.
func fxWaitOutput(t *testing.T, p *pyro4test.Process, s string) {
	t.Helper()
	faultWaitFor(t, fmt.Sprintf("%q on the stdout of pid %d", s, p.Pid()), func() bool {
		return strings.Contains(p.Stdout(), s) || hostileExited(p)
	})
	if !strings.Contains(p.Stdout(), s) {
		p.Stop()
		t.Fatalf("pid %d exited before printing %q\n--- stdout:\n%s\n--- stderr:\n%s", p.Pid(), s, p.Stdout(), p.Stderr())
	}
}

// fxWait waits up to `within` for a process to exit and returns its stdout. A process
// still running then is killed (a hang); that or a non-zero exit fails the test.
func fxWait(t *testing.T, p *pyro4test.Process, within time.Duration) string {
	t.Helper()
	var err error
	select {
	case <-p.Done():
		err = p.Stop()
	case <-time.After(within):
		err = fmt.Errorf("still running after %v (a hang), killed: %v", within, p.Stop())
	}
	if err != nil {
		t.Fatalf("pid %d: %v\n--- stdout:\n%s\n--- stderr:\n%s", p.Pid(), err, p.Stdout(), p.Stderr())
	}
	return p.Stdout()
}

// fxTouch creates an empty file: the signal the scripts wait for.
func fxTouch(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fxLines splits output into lines without trailing spaces.
func fxLines(out string) []string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \r")
	}
	return lines
}

// fxSameOutput fails unless an example client printed want (its direct output), or, when
// hidden is not empty and the way is pooled, want without the line hidden (the pool hid a
// daemon's close of an idle connection that the client would have seen).
func fxSameOutput(t *testing.T, way, got, want, hidden string) {
	t.Helper()
	g, w := fxLines(got), fxLines(want)
	if slices.Equal(g, w) {
		return
	}
	if hidden != "" && fxPooled(way) {
		if i := slices.Index(w, hidden); i >= 0 && slices.Equal(g, slices.Delete(slices.Clone(w), i, i+1)) {
			t.Logf("%s: the pool hid the daemon's idle close (no %q)", way, hidden)
			return
		}
	}
	t.Errorf("%s: the example client printed\n%s\n--- want (as directly):\n%s", way, got, want)
}

// The direct outputs of the example clients.
const (
	fxAutoretryError = `Got exception "ConnectionClosedError('receiving: not enough data')" as expected.`
	fxAutoretryWant  = `Calling remote function 1st time (create connection)
Calling remote function 2nd time (not timed out yet)
Sleeping 1 second...
Calling remote function 3rd time (will raise an exception)
` + fxAutoretryError + `
Now, let's enable the auto retry
Calling remote function 1st time (create connection)
Calling remote function 2nd time (not timed out yet)
Sleeping 1 second...
Calling remote function 3rd time (will not raise any exceptions)
`
	fxAutoreconnectWant = `Autoreconnect using PYRO uri.
call...
Sleeping 1 second
call...
Connection lost. REBINDING...
(restart the server now)
call...
Sleeping 1 second
call...
Sleeping 1 second
done
`
	fxDisconnectsHead = `You can run this client on a different computer so you can disable the network connection (by yanking out the lan cable or whatever).
Alternatively, wait for a timeout on the server, which will then close its connection.
  <proxy: ping>
  <proxy: ping reply (still connected)>
result = 12345

Client proxy connection is still open. Disable the network now (or wait until the connection timeout on the server expires) and see what the server does.
Once you see on the server that it got a timeout or a disconnect, enable the network again.
Press enter to continue:

Doing a new call on the same proxy:
  <proxy: ping>
`
	fxDisconnectsWant = fxDisconnectsHead + `  <proxy: Connection lost. REBINDING...>
  <proxy: Connection restored, continue with actual method call...>
result = 12345
`
	// In pooled modes the dispatcher may keep the client's connection although the daemon
	// closed the pooled one: the ping is answered.
	fxDisconnectsHiddenWant = fxDisconnectsHead + `  <proxy: ping reply (still connected)>
result = 12345
`
	fxTimeoutWant = `No timeout is configured. Calling delay with 2 seconds.
Timeout set to 1 seconds. Calling delay with 2 seconds.
TimeoutError! As expected!
COMMTIMEOUT is set globally. Calling delay with 2 seconds.
TimeoutError! As expected!
No timeout is configured. Calling delay with 3 seconds.
Trying to connect to the frozen daemon.
Timeout set to 1 seconds. Trying to connect.
TimeoutError! As expected!
`
)

// TestFaultExampleAutoretry: the autoretry example. The server (COMMTIMEOUT 0.5 s) closes
// the client's connection while it sleeps 1 s: without retries the 3rd call raises
// ConnectionClosedError, with _pyroMaxRetries 2 it goes through. Through the dispatcher
// the client sees the same (session mode: the dispatcher closes the client's connection
// when the daemon closed the backend one); in pooled modes the pool may hide the close,
// so the 3rd call of the first part may simply succeed.
func TestFaultExampleAutoretry(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	fxEachWay(t, func(t *testing.T, way string) {
		_, uri := fxExample(t, way, "fx_ex_autoretry_server.py")
		out := fxRun(t, 30*time.Second, "fx_ex_autoretry_client.py", uri)
		fxSameOutput(t, way, out, fxAutoretryWant, fxAutoretryError)
	})
}

// TestFaultExampleAutoreconnect: the autoreconnect example. The server is killed
// (SIGKILL) while the client's 2nd call is in flight: the client catches
// ConnectionClosedError, rebinds with _pyroReconnect (which retries every 2 s) and, once
// the server is back on the same port, calls on. Through the dispatcher a daemon lost
// mid-call must look the same: the client's connection is closed, not answered with a
// CommunicationError (which the example does not catch).
func TestFaultExampleAutoreconnect(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	fxEachWay(t, func(t *testing.T, way string) {
		backend := faultClosedPort(t)
		_, port, _ := strings.Cut(backend, ":")
		srv, uris := fxServer(t, "fx_ex_autoreconnect_server.py", 1, port)
		uri := fxRelocate(t, uris[0], fxVia(t, way, backend))
		client := pyro4test.StartDaemon(t, script(t, "fx_ex_autoreconnect_client.py"), uri)
		faultWaitFor(t, "the client's 2nd call to be in flight", func() bool {
			return strings.Count(srv.Stdout(), "Method called with 42") >= 2 || hostileExited(client)
		})
		srv.Stop() // SIGKILL, the call in flight
		fxWaitOutput(t, client, "(restart the server now)")
		fxServer(t, "fx_ex_autoreconnect_server.py", 1, port)
		out := fxWait(t, client, faultWait)
		fxSameOutput(t, way, out, fxAutoreconnectWant, "")
	})
}

// TestFaultExampleDisconnects: the disconnects example. The server (COMMTIMEOUT 1 s
// instead of 5 s) closes the idle connection; the client's AutoReconnectingProxy pings
// (Message.ping, serializer id 42) before its next call, sees ConnectionClosedError,
// reconnects and calls. Through the dispatcher in session mode the daemon's close must
// reach the client (within 100 ms: the client goes on 200 ms after the server logged the
// timeout); in pooled modes the ping may be answered instead. Either way the ping gets
// an answer or a closed connection, and the call works.
func TestFaultExampleDisconnects(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	fxEachWay(t, func(t *testing.T, way string) {
		srv, uri := fxExample(t, way, "fx_ex_disconnects_server.py")
		next := filepath.Join(t.TempDir(), "enter")
		client := pyro4test.StartDaemon(t, script(t, "fx_ex_disconnects_client.py"), uri, next)
		fxWaitOutput(t, client, "Press enter to continue:")
		faultWaitFor(t, "the server to time out the idle connection", func() bool {
			return strings.Contains(srv.Stderr(), "error during handleRequest: receiving: timeout")
		})
		time.Sleep(200 * time.Millisecond)
		fxTouch(t, next)
		out := fxWait(t, client, faultWait)
		if fxPooled(way) && out == fxDisconnectsHiddenWant {
			t.Logf("%s: the pool hid the daemon's idle close: the ping was answered", way)
			return
		}
		fxSameOutput(t, way, out, fxDisconnectsWant, "")
	})
}

// TestFaultExampleCircular: the circular example, A -> B -> C -> A: three daemons whose
// Chain objects pass the message on to the next one (each through one proxy kept for
// every call) until it comes back to A. Through the dispatcher, every node reaches the
// next one through the dispatcher's address (a route per object id), so the last call,
// C -> A, goes to the daemon whose call from the client is still in flight, with the
// same correlation id: it must not wait behind it (a deadlock).
func TestFaultExampleCircular(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	fxEachWay(t, func(t *testing.T, way string) {
		nodes := []string{"A", "B", "C"}
		addrs, at := fxRing(t, way, "example.chain.", nodes)
		for i, n := range nodes {
			next := nodes[(i+1)%len(nodes)]
			fxServer(t, "fx_ex_circular_server.py", 1, n, next, at(next), addrs[n])
		}
		out := fxRun(t, 30*time.Second, "fx_ex_circular_client.py", at("A"))
		fxSameOutput(t, way, out, "Result=['passed on from A', 'passed on from B', 'passed on from C', 'complete at A']\n", "")
	})
}

// TestFaultExampleTimeout: the timeout example: calls of a 2 s method with no timeout, a
// 1 s _pyroTimeout and a 1 s COMMTIMEOUT (TimeoutError after 1 s, the proxy drops its
// connection), then a 3 s call with no timeout that must take 3 s (within 0.2 s, the
// example's own check): through the dispatcher it must not wait behind the abandoned 2 s
// calls. Then a daemon that never answers the handshake: TimeoutError after 1 s. (The
// example's last step, waiting forever on the frozen daemon, is left out.)
func TestFaultExampleTimeout(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	fxEachWay(t, func(t *testing.T, way string) {
		_, uris := fxServer(t, "fx_ex_timeout_server.py", 2)
		for i, u := range uris {
			uris[i] = fxRelocate(t, u, fxVia(t, way, fxLocation(t, u)))
		}
		out := fxRun(t, 40*time.Second, "fx_ex_timeout_client.py", uris...)
		fxSameOutput(t, way, out, fxTimeoutWant, "")
	})
}

// fxDecodeLast decodes the last line of a script's output into v.
func fxDecodeLast(t *testing.T, out string, v any) {
	t.Helper()
	lines := fxLines(out)
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), v); err != nil {
		t.Fatalf("last line of the output is not the JSON expected: %v\n%s", err, out)
	}
}
