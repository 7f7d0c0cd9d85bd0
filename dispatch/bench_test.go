package dispatch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"go.uber.org/zap"
)

// testBackend listens on 127.0.0.1 and runs serve on every accepted connection, with a
// frame.Reader over it, until the test ends.
func testBackend(tb testing.TB, serve func(c net.Conn, r *frame.Reader)) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return serveBackend(tb, ln, serve)
}

// serveBackend serves each connection ln accepts with serve, until the test ends.
func serveBackend(tb testing.TB, ln net.Listener, serve func(c net.Conn, r *frame.Reader)) net.Listener {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				serve(c, frame.NewReader(c, 0, frame.Limits{}))
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// fixedBackend is a minimal Pyro4 peer for benchmarks: it answers CONNECT with CONNECTOK
// and every INVOKE with a RESULT carrying the request's payload, without allocating.
func fixedBackend(tb testing.TB) net.Listener {
	return testBackend(tb, func(c net.Conn, r *frame.Reader) {
		var head []byte
		var iov [2][]byte
		var bufs net.Buffers
		for {
			m, err := r.Next()
			if err != nil {
				return
			}
			h := m.Header
			switch h.Type {
			case frame.Connect:
				h.Type = frame.ConnectOK
			case frame.Ping:
			default:
				h.Type = frame.Result
			}
			h.Flags &= frame.FlagCompressed
			if m.Header.Flags.Has(frame.FlagOneway) {
				if r.Discard(&m) != nil {
					return
				}
				continue
			}
			// Like a Pyro4 daemon: the whole request first, then the reply.
			if r.ReadRest(&m) != nil {
				return
			}
			head, _ = frame.AppendHead(head[:0], h, nil)
			iov = [2][]byte{head, m.Payload}
			bufs = iov[:] // WriteTo consumes bufs
			if _, err := bufs.WriteTo(c); err != nil {
				return
			}
		}
	})
}

// startProxy runs a dispatcher in front of backend and returns its address.
func startProxy(tb testing.TB, backend string, mutate func(*config.Config)) (*Server, string) {
	return startProxyLogged(tb, backend, testLogger(tb), mutate)
}

// startProxyLogged is startProxy logging to log.
func startProxyLogged(tb testing.TB, backend string, log *zap.Logger, mutate func(*config.Config)) (*Server, string) {
	cfg := config.Defaults()
	cfg.Listeners = []config.Listener{{Name: "t", Listen: config.StringList{"127.0.0.1:0"}, Backend: config.StringList{backend}}}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := NewServer(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Shutdown(canceledContext()) })
	return srv, srv.Addrs()[0].String()
}

// goClient is a Pyro4 client speaking raw frames, for benchmarks and protocol tests.
type goClient struct {
	c   net.Conn
	r   *frame.Reader
	out []byte
	seq uint16
}

func dialClient(tb testing.TB, addr string) *goClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	g := &goClient{c: c, r: frame.NewReader(c, 0, frame.Limits{})}
	if m := g.call(tb, frame.Connect, 0, nil, []byte("hello")); m.Type != frame.ConnectOK {
		tb.Fatalf("handshake answered with %v", m.Type)
	}
	return g
}

// call sends one message and returns the reply header, with the payload read and dropped.
func (g *goClient) call(tb testing.TB, t frame.MsgType, flags frame.Flags, ann frame.Annotations, payload []byte) frame.Header {
	h, err := g.tryCall(t, flags, ann, payload)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// tryCall is call returning its error, for goroutines other than the test's.
func (g *goClient) tryCall(t frame.MsgType, flags frame.Flags, ann frame.Annotations, payload []byte) (frame.Header, error) {
	if err := g.trySend(t, flags, ann, payload); err != nil {
		return frame.Header{}, err
	}
	m, err := g.r.Next()
	if err != nil {
		return frame.Header{}, err
	}
	if err := g.r.Discard(&m); err != nil {
		return frame.Header{}, err
	}
	if m.Header.Seq != g.seq {
		return frame.Header{}, fmt.Errorf("reply seq %d to request %d", m.Header.Seq, g.seq)
	}
	return m.Header, nil
}

// expectClosed checks that the dispatcher closes the client's connection (as a lost
// daemon would) within a few seconds, with no reply before.
func (g *goClient) expectClosed(tb testing.TB) {
	tb.Helper()
	g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := g.r.Next()
	if err == nil {
		tb.Fatalf("got %v %v, want the connection closed", m.Header.Type, m.Header.Flags)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		tb.Fatalf("got %v, want the connection closed", err)
	}
}

func (g *goClient) send(tb testing.TB, t frame.MsgType, flags frame.Flags, ann frame.Annotations, payload []byte) {
	if err := g.trySend(t, flags, ann, payload); err != nil {
		tb.Fatal(err)
	}
}

func (g *goClient) trySend(t frame.MsgType, flags frame.Flags, ann frame.Annotations, payload []byte) error {
	g.seq++
	h := frame.Header{Type: t, Flags: flags, Seq: g.seq, DataLen: len(payload), Serializer: frame.Serpent}
	g.out = frame.AppendMessage(g.out[:0], h, ann, payload)
	_, err := g.c.Write(g.out)
	return err
}

func benchmarkSmallCalls(b *testing.B, ann frame.Annotations, mutate func(*config.Config)) {
	benchmarkSmallCallsOver(b, dialClient, ann, mutate)
}

// benchmarkSmallCallsOver is benchmarkSmallCalls with clients connected by dial.
func benchmarkSmallCallsOver(b *testing.B, dial func(testing.TB, string) *goClient, ann frame.Annotations, mutate func(*config.Config)) {
	be := fixedBackend(b)
	_, addr := startProxy(b, be.Addr().String(), mutate)
	g := dial(b, addr)
	payload := []byte("# serpent utf-8 python3.2\n('echo','echo',('" + strings.Repeat("x", 100) + "',),{})")
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if h := g.call(b, frame.Invoke, 0, ann, payload); h.Type != frame.Result {
			b.Fatalf("got %v", h.Type)
		}
	}
}

// BenchmarkForwardSmall: a small call through the dispatcher (correlation id added).
func BenchmarkForwardSmall(b *testing.B) { benchmarkSmallCalls(b, nil, nil) }

// BenchmarkForwardSmallRouted: pooled mode, every call routed past an object rule (a
// cached decision) to a group of three daemons balanced least_inflight.
func BenchmarkForwardSmallRouted(b *testing.B) {
	benchmarkSmallCalls(b, nil, func(c *config.Config) {
		var members []config.Member
		for range 3 {
			members = append(members, config.Member{Address: fixedBackend(b).Addr().String()})
		}
		c.Backends = []config.Backend{{Name: "echo", Members: members, Balance: config.BalanceLeastInflight}}
		l := &c.Listeners[0]
		l.Mode, l.Backend = config.ModePooled, nil
		l.Routes = []config.Route{
			{Match: config.Match{Object: config.StringList{"admin.*"}}, Deny: "no"},
			{To: "echo"},
		}
	})
}

// BenchmarkForwardSmallWithCorr: a small call that already carries a correlation id.
func BenchmarkForwardSmallWithCorr(b *testing.B) {
	benchmarkSmallCalls(b, frame.AppendAnnotation(nil, frame.CORR, bytes.Repeat([]byte{7}, 16)), nil)
}

// BenchmarkDirectSmall is the same call without the dispatcher, for comparison.
func BenchmarkDirectSmall(b *testing.B) {
	be := fixedBackend(b)
	g := dialClient(b, be.Addr().String())
	payload := []byte("# serpent utf-8 python3.2\n('echo','echo',('" + strings.Repeat("x", 100) + "',),{})")
	b.ReportAllocs()
	for b.Loop() {
		g.call(b, frame.Invoke, 0, nil, payload)
	}
}

// benchmarkLarge sends large payloads through the dispatcher, echoed back; clients
// connected by dial (nil: dialClient).
func benchmarkLarge(b *testing.B, size int, dial func(testing.TB, string) *goClient, mutate func(*config.Config)) {
	be := fixedBackend(b)
	_, addr := startProxy(b, be.Addr().String(), mutate)
	if dial == nil {
		dial = dialClient
	}
	g := dial(b, addr)
	payload := bytes.Repeat([]byte{'z'}, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		h := g.call(b, frame.Invoke, 0, nil, payload)
		if h.DataLen != size {
			b.Fatalf("echoed %d bytes", h.DataLen)
		}
	}
}

// BenchmarkForwardLarge: 8 MiB calls echoed back, payloads spliced both ways.
func BenchmarkForwardLarge(b *testing.B) { benchmarkLarge(b, 8<<20, nil, nil) }

// BenchmarkForwardLargeBuffered: the same with splicing disabled (payloads buffered in
// user space: buffered_payload raised over the payload size), to show what splice saves.
func BenchmarkForwardLargeBuffered(b *testing.B) {
	benchmarkLarge(b, 8<<20, nil, func(c *config.Config) { c.Limits.BufferedPayload = 16 << 20 })
}

// BenchmarkForwardSmallMetrics: BenchmarkForwardSmall with the admin listener's metrics
// on (every call counted and timed, the session's call noted for the API).
func BenchmarkForwardSmallMetrics(b *testing.B) {
	benchmarkSmallCalls(b, nil, func(c *config.Config) { c.Admin.Listen = "127.0.0.1:0" })
}

// BenchmarkForwardSmallPooledMetrics: the same in pooled mode, where each call is
// leased a connection, routed and recorded.
func BenchmarkForwardSmallPooledMetrics(b *testing.B) {
	benchmarkSmallCalls(b, nil, func(c *config.Config) {
		c.Admin.Listen = "127.0.0.1:0"
		c.Listeners[0].Mode = config.ModePooled
	})
}

// BenchmarkForwardSmallPooledWaiting: pooled mode with more clients than connections
// (4 clients, pool.max_open 1), the steady state of a busy pool: most calls wait for a
// connection another client's call releases.
func BenchmarkForwardSmallPooledWaiting(b *testing.B) {
	benchmarkSmallCallsBeside(b, 3, func(c *config.Config) {
		c.Listeners[0].Mode = config.ModePooled
		c.Listeners[0].Pool.MaxOpen = 1
	})
}

// benchmarkSmallCallsBeside is benchmarkSmallCalls with others clients calling beside
// the measured one (allocations count theirs too), all of a pooled listener's calls on
// one backend connection.
func benchmarkSmallCallsBeside(b *testing.B, others int, mutate func(*config.Config)) {
	be := fixedBackend(b)
	srv, addr := startProxy(b, be.Addr().String(), mutate)
	payload := []byte("# serpent utf-8 python3.2\n('echo','echo',('" + strings.Repeat("x", 100) + "',),{})")
	g := dialClient(b, addr)
	stop := make(chan struct{})
	errs := make(chan error, others)
	for range others {
		o := dialClient(b, addr)
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if _, err := o.tryCall(frame.Invoke, 0, nil, payload); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	b.ReportAllocs()
	for b.Loop() {
		if h := g.call(b, frame.Invoke, 0, nil, payload); h.Type != frame.Result {
			b.Fatalf("got %v", h.Type)
		}
	}
	b.StopTimer()
	close(stop)
	for range others {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	if ps := srv.Pools(); len(ps) != 1 || ps[0].Dials != 1 || ps[0].Beyond != 0 {
		b.Fatalf("pools %+v: want all the clients' calls on one connection", ps)
	}
}
