package dispatch

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// slowBackend is an echoBackend that answers a payload "slow" 200 ms late: long enough
// for a client to send again before its reply.
func slowBackend(tb testing.TB) net.Listener {
	return echoBackend(tb, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
		if string(m.Payload) == "slow" {
			time.Sleep(200 * time.Millisecond)
		}
		return reply
	})
}

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

// calmClient connects to a session-mode dispatcher in front of slowBackend and makes
// calmCalls calls, after which the session waits for its requests without reading first.
func calmClient(t *testing.T) (*goClient, *Session) {
	srv, addr := startProxy(t, slowBackend(t).Addr().String(), nil)
	g := dialClient(t, addr)
	s := theSession(t, srv)
	for range calmCalls {
		if h := g.call(t, frame.Invoke, 0, nil, []byte("x")); h.Type != frame.Result {
			t.Fatalf("got %v", h.Type)
		}
	}
	waitState(t, s, true, calmCalls)
	return g, s
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
	g, s := calmClient(t)
	time.Sleep(3 * parkSweep) // two sweeps see the wait: the guard ends it, the session reads
	waitState(t, s, false, calmCalls)
	if h := g.call(t, frame.Invoke, 0, nil, []byte("x")); h.Type != frame.Result {
		t.Fatalf("got %v", h.Type)
	}
	waitState(t, s, true, calmCalls)
}

// A calm client that sends its next request while its call is in progress (it
// pipelines), after the session read the call: the request may have come before the
// session's wait was armed, a readiness RawConn.Read forgets; the guard's read finds it
// (within two sweeps), and the session reads before each wait from then on, so the next
// pipelined request is answered without that delay.
func TestGuardFindsRequestSentBeforeReply(t *testing.T) {
	g, s := calmClient(t)
	g.send(t, frame.Invoke, 0, nil, []byte("slow"))
	time.Sleep(50 * time.Millisecond) // the session read it and waits for the daemon
	g.send(t, frame.Invoke, 0, nil, []byte("next"))
	start := time.Now()
	readReply(t, g, g.seq-1, "slow")
	readReply(t, g, g.seq, "next")
	t.Logf("second reply after %v", time.Since(start))
	waitState(t, s, false, calmNever)
	g.send(t, frame.Invoke, 0, nil, []byte("slow"))
	time.Sleep(50 * time.Millisecond)
	g.send(t, frame.Invoke, 0, nil, []byte("again"))
	start = time.Now()
	readReply(t, g, g.seq-1, "slow")
	readReply(t, g, g.seq, "again")
	if d := time.Since(start); d > parkSweep {
		t.Errorf("pipelined reply after %v: the session should read before it waits now", d)
	}
}

// A calm client that ends its side in the middle of a call gets its reply, then the
// end of the connection: the guard's read finds the end that came before the wait.
func TestGuardFindsEndSentBeforeReply(t *testing.T) {
	g, _ := calmClient(t)
	g.send(t, frame.Invoke, 0, nil, []byte("slow"))
	time.Sleep(50 * time.Millisecond)
	g.c.(*net.TCPConn).CloseWrite()
	readReply(t, g, g.seq, "slow")
	g.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if m, err := g.r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the reply: %v %v, want the connection closed", m.Header.Type, err)
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
