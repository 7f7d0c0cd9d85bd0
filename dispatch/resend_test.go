package dispatch

import (
	"bytes"
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/pool"
)

// resendHello is the CONNECT payload (serpent) of the clients of TestPooledResend: the
// handshake that failingUpstreams puts in the listener's cache is theirs.
const resendHello = "hello"

// failingConn is a pooled upstream connection, a real socket with its handshake done,
// whose Write fails as a write to a connection the daemon has closed fails, once *fail is
// set and *budget bytes were written after that: the first Write that begins at or past
// the budget, on any failingConn sharing fail, takes it and sends nothing. It is no syscall.Conn, so
// the pool's idle check (a peek at the socket) passes it, as it passes a socket that the
// daemon closes just after the check.
type failingConn struct {
	net.Conn
	fail   *atomic.Bool
	budget *atomic.Int64
}

func (c failingConn) Write(b []byte) (int, error) {
	if !c.fail.Load() {
		return c.Conn.Write(b)
	}
	if c.budget.Load() <= 0 && c.fail.CompareAndSwap(true, false) {
		return 0, &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(),
			Err: os.NewSyscallError("write", syscall.EPIPE)}
	}
	c.budget.Add(-int64(len(b)))
	return c.Conn.Write(b)
}

// failingSocket is a pooled upstream connection, a real socket with its handshake done,
// whose next read, once *fail is set, begins with the socket shut for writing, as a
// write to a connection the daemon has closed fails: a small request held for that read
// (armedConn) fails to be written by it, with nothing sent. The read takes fail.
type failingSocket struct {
	*net.TCPConn
	fail *atomic.Bool
}

func (c failingSocket) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.TCPConn.SyscallConn()
	return failingRaw{rc, c.fail}, err
}

type failingRaw struct {
	syscall.RawConn
	fail *atomic.Bool
}

func (r failingRaw) Read(f func(fd uintptr) bool) error {
	if r.fail.CompareAndSwap(true, false) {
		r.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_WR) })
	}
	return r.RawConn.Read(f)
}

// failingUpstreams gives the handshake of resendHello with the only member of srv's
// pooled listener "t" a pool of connections made failing by failing (a failingConn or a
// failingSocket), before any client connects; dials counts the connections it makes.
func failingUpstreams(t *testing.T, srv *Server, failing func(net.Conn) net.Conn, dials *atomic.Int64) {
	connect := frame.AppendMessage(nil, frame.Header{Type: frame.Connect, Serializer: frame.Serpent}, nil, []byte(resendHello))
	r := frame.NewReader(bytes.NewReader(connect), 0, frame.Limits{})
	m, err := r.Next()
	if err == nil {
		err = r.ReadRest(&m)
	}
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.listeners[0].st.Load().handshakes
	h := hs.build(keyOf(srv.Table().Group("t").Members()[0], &m), &m)
	h.pool.Close() // replaced before anyone sees h
	h.pool = pool.New(pool.Config{Serializer: frame.Serpent, HealthInterval: -1, Wrap: armUpstream, Dial: func(ctx context.Context) (net.Conn, error) {
		c, err := h.dial(ctx)
		if err != nil {
			return nil, err
		}
		dials.Add(1)
		return failing(c), nil
	}})
	hs.cache.Add(h.key, h)
}

// Pooled mode (not pipelined), Session.resend: a request whose write onto an idle pooled
// connection fails before it was written whole (the daemon had closed it: nothing reached
// a daemon) is sent once more on a newly dialed connection, a large one too while none of
// its unbuffered bytes were taken from the client; the client gets the daemon's reply and
// can carry on. A request written whole and then lost with its connection (no reply), or
// a large one whose write fails once part of it was spliced from the client (which
// cannot be replayed), is never sent again: the client's connection is closed, as the
// daemon's loss would close it. That includes the first write of the spliced part:
// io.CopyN took those bytes from the client without counting them (found by
// interop.TestChaos, whose client waited 10 s for the rest of its own request).
func TestPooledResend(t *testing.T) {
	for _, tc := range []struct {
		name      string
		payload   string // "lost": the daemon reads the request and hangs up, no reply
		large     bool   // the payload is made longer than buffered_payload
		failWrite bool   // a write of the request fails
		held      bool   // it fails as the small request's write held for the reply's read (failingSocket)
		budget    int64  // bytes written before the write that fails
		resent    bool   // the client gets the reply; else its connection is closed
		seen      int    // times the daemon reads the request
		dials     int64  // upstream connections made, the CONNECT's included
	}{
		{name: "small-write-fails", payload: "small", failWrite: true, resent: true, seen: 1, dials: 2},
		{name: "small-held-write-fails", payload: "small", failWrite: true, held: true, resent: true, seen: 1, dials: 2},
		{name: "written-then-lost", payload: "lost", seen: 1, dials: 1},
		{name: "large-head-write-fails", payload: "large", large: true, failWrite: true, resent: true, seen: 1, dials: 2},
		{name: "large-splice-fails", payload: "large", large: true, failWrite: true, budget: 256 << 10, seen: 0, dials: 1},
		{name: "large-splice-fails-at-once", payload: "large", large: true, failWrite: true, budget: 1, seen: 0, dials: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			seen := map[string]int{} // INVOKE payloads the daemon read
			ln := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
				if m.Header.Type != frame.Invoke {
					return reply
				}
				mu.Lock()
				seen[string(m.Payload)]++ // before the reply or hang-up the client waits for
				mu.Unlock()
				if string(m.Payload) == "lost" {
					return hangUp
				}
				return reply
			})
			srv, addr := startProxy(t, ln.Addr().String(), pipelined(config.DefaultPoolMaxOpen, 1))
			var fail atomic.Bool
			var budget, dials atomic.Int64
			failing := func(c net.Conn) net.Conn { return failingConn{c, &fail, &budget} }
			if tc.held {
				failing = func(c net.Conn) net.Conn { return failingSocket{c.(*net.TCPConn), &fail} }
			}
			failingUpstreams(t, srv, failing, &dials)

			c, err := net.DialTimeout("tcp", addr, answerWithin)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			g := &goClient{c: c, r: frame.NewReader(c, 0, frame.Limits{})}
			if o := g.ask(frame.Serpent, frame.Connect, 0, []byte(resendHello)); o.h.Type != frame.ConnectOK || o.closed || o.err != nil {
				t.Fatalf("CONNECT: %v", o)
			}

			payload := []byte(tc.payload)
			if tc.large {
				payload = bytes.Repeat(payload, max(srv.bufferedLimit, 2<<20)/len(payload)+1)
			}
			budget.Store(tc.budget)
			fail.Store(tc.failWrite)
			o := g.ask(frame.Serpent, frame.Invoke, 0, payload)
			if fail.Load() {
				t.Fatal("no write failed: the request did not go on the idle pooled connection")
			}
			if tc.resent {
				for i, p := range [][]byte{payload, []byte("next call")} {
					if i > 0 {
						o = g.ask(frame.Serpent, frame.Invoke, 0, p)
					}
					if o.err != nil || o.closed || o.h.Type != frame.Result || o.h.Flags != 0 || o.h.Seq != g.seq || !bytes.Equal(o.payload, p) {
						t.Fatalf("call %d: got %v, want the daemon's RESULT %q to seq %d", i, o, p, g.seq)
					}
				}
			} else if o.err != nil || !o.closed {
				t.Fatalf("got %v, want the client's connection closed", o)
			}
			mu.Lock()
			n := seen[string(payload)]
			mu.Unlock()
			if n != tc.seen {
				t.Errorf("the daemon read the request %d times, want %d", n, tc.seen)
			}
			if d := dials.Load(); d != tc.dials {
				t.Errorf("%d upstream connections made, want %d", d, tc.dials)
			}
		})
	}
}
