package dispatch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestForwardSmallAndLarge(t *testing.T) {
	be := fixedBackend(t)
	_, addr := startProxy(t, be.Addr().String(), nil)
	g := dialClient(t, addr)
	for _, size := range []int{0, 10, 64 << 10, 64<<10 + 1, 3 << 20} {
		payload := bytes.Repeat([]byte{'a' + byte(size%26)}, size)
		g.send(t, frame.Invoke, 0, nil, payload)
		m, err := g.r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := g.r.ReadRest(&m); err != nil {
			t.Fatal(err)
		}
		if m.Header.Type != frame.Result || m.Header.Seq != g.seq || !bytes.Equal(m.Payload, payload) {
			t.Fatalf("size %d: got %+v, %d payload bytes", size, m.Header, len(m.Payload))
		}
	}
	// A oneway call gets no reply; the next call still lines up.
	g.send(t, frame.Invoke, frame.FlagOneway, nil, []byte("x"))
	if h := g.call(t, frame.Ping, 0, nil, []byte("ping")); h.Type != frame.Ping {
		t.Fatalf("ping answered with %v", h.Type)
	}
}

// A backend that answers with the wrong seq has a broken stream: the client's connection
// is closed, as a lost daemon's would be.
func TestReplySeqMismatch(t *testing.T) {
	ln := testBackend(t, func(c net.Conn, r *frame.Reader) {
		for i := 0; ; i++ {
			m, err := r.Next()
			if err != nil || r.Discard(&m) != nil {
				return
			}
			h := frame.Header{Type: frame.ConnectOK, Seq: m.Header.Seq, Serializer: m.Header.Serializer}
			if i > 0 {
				h.Type, h.Seq = frame.Result, m.Header.Seq+1
			}
			c.Write(frame.AppendMessage(nil, h, nil, []byte("x")))
		}
	})
	_, addr := startProxy(t, ln.Addr().String(), nil)
	g := dialClient(t, addr)
	g.send(t, frame.Invoke, 0, nil, []byte("call"))
	g.expectClosed(t)
}

// Shutdown lets a call in flight finish, closes idle clients and leaves no goroutine.
func TestShutdownDrains(t *testing.T) {
	gate := make(chan struct{})
	ln := testBackend(t, func(c net.Conn, r *frame.Reader) {
		for {
			m, err := r.Next()
			if err != nil || r.Discard(&m) != nil {
				return
			}
			h := frame.Header{Type: frame.ConnectOK, Seq: m.Header.Seq, Serializer: m.Header.Serializer}
			if m.Header.Type == frame.Invoke {
				<-gate // a slow call
				h.Type = frame.Result
			}
			c.Write(frame.AppendMessage(nil, h, nil, []byte("done")))
		}
	})
	srv, addr := startProxy(t, ln.Addr().String(), nil)
	busy, idle := dialClient(t, addr), dialClient(t, addr)
	busy.send(t, frame.Invoke, 0, nil, []byte("slow"))
	time.Sleep(50 * time.Millisecond) // the call reaches the backend
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle client not closed on shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting during shutdown")
	}
	close(gate)
	m, err := busy.r.Next()
	if err != nil || m.Header.Type != frame.Result || string(m.Payload) != "done" {
		t.Fatalf("in-flight call lost on shutdown: %+v %v", m.Header, err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// After the dispatcher answered a call itself (here: a call its routes deny), the
// client's connection keeps working past the header timeout: the deadline of that answer
// does not stay on the connection.
func TestOwnReplyLeavesNoDeadline(t *testing.T) {
	ln := echoBackend(t, func(*frame.Reader, *frame.Message, *frame.Header) answer { return reply })
	_, addr := startProxy(t, ln.Addr().String(), func(c *config.Config) {
		l := &c.Listeners[0]
		l.Mode = config.ModePooled
		l.Routes = []config.Route{{Match: config.Match{Annotation: map[string]config.StringList{"DENY": {"*"}}}, Deny: "test"}}
		c.Timeouts.Header = 100 * time.Millisecond
	})
	g := dialClient(t, addr)
	deny := frame.AppendAnnotation(nil, frame.ChunkID{'D', 'E', 'N', 'Y'}, []byte("1"))
	if h := g.call(t, frame.Invoke, 0, deny, []byte("refused")); !h.Flags.Has(frame.FlagException) {
		t.Fatalf("denied call answered with %v %v, want an exception", h.Type, h.Flags)
	}
	time.Sleep(300 * time.Millisecond)
	if h := g.call(t, frame.Invoke, 0, nil, []byte("ok")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("next call: %v %v", h.Type, h.Flags)
	}
}

// Session mode: a daemon that closes an idle connection (its COMMTIMEOUT) gets the
// client's connection closed within 100 ms, as a direct connection would be; the reply it
// sent before still reaches the client.
func TestSessionDaemonIdleCloseClosesClient(t *testing.T) {
	replied := make(chan time.Time, 1)
	ln := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
		if m.Header.Type != frame.Invoke {
			return reply
		}
		replied <- time.Now()
		return lastReply
	})
	_, addr := startProxy(t, ln.Addr().String(), nil)
	g := dialClient(t, addr)
	if h := g.call(t, frame.Invoke, 0, nil, []byte("last")); h.Type != frame.Result {
		t.Fatalf("call: %v", h.Type)
	}
	g.expectClosed(t)
	if d := time.Since(<-replied) - commTimeout; d > 100*time.Millisecond {
		t.Errorf("client closed %v after the daemon closed, want within 100ms", d)
	}
}

// A client may send before it has its reply: its next request (pipelining) or the end of
// its side (a shutdown of its writes, after its last request). Both are served as a
// daemon serves them directly: the requests answered in turn, the connection closed
// after the last reply, with no idle timeout (by default there is none). Found by
// FuzzSession: the bytes that came during a call were waited for again (armedConn).
func TestClientSendsBeforeItsReply(t *testing.T) {
	for _, mode := range []string{config.ModeSession, config.ModePooled} {
		t.Run(mode, func(t *testing.T) {
			be := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
				if m.Header.Type == frame.Invoke {
					time.Sleep(60 * time.Millisecond) // the client's next bytes come meanwhile
				}
				return reply
			})
			_, addr := startProxy(t, be.Addr().String(), func(c *config.Config) { c.Listeners[0].Mode = mode })
			g := dialClient(t, addr)
			g.send(t, frame.Invoke, 0, nil, []byte("first"))
			time.Sleep(20 * time.Millisecond)
			g.send(t, frame.Invoke, 0, nil, []byte("second"))
			time.Sleep(20 * time.Millisecond)
			g.c.(*net.TCPConn).CloseWrite()
			g.c.SetReadDeadline(time.Now().Add(3 * time.Second))
			for i, want := range []string{"first", "second"} {
				m, err := g.r.Next()
				if err == nil {
					err = g.r.ReadRest(&m)
				}
				if err != nil || m.Header.Seq != uint16(2+i) || string(m.Payload) != want {
					t.Fatalf("reply %d: %v seq %d %q, %v; want %q", i+1, m.Header.Type, m.Header.Seq, m.Payload, err, want)
				}
			}
			g.expectClosed(t)
		})
	}
}
