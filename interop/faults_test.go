package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// This file: backend faults (down, silent, killed mid-call, restarted) and connection
// limits, with real Pyro4 daemons and clients; plus the helpers hostile_test.go and
// cli_test.go share (all named fault*, raw*).

// faultWait bounds every wait for something that should happen promptly: generous, so a
// busy machine does not fail a test, and far below any hang.
const faultWait = 20 * time.Second

// faultDaemon starts testdata/fault_daemon.py listening on addr ("127.0.0.1:0",
// "127.0.0.1:PORT", "[::1]:0" or "unix:/path") and returns it with its address in
// dispatch form ("127.0.0.1:PORT" or "unix:/path"). It is killed when the test ends.
func faultDaemon(t testing.TB, addr string) (*pyro4test.Process, string) {
	t.Helper()
	p := pyro4test.StartDaemon(t, script(t, "fault_daemon.py"), addr)
	_, loc, ok := strings.Cut(p.Line, "@")
	if !ok || !strings.HasPrefix(p.Line, "PYRO:fault.svc@") {
		t.Fatalf("fault_daemon.py printed %q, want its URI", p.Line)
	}
	if path, ok := strings.CutPrefix(loc, "./u:"); ok {
		return p, "unix:" + path
	}
	return p, loc
}

// faultResult is what testdata/fault_call.py prints.
type faultResult struct {
	OK      any     `json:"ok"`
	Class   string  `json:"class"`
	Error   string  `json:"error"`
	Count   int     `json:"count"`
	Elapsed float64 `json:"elapsed"`
}

func (r faultResult) String() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// faultCall runs testdata/fault_call.py: one call of method(args...) on uri through a
// real Pyro4 proxy, bounded by faultWait plus the Python start-up.
func faultCall(t testing.TB, uri, method string, args []any, opts map[string]any) faultResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*faultWait)
	defer cancel()
	a, _ := json.Marshal(args)
	o, _ := json.Marshal(opts)
	out, _ := pyro4test.RunPythonContext(ctx, t, script(t, "fault_call.py"), nil, uri, method, string(a), string(o))
	return faultParse(t, string(out))
}

// faultStartCall starts testdata/fault_call.py in the background; faultWaitCall collects
// its result.
func faultStartCall(t testing.TB, uri, method string, args []any, opts map[string]any) *pyro4test.Process {
	t.Helper()
	if opts == nil {
		opts = map[string]any{}
	}
	opts["announce"] = true
	a, _ := json.Marshal(args)
	o, _ := json.Marshal(opts)
	return pyro4test.StartDaemon(t, script(t, "fault_call.py"), uri, method, string(a), string(o))
}

func faultWaitCall(t testing.TB, p *pyro4test.Process, within time.Duration) faultResult {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(within):
		p.Stop()
		t.Fatalf("Pyro4 client still running after %v (a hang)\n--- stdout:\n%s\n--- stderr:\n%s", within, p.Stdout(), p.Stderr())
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("fault_call.py: %v\n--- stderr:\n%s", err, p.Stderr())
	}
	return faultParse(t, p.Stdout())
}

func faultParse(t testing.TB, out string) faultResult {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r faultResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("fault_call.py output %q: %v", out, err)
	}
	return r
}

// faultWantError checks that a Pyro4 client failed with one of classes (CommunicationError
// when none is given) and a message holding every one of texts.
func faultWantError(t testing.TB, r faultResult, texts []string, classes ...string) {
	t.Helper()
	if len(classes) == 0 {
		classes = []string{"Pyro4.errors.CommunicationError"}
	}
	okClass := false
	for _, c := range classes {
		okClass = okClass || r.Class == c
	}
	if !okClass {
		t.Fatalf("Pyro4 client: %v, want an exception of class %v", r, classes)
	}
	t.Logf("Pyro4 client raised %s(%q) after %.2fs", r.Class, r.Error, r.Elapsed)
	for _, s := range texts {
		if !strings.Contains(r.Error, s) {
			t.Errorf("Pyro4 client error %q does not contain %q", r.Error, s)
		}
	}
}

func faultWantOK(t testing.TB, r faultResult, want any) {
	t.Helper()
	if r.Class != "" || fmt.Sprint(r.OK) != fmt.Sprint(want) {
		t.Fatalf("Pyro4 client: %v, want result %v", r, want)
	}
}

// faultClosedPort returns a 127.0.0.1 address nobody listens on.
func faultClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// faultWaitFor polls cond every 20 ms until it holds, failing after faultWait.
func faultWaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(faultWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", faultWait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawClient is a hand-driven Pyro4 client connection from Go, for what a real client
// never sends.
type rawClient struct {
	net.Conn
	r   *frame.Reader
	seq uint16
}

// rawDial connects to a dispatch-form address.
func rawDial(t testing.TB, addr string) *rawClient {
	t.Helper()
	network, address, err := config.ParseAddress(addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout(network, address, faultWait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{Conn: c, r: frame.NewReader(c, 0, frame.Limits{})}
}

// rawMsg builds a well-formed message in serpent.
func rawMsg(typ frame.MsgType, seq uint16, ann frame.Annotations, payload string) []byte {
	return frame.AppendMessage(nil, frame.Header{Type: typ, Seq: seq, Serializer: frame.Serpent}, ann, []byte(payload))
}

// rawConnectPayload is a serpent CONNECT payload without metadata (no object key).
const rawConnectPayload = "# serpent utf-8 python3.2\n{'handshake':'hello'}"

// rawSend writes b; a write error is not fatal (the dispatcher may have closed first).
func (c *rawClient) rawSend(t testing.TB, b []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(faultWait))
	if _, err := c.Write(b); err != nil {
		t.Logf("write %d bytes: %v", len(b), err)
	}
}

// read reads one whole reply within faultWait.
func (c *rawClient) read(t testing.TB) frame.Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(faultWait))
	m, err := c.r.Next()
	if err == nil {
		err = c.r.ReadRest(&m)
	}
	if err != nil {
		t.Fatalf("reading a reply from the dispatcher: %v", err)
	}
	return m
}

// connect sends a CONNECT and returns the reply (CONNECTOK or CONNECTFAIL).
func (c *rawClient) connect(t testing.TB) frame.Message {
	t.Helper()
	c.rawSend(t, rawMsg(frame.Connect, c.seq, nil, rawConnectPayload))
	m := c.read(t)
	if m.Header.Seq != c.seq {
		t.Fatalf("CONNECT seq %d answered with seq %d", c.seq, m.Header.Seq)
	}
	return m
}

// handshake connects and requires a CONNECTOK.
func (c *rawClient) handshake(t testing.TB) {
	t.Helper()
	if m := c.connect(t); m.Header.Type != frame.ConnectOK {
		t.Fatalf("CONNECT answered with %v: %q", m.Header.Type, m.Payload)
	}
}

// ping sends a PING and requires the backend's pong.
func (c *rawClient) ping(t testing.TB) {
	t.Helper()
	c.seq++
	c.rawSend(t, rawMsg(frame.Ping, c.seq, nil, "ping"))
	m := c.read(t)
	if m.Header.Type != frame.Ping || m.Header.Seq != c.seq || string(m.Payload) != "pong" {
		t.Fatalf("PING seq %d answered with %v seq %d %q", c.seq, m.Header.Type, m.Header.Seq, m.Payload)
	}
}

// expectClosed requires the dispatcher to close the connection within `within` without
// sending anything: the read ends in EOF or a reset, not a timeout.
func (c *rawClient) expectClosed(t testing.TB, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	var buf [512]byte
	n, err := c.Read(buf[:])
	switch {
	case n > 0:
		t.Fatalf("dispatcher sent %d bytes (%q) where it should close the connection", n, buf[:n])
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("connection still open after %v", within)
	default:
		t.Fatalf("read: %v, want EOF or connection reset", err)
	}
}

// faultServe listens on 127.0.0.1 and runs handle for each connection in a goroutine;
// the listener and every connection are closed when the test ends.
func faultServe(t testing.TB, handle func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go handle(c)
		}
	}()
	return ln.Addr().String()
}

// faultSilentBackend accepts connections, reads and drops whatever arrives and never
// answers.
func faultSilentBackend(t testing.TB) string {
	return faultServe(t, func(c net.Conn) { io.Copy(io.Discard, c) })
}

// faultFullBacklog returns a 127.0.0.1 address whose listen queue is full (listen
// backlog 0, one connection queued, nobody accepting): the kernel drops further SYNs, so
// a dial there hangs until its timeout. ok is false when this kernel does not behave so.
func faultFullBacklog(t testing.TB) (addr string, ok bool) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr = fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err != nil {
			return addr, true // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr, false
}

// faultHandshakeOnlyBackend is a fake Pyro4 daemon that answers CONNECT with a CONNECTOK
// (metadata for object fault.svc with method echo) and then never answers a call.
func faultHandshakeOnlyBackend(t testing.TB) string {
	return faultServe(t, func(c net.Conn) {
		r := frame.NewReader(c, 0, frame.Limits{MaxMessageSize: 1 << 20})
		m, err := r.Next()
		if err != nil || r.ReadRest(&m) != nil || m.Header.Type != frame.Connect || m.Header.Serializer != frame.Serpent {
			c.Close()
			return
		}
		reply := "# serpent utf-8 python3.2\n{'handshake':'hello','meta':{'methods':['echo','slow'],'oneway':[],'attrs':[]}}"
		h := frame.Header{Type: frame.ConnectOK, Flags: m.Header.Flags & frame.FlagMetaOnConnect, Seq: m.Header.Seq, Serializer: frame.Serpent}
		if h.Flags == 0 {
			reply = "# serpent utf-8 python3.2\n'hello'"
		}
		c.Write(frame.AppendMessage(nil, h, nil, []byte(reply)))
		io.Copy(io.Discard, c) // calls are read and never answered
	})
}

// TestFaultBackendDownAtConnect: a backend that cannot be reached at CONNECT gives the
// real Pyro4 client a CommunicationError naming the dispatcher and the backend, promptly.
func TestFaultBackendDownAtConnect(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	short := func(c *config.Config) {
		c.Timeouts.Dial = time.Second
		c.Timeouts.Call = time.Second
	}

	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		backend := faultClosedPort(t)
		p := startProxy(t, backend, short)
		r := faultCall(t, p.uri("fault.svc"), "echo", []any{"x"}, nil)
		faultWantError(t, r, []string{"rejected: pyro-dispatch: backend " + backend + " unreachable: connection refused"})
		if r.Elapsed > 10 {
			t.Errorf("the client took %.1fs to see a refused backend", r.Elapsed)
		}
		p.waitLog(t, "refused client", map[string]string{"reason": backend})
	})

	t.Run("dial timeout", func(t *testing.T) {
		t.Parallel()
		backend, ok := faultFullBacklog(t)
		if !ok {
			t.Skip("this kernel accepts past a full listen backlog: no way to make a local dial hang")
		}
		p := startProxy(t, backend, short)
		r := faultCall(t, p.uri("fault.svc"), "echo", []any{"x"}, nil)
		faultWantError(t, r, []string{"pyro-dispatch: backend " + backend + " unreachable", "timeout"})
		if r.Elapsed > 10 { // dial timeout 1s, generous margin
			t.Errorf("the client took %.1fs with a 1s dial timeout", r.Elapsed)
		}
	})

	t.Run("backend never answers", func(t *testing.T) {
		t.Parallel()
		backend := faultSilentBackend(t)
		p := startProxy(t, backend, short)
		r := faultCall(t, p.uri("fault.svc"), "echo", []any{"x"}, nil)
		faultWantError(t, r, []string{"rejected: pyro-dispatch: backend " + backend + " failed during the handshake", "timeout"})
		if r.Elapsed > 12 { // dial + call timeouts 2s, generous margin
			t.Errorf("the client took %.1fs with dial and call timeouts of 1s", r.Elapsed)
		}
	})

	t.Run("backend never answers a call", func(t *testing.T) {
		t.Parallel()
		backend := faultHandshakeOnlyBackend(t)
		p := startProxy(t, backend, short)
		r := faultCall(t, p.uri("fault.svc"), "echo", []any{"x"}, nil)
		// The call may have run: the client's connection is closed, as a lost daemon's.
		faultWantError(t, r, []string{"not enough data"}, "Pyro4.errors.ConnectionClosedError")
		if r.Elapsed > 12 {
			t.Errorf("the client took %.1fs with a call timeout of 1s", r.Elapsed)
		}
	})
}

// TestFaultBackendKilledMidCall: the daemon dies while a call is in flight; the client's
// connection is closed at once (ConnectionClosedError, as directly), new clients are
// refused while it is down, and once it is restarted on the same port new proxies work
// through the same dispatcher.
func TestFaultBackendKilledMidCall(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	daemon, backend := faultDaemon(t, "127.0.0.1:0")
	p := startProxy(t, backend, func(c *config.Config) { c.Timeouts.Dial = 2 * time.Second })
	uri := p.uri("fault.svc")
	faultWantOK(t, faultCall(t, uri, "echo", []any{"warm"}, nil), "warm")

	client := faultStartCall(t, uri, "slow", []any{60, "doomed"}, nil)
	faultWaitFor(t, "the slow call to reach the daemon", func() bool { return strings.Contains(daemon.Stdout(), "slow-begin doomed") })
	killed := time.Now()
	daemon.Stop() // SIGKILL
	r := faultWaitCall(t, client, faultWait)
	faultWantError(t, r, []string{"not enough data"}, "Pyro4.errors.ConnectionClosedError")
	if d := time.Since(killed); d > 10*time.Second {
		t.Errorf("the client got its error %v after the kill", d)
	}
	p.waitLog(t, "backend lost during a call: closing the client's connection, as the daemon's loss would", nil)

	// Down: a new client is refused with the reason.
	r = faultCall(t, uri, "echo", []any{"x"}, nil)
	faultWantError(t, r, []string{"pyro-dispatch: backend " + backend + " unreachable"})

	// Restarted on the same port: fresh proxies work through the same dispatcher.
	_, again := faultDaemon(t, backend)
	if again != backend {
		t.Fatalf("restarted daemon at %s, want %s", again, backend)
	}
	r = faultCall(t, uri, "echo", []any{"back"}, map[string]any{"proxies": 3})
	faultWantOK(t, r, "back")
	if r.Count != 3 {
		t.Errorf("%d of 3 fresh proxies worked", r.Count)
	}
}

// TestFaultConnectionLimits: max_connections refuses the connection over the limit with a
// CONNECTFAIL ("pyro-dispatch: too many client connections"); the clients within the
// limit are unaffected, and a slot freed is usable again.
func TestFaultConnectionLimits(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	_, backend := faultDaemon(t, "127.0.0.1:0")
	p := startProxy(t, backend, func(c *config.Config) { c.Limits.MaxConnections = 2 })
	a, b := rawDial(t, p.addr), rawDial(t, p.addr)
	a.handshake(t)
	b.handshake(t)

	const reason = "pyro-dispatch: too many client connections (limit 2)"
	r := faultCall(t, p.uri("fault.svc"), "echo", []any{"x"}, nil)
	faultWantError(t, r, []string{"rejected: " + reason})

	over := rawDial(t, p.addr)
	m := over.connect(t)
	if m.Header.Type != frame.ConnectFail || !strings.Contains(string(m.Payload), reason) {
		t.Errorf("over the limit: %v %q, want CONNECTFAIL with %q", m.Header.Type, m.Payload, reason)
	}
	over.expectClosed(t, faultWait)
	p.waitLog(t, "refused client", map[string]string{"client": over.LocalAddr().String(), "reason": reason})

	a.ping(t)
	b.ping(t)
	a.Close()
	faultWaitFor(t, "the closed client's slot to be released", func() bool { return p.srv.Sessions() < 2 })
	faultWantOK(t, faultCall(t, p.uri("fault.svc"), "echo", []any{"in"}, nil), "in")
	b.ping(t)
}

// TestFaultConnectionLimitPerIP: max_connections_per_ip refuses a second connection from
// 127.0.0.1 while a client from ::1 is still served.
func TestFaultConnectionLimitPerIP(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	_, backend := faultDaemon(t, "127.0.0.1:0")
	p := startProxy(t, backend, func(c *config.Config) {
		c.Listeners[0].Listen = config.StringList{"127.0.0.1:0", "[::1]:0"}
		c.Limits.MaxConnectionsPer = 1
	})
	v6 := p.srv.Addrs()[1].String()
	a := rawDial(t, p.addr)
	a.handshake(t)

	const reason = "pyro-dispatch: too many connections from 127.0.0.1 (limit 1)"
	r := faultCall(t, p.uri("fault.svc"), "echo", []any{"x"}, nil)
	faultWantError(t, r, []string{"rejected: " + reason})
	faultWantOK(t, faultCall(t, pyroURI("fault.svc", v6), "echo", []any{"v6"}, nil), "v6")
	a.ping(t)
}

// TestFaultIdleTimeout: timeouts.idle closes a client that sends nothing, with a log line
// naming it, while a client that keeps calling is unaffected.
func TestFaultIdleTimeout(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	_, backend := faultDaemon(t, "127.0.0.1:0")
	const idle = time.Second
	p := startProxy(t, backend, func(c *config.Config) { c.Timeouts.Idle = idle })

	stop := filepath.Join(t.TempDir(), "stop")
	busy := pyro4test.StartDaemon(t, script(t, "fault_client.py"), p.uri("fault.svc"), stop)

	quiet := rawDial(t, p.addr)
	quiet.handshake(t)
	quiet.ping(t)
	start := time.Now()
	quiet.expectClosed(t, faultWait)
	if d := time.Since(start); d < idle/2 {
		t.Errorf("idle client closed after %v, idle timeout %v", d, idle)
	}
	p.waitLog(t, "closed idle client", map[string]string{"client": quiet.LocalAddr().String()})

	// The busy client has been calling all along; let it run past another idle period.
	time.Sleep(2 * idle)
	faultStopClient(t, busy, stop)
}

// faultStopClient ends testdata/fault_client.py through its stop file and requires that
// every one of its calls succeeded.
func faultStopClient(t testing.TB, c *pyro4test.Process, stop string) {
	t.Helper()
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(faultWait):
		t.Fatalf("fault_client.py did not stop within %v\n--- stdout:\n%s\n--- stderr:\n%s", faultWait, c.Stdout(), c.Stderr())
	}
	if err := c.Stop(); err != nil || !strings.Contains(c.Stdout(), "\ncalls ") {
		t.Fatalf("the Pyro4 client that should be unaffected failed: %v\n--- stdout:\n%s\n--- stderr:\n%s", err, c.Stdout(), c.Stderr())
	}
}

// faultCalls counts the calls testdata/fault_client.py has completed so far.
func faultCalls(c *pyro4test.Process) int { return strings.Count(c.Stdout(), "\nok ") }
