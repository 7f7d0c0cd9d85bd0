package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// Scale: many idle clients on few backend connections (docs/architecture.md, pooled
// mode). A Pyro4 thread-pool daemon serves at most THREADPOOL_SIZE = 40 connected
// proxies; the pooled mode puts any number of idle clients in front of it on a handful of
// backend connections, where the session mode gives every client its own.
//
// The dispatcher runs as its own process (the built binary), so that its memory (VmRSS)
// and file descriptors are its own.

const (
	scaleDialers     = 64  // concurrent dials while opening the idle clients
	scaleActive      = 64  // real Python clients (threads, one Proxy each) making calls
	scaleCalls       = 20  // calls per active client
	scalePoolMaxOpen = 8   // --pool-max-open
	scaleSessionIdle = 100 // idle clients in session mode: more than the daemon's 40 workers
	scaleThreadpool  = 40  // Pyro4's default THREADPOOL_SIZE
	scaleMaxConns    = 20000
	scaleIdleConns   = 10000    // idle clients in pooled mode
	scaleHeapConns   = 9000     // idle clients of BenchmarkPooledIdleHeap
	scaleIdleTarget  = 10 << 10 // bytes of dispatcher RSS per idle client aimed at
	scaleIdleCeiling = 32 << 10 // more per idle client fails the test: a regression
)

// scaleConnect is the CONNECT a real Pyro4 4.82 proxy sends for PYRO:scale.obj@...
// (serpent, META_ON_CONNECT, seq 0, no annotations), byte for byte as captured from
// Proxy("PYRO:scale.obj@127.0.0.1:PORT")._pyroBind().
var scaleConnect = []byte("PYRO\x000\x00\x01\x00\x10\x00\x00\x00\x00\x00D\x00\x01\x00\x00\x00\x005o" +
	"# serpent utf-8 python3.2\n{'handshake':'hello','object':'scale.obj'}")

// scaleInvokePayload is the payload of the INVOKE a real proxy sends for add(1, 2).
const scaleInvokePayload = "# serpent utf-8 python3.2\n('scale.obj','add',(1,2),{})"

// scaleResultPayload is a real daemon's RESULT payload for add(1, 2).
const scaleResultPayload = "# serpent utf-8 python3.2\n3"

// scaleConnectOKPayload is a real daemon's CONNECTOK payload for scaleConnect.
const scaleConnectOKPayload = "# serpent utf-8 python3.2\n{'handshake':'hello','meta':{'methods':['add','echo'],'oneway':[],'attrs':[]}}"

// scaleRaiseFileLimit raises the soft RLIMIT_NOFILE of the test process to the hard limit
// (the dispatcher child inherits it) and fails when that cannot hold `need` descriptors.
func scaleRaiseFileLimit(tb testing.TB, need int) {
	tb.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatal(err)
	}
	// Set it even when Go already raised it at start-up: an explicit Setrlimit makes
	// child processes inherit it instead of the limit the test process started with.
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatalf("raising RLIMIT_NOFILE to %d: %v", lim.Max, err)
	}
	if lim.Cur < uint64(need) {
		tb.Fatalf("RLIMIT_NOFILE hard limit %d is below the %d descriptors this test needs (raise it with ulimit -Hn)", lim.Max, need)
	}
}

// scaleProc is a pyro-dispatch process started by the test. It is killed (by its pid,
// which only this test started) when the test ends.
type scaleProc struct {
	cmd    *exec.Cmd
	stderr pyro4test.LockedBuffer
	addr   string // the listen address, "127.0.0.1:PORT"
	done   chan struct{}
	err    error
}

// scaleServe starts `pyro-dispatch serve` on 127.0.0.1 (a free port) in front of backend
// with JSON logs, and waits for its ready line.
func scaleServe(tb testing.TB, bin, backend string, args ...string) *scaleProc {
	tb.Helper()
	args = append([]string{"serve", "--listen", "127.0.0.1:0", "--backend", backend, "--log-format", "json"}, args...)
	p := &scaleProc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.stop()
		if tb.Failed() {
			tb.Logf("pyro-dispatch %s stderr (last 4 KiB):\n%s", strings.Join(args, " "), scaleTail(p.stderr.String(), 4096))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
		for sc.Scan() {
			var f map[string]any
			if json.Unmarshal(sc.Bytes(), &f) == nil && f["msg"] == "ready" {
				p.addr = strings.TrimPrefix(fmt.Sprint(f["listen"]), "tcp:")
				return p
			}
		}
		select {
		case <-p.done:
			tb.Fatalf("pyro-dispatch exited before it was ready: %v\n%s", p.err, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	tb.Fatalf("pyro-dispatch not ready within 15s:\n%s", p.stderr.String())
	return nil
}

func (p *scaleProc) pid() int { return p.cmd.Process.Pid }

// stop kills the process if it still runs, and waits for it.
func (p *scaleProc) stop() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Kill()
		<-p.done
	}
}

func scaleTail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// scaleRSS returns a process's resident set size (VmRSS) in bytes.
func scaleRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// scaleFDs returns the number of open file descriptors of a process.
func scaleFDs(tb testing.TB, pid int) int {
	tb.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// scaleHandshake connects to addr and does a real client's CONNECT. On CONNECTOK it
// returns the open connection; on CONNECTFAIL, the closed connection's reason.
func scaleHandshake(addr string) (c net.Conn, failReason string, err error) {
	c, err = net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, "", err
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	h, payload, err := scaleReadAfter(c, scaleConnect)
	if err == nil && h.Seq != 0 {
		err = fmt.Errorf("CONNECT answered with seq %d", h.Seq)
	}
	if err != nil {
		c.Close()
		return nil, "", err
	}
	switch h.Type {
	case frame.ConnectOK:
		if !bytes.Contains(payload, []byte("'handshake':'hello'")) {
			c.Close()
			return nil, "", fmt.Errorf("CONNECTOK payload %q", payload)
		}
		c.SetDeadline(time.Time{})
		return c, "", nil
	case frame.ConnectFail:
		c.Close()
		return nil, string(payload), nil
	default:
		c.Close()
		return nil, "", fmt.Errorf("CONNECT answered with %v", h.Type)
	}
}

// scaleReadAfter writes msg to c and reads one whole reply (at most 64 KiB), returning
// its header and payload.
func scaleReadAfter(c net.Conn, msg []byte) (frame.Header, []byte, error) {
	if _, err := c.Write(msg); err != nil {
		return frame.Header{}, nil, err
	}
	var hb [frame.HeaderSize]byte
	if _, err := io.ReadFull(c, hb[:]); err != nil {
		return frame.Header{}, nil, err
	}
	h, err := frame.ParseHeader(hb[:])
	if err != nil {
		return h, nil, err
	}
	if h.BodyLen() > 64<<10 {
		return h, nil, fmt.Errorf("reply of %d bytes", h.BodyLen())
	}
	body := make([]byte, h.BodyLen())
	if _, err := io.ReadFull(c, body); err != nil {
		return h, nil, err
	}
	return h, body[h.AnnLen:], nil
}

// scaleCall makes one add(1, 2) call on a handshaked connection with the given seq and
// checks the real daemon's answer.
func scaleCall(c net.Conn, seq uint16) error {
	msg := frame.AppendMessage(nil, frame.Header{Type: frame.Invoke, Seq: seq, Serializer: frame.Serpent}, nil, []byte(scaleInvokePayload))
	c.SetDeadline(time.Now().Add(20 * time.Second))
	defer c.SetDeadline(time.Time{})
	h, payload, err := scaleReadAfter(c, msg)
	switch {
	case err != nil:
		return err
	case h.Type != frame.Result || h.Seq != seq || h.Flags.Has(frame.FlagException) || string(payload) != scaleResultPayload:
		return fmt.Errorf("add(1, 2) seq %d answered with %v seq %d flags %v: %q", seq, h.Type, h.Seq, h.Flags, payload)
	}
	return nil
}

// scaleOpened is the outcome of opening many handshaked client connections.
type scaleOpened struct {
	conns   []net.Conn // handshaked (CONNECTOK), open and idle
	fails   []string   // CONNECTFAIL reasons
	errs    []error    // other failures
	elapsed time.Duration
}

func (o *scaleOpened) closeAll() {
	for _, c := range o.conns {
		c.Close()
	}
	o.conns = nil
}

// scaleOpen opens n client connections to addr with `dialers` at a time, each doing a
// real client's CONNECT, and leaves the successful ones open and idle.
func scaleOpen(addr string, n, dialers int) *scaleOpened {
	o := &scaleOpened{}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range min(dialers, n) {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				c, reason, err := scaleHandshake(addr)
				mu.Lock()
				switch {
				case err != nil:
					o.errs = append(o.errs, err)
				case c == nil:
					o.fails = append(o.fails, reason)
				default:
					o.conns = append(o.conns, c)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	o.elapsed = time.Since(start)
	return o
}

// scaleDaemon starts testdata/scale_daemon.py (a counting thread-pool daemon) and
// returns its port.
func scaleDaemon(tb testing.TB) string {
	tb.Helper()
	return pyro4test.StartDaemon(tb, script(tb, "scale_daemon.py")).Line
}

// scaleStats are the daemon's connected-client counts.
type scaleStats struct {
	Current, Max, Handshakes int
}

func scaleGetStats(tb testing.TB, port string) scaleStats {
	tb.Helper()
	out, _ := pyro4test.RunPython(tb, script(tb, "scale_client.py"), nil, "stats", "PYRO:scale.stats@127.0.0.1:"+port)
	var st scaleStats
	if err := json.Unmarshal(out, &st); err != nil {
		tb.Fatalf("stats %q: %v", out, err)
	}
	return st
}

// scaleClientResult is the JSON line of scale_client.py load or once.
type scaleClientResult struct {
	OK      int      `json:"ok"`
	Errors  []string `json:"errors"`
	NErrors int      `json:"nerrors"`
	Result  any      `json:"result"`
	Error   string   `json:"error"`
	Message string   `json:"message"`
	Seconds float64  `json:"seconds"`
}

func scaleRunClient(tb testing.TB, args ...string) scaleClientResult {
	tb.Helper()
	out, _ := pyro4test.RunPython(tb, script(tb, "scale_client.py"), nil, args...)
	var r scaleClientResult
	if err := json.Unmarshal(out, &r); err != nil {
		tb.Fatalf("scale_client.py %v printed %q: %v", args, out, err)
	}
	return r
}

// TestPooledTenThousandIdle: 10,000 idle clients, handshaked like real Pyro4 proxies, on
// a pooled dispatcher with --pool-max-open 8 in front of a real Pyro4 thread-pool daemon
// (40 workers); then 64 real Python clients calling at once all succeed, and the daemon
// never sees more than 8 connections. The same daemon without pooling (session mode)
// stalls: past 40 connected clients every new client is refused with "no free workers".
func TestPooledTenThousandIdle(t *testing.T) {
	requirePyro4(t)
	start := time.Now()
	scaleRaiseFileLimit(t, scaleIdleConns+500)
	bin := buildDispatcher(t, t.TempDir())
	t.Logf("built %s in %v", bin, time.Since(start).Round(time.Millisecond))

	t.Run("pooled", func(t *testing.T) {
		port := scaleDaemon(t)
		backend := "127.0.0.1:" + port
		d := scaleServe(t, bin, backend, "--mode", "pooled",
			"--pool-max-open", strconv.Itoa(scalePoolMaxOpen), "--max-conns", strconv.Itoa(scaleMaxConns))
		uri := "PYRO:scale.obj@" + d.addr

		// One client first: the handshake is cached and the pool has its first
		// connection, so what follows measures idle clients only.
		warm := scaleOpen(d.addr, 1, 1)
		t.Cleanup(warm.closeAll)
		if len(warm.conns) != 1 {
			t.Fatalf("first handshake: fails %q, errors %v", warm.fails, warm.errs)
		}
		time.Sleep(200 * time.Millisecond)
		rss0, fds0 := scaleRSS(t, d.pid()), scaleFDs(t, d.pid())

		idle := scaleOpen(d.addr, scaleIdleConns, scaleDialers)
		t.Cleanup(idle.closeAll)
		if len(idle.conns) != scaleIdleConns {
			t.Fatalf("%d of %d idle clients handshaked; %d CONNECTFAIL (first %q), %d errors (first %v)",
				len(idle.conns), scaleIdleConns, len(idle.fails), scaleFirst(idle.fails), len(idle.errs), scaleFirst(idle.errs))
		}
		time.Sleep(300 * time.Millisecond) // the sessions reach their idle wait
		rss1, fds1 := scaleRSS(t, d.pid()), scaleFDs(t, d.pid())
		perConn := float64(rss1-rss0) / scaleIdleConns
		t.Logf("%d idle clients handshaked in %v (%.0f handshakes/s, %d dialers)", scaleIdleConns,
			idle.elapsed.Round(time.Millisecond), scaleIdleConns/idle.elapsed.Seconds(), scaleDialers)
		t.Logf("dispatcher VmRSS %.1f MiB -> %.1f MiB: %.0f bytes (%.2f KiB) per idle client; fds %d -> %d",
			float64(rss0)/(1<<20), float64(rss1)/(1<<20), perConn, perConn/1024, fds0, fds1)
		if perConn > scaleIdleTarget {
			t.Logf("over the %d-byte target per idle client (see bench/README.md)", scaleIdleTarget)
		}
		if perConn > scaleIdleCeiling {
			t.Errorf("%.0f bytes per idle client, over the %d-byte regression ceiling", perConn, scaleIdleCeiling)
		}
		if fds1-fds0 < scaleIdleConns {
			t.Errorf("dispatcher holds %d more fds, want at least %d (one per idle client)", fds1-fds0, scaleIdleConns)
		}
		if st := scaleGetStats(t, port); st.Current > scalePoolMaxOpen {
			t.Errorf("with %d idle clients the daemon has %d connected clients, want at most %d", scaleIdleConns, st.Current, scalePoolMaxOpen)
		}

		// 64 real clients at once, each with its own proxy, beside the 10,000 idle ones.
		loadStart := time.Now()
		r := scaleRunClient(t, "load", uri, strconv.Itoa(scaleActive), strconv.Itoa(scaleCalls), "20")
		t.Logf("%d active Python clients x %d calls: %d ok, %d errors in %.2fs (client time %v)",
			scaleActive, scaleCalls, r.OK, r.NErrors, r.Seconds, time.Since(loadStart).Round(time.Millisecond))
		if r.OK != scaleActive*scaleCalls || r.NErrors != 0 {
			t.Errorf("active clients: %d of %d calls ok; errors: %q", r.OK, scaleActive*scaleCalls, r.Errors)
		}

		// Idle clients are still usable: a sample of them calls once each.
		var wg sync.WaitGroup
		var mu sync.Mutex
		var callErrs []error
		for i := 0; i < len(idle.conns); i += len(idle.conns) / 100 {
			c := idle.conns[i]
			wg.Go(func() {
				if err := scaleCall(c, 1); err != nil {
					mu.Lock()
					callErrs = append(callErrs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(callErrs) > 0 {
			t.Errorf("%d of 100 sampled idle clients failed their call; first: %v", len(callErrs), callErrs[0])
		}

		st := scaleGetStats(t, port)
		t.Logf("daemon: %d connected clients now, at most %d at once, %d handshakes", st.Current, st.Max, st.Handshakes)
		if st.Max > scalePoolMaxOpen || st.Max < 1 {
			t.Errorf("daemon had at most %d connected clients at once, want 1..%d (--pool-max-open)", st.Max, scalePoolMaxOpen)
		}
		t.Logf("dispatcher VmRSS after the calls: %.1f MiB", float64(scaleRSS(t, d.pid()))/(1<<20))
	})

	t.Run("session", func(t *testing.T) {
		port := scaleDaemon(t)
		d := scaleServe(t, bin, "127.0.0.1:"+port, "--mode", "session", "--max-conns", strconv.Itoa(scaleMaxConns))
		uri := "PYRO:scale.obj@" + d.addr

		idle := scaleOpen(d.addr, scaleSessionIdle, scaleDialers)
		t.Cleanup(idle.closeAll)
		t.Logf("session mode, %d idle clients: %d handshaked, %d refused (first reason %q), %d errors",
			scaleSessionIdle, len(idle.conns), len(idle.fails), scaleFirst(idle.fails), len(idle.errs))
		if len(idle.errs) > 0 {
			t.Fatalf("%d idle clients failed other than by CONNECTFAIL: first %v", len(idle.errs), idle.errs[0])
		}
		if len(idle.conns) != scaleThreadpool {
			t.Errorf("%d idle clients handshaked, want exactly the daemon's %d workers", len(idle.conns), scaleThreadpool)
		}
		for _, why := range idle.fails {
			if !strings.Contains(why, "no free workers") {
				t.Errorf("refused with %q, want the daemon's \"no free workers\"", why)
				break
			}
		}

		// A real client now cannot get in: refused, or stuck until its timeout.
		r := scaleRunClient(t, "once", uri, "3")
		t.Logf("real client beside %d idle ones: %+v", len(idle.conns), r)
		if r.Error == "" {
			t.Errorf("call succeeded (%v) with all %d daemon workers held by idle clients; want a failure", r.Result, scaleThreadpool)
		} else if !strings.Contains(r.Message, "no free workers") && !strings.Contains(r.Error, "TimeoutError") {
			t.Errorf("call failed with %s: %q; want \"no free workers\" or a timeout", r.Error, r.Message)
		}

		// The idle clients leave: the daemon had exactly its 40 workers' worth, and the
		// same client gets in again.
		idle.closeAll()
		var st scaleStats
		deadline := time.Now().Add(10 * time.Second)
		for {
			st = scaleGetStats(t, port)
			if st.Current == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("daemon: %d connected clients now, at most %d at once", st.Current, st.Max)
		if st.Max != scaleThreadpool {
			t.Errorf("daemon had at most %d connected clients at once, want %d", st.Max, scaleThreadpool)
		}
		if r := scaleRunClient(t, "once", uri, "3"); r.Error != "" {
			t.Errorf("after the idle clients left, the call failed: %s: %s", r.Error, r.Message)
		}
	})
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

func scaleFirst[T any](s []T) any {
	if len(s) == 0 {
		return nil
	}
	return s[0]
}

// scaleGoBackend is a Go stand-in for the scale daemon: it answers a CONNECT with the
// real daemon's CONNECTOK and every INVOKE with the real RESULT of add(1, 2), at once.
// It measures the dispatcher, not the backend.
func scaleGoBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					c.Close()
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
				r := frame.NewReader(c, 0, frame.Limits{})
				var out []byte
				for {
					m, err := r.Next()
					if err == nil {
						err = r.Discard(&m)
					}
					if err != nil {
						return
					}
					h := frame.Header{Seq: m.Header.Seq, Serializer: frame.Serpent}
					var payload string
					switch m.Header.Type {
					case frame.Connect:
						h.Type, h.Flags, payload = frame.ConnectOK, frame.FlagMetaOnConnect, scaleConnectOKPayload
					case frame.Ping:
						h.Type, payload = frame.Ping, "pong"
					default:
						if m.Header.Flags.Has(frame.FlagOneway) {
							continue
						}
						h.Type, payload = frame.Result, scaleResultPayload
					}
					out = frame.AppendMessage(out[:0], h, nil, []byte(payload))
					if _, err := c.Write(out); err != nil {
						return
					}
				}
			})
		}
	})
	return ln.Addr().String()
}

// scaleStartInProcess runs a dispatcher in this process (info-level logs to nowhere,
// like `serve` without a terminal) and returns it and its address.
func scaleStartInProcess(tb testing.TB, backend, mode string, poolMaxOpen int) (*dispatch.Server, string) {
	tb.Helper()
	cfg := config.Defaults()
	cfg.Limits.MaxConnections = scaleMaxConns
	cfg.Listeners = []config.Listener{{Name: "main", Listen: config.StringList{"127.0.0.1:0"}, Backend: config.StringList{backend}, Mode: mode}}
	cfg.Listeners[0].Pool.MaxOpen = poolMaxOpen
	enc := zapcore.NewConsoleEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	srv, err := dispatch.NewServer(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, srv.Addrs()[0].String()
}

// BenchmarkPooledIdleMemory measures the dispatcher binary's memory per idle client:
// VmRSS after scaleIdleConns handshaked idle clients minus before, per client, in pooled
// mode (--pool-max-open 8) in front of the Go backend: rss-B/idle-client once they are
// parked (pool.park_after, 1 s by default, then a sweep), rss-unparked-B/idle-client
// before that (each with its goroutine and read buffer). Run it once:
//
//	go test -run '^$' -bench BenchmarkPooledIdleMemory -benchtime 1x ./interop
func BenchmarkPooledIdleMemory(b *testing.B) {
	scaleRaiseFileLimit(b, scaleIdleConns+500)
	bin := buildDispatcher(b, b.TempDir())
	backend := scaleGoBackend(b)
	b.ResetTimer()
	var perConn, unparked, rate float64
	for range b.N {
		b.StopTimer()
		d := scaleServe(b, bin, backend, "--mode", "pooled", "--pool-max-open", strconv.Itoa(scalePoolMaxOpen),
			"--max-conns", strconv.Itoa(scaleMaxConns))
		warm := scaleOpen(d.addr, 1, 1)
		if len(warm.conns) != 1 {
			b.Fatalf("first handshake: %q %v", warm.fails, warm.errs)
		}
		time.Sleep(200 * time.Millisecond)
		rss0 := scaleRSS(b, d.pid())
		b.StartTimer()
		idle := scaleOpen(d.addr, scaleIdleConns, scaleDialers)
		b.StopTimer()
		if len(idle.conns) != scaleIdleConns {
			b.Fatalf("%d of %d handshaked: %q %v", len(idle.conns), scaleIdleConns, scaleFirst(idle.fails), scaleFirst(idle.errs))
		}
		time.Sleep(300 * time.Millisecond)
		unparked = float64(scaleRSS(b, d.pid())-rss0) / scaleIdleConns
		// Parked after park_after (1 s) from their handshake; the memory of their stacks is
		// returned at the sweep after (250 ms) and, for any left, by the runtime within seconds.
		time.Sleep(config.DefaultPoolParkAfter + 4*time.Second)
		perConn = float64(scaleRSS(b, d.pid())-rss0) / scaleIdleConns
		rate = scaleIdleConns / idle.elapsed.Seconds()
		for _, c := range idle.conns[:100] { // parked clients still answer
			if err := (&scaleClient{c: c, r: frame.NewReader(c, 0, frame.Limits{})}).call(); err != nil {
				b.Fatalf("a parked client's call: %v", err)
			}
		}
		idle.closeAll()
		warm.closeAll()
		d.stop()
	}
	b.ReportMetric(perConn, "rss-B/idle-client")
	b.ReportMetric(unparked, "rss-unparked-B/idle-client")
	b.ReportMetric(rate, "handshakes/s")
}

// BenchmarkPooledIdleHeap runs the dispatcher in this process with scaleHeapConns idle
// clients (both ends of each connection are in this process, so fewer than
// scaleIdleConns fit under the 20000 file limit) and reports, after a GC, the live heap and goroutine stack per idle client
// (client-side connections included in the heap figure: ~0.3 KiB of it). With
// PYRO_DISPATCH_HEAPPROFILE=FILE it writes a heap profile there, taken while the clients
// are connected:
//
//	PYRO_DISPATCH_HEAPPROFILE=/tmp/idle.pprof go test -run '^$' -bench BenchmarkPooledIdleHeap -benchtime 1x ./interop
//	go tool pprof -sample_index=inuse_space -top /tmp/idle.pprof
func BenchmarkPooledIdleHeap(b *testing.B) {
	scaleRaiseFileLimit(b, 2*scaleHeapConns+500)
	profile := os.Getenv("PYRO_DISPATCH_HEAPPROFILE")
	if profile != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1 // every allocation, for exact figures per client
	}
	backend := scaleGoBackend(b)
	var heap, stack, stackNoGC, goroutines float64
	for range b.N {
		srv, addr := scaleStartInProcess(b, backend, config.ModePooled, scalePoolMaxOpen)
		warm := scaleOpen(addr, 1, 1)
		if len(warm.conns) != 1 {
			b.Fatalf("first handshake: %q %v", warm.fails, warm.errs)
		}
		var m0, m1 runtime.MemStats
		time.Sleep(100 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(&m0)
		g0 := runtime.NumGoroutine()
		idle := scaleOpen(addr, scaleHeapConns, scaleDialers)
		if len(idle.conns) != scaleHeapConns {
			b.Fatalf("%d of %d handshaked: %q %v", len(idle.conns), scaleHeapConns, scaleFirst(idle.fails), scaleFirst(idle.errs))
		}
		scaleWaitParked(b, srv, scaleHeapConns)
		var mNoGC runtime.MemStats
		runtime.ReadMemStats(&mNoGC) // stacks as the handshakes left them
		stackNoGC = float64(int64(mNoGC.StackInuse)-int64(m0.StackInuse)) / scaleHeapConns
		runtime.GC()
		runtime.GC() // twice: stacks shrink at GC, and the second sees the first's result
		runtime.ReadMemStats(&m1)
		heap = float64(int64(m1.HeapInuse)-int64(m0.HeapInuse)) / scaleHeapConns
		stack = float64(int64(m1.StackInuse)-int64(m0.StackInuse)) / scaleHeapConns
		goroutines = float64(runtime.NumGoroutine()-g0) / scaleHeapConns
		if profile != "" {
			f, err := os.Create(profile)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		if n := srv.Sessions(); n < scaleHeapConns {
			b.Fatalf("%d sessions", n)
		}
		idle.closeAll()
		warm.closeAll()
	}
	b.ReportMetric(heap, "heap-B/idle-client")
	b.ReportMetric(stack, "stack-B/idle-client")
	b.ReportMetric(stackNoGC, "stack-before-gc-B/idle-client")
	b.ReportMetric(goroutines, "goroutines/idle-client")
}

// scaleWaitParked waits until at least n sessions of srv are parked (pool.park_after).
func scaleWaitParked(tb testing.TB, srv *dispatch.Server, n int) {
	tb.Helper()
	for deadline := time.Now().Add(30 * time.Second); srv.ParkedSessions() < n; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d idle clients parked after 30 s", srv.ParkedSessions(), n)
		}
	}
}

// scaleClient is a Go Pyro4 client that repeats add(1, 2) after a real client's CONNECT.
type scaleClient struct {
	c   net.Conn
	r   *frame.Reader
	out []byte
	seq uint16
}

func scaleDialClient(tb testing.TB, addr string) *scaleClient {
	tb.Helper()
	c, reason, err := scaleHandshake(addr)
	if err != nil || c == nil {
		tb.Fatalf("handshake with %s: %v %q", addr, err, reason)
	}
	tb.Cleanup(func() { c.Close() })
	return &scaleClient{c: c, r: frame.NewReader(c, 0, frame.Limits{})}
}

func (g *scaleClient) call() error {
	g.seq++
	g.out = frame.AppendMessage(g.out[:0], frame.Header{Type: frame.Invoke, Seq: g.seq, Serializer: frame.Serpent}, nil, []byte(scaleInvokePayload))
	if _, err := g.c.Write(g.out); err != nil {
		return err
	}
	m, err := g.r.Next()
	if err == nil {
		err = g.r.ReadRest(&m)
	}
	switch {
	case err != nil:
		return err
	case m.Header.Type != frame.Result || m.Header.Seq != g.seq || m.Header.Flags.Has(frame.FlagException) || string(m.Payload) != scaleResultPayload:
		return fmt.Errorf("add(1, 2) seq %d answered with %v seq %d flags %v: %q", g.seq, m.Header.Type, m.Header.Seq, m.Header.Flags, m.Payload)
	}
	return nil
}

// scaleThroughput makes b.N calls spread over `clients` connections to addr, all
// connected before the timer starts, and reports calls/s.
func scaleThroughput(b *testing.B, addr string, clients int) {
	cs := make([]*scaleClient, clients)
	for i := range cs {
		cs[i] = scaleDialClient(b, addr)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Bool
	cpu0 := scaleCPUTime(b)
	b.ResetTimer()
	for _, g := range cs {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) && !failed.Load() {
				if err := g.call(); err != nil {
					if failed.CompareAndSwap(false, true) {
						b.Errorf("call: %v", err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	b.ReportMetric(float64(scaleCPUTime(b)-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/call")
}

// scaleCPUTime returns the CPU time (user + system) this process has used: the clients,
// the in-process dispatcher and the Go backend, not a Python daemon. Per call it is a
// figure that CPU contention from other processes hardly changes, unlike calls/s.
func scaleCPUTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPooledVsSession: small calls (add(1, 2), serpent, as a real proxy sends them)
// from N concurrent Go clients through an in-process dispatcher, session mode against
// pooled mode (8 and 64 backend connections). backend=go is a Go backend answering at
// once (the dispatcher's own cost); backend=python is the real Pyro4 thread-pool daemon
// (what a user sees; 32 clients, as session mode cannot serve more than its 40 workers).
//
//	PYRO_DISPATCH_REQUIRE_PYRO4=1 go test -run '^$' -bench BenchmarkPooledVsSession -benchtime 3s ./interop
func BenchmarkPooledVsSession(b *testing.B) {
	scaleRaiseFileLimit(b, 4096)
	type mode struct {
		name string
		mode string
		open int
	}
	modes := []mode{{"session", config.ModeSession, 0}, {"pooled-8", config.ModePooled, 8}, {"pooled-64", config.ModePooled, 64}}
	goBackend := scaleGoBackend(b)
	for _, clients := range []int{1, 64} {
		for _, m := range modes {
			b.Run(fmt.Sprintf("backend=go/clients=%d/mode=%s", clients, m.name), func(b *testing.B) {
				_, addr := scaleStartInProcess(b, goBackend, m.mode, m.open)
				scaleThroughput(b, addr, clients)
			})
		}
	}
	if os.Getenv(pyro4test.RequireEnv) != "1" {
		if _, err := exec.Command(pyro4test.PythonPath, "-c", "import Pyro4").CombinedOutput(); err != nil {
			return // the Go-backend figures only
		}
	}
	port := scaleDaemon(b)
	const clients = 32
	for _, m := range modes {
		b.Run(fmt.Sprintf("backend=python/clients=%d/mode=%s", clients, m.name), func(b *testing.B) {
			// The previous round's connections must be gone from the daemon first: its
			// 40 workers are shared by all rounds.
			deadline := time.Now().Add(10 * time.Second)
			for st := scaleGetStats(b, port); st.Current > 0; st = scaleGetStats(b, port) {
				if time.Now().After(deadline) {
					b.Fatalf("daemon still has %d clients from the last round", st.Current)
				}
				time.Sleep(50 * time.Millisecond)
			}
			_, addr := scaleStartInProcess(b, "127.0.0.1:"+port, m.mode, m.open)
			scaleThroughput(b, addr, clients)
		})
	}
}
