package dispatch

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// slowBackend is an echoBackend that answers a payload "slow" 200 ms late, long enough
// for a client to send again before its reply, and "late" 30 ms late, long enough for
// the session to wait before the reply comes in any mode.
func slowBackend(tb testing.TB) net.Listener {
	return echoBackend(tb, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
		switch string(m.Payload) {
		case "slow":
			time.Sleep(200 * time.Millisecond)
		case "late":
			time.Sleep(30 * time.Millisecond)
		}
		return reply
	})
}

// calmModes are the modes whose client reads wait without reading first once the client
// is calm: session mode (the reply is written as the read is armed) and pipelined pooled
// mode (the read is armed before the reply owed by the mux connection begins).
var calmModes = []struct {
	name string
	mode func(*config.Config)
}{{"session", nil}, {"pipelined", pipelined(1, 4)}}

// theSession returns the server's only session.
func theSession(t *testing.T, srv *Server) *Session {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(srv.sessions))
	}
	for s := range srv.sessions {
		return s
	}
	return nil
}

// waitState waits up to 2 s for the session to wait for a request in the given way:
// untried, its read did not read first.
func waitState(t *testing.T, s *Session, untried bool, calm uint8) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.Lock()
		got, gotCalm, busy := s.untried, s.calm, s.busy
		s.mu.Unlock()
		if !busy && got == untried && gotCalm == calm {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session busy %v, untried %v, calm %d: want waiting, untried %v, calm %d", busy, got, gotCalm, untried, calm)
		}
	}
}

// calmClient connects to a dispatcher in the given mode in front of slowBackend and makes
// calmCalls calls, after which the session waits for its requests without reading first.
// pause, while set, holds the session that writes a pipelined request 100 ms before it
// writes, once: the client may send again before the session's next wait is armed.
func calmClient(t *testing.T, mode func(*config.Config)) (g *goClient, s *Session, pause *atomic.Bool) {
	pause = new(atomic.Bool)
	setPanicHook(t, func(_ *Session, at hookPoint) {
		if at == atWrite && pause.CompareAndSwap(true, false) {
			time.Sleep(100 * time.Millisecond)
		}
	})
	srv, addr := startProxy(t, slowBackend(t).Addr().String(), mode)
	g = dialClient(t, addr)
	s = theSession(t, srv)
	for range calmCalls {
		if h := g.call(t, frame.Invoke, 0, nil, []byte("late")); h.Type != frame.Result {
			t.Fatalf("got %v", h.Type)
		}
	}
	waitState(t, s, true, calmCalls)
	return g, s, pause
}

// readReply reads the next reply within 3 s and checks its seq and payload.
func readReply(t *testing.T, g *goClient, seq uint16, payload string) {
	t.Helper()
	g.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	m, err := g.r.Next()
	if err == nil {
		err = g.r.ReadRest(&m)
	}
	if err != nil {
		t.Fatalf("waiting for the reply to request %d: %v", seq, err)
	}
	if m.Header.Seq != seq || string(m.Payload) != payload {
		t.Fatalf("reply seq %d %q, want seq %d %q", m.Header.Seq, m.Payload, seq, payload)
	}
}

// A Pyro4 client sends its next request only once it has its reply: after its first
// calmCalls calls, the session waits for it without a read that finds nothing; a wait
// the guard ends (an idle client) reads, finds nothing and waits on, the client still
// calm.
func TestCalmClientWaitsWithoutReading(t *testing.T) {
	for _, tc := range calmModes {
		t.Run(tc.name, func(t *testing.T) {
			g, s, _ := calmClient(t, tc.mode)
			time.Sleep(3 * parkSweep) // two sweeps see the wait: the guard ends it, the session reads
			waitState(t, s, false, calmCalls)
			if h := g.call(t, frame.Invoke, 0, nil, []byte("late")); h.Type != frame.Result {
				t.Fatalf("got %v", h.Type)
			}
			waitState(t, s, true, calmCalls)
		})
	}
}

// sendBeforeWait sends a request with the payload first, then, once the session has
// read it and before its next wait is armed, one with the payload next: the session is
// in a slow backend call in session mode, and paused before it writes the first request
// in pipelined mode.
func sendBeforeWait(t *testing.T, g *goClient, pause *atomic.Bool, first, next string) {
	pause.Store(true)
	g.send(t, frame.Invoke, 0, nil, []byte(first))
	time.Sleep(50 * time.Millisecond)
	g.send(t, frame.Invoke, 0, nil, []byte(next))
}

// A calm client that sends its next request while its call is in progress (it
// pipelines), after the session read the call: the request may have come before the
// session's wait was armed, a readiness RawConn.Read forgets; the guard's read finds it
// (within two sweeps), and the session reads before each wait from then on, so the next
// pipelined request is answered without that delay.
func TestGuardFindsRequestSentBeforeReply(t *testing.T) {
	for _, tc := range calmModes {
		t.Run(tc.name, func(t *testing.T) {
			g, s, pause := calmClient(t, tc.mode)
			sendBeforeWait(t, g, pause, "slow", "next")
			readReply(t, g, g.seq-1, "slow")
			start := time.Now()
			readReply(t, g, g.seq, "next")
			t.Logf("second reply %v after the first", time.Since(start))
			waitState(t, s, false, calmNever)
			sendBeforeWait(t, g, pause, "slow", "again")
			readReply(t, g, g.seq-1, "slow")
			start = time.Now()
			readReply(t, g, g.seq, "again")
			if d := time.Since(start); d > parkSweep/2 {
				t.Errorf("pipelined reply %v after the first: the session should read before it waits now", d)
			}
		})
	}
}

// A calm client that ends its side in the middle of a call gets its reply, then the
// end of the connection: the guard's read finds the end that came before the wait (in
// pooled mode, parking the idle session after pool.park_after would find it later).
func TestGuardFindsEndSentBeforeReply(t *testing.T) {
	for _, tc := range calmModes {
		t.Run(tc.name, func(t *testing.T) {
			g, _, pause := calmClient(t, tc.mode)
			pause.Store(true)
			g.send(t, frame.Invoke, 0, nil, []byte("slow"))
			time.Sleep(50 * time.Millisecond)
			g.c.(*net.TCPConn).CloseWrite()
			readReply(t, g, g.seq, "slow")
			g.c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if m, err := g.r.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the reply: %v %v, want the connection closed", m.Header.Type, err)
			}
		})
	}
}

// Requests that come in one read with the request before them mark the client as one
// that sends first at once, calm or not.
func TestPipelinedRequestsMarkTheClient(t *testing.T) {
	srv, addr := startProxy(t, slowBackend(t).Addr().String(), nil)
	g := dialClient(t, addr)
	s := theSession(t, srv)
	var out []byte
	for i := range 3 {
		out = frame.AppendMessage(out, frame.Header{Type: frame.Invoke, Seq: g.seq + uint16(i) + 1, DataLen: 1, Serializer: frame.Serpent}, nil, []byte("x"))
	}
	if _, err := g.c.Write(out); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		readReply(t, g, g.seq+uint16(i)+1, "x")
	}
	waitState(t, s, false, calmNever)
}
