//go:build linux

package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"
	"unsafe"

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
	if err := echoErr(g, size); err != nil {
		t.Fatal(err)
	}
}

// echoErr is echoCall for any goroutine: it returns what went wrong.
func echoErr(g *goClient, size int) error {
	g.seq++
	payload := bytes.Repeat([]byte{byte('a' + g.seq%26)}, size)
	h := frame.Header{Type: frame.Invoke, Seq: g.seq, DataLen: size, Serializer: frame.Serpent}
	g.out = frame.AppendMessage(g.out[:0], h, nil, payload)
	if _, err := g.c.Write(g.out); err != nil {
		return err
	}
	g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	m, err := g.r.Next()
	if err == nil {
		err = g.r.ReadRest(&m)
	}
	if err != nil {
		return fmt.Errorf("call %d: %w", g.seq, err)
	}
	if m.Header.Type != frame.Result || m.Header.Seq != g.seq || !bytes.Equal(m.Payload, payload) {
		return fmt.Errorf("call %d: got %v seq %d, %d payload bytes", g.seq, m.Header.Type, m.Header.Seq, len(m.Payload))
	}
	return nil
}

// A parked client keeps its Session: at 512 bytes it takes the allocator's 512-byte size
// class, one byte more takes the 576-byte class, and the RSS per parked client measured
// by BenchmarkPooledIdleMemory grew from 2.8 to 3.4 KiB when 16 bytes were added.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); unsafe.Sizeof(uintptr(0)) == 8 && n > 512 {
		t.Fatalf("Session is %d bytes: over 512, the next size class (pack the fields)", n)
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

// Many clients whose pauses straddle park_after, with the sweep every 2 ms: requests
// race the sweep's asking, parking and resuming all the time. Every reply answers its
// own call, and nothing is left once the clients leave (goleak checks the goroutines).
func TestParkingRaces(t *testing.T) {
	be := fixedBackend(t)
	for _, pipeline := range []int{1, 8} {
		cfg := config.Defaults()
		cfg.Listeners = []config.Listener{{Name: "t", Listen: config.StringList{"127.0.0.1:0"}, Backend: config.StringList{be.Addr().String()},
			Mode: config.ModePooled, Pool: config.Pool{Pipeline: pipeline, ParkAfter: 3 * time.Millisecond}}}
		srv, err := NewServer(cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		srv.parkEvery = 2 * time.Millisecond
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		addr := srv.Addrs()[0].String()
		gs := make([]*goClient, 24)
		for i := range gs {
			gs[i] = dialClient(t, addr)
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(gs))
		for i, g := range gs {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), uint64(pipeline)))
				for range 40 {
					if err := echoErr(g, 1+rng.IntN(300)); err != nil {
						errs <- fmt.Errorf("client %d: %w", i, err)
						return
					}
					time.Sleep(time.Duration(rng.IntN(8000)) * time.Microsecond)
				}
			})
		}
		stop, sampled := make(chan struct{}), make(chan int)
		go func() { // the most sessions seen parked at once
			most := 0
			for {
				select {
				case <-stop:
					sampled <- most
					return
				case <-time.After(time.Millisecond):
					most = max(most, srv.ParkedSessions())
				}
			}
		}()
		wg.Wait()
		close(stop)
		mostParked := <-sampled
		close(errs)
		for err := range errs {
			t.Errorf("pipeline %d: %v", pipeline, err)
		}
		if mostParked == 0 {
			t.Errorf("pipeline %d: no session was ever seen parked", pipeline)
		}
		for _, g := range gs {
			g.c.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("pipeline %d: shutdown: %v", pipeline, err)
		}
		if n := srv.Sessions(); n != 0 {
			t.Fatalf("pipeline %d: %d sessions left", pipeline, n)
		}
	}
}
