package interop

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// This file: what only pooled mode does, with real Pyro4 daemons and clients (the
// session-mode scenarios run in pooled mode too, in session_test.go). Each test has its own
// testdata/daemon.py, which counts the connections and handshakes it sees (test.stats);
// testdata/pooled_client.py runs one scenario in one Python process and prints its
// outcome as JSON. Helpers are named pooled*.

// pooledDaemon starts testdata/daemon.py with args and returns the process (its stdout
// shows "slow-begin TOKEN" when a slow call starts) and its address.
func pooledDaemon(t *testing.T, args ...string) (*pyro4test.Process, string) {
	t.Helper()
	p := pyro4test.StartDaemon(t, script(t, "daemon.py"), args...)
	if _, _, err := config.ParseAddress(p.Line); err != nil || p.Line == "" {
		t.Fatalf("daemon.py printed %q, want its address: %v", p.Line, err)
	}
	return p, p.Line
}

// pooledProxy starts a dispatcher whose listener is pooled, with the pool settings pc
// (zero fields get the defaults) and the affinity patterns.
func pooledProxy(t *testing.T, backend string, pc config.Pool, affinity ...string) *proxy {
	t.Helper()
	return startProxy(t, backend, func(c *config.Config) {
		l := &c.Listeners[0]
		l.Mode, l.Pool, l.Affinity = config.ModePooled, pc, affinity
		c.Timeouts.Dial = 2 * time.Second
	})
}

// pooledRun runs one scenario of testdata/pooled_client.py and decodes its result into
// result, failing the test if the scenario raised.
func pooledRun(t *testing.T, p *proxy, daemon, scenario string, result any) {
	t.Helper()
	stdout, stderr := pyro4test.RunPython(t, script(t, "pooled_client.py"), nil,
		"--addr", p.addr, "--daemon", daemon, scenario)
	var line struct {
		OK      bool            `json:"ok"`
		Result  json.RawMessage `json:"result"`
		Error   string          `json:"error"`
		Trace   string          `json:"trace"`
		Seconds float64         `json:"seconds"`
	}
	if err := json.Unmarshal(stdout, &line); err != nil {
		t.Fatalf("pooled_client.py printed %q: %v\n--- stderr:\n%s", stdout, err, stderr)
	}
	if !line.OK {
		t.Fatalf("scenario %s failed: %s\n%s", scenario, line.Error, line.Trace)
	}
	t.Logf("scenario %s: %s (%.2fs)", scenario, line.Result, line.Seconds)
	if err := json.Unmarshal(line.Result, result); err != nil {
		t.Fatalf("scenario %s result %s: %v", scenario, line.Result, err)
	}
}

// pooledCounts is a change in the daemon's connection counts (test.stats connections).
type pooledCounts struct {
	Handshakes  int `json:"handshakes"`  // validateHandshake calls
	Accepted    int `json:"accepted"`    // connections whose handshake it accepted
	Rejected    int `json:"rejected"`    // handshakes it rejected
	Disconnects int `json:"disconnects"` // accepted connections closed (clientDisconnect)
}

// pooledOutcome is one call's outcome in pooled_client.py: its result or its exception.
type pooledOutcome struct {
	OK        any     `json:"ok"`
	Class     string  `json:"class"`
	Error     string  `json:"error"`
	Seconds   float64 `json:"seconds"`
	Connected bool    `json:"connected"` // steps of "lost": the proxy still has its connection
	Response  any     `json:"response"`  // handshake scenarios: the handshake response
}

func (o pooledOutcome) String() string {
	b, _ := json.Marshal(o)
	return string(b)
}

// wantOK fails unless the call returned want.
func (o pooledOutcome) wantOK(t *testing.T, what string, want any) {
	t.Helper()
	if o.Class != "" || fmt.Sprint(o.OK) != fmt.Sprint(want) {
		t.Errorf("%s: %v, want result %v", what, o, want)
	}
}

// wantError fails unless the call raised a Pyro4 CommunicationError whose message starts
// with prefix and contains every one of texts.
func (o pooledOutcome) wantError(t *testing.T, what, prefix string, texts ...string) {
	t.Helper()
	if o.Class != "Pyro4.errors.CommunicationError" || !strings.HasPrefix(o.Error, prefix) {
		t.Errorf("%s: %v, want a CommunicationError starting with %q", what, o, prefix)
		return
	}
	for _, s := range texts {
		if !strings.Contains(o.Error, s) {
			t.Errorf("%s: error %q does not contain %q", what, o.Error, s)
		}
	}
}

// pooledSlowCall is a serpent INVOKE of test.echo slow(seconds, token), as a Pyro4 proxy
// sends it.
func pooledSlowCall(seq uint16, seconds int, token string) []byte {
	return rawMsg(frame.Invoke, seq, nil, fmt.Sprintf("# serpent utf-8 python3.2\n('test.echo','slow',(%d,'%s'),{})", seconds, token))
}

// pooledWantException reads a reply on c and requires a RESULT with the exception flag,
// for request seq, whose payload holds every one of texts.
func pooledWantException(t *testing.T, c *rawClient, seq uint16, texts ...string) {
	t.Helper()
	m := c.read(t)
	if m.Header.Type != frame.Result || !m.Header.Flags.Has(frame.FlagException) || m.Header.Seq != seq {
		t.Fatalf("got %v %v seq %d %q, want a RESULT with an exception for seq %d", m.Header.Type, m.Header.Flags, m.Header.Seq, m.Payload, seq)
	}
	for _, s := range texts {
		if !strings.Contains(string(m.Payload), s) {
			t.Errorf("exception %q does not contain %q", m.Payload, s)
		}
	}
}

// pooledWaitStdout waits until a process printed a line containing s.
func pooledWaitStdout(t *testing.T, p *pyro4test.Process, s string) {
	t.Helper()
	faultWaitFor(t, fmt.Sprintf("%q on the stdout of pid %d", s, p.Pid()), func() bool { return strings.Contains(p.Stdout(), s) })
}

// TestPooledResourceTracking: a client of an affinity object (test.resources) keeps one
// backend connection, so the resource it tracks lives as long as the client: while it
// holds it, 8 clients of test.echo (no affinity) share the pool's 2 connections; when the
// resource client disconnects, its backend connection is closed, never pooled: the
// daemon's clientDisconnect runs for it and the resource is closed, as seen through
// test.echo.
func TestPooledResourceTracking(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	_, backend := pooledDaemon(t)
	p := pooledProxy(t, backend, config.Pool{MaxOpen: 2}, "test.resources")
	var r struct {
		Allocated        string       `json:"allocated"`
		EchoErrors       []string     `json:"echo_errors"`
		EchoClients      int          `json:"echo_clients"`
		EchoBackendConns int          `json:"echo_backend_conns"`
		During           string       `json:"during"`
		AfterRelease     string       `json:"after_release"`
		Hook             string       `json:"hook"`
		WatcherCallOK    bool         `json:"watcher_call_ok"`
		Daemon           pooledCounts `json:"daemon"`
	}
	pooledRun(t, p, backend, "resources", &r)

	if r.Allocated != "open" || r.During != "open" {
		t.Errorf("resource %q when allocated, %q while its client is connected and others call: want open", r.Allocated, r.During)
	}
	if r.AfterRelease != "closed" || r.Hook != "clientDisconnect" || !r.WatcherCallOK {
		t.Errorf("after the resource client disconnected: resource %q (want closed), clientDisconnect hook %q, watcher call ok %v",
			r.AfterRelease, r.Hook, r.WatcherCallOK)
	}
	if len(r.EchoErrors) != 0 {
		t.Errorf("test.echo clients failed: %v", r.EchoErrors)
	}
	// The 8 test.echo clients' 80 calls came in on at most the pool's 2 connections; the
	// daemon saw one more connection for test.resources and none for each client.
	if r.EchoBackendConns < 1 || r.EchoBackendConns > 2 {
		t.Errorf("the calls of %d test.echo clients came in on %d daemon connections, want 1 or 2 (pool max_open)", r.EchoClients, r.EchoBackendConns)
	}
	clients := r.EchoClients + 2 // the echo clients, the resource client, the watcher
	if r.Daemon.Accepted > 3 || r.Daemon.Accepted >= clients || r.Daemon.Handshakes != r.Daemon.Accepted {
		t.Errorf("the daemon saw %+v for %d clients: want at most 3 connections (1 pinned + 2 pooled), each with one handshake", r.Daemon, clients)
	}
	if r.Daemon.Disconnects != 1 {
		t.Errorf("the daemon saw %d disconnects, want 1: the resource client's pinned connection", r.Daemon.Disconnects)
	}
	p.waitLog(t, "pinned to one upstream connection: affinity", map[string]string{"object": "test.resources"})
}

// TestPooledItemStreams: item streams pin their client automatically. Three clients stream
// through a pool of 2 connections: A and B iterate their streams concurrently, each
// get_next_stream_item reaching the connection that created its stream; C, whose stream
// call finds no free connection, gets a CommunicationError from the dispatcher after the
// pool wait timeout (no hang); once A has disconnected, C's same proxy streams.
func TestPooledItemStreams(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	_, backend := pooledDaemon(t)
	const wait = time.Second
	p := pooledProxy(t, backend, config.Pool{MaxOpen: 2, WaitTimeout: wait})
	var r struct {
		CFirst               pooledOutcome    `json:"c_first"`
		CConnectedAfterError bool             `json:"c_connected_after_error"`
		StreamThreadsAlive   int              `json:"stream_threads_alive"`
		CAgain               pooledOutcome    `json:"c_again"`
		CCallAfter           pooledOutcome    `json:"c_call_after"`
		Items                map[string][]any `json:"items"`
		Daemon               pooledCounts     `json:"daemon"`
	}
	pooledRun(t, p, backend, "streams", &r)

	r.CFirst.wantError(t, "C's stream call with both connections pinned", "pyro-dispatch: no connection to backend "+backend+" free in time")
	if r.CFirst.Seconds < wait.Seconds()*0.9 || r.CFirst.Seconds > wait.Seconds()+5 {
		t.Errorf("C's call failed after %.2fs, pool wait timeout %v", r.CFirst.Seconds, wait)
	}
	if r.CConnectedAfterError {
		t.Errorf("the Pyro4 proxy kept its connection after a CommunicationError: Pyro4 4.82 drops it")
	}
	if r.StreamThreadsAlive != 0 {
		t.Fatalf("%d stream iterations still running", r.StreamThreadsAlive)
	}
	r.CAgain.wantOK(t, "C's stream on the same proxy once A disconnected", 5)
	r.CCallAfter.wantOK(t, "C's call after its stream", 5)
	owners := map[string]string{}
	for client, n := range map[string]int{"a": 20, "b": 20, "c": 5} {
		items := r.Items[client]
		if len(items) != n {
			t.Errorf("stream of %s: %d items, want %d: %v", client, len(items), n, items)
			continue
		}
		for i, it := range items {
			// [i, id of the connection of this get_next_stream_item, same as the stream's]
			item, _ := it.([]any)
			if len(item) != 3 || fmt.Sprint(item[0]) != fmt.Sprint(i) || item[2] != true || (i > 0 && item[1] != owners[client]) {
				t.Errorf("stream of %s: item %d is %v, want [%d, its connection, true]: get_next_stream_item reached another connection", client, i, it, i)
			}
			if i == 0 && len(item) == 3 {
				owners[client], _ = item[1].(string)
			}
		}
	}
	if owners["a"] == owners["b"] {
		t.Errorf("the concurrent streams of A and B ran on one daemon connection %s", owners["a"])
	}
	// A's connection served the handshake and A's stream; B's and then C's were dialed.
	if r.Daemon.Accepted != 3 || r.Daemon.Rejected != 0 {
		t.Errorf("the daemon saw %+v, want 3 connections accepted", r.Daemon)
	}
	if n := len(sessLogs(p, "pinned to its upstream connection: item stream")); n < 3 {
		t.Errorf("%d sessions pinned for an item stream, want 3", n)
	}
}

// TestPooledWaitTimeout: with one pooled connection held by a slow call, another client's
// call gets a CommunicationError from the dispatcher after the pool wait timeout, and
// works on the same proxy once the slow call is done; the slow call is unaffected. A raw
// client shows that the dispatcher keeps that client's connection open: its next
// message on the same connection is served.
func TestPooledWaitTimeout(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	daemon, backend := pooledDaemon(t)
	const wait = 300 * time.Millisecond
	p := pooledProxy(t, backend, config.Pool{MaxOpen: 1, WaitTimeout: wait})
	prefix := "pyro-dispatch: no connection to backend " + backend + " free in time"

	t.Run("pyro4", func(t *testing.T) {
		var r struct {
			SlowStarted          string        `json:"slow_started"`
			FFirst               pooledOutcome `json:"f_first"`
			FConnectedAfterError bool          `json:"f_connected_after_error"`
			SlowStateThen        string        `json:"slow_state_then"`
			Slow                 pooledOutcome `json:"slow"`
			FAgain               pooledOutcome `json:"f_again"`
			SAgain               pooledOutcome `json:"s_again"`
		}
		pooledRun(t, p, backend, "wait_timeout", &r)
		if r.SlowStarted != "started" || r.SlowStateThen != "started" {
			t.Errorf("slow call state %q when F called, %q after F's error: want started (F's call must overlap it)", r.SlowStarted, r.SlowStateThen)
		}
		r.FFirst.wantError(t, "F's call while S's slow call holds the only connection", prefix, "(1 open, ")
		if r.FFirst.Seconds < wait.Seconds()*0.9 || r.FFirst.Seconds > wait.Seconds()+3 {
			t.Errorf("F's call failed after %.2fs, pool wait timeout %v", r.FFirst.Seconds, wait)
		}
		if r.FConnectedAfterError {
			t.Errorf("the Pyro4 proxy kept its connection after a CommunicationError: Pyro4 4.82 drops it")
		}
		r.Slow.wantOK(t, "S's slow call", 2)
		r.FAgain.wantOK(t, "F's next call on the same proxy", 7)
		r.SAgain.wantOK(t, "S's next call", 11)
		p.waitLog(t, "call refused", map[string]string{"error": prefix})
	})

	t.Run("raw", func(t *testing.T) {
		// (Their CONNECT, without metadata, is another handshake: a pool of its own.)
		a, b := rawDial(t, p.addr), rawDial(t, p.addr)
		a.handshake(t)
		b.handshake(t)
		a.seq++
		a.rawSend(t, pooledSlowCall(a.seq, 2, "rawslow"))
		pooledWaitStdout(t, daemon, "slow-begin rawslow")
		start := time.Now()
		b.seq++
		b.rawSend(t, rawMsg(frame.Ping, b.seq, nil, "ping"))
		pooledWantException(t, b, b.seq, "Pyro4.errors.CommunicationError", prefix)
		if d := time.Since(start); d < wait*9/10 || d > wait+3*time.Second {
			t.Errorf("the refused PING was answered after %v, pool wait timeout %v", d, wait)
		}
		if m := a.read(t); m.Header.Type != frame.Result || m.Header.Flags.Has(frame.FlagException) || m.Header.Seq != a.seq {
			t.Errorf("slow call answered with %v %v seq %d %q", m.Header.Type, m.Header.Flags, m.Header.Seq, m.Payload)
		}
		b.ping(t) // the same connection, served now
		a.ping(t)
	})
}

// TestPooledBackendLost: the daemon is killed during a call in pooled mode. The
// connection of each client with a call in flight is closed, as the daemon's loss would
// close it: the Pyro4 client raises ConnectionClosedError, and its next call on the same
// proxy reconnects: with the daemon still down, the CONNECT gets the CONNECTFAIL
// "unreachable" it would get directly (a cached handshake is answered only when the
// member is reachable); once the daemon is restarted on its port, the same proxy's next
// call works.
func TestPooledBackendLost(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	daemon, backend := pooledDaemon(t)
	p := pooledProxy(t, backend, config.Pool{MaxOpen: 2})
	signal := filepath.Join(t.TempDir(), "restarted")
	client := pyro4test.StartDaemon(t, script(t, "pooled_client.py"), "--addr", p.addr, "--daemon", backend, "--signal", signal, "lost")
	if client.Line != "ready" {
		t.Fatalf("pooled_client.py printed %q, want ready", client.Line)
	}
	raw := rawDial(t, p.addr)
	raw.handshake(t)
	raw.seq++
	raw.rawSend(t, pooledSlowCall(raw.seq, 60, "raw"))
	pooledWaitStdout(t, daemon, "slow-begin doomed")
	pooledWaitStdout(t, daemon, "slow-begin raw")

	killed := time.Now()
	daemon.Stop() // SIGKILL
	raw.expectClosed(t, 10*time.Second)
	if d := time.Since(killed); d > 10*time.Second {
		t.Errorf("the raw client's connection closed %v after the kill", d)
	}
	steps := pooledSteps(t, client, "slow")
	if o := steps["slow"]; o.Class != "Pyro4.errors.ConnectionClosedError" || o.Connected {
		t.Errorf("the call in flight when the daemon died: %v, want ConnectionClosedError and the connection dropped, as directly", o)
	}
	if err := os.WriteFile(signal+".down", nil, 0o600); err != nil { // the daemon process is gone
		t.Fatal(err)
	}
	steps = pooledSteps(t, client, "down")
	unreachable := "pyro-dispatch: backend " + backend + " unreachable: connection refused"
	// The proxy reconnects: a cached handshake is answered only when the member is
	// reachable, so it gets the CONNECTFAIL it would get directly.
	steps["down"].wantError(t, "the next call on the same proxy while the daemon is down", "connection to ", "rejected: "+unreachable)
	raw = rawDial(t, p.addr)
	if m := raw.connect(t); m.Header.Type != frame.ConnectFail || !strings.Contains(string(m.Payload), unreachable) {
		t.Errorf("CONNECT while the daemon is down: %v %q, want a CONNECTFAIL %q", m.Header.Type, m.Payload, unreachable)
	}
	p.waitLog(t, "backend lost during a call: closing the client's connection, as the daemon's loss would", map[string]string{"error": "EOF"})

	_, again := pooledDaemon(t, "--port", backend[strings.LastIndexByte(backend, ':')+1:])
	if again != backend {
		t.Fatalf("restarted daemon at %s, want %s", again, backend)
	}
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	steps = pooledSteps(t, client, "restarted")
	steps["restarted"].wantOK(t, "the same proxy's call once the daemon is back", 7)
	raw = rawDial(t, p.addr)
	raw.handshake(t)
	raw.ping(t)
}

// pooledSteps waits until the "lost" client printed the named steps and returns them.
func pooledSteps(t *testing.T, c *pyro4test.Process, names ...string) map[string]pooledOutcome {
	t.Helper()
	steps := map[string]pooledOutcome{}
	faultWaitFor(t, fmt.Sprintf("steps %v of pooled_client.py lost", names), func() bool {
		sc := bufio.NewScanner(strings.NewReader(c.Stdout()))
		for sc.Scan() {
			var s struct {
				pooledOutcome
				Step string `json:"step"`
			}
			if json.Unmarshal(sc.Bytes(), &s) == nil && s.Step != "" {
				steps[s.Step] = s.pooledOutcome
			}
		}
		for _, n := range names {
			if _, ok := steps[n]; !ok {
				return false
			}
		}
		return true
	})
	for _, n := range names {
		t.Logf("step %s: %v", n, steps[n])
	}
	return steps
}

// TestPooledHandshakes: the handshake cache never mixes up validateHandshake outcomes.
// Concurrent clients with three handshakes (two accepted with different responses, one
// rejected) each get their own outcome: the daemon's response, or its rejection reason.
// A rejection is not cached: the same handshake, rejected four times in a row, reaches
// the daemon each time, and works as soon as the daemon accepts it.
func TestPooledHandshakes(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	_, backend := pooledDaemon(t)
	p := pooledProxy(t, backend, config.Pool{MaxOpen: 2})
	var r struct {
		MixedErrors   []string        `json:"mixed_errors"`
		Mixed         [][]any         `json:"mixed"`
		LaterRejected []pooledOutcome `json:"later_rejected"`
		LaterDaemon   pooledCounts    `json:"later_daemon"`
		LaterAccepted pooledOutcome   `json:"later_accepted"`
	}
	pooledRun(t, p, backend, "handshakes", &r)

	if len(r.MixedErrors) != 0 {
		t.Errorf("clients failed: %v", r.MixedErrors)
	}
	if len(r.Mixed) != 24 {
		t.Errorf("%d handshakes done, want 24", len(r.Mixed))
	}
	for _, rec := range r.Mixed {
		secret, who := fmt.Sprint(rec[0]), fmt.Sprint(rec[1])
		var o pooledOutcome
		b, _ := json.Marshal(rec[2])
		json.Unmarshal(b, &o)
		what := fmt.Sprintf("handshake {secret: %s, who: %s}", secret, who)
		if secret == "sesame" {
			o.wantOK(t, what, 3)
			sessEqual(t, what+": handshake response", o.Response, map[string]any{"welcome": who})
		} else {
			o.wantError(t, what, "connection to ", "rejected: handshake refused by the backend: wrong secret '"+secret+"'")
		}
	}
	for i, o := range r.LaterRejected {
		o.wantError(t, fmt.Sprintf("rejected handshake %d", i+1), "connection to ", "rejected: handshake refused by the backend: wrong secret 'later'")
	}
	if r.LaterDaemon.Rejected != len(r.LaterRejected) || r.LaterDaemon.Accepted != 0 {
		t.Errorf("%d rejected handshakes, the daemon saw %+v: each rejection must come from the daemon (not cached)",
			len(r.LaterRejected), r.LaterDaemon)
	}
	r.LaterAccepted.wantOK(t, "the handshake once the daemon accepts it", 3)
	sessEqual(t, "the handshake response once the daemon accepts it", r.LaterAccepted.Response, map[string]any{"welcome": "dave"})
	p.waitLog(t, "backend rejected the handshake", nil)
}

// TestPooledConnectCache: 24 real Pyro4 clients connect at once through a pool of 3: the
// dispatcher answers their CONNECTs (metadata included) from its handshake cache, so the
// daemon sees one handshake per pooled connection, and the clients' calls share those.
func TestPooledConnectCache(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	// Pipelined too: 24 clients' calls on at most 3 connections, up to 8 at once on each,
	// every reply checked by the client that made the call.
	for _, pipeline := range []int{1, 8} {
		t.Run(fmt.Sprintf("pipeline=%d", pipeline), func(t *testing.T) {
			t.Parallel()
			_, backend := pooledDaemon(t)
			p := pooledProxy(t, backend, config.Pool{MaxOpen: 3, Pipeline: pipeline})
			var r struct {
				Clients      int          `json:"clients"`
				Errors       []string     `json:"errors"`
				MetadataOK   int          `json:"metadata_ok"`
				BackendConns int          `json:"backend_conns"`
				Daemon       pooledCounts `json:"daemon"`
				DaemonOpen   int          `json:"daemon_open"`
			}
			pooledRun(t, p, backend, "connect_cache", &r)

			if len(r.Errors) != 0 || r.MetadataOK != r.Clients {
				t.Errorf("clients failed: %v; %d of %d got the object's metadata at connect", r.Errors, r.MetadataOK, r.Clients)
			}
			d := r.Daemon
			if d.Handshakes < 1 || d.Handshakes > 3 || d.Handshakes != d.Accepted || d.Disconnects != 0 || r.DaemonOpen != d.Accepted {
				t.Errorf("%d clients connected: the daemon saw %+v, %d connections open: want one handshake per pooled connection, at most 3",
					r.Clients, d, r.DaemonOpen)
			}
			if r.BackendConns < 1 || r.BackendConns > d.Accepted {
				t.Errorf("the clients' calls came in on %d daemon connections, %d opened", r.BackendConns, d.Accepted)
			}
		})
	}
}

// TestPooledParkedClients: real Pyro4 clients (serpent, json, marshal) that go idle for
// longer than pool.park_after have their sessions parked (no goroutine, no buffers), and
// every kind of call they make next works as before: small calls, a spliced 256 KiB
// payload, oneway, SerializedBlob; pooled and pipelined.
func TestPooledParkedClients(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	_, backend := pooledDaemon(t)
	for _, pipeline := range []int{1, 8} {
		t.Run(fmt.Sprintf("pipeline=%d", pipeline), func(t *testing.T) {
			p := pooledProxy(t, backend, config.Pool{Pipeline: pipeline, ParkAfter: 100 * time.Millisecond})
			var r struct {
				Rounds [][]string `json:"rounds"`
			}
			pooledRun(t, p, backend, "parked", &r)
			if len(r.Rounds) != 3 {
				t.Fatalf("%d rounds done, want 3", len(r.Rounds))
			}
			// Each client parked after each round (3 × 3) and was resumed by its next call
			// (3 × 2) or by its close (3).
			parked := len(p.logs.FilterMessage("idle client parked").All())
			resumed := len(p.logs.FilterMessage("parked client resumed").All())
			if parked < 9 || resumed < 9 {
				t.Errorf("%d parkings and %d resumptions in the log, want at least 9 of each", parked, resumed)
			}
		})
	}
}
