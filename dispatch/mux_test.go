package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// pipelined sets the listener to pooled mode with maxOpen connections and up to depth
// calls in flight on each.
func pipelined(maxOpen, depth int) func(*config.Config) {
	return func(c *config.Config) {
		l := &c.Listeners[0]
		l.Mode = config.ModePooled
		l.Pool.MaxOpen, l.Pool.Pipeline = maxOpen, depth
		if err := c.Validate(); err != nil {
			panic(err)
		}
	}
}

// commTimeout is how long an echoBackend stays idle after a lastReply before it closes
// the connection, as a Pyro4 daemon's COMMTIMEOUT would.
const commTimeout = 50 * time.Millisecond

// answer is what an echoBackend does with one message.
type answer int

const (
	reply     answer = iota // send the reply
	silent                  // send nothing
	hangUp                  // close the connection
	lastReply               // send the reply, stay idle commTimeout, then close the connection
)

// echoBackend is a Pyro4 peer that reads each whole message and answers CONNECT with
// CONNECTOK and a call with a RESULT carrying the call's payload; twist may change the
// reply's header first, or answer otherwise.
func echoBackend(tb testing.TB, twist func(r *frame.Reader, m *frame.Message, h *frame.Header) answer) net.Listener {
	return testBackend(tb, echoServe(twist))
}

// echoServe is the connection handler of an echoBackend.
func echoServe(twist func(r *frame.Reader, m *frame.Message, h *frame.Header) answer) func(net.Conn, *frame.Reader) {
	return func(c net.Conn, r *frame.Reader) {
		for {
			m, err := r.Next()
			if err != nil || r.ReadRest(&m) != nil {
				return
			}
			h := m.Header
			h.Type, h.Flags = frame.Result, 0
			if m.Header.Type == frame.Connect {
				h.Type = frame.ConnectOK
			}
			switch a := twist(r, &m, &h); a {
			case hangUp:
				return
			case reply, lastReply:
				if _, err := c.Write(frame.AppendMessage(nil, h, nil, m.Payload)); err != nil {
					return
				}
				if a == lastReply {
					time.Sleep(commTimeout)
					return
				}
			}
		}
	}
}

// countingBackend is an echoBackend that counts its connections (by their handshakes) and
// the calls it found already buffered behind the one it read (proof that requests came
// pipelined).
type countingBackend struct {
	net.Listener
	conns, ahead atomic.Int64
}

func newCountingBackend(t *testing.T, delay time.Duration) *countingBackend {
	b := &countingBackend{}
	b.Listener = echoBackend(t, func(r *frame.Reader, m *frame.Message, h *frame.Header) answer {
		if m.Header.Type == frame.Connect {
			b.conns.Add(1)
			return reply
		}
		if r.NextBuffered() {
			b.ahead.Add(1)
		}
		if m.Header.Flags.Has(frame.FlagOneway) {
			return silent
		}
		time.Sleep(delay)
		return reply
	})
	return b
}

// Many clients on two pipelined connections: every reply reaches the client that made
// the call (each payload is unique), requests really arrive back to back, and the backend
// sees no more connections than max_open. Large requests and replies (spliced) and oneway
// calls are mixed in.
func TestPipelinedCalls(t *testing.T) {
	be := newCountingBackend(t, 0)
	_, addr := startProxy(t, be.Addr().String(), pipelined(2, 16))
	const clients, calls = 24, 60
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := dialClient(t, addr)
			for j := range calls {
				payload := []byte(fmt.Sprintf("client %d call %d", i, j))
				if i%8 == 0 && j%20 == 0 {
					payload = bytes.Repeat(payload, (100<<10)/len(payload)) // over buffered_payload
				}
				if j%7 == 0 {
					g.send(t, frame.Invoke, frame.FlagOneway, nil, payload)
					continue
				}
				g.send(t, frame.Invoke, 0, nil, payload)
				m, err := g.r.Next()
				if err == nil {
					err = g.r.ReadRest(&m)
				}
				if err != nil {
					errs <- err
					return
				}
				if m.Header.Type != frame.Result || m.Header.Seq != g.seq || !bytes.Equal(m.Payload, payload) {
					errs <- fmt.Errorf("client %d call %d: got %v seq %d %.40q", i, j, m.Header.Type, m.Header.Seq, m.Payload)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := be.conns.Load(); n > 2 {
		t.Errorf("backend saw %d connections, want at most max_open 2", n)
	}
	if be.ahead.Load() == 0 {
		t.Error("no request ever arrived behind another: calls were not pipelined")
	}
	t.Logf("backend: %d connections, %d requests found queued behind another", be.conns.Load(), be.ahead.Load())
}

// A backend connection that dies with calls in flight: the connection of each of those
// clients is closed, as the daemon's loss would close it (a Pyro4 client raises
// ConnectionClosedError and may reconnect); new connections work on a new backend
// connection.
func TestPipelinedBackendLost(t *testing.T) {
	var dropped atomic.Bool
	ln := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
		if string(m.Payload) == "die" && dropped.CompareAndSwap(false, true) {
			time.Sleep(100 * time.Millisecond) // the others' calls queue behind
			return hangUp
		}
		return reply
	})
	_, addr := startProxy(t, ln.Addr().String(), pipelined(1, 8))
	var gs []*goClient
	for range 4 {
		gs = append(gs, dialClient(t, addr))
	}
	idle := dialClient(t, addr) // no call in flight: untouched
	gs[0].send(t, frame.Invoke, 0, nil, []byte("die"))
	time.Sleep(20 * time.Millisecond)
	for _, g := range gs[1:] {
		g.send(t, frame.Invoke, 0, nil, []byte("queued"))
	}
	for _, g := range gs {
		g.expectClosed(t)
	}
	if h := idle.call(t, frame.Invoke, 0, nil, []byte("idle")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("client with no call on the lost connection: %v %v", h.Type, h.Flags)
	}
	for i := range gs {
		g := dialClient(t, addr)
		if h := g.call(t, frame.Invoke, 0, nil, []byte("again")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
			t.Fatalf("reconnected client %d: %v %v", i, h.Type, h.Flags)
		}
	}
}

// A reply whose seq is not the oldest call's means the stream is out of step: the
// connection is replaced and its calls' clients closed; new connections work.
func TestPipelinedSeqMismatch(t *testing.T) {
	var calls atomic.Int64
	ln := echoBackend(t, func(_ *frame.Reader, m *frame.Message, h *frame.Header) answer {
		if m.Header.Type == frame.Invoke && calls.Add(1) == 1 {
			h.Seq++
		}
		return reply
	})
	_, addr := startProxy(t, ln.Addr().String(), pipelined(1, 8))
	g := dialClient(t, addr)
	g.send(t, frame.Invoke, 0, nil, []byte("first"))
	g.expectClosed(t)
	g = dialClient(t, addr)
	if h := g.call(t, frame.Invoke, 0, nil, []byte("second")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("next call: %v %v", h.Type, h.Flags)
	}
}

// A client that leaves before its reply, buffered or spliced (also in the middle of the
// splice): the rest of its reply is read past, the shared connection stays in step, and
// the call queued behind it on that connection is answered.
func TestPipelinedClientGone(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
	}{{"buffered", 1000}, {"spliced", 200 << 10}, {"spliced-cut", 8 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int64
			be := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
				switch {
				case m.Header.Type == frame.Connect:
					conns.Add(1)
				case string(m.Payload) == "big": // a small call with a large reply
					time.Sleep(100 * time.Millisecond)
					m.Payload = bytes.Repeat([]byte("x"), tc.size)
				}
				return reply
			})
			_, addr := startProxy(t, be.Addr().String(), pipelined(1, 8))
			gone := dialClient(t, addr)
			g := dialClient(t, addr)
			gone.send(t, frame.Invoke, 0, nil, []byte("big"))
			time.Sleep(20 * time.Millisecond)
			g.send(t, frame.Invoke, 0, nil, []byte("behind")) // queued on the same connection
			if tc.size > 1<<20 {
				// Read part of the reply, then reset: the cut comes in the middle of the splice.
				gone.c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(gone.c, make([]byte, 300<<10)); err != nil {
					t.Fatal(err)
				}
			}
			gone.c.(*net.TCPConn).SetLinger(0) // a reset: writes to it fail at once
			gone.c.Close()
			g.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, err := g.r.Next()
			if err == nil {
				err = g.r.ReadRest(&m)
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Header.Flags.Has(frame.FlagException) || string(m.Payload) != "behind" {
				t.Fatalf("call queued behind the gone client's: %v %q", m.Header.Flags, m.Payload)
			}
			for range 3 {
				if h := g.call(t, frame.Invoke, 0, nil, []byte("after")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
					t.Fatalf("call after a client left: %v %v", h.Type, h.Flags)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("backend saw %d connections, want 1 (the connection stays in step)", n)
			}
		})
	}
}

// A backend that never answers: with timeouts.call the pending calls' clients are closed
// instead of hanging (the call may have run: it is never sent again).
func TestPipelinedCallTimeout(t *testing.T) {
	ln := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
		if m.Header.Type == frame.Connect {
			return reply
		}
		return silent
	})
	_, addr := startProxy(t, ln.Addr().String(), func(c *config.Config) {
		pipelined(1, 8)(c)
		c.Timeouts.Call = 200 * time.Millisecond
	})
	g := dialClient(t, addr)
	g.send(t, frame.Invoke, 0, nil, []byte("hang"))
	g.expectClosed(t)
}

// Shutdown drains a pipelined call in flight: its reply reaches the client before the
// connection closes.
func TestPipelinedShutdownDrains(t *testing.T) {
	be := newCountingBackend(t, 300*time.Millisecond)
	srv, addr := startProxy(t, be.Addr().String(), pipelined(1, 8))
	g := dialClient(t, addr)
	g.send(t, frame.Invoke, 0, nil, []byte("slow"))
	time.Sleep(50 * time.Millisecond)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := g.r.Next()
	if err == nil {
		err = g.r.ReadRest(&m)
	}
	if err != nil || m.Header.Type != frame.Result || string(m.Payload) != "slow" {
		t.Fatalf("in-flight pipelined call lost on shutdown: %+v %q %v", m.Header, m.Payload, err)
	}
	if _, err := g.r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("client not closed after the drain: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// pool.max_lifetime: a pipelined connection past it takes no new calls and closes once
// its calls are answered; no call fails for it.
func TestPipelinedLifetime(t *testing.T) {
	be := newCountingBackend(t, 0)
	_, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
		c.Listeners[0].Pool.MaxLifetime = 100 * time.Millisecond
		pipelined(2, 4)(c)
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := dialClient(t, addr)
			for end := time.Now().Add(700 * time.Millisecond); time.Now().Before(end); {
				if m := g.roundTrip(t, []byte("x")); m.Header.Type != frame.Result || m.Header.Flags.Has(frame.FlagException) {
					t.Errorf("call: %v %v %q", m.Header.Type, m.Header.Flags, m.Payload)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	// max_open 2 keeps at most 2 open at once: more than that over the 700 ms means
	// connections were closed and replaced as they aged.
	if n := be.conns.Load(); n < 4 {
		t.Errorf("backend saw %d connections: want them replaced as they age", n)
	}
}

// pool.max_idle_time: a pipelined connection unused that long is retired (dropped from
// the mux, closed) when the next call chooses a connection, which opens a new one; one
// used more often is kept.
func TestPipelinedMaxIdleTime(t *testing.T) {
	be := newCountingBackend(t, 0)
	srv, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
		c.Listeners[0].Pool.MaxIdleTime = 150 * time.Millisecond
		pipelined(2, 4)(c)
	})
	g := dialClient(t, addr)
	call := func(what string) {
		t.Helper()
		if m := g.roundTrip(t, []byte(what)); m.Header.Type != frame.Result || m.Header.Flags.Has(frame.FlagException) {
			t.Fatalf("%s: %v %v %q", what, m.Header.Type, m.Header.Flags, m.Payload)
		}
	}
	for i := range 5 {
		call(fmt.Sprintf("busy %d", i))
		time.Sleep(20 * time.Millisecond)
	}
	if n := be.conns.Load(); n != 1 {
		t.Fatalf("backend saw %d connections for calls 20 ms apart: want 1", n)
	}
	time.Sleep(400 * time.Millisecond)
	call("after idle")
	if n := be.conns.Load(); n != 2 {
		t.Fatalf("backend saw %d connections: want the idle one replaced", n)
	}
	if loads := pipelinedLoads(srv); len(loads) != 1 {
		t.Fatalf("mux holds %d connections (%v): want the retired one dropped", len(loads), loads)
	}
}

// A client that sends calls without reading the replies gets closed after the header
// timeout once its socket is full; the calls of another client on the same pipelined
// connection carry on.
func TestPipelinedClientNotReading(t *testing.T) {
	be := newCountingBackend(t, 0)
	srv, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
		c.Timeouts.Header = 300 * time.Millisecond
		pipelined(1, 8)(c)
	})
	bad := dialClient(t, addr)
	g := dialClient(t, addr)
	// Stalled behind bad, g's calls fail the test rather than hang it.
	g.c.SetDeadline(time.Now().Add(20 * time.Second))
	go func() { // its writes block too once the dispatcher stops reading it
		payload := bytes.Repeat([]byte("r"), 60<<10) // under buffered_payload: replies are written, not spliced
		for range 400 {
			bad.seq++
			h := frame.Header{Type: frame.Invoke, Seq: bad.seq, DataLen: len(payload), Serializer: frame.Serpent}
			if _, err := bad.c.Write(frame.AppendMessage(nil, h, nil, payload)); err != nil {
				return
			}
		}
	}()
	for i := range 40 {
		if h := g.call(t, frame.Invoke, 0, nil, []byte("good")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
			t.Fatalf("call %d of the reading client: %v %v", i, h.Type, h.Flags)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Sessions() > 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := srv.Sessions(); n != 1 {
		t.Fatalf("%d sessions, want the client that does not read closed", n)
	}
	if h := g.call(t, frame.Invoke, 0, nil, []byte("after")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("call after: %v %v", h.Type, h.Flags)
	}
}

// roundTrip makes one call and returns the reply with its payload.
func (g *goClient) roundTrip(tb testing.TB, payload []byte) frame.Message {
	g.send(tb, frame.Invoke, 0, nil, payload)
	m, err := g.r.Next()
	if err == nil {
		err = g.r.ReadRest(&m)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// Small pipelined calls allocate nothing in steady state.
func BenchmarkForwardSmallPipelined(b *testing.B) {
	be := fixedBackend(b)
	_, addr := startProxy(b, be.Addr().String(), pipelined(1, 8))
	g := dialClient(b, addr)
	payload := bytes.Repeat([]byte("p"), 100)
	b.ReportAllocs()
	for b.Loop() {
		g.call(b, frame.Invoke, 0, nil, payload)
	}
}

// BenchmarkForwardSmallPipelinedWaiting: pipelined calls of 8 clients on one backend
// connection that takes 2 at a time (pool.max_open 1, pipeline 2): most calls wait for
// an in-flight slot.
func BenchmarkForwardSmallPipelinedWaiting(b *testing.B) {
	benchmarkSmallCallsBeside(b, 7, pipelined(1, 2))
}

// A call cycle through the dispatcher (A's method calls back into A with the incoming
// call's correlation id, as a Pyro4 daemon does) completes in both pooled modes with one
// backend connection allowed: the nested call is never queued behind, nor made to wait
// for, the connection its outer call holds; it gets one beyond max_open.
func TestNestedCallNeverWaitsForItsOuterCall(t *testing.T) {
	for name, mode := range map[string]func(*config.Config){"pooled": pipelined(1, 1), "pipelined": pipelined(1, 8)} {
		t.Run(name, func(t *testing.T) {
			var addr atomic.Value
			ln := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
				if string(m.Payload) != "outer" {
					return reply
				}
				corr, _ := m.Annotations.Lookup(frame.CORR)
				inner, err := nestedCall(addr.Load().(string), corr)
				if err != nil || inner != "inner" {
					t.Errorf("nested call: %q %v", inner, err)
				}
				return reply
			})
			_, a := startProxy(t, ln.Addr().String(), func(c *config.Config) {
				mode(c)
				c.Listeners[0].Pool.WaitTimeout = 20 * time.Second // a deadlock would show as a wait
			})
			addr.Store(a)
			g := dialClient(t, a)
			g.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if h := g.call(t, frame.Invoke, 0, nil, []byte("outer")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
				t.Fatalf("outer call: %v %v", h.Type, h.Flags)
			}
		})
	}
}

// nestedCall makes a call "inner" through the dispatcher at addr with correlation id corr
// and returns the reply's payload.
func nestedCall(addr string, corr []byte) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := frame.NewReader(c, 0, frame.Limits{})
	ann := frame.AppendAnnotation(nil, frame.CORR, corr)
	// The CONNECT of dialClient's: the same handshake, so the same backend connections.
	for i, t := range []frame.MsgType{frame.Connect, frame.Invoke} {
		payload := map[frame.MsgType]string{frame.Connect: "hello", frame.Invoke: "inner"}[t]
		h := frame.Header{Type: t, Seq: uint16(i + 1), DataLen: len(payload), AnnLen: len(ann), Serializer: frame.Serpent}
		if _, err := c.Write(frame.AppendMessage(nil, h, ann, []byte(payload))); err != nil {
			return "", err
		}
		m, err := r.Next()
		if err == nil {
			err = r.ReadRest(&m)
		}
		if err != nil {
			return "", err
		}
		if t == frame.Invoke {
			return string(m.Payload), nil
		}
	}
	return "", nil
}

// A client that abandons its pipelined call (closes its connection before the reply, as a
// Pyro4 proxy does on its timeout) holds no one up: no later call is queued behind the
// abandoned one, and its reply, when it comes, reaches no one.
func TestAbandonedCallHoldsNoOneUp(t *testing.T) {
	slowDone := make(chan struct{})
	ln := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
		if string(m.Payload) == "slow" {
			time.Sleep(600 * time.Millisecond)
			close(slowDone)
		}
		return reply
	})
	defer func() { <-slowDone }() // the backend's goroutine ends before the test
	_, addr := startProxy(t, ln.Addr().String(), pipelined(2, 8))
	warm := dialClient(t, addr)
	warm.call(t, frame.Invoke, 0, nil, []byte("warm")) // one backend connection open
	gone := dialClient(t, addr)
	gone.send(t, frame.Invoke, 0, nil, []byte("slow"))
	time.Sleep(50 * time.Millisecond)
	gone.c.Close() // abandoned on its timeout
	time.Sleep(50 * time.Millisecond)
	g := dialClient(t, addr)
	start := time.Now()
	if h := g.call(t, frame.Invoke, 0, nil, []byte("after")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("call after the abandoned one: %v %v", h.Type, h.Flags)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("the call after an abandoned one took %v: queued behind it", d)
	}
}

// A call whose client leaves while the call waits for a backend connection (every one
// busy) is dropped: the daemon never sees it, and the calls that held the connections
// complete.
func TestCallOfClientGoneWhileWaitingIsDropped(t *testing.T) {
	for _, tc := range []struct {
		name          string
		maxOpen, busy int // busy slow calls fill every in-flight slot
		depth         int
	}{{"pooled", 1, 1, 1}, {"pipelined", 1, 2, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			var dropped, slow atomic.Int64
			ln := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
				switch string(m.Payload) {
				case "slow":
					slow.Add(1)
					time.Sleep(300 * time.Millisecond)
				case "dropme":
					dropped.Add(1)
				}
				return reply
			})
			_, addr := startProxy(t, ln.Addr().String(), pipelined(tc.maxOpen, tc.depth))
			var busy []*goClient
			for range tc.busy {
				g := dialClient(t, addr)
				g.send(t, frame.Invoke, 0, nil, []byte("slow"))
				busy = append(busy, g)
			}
			time.Sleep(50 * time.Millisecond)
			gone := dialClient(t, addr)
			gone.send(t, frame.Invoke, 0, nil, []byte("dropme"))
			time.Sleep(20 * time.Millisecond) // waiting for a connection now
			gone.c.Close()
			for _, g := range busy {
				g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
				m, err := g.r.Next()
				if err == nil {
					err = g.r.ReadRest(&m)
				}
				if err != nil || string(m.Payload) != "slow" {
					t.Fatalf("busy call: %q %v", m.Payload, err)
				}
			}
			after := dialClient(t, addr)
			after.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if h := after.call(t, frame.Invoke, 0, nil, []byte("after")); h.Flags.Has(frame.FlagException) {
				t.Fatalf("call after: %v", h.Flags)
			}
			if n := dropped.Load(); n != 0 {
				t.Errorf("the daemon got the call of a client that had left %d time(s)", n)
			}
			if n := slow.Load(); n != int64(tc.busy) {
				t.Errorf("the daemon got %d slow calls, want %d", n, tc.busy)
			}
		})
	}
}

// A large request waits for its connection until the reply being delivered on it is
// through, not only read from the head of the queue: its client leaving halfway (which
// fails that connection) must not cut another client's reply.
func TestLargeRequestWaitsForReplyInDelivery(t *testing.T) {
	const size = 64 << 20 // more than socket buffers hold: its delivery takes A's reading
	be := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
		if string(m.Payload) == "big" {
			m.Payload = bytes.Repeat([]byte("y"), size)
		}
		return reply
	})
	_, addr := startProxy(t, be.Addr().String(), pipelined(1, 8))
	a := dialClient(t, addr)
	a.send(t, frame.Invoke, 0, nil, []byte("big"))
	time.Sleep(100 * time.Millisecond) // its reply is being relayed: A does not read yet
	m := dialClient(t, addr)
	head := frame.Header{Type: frame.Invoke, Seq: 1, Serializer: frame.Serpent, DataLen: 1 << 20}.Append(nil)
	m.c.Write(append(head, bytes.Repeat([]byte("z"), 100<<10)...)) // a large request, a tenth of it
	time.Sleep(100 * time.Millisecond)
	m.c.(*net.TCPConn).SetLinger(0)
	m.c.Close() // gone halfway
	a.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r, err := a.r.Next()
	if err == nil {
		err = a.r.ReadRest(&r)
	}
	if err != nil || len(r.Payload) != size {
		t.Fatalf("A's reply: %d bytes, %v", len(r.Payload), err)
	}
	if h := a.call(t, frame.Invoke, 0, nil, []byte("again")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("A's next call: %v %v", h.Type, h.Flags)
	}
}

// The choice of connection for a pipelined call (max_open 2, pipeline 8), against a
// backend that holds the calls named "hold" until the end: a call takes a connection
// with no call on it, else opens one under max_open (B's call is answered while A's is
// held, on another connection), and only once max_open are open and all busy is it
// queued, on the connection with the fewest calls (D behind A, then E behind C).
func TestPipelinedConnectionChoice(t *testing.T) {
	release := make(chan struct{})
	var conns atomic.Int64
	seen := make(chan string, 16) // "payload@connection", as the backend reads each call
	be := testBackend(t, func(c net.Conn, r *frame.Reader) {
		id := conns.Add(1)
		echoServe(func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
			if m.Header.Type == frame.Invoke {
				seen <- fmt.Sprintf("%s@%d", m.Payload, id)
				if bytes.HasPrefix(m.Payload, []byte("hold")) {
					<-release
				}
			}
			return reply
		})(c, r)
	})
	srv, addr := startProxy(t, be.Addr().String(), pipelined(2, 8))
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	on := map[string]string{}   // the backend connection of each call
	read := func(name string) { // name "": any call
		t.Helper()
		select {
		case s := <-seen:
			call, conn, _ := strings.Cut(s, "@")
			on[call] = conn
			if name != "" && call != name {
				t.Fatalf("the backend read %s, want %s", s, name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("the backend never read %s (loads %v)", name, pipelinedLoads(srv))
		}
	}
	waitLoads := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for fmt.Sprint(pipelinedLoads(srv)) != want {
			if time.Now().After(deadline) {
				t.Fatalf("calls on the upstream connections: %v, want %s", pipelinedLoads(srv), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	clients := map[string]*goClient{}
	for _, name := range []string{"hold-a", "fast-b", "hold-c", "hold-d", "hold-e"} {
		clients[name] = dialClient(t, addr)
	}
	clients["hold-a"].send(t, frame.Invoke, 0, nil, []byte("hold-a"))
	read("hold-a")
	waitLoads("[1]")
	// Open before queue: a second connection, and the fast call is answered at once.
	b := clients["fast-b"]
	b.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if m := b.roundTrip(t, []byte("fast-b")); string(m.Payload) != "fast-b" {
		t.Fatalf("fast call: %v %q", m.Header.Type, m.Payload)
	}
	read("fast-b")
	waitLoads("[1 0]")
	// A connection with nothing in flight comes first.
	clients["hold-c"].send(t, frame.Invoke, 0, nil, []byte("hold-c"))
	read("hold-c")
	waitLoads("[1 1]")
	// max_open reached, every connection busy: queued, on the one with the fewest calls.
	clients["hold-d"].send(t, frame.Invoke, 0, nil, []byte("hold-d"))
	waitLoads("[2 1]")
	clients["hold-e"].send(t, frame.Invoke, 0, nil, []byte("hold-e"))
	waitLoads("[2 2]")
	close(release)
	released = true
	for _, name := range []string{"hold-a", "hold-c", "hold-d", "hold-e"} {
		g := clients[name]
		g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, err := g.r.Next()
		if err == nil {
			err = g.r.ReadRest(&m)
		}
		if err != nil || string(m.Payload) != name {
			t.Fatalf("%s: reply %q, %v", name, m.Payload, err)
		}
	}
	read("") // D and E, in any order
	read("")
	if len(seen) > 0 {
		t.Fatalf("the backend read more: %s", <-seen)
	}
	switch a, c := on["hold-a"], on["hold-c"]; {
	case on["fast-b"] == a:
		t.Errorf("the fast call went on the connection of the held one: %v", on)
	case c != on["fast-b"]:
		t.Errorf("C went on connection %s, not on the free one of B (%s): %v", c, on["fast-b"], on)
	case on["hold-d"] != a || on["hold-e"] != c:
		t.Errorf("D and E went on %s and %s, want %s (A's) and %s (C's): %v", on["hold-d"], on["hold-e"], a, c, on)
	}
}

// pipelinedLoads returns the calls on each upstream connection of srv's muxes (queued
// or answered, or choosing it), in the order the connections were opened.
func pipelinedLoads(srv *Server) []int {
	var muxes []*mux
	srv.mu.Lock()
	for hs := range srv.pools {
		for _, h := range hs.cache.Values() {
			if h.mux != nil {
				muxes = append(muxes, h.mux)
			}
		}
	}
	srv.mu.Unlock()
	loads := []int{}
	for _, x := range muxes {
		x.mu.Lock()
		for _, c := range x.conns {
			c.mu.Lock()
			loads = append(loads, len(c.calls)-c.head+c.coming)
			c.mu.Unlock()
		}
		x.mu.Unlock()
	}
	return loads
}

// invokeOf is a serpent INVOKE payload of object's method m with one str argument of n
// bytes: the affinity patterns read the object from it.
func invokeOf(object string, n int) []byte {
	return fmt.Appendf(nil, "('%s','m',('%s',),{})", object, strings.Repeat("z", n))
}

// A call that must wait for the pool (max_open 2: one connection pinned by a session
// whose object is an affinity one, the mux's other one reserved by a large request whose
// client sends slowly) takes the mux's connection as soon as the large request's call
// ends, rather than wait out wait_timeout for the pool and be refused. The sessions share
// one handshake, and so one pool.
func TestPipelinedCallTakesConnectionFreedWhileWaitingForPool(t *testing.T) {
	be := echoBackend(t, func(*frame.Reader, *frame.Message, *frame.Header) answer { return reply })
	_, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
		c.Listeners[0].Affinity = []string{"pinned"}
		c.Listeners[0].Pool.WaitTimeout = 3 * time.Second
		pipelined(2, 8)(c)
	})
	pinned := dialClient(t, addr)
	if h := pinned.call(t, frame.Invoke, 0, nil, invokeOf("pinned", 1)); h.Type != frame.Result {
		t.Fatalf("pinned call: %v", h.Type)
	}
	large := dialClient(t, addr)
	payload := invokeOf("free", 1<<20)
	head := frame.Header{Type: frame.Invoke, Seq: 2, Serializer: frame.Serpent, DataLen: len(payload)}.Append(nil)
	if _, err := large.c.Write(append(head, payload[:100<<10]...)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the mux's connection is reserved for it now
	small := dialClient(t, addr)
	small.send(t, frame.Invoke, 0, nil, invokeOf("free", 1))
	done := make(chan frame.Header, 1)
	go func() {
		m, err := small.r.Next()
		if err == nil {
			err = small.r.Discard(&m)
		}
		if err != nil {
			m.Header.Type = 0
		}
		done <- m.Header
	}()
	time.Sleep(200 * time.Millisecond) // the small call waits for a connection
	if _, err := large.c.Write(payload[100<<10:]); err != nil {
		t.Fatal(err)
	}
	large.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := large.r.Next()
	if err == nil {
		err = large.r.ReadRest(&m)
	}
	if err != nil || !bytes.Equal(m.Payload, payload) {
		t.Fatalf("large call: %d bytes, %v", len(m.Payload), err)
	}
	ended := time.Now()
	select {
	case h := <-done:
		if h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
			t.Fatalf("small call answered with %v %v", h.Type, h.Flags)
		}
		t.Logf("small call answered %v after the large call ended", time.Since(ended))
	case <-time.After(time.Second):
		t.Fatal("the small call still waits 1 s after the connection it could take was freed")
	}
}
