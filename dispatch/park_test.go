//go:build linux

package dispatch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// parkedProxy starts a pooled dispatcher (pipelined when pipeline > 1) in front of an
// echo backend whose sessions park after 50 ms idle.
func parkedProxy(t *testing.T, pipeline int, mutate func(*config.Config)) (*Server, string) {
	t.Helper()
	be := fixedBackend(t)
	return startProxy(t, be.Addr().String(), func(c *config.Config) {
		l := &c.Listeners[0]
		l.Mode = config.ModePooled
		l.Pool.Pipeline = pipeline
		l.Pool.ParkAfter = 50 * time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
}

// waitParked waits until n sessions of srv are parked, or fails.
func waitParked(t *testing.T, srv *Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); srv.ParkedSessions() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions parked after 5 s, want %d", srv.ParkedSessions(), n)
		}
	}
}

// echoCall makes a call with a payload of its own and checks that its reply echoes it.
func echoCall(t *testing.T, g *goClient, size int) {
	t.Helper()
	payload := bytes.Repeat([]byte{byte('a' + g.seq%26)}, size)
	g.send(t, frame.Invoke, 0, nil, payload)
	g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := g.r.Next()
	if err == nil {
		err = g.r.ReadRest(&m)
	}
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Type != frame.Result || m.Header.Seq != g.seq || !bytes.Equal(m.Payload, payload) {
		t.Fatalf("call %d: got %v seq %d, %d payload bytes", g.seq, m.Header.Type, m.Header.Seq, len(m.Payload))
	}
}

// An idle pooled client parks: its session's goroutine ends, and its next calls (small,
// large, several in a row) are served as before, by a goroutine it gets again; it parks
// again when idle again. Pooled and pipelined.
func TestIdleClientParks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pipeline int
	}{{"pooled", 1}, {"pipelined", 8}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := parkedProxy(t, tc.pipeline, nil)
			const clients = 20
			gs := make([]*goClient, clients)
			for i := range gs {
				gs[i] = dialClient(t, addr)
				echoCall(t, gs[i], 10)
			}
			before := runtime.NumGoroutine()
			waitParked(t, srv, clients)
			if after := runtime.NumGoroutine(); before-after < clients {
				t.Errorf("%d goroutines with %d clients parked, %d before: want %d fewer", after, clients, before, clients)
			}
			for round := range 2 {
				for _, g := range gs {
					echoCall(t, g, 10)
					echoCall(t, g, 200<<10) // over buffered_payload: spliced
					echoCall(t, g, 10)
				}
				if n := srv.Sessions(); n != clients {
					t.Fatalf("round %d: %d sessions, want %d", round, n, clients)
				}
				waitParked(t, srv, clients)
			}
		})
	}
}

// A parked client that leaves ends its session; one whose idle timeout passes while
// parked is closed then (counted from its last call, not from parking); the admin API
// can close a parked one.
func TestParkedClientEnds(t *testing.T) {
	srv, addr := parkedProxy(t, 1, func(c *config.Config) { c.Timeouts.Idle = 700 * time.Millisecond })
	leaves, times, closed := dialClient(t, addr), dialClient(t, addr), dialClient(t, addr)
	last := time.Now()
	for _, g := range []*goClient{leaves, times, closed} {
		echoCall(t, g, 10)
	}
	waitParked(t, srv, 3)
	leaves.c.Close()
	var id uint64
	for _, in := range srv.SessionList() {
		if in.Client == closed.c.LocalAddr().String() {
			id = in.ID
		}
	}
	if !srv.CloseSession(id, "test") {
		t.Fatal("CloseSession: no such session")
	}
	closed.expectClosed(t)
	times.expectClosed(t)
	if d := time.Since(last); d < 700*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("parked client closed %v after its last call, want the idle timeout 700ms (+ a sweep)", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left", srv.Sessions())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Shutdown closes parked clients at once and returns (nothing waits for them forever).
func TestShutdownClosesParkedClients(t *testing.T) {
	srv, addr := parkedProxy(t, 1, nil)
	gs := []*goClient{dialClient(t, addr), dialClient(t, addr)}
	for _, g := range gs {
		echoCall(t, g, 10)
	}
	waitParked(t, srv, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, g := range gs {
		g.c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := g.r.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("parked client not closed on shutdown: %v", err)
		}
	}
}

// A session that holds more than its client's socket does not park: a session-mode one
// (its own backend connection), a pooled one pinned to its upstream.
func TestSessionsThatDoNotPark(t *testing.T) {
	be := fixedBackend(t)
	srv, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
		c.Listeners[0].Pool.ParkAfter = 50 * time.Millisecond
		pinned := c.Listeners[0]
		pinned.Name, pinned.Mode, pinned.Affinity = "pinned", config.ModePooled, []string{"*"}
		c.Listeners = append(c.Listeners, pinned)
	})
	session := dialClient(t, addr)
	pinned := dialClient(t, srv.Addrs()[1].String())
	echoCall(t, session, 10)
	echoCall(t, pinned, 10)
	time.Sleep(400 * time.Millisecond) // past park_after and a sweep
	for _, in := range srv.SessionList() {
		if in.Parked {
			t.Errorf("session %+v parked", in)
		}
	}
	echoCall(t, session, 10)
	echoCall(t, pinned, 10)
}
