package dispatch

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// setPanicHook installs panicHook for the test, before its server starts (the server's
// goroutines read it), and removes it once the server is shut down.
func setPanicHook(t *testing.T, hook func(*Session, hookPoint)) {
	panicHook = hook
	t.Cleanup(func() { panicHook = nil })
}

// A panic while serving one client's call closes that client's connection only, in
// every mode and in each goroutine that works for a client: the session's own (session
// and pooled mode, with a leased connection), the reader of a shared pipelined
// connection, and a session writing the requests queued on one. The panic is logged at
// error level with the client, the listener and the stack, and counted in
// pyro_dispatch_panics_total; another client, connected all along, keeps working (on a
// new upstream connection when the shared one was failed), and no goroutine is left.
func TestPanicClosesOnlyItsClient(t *testing.T) {
	pooled := func(c *config.Config) { c.Listeners[0].Mode = config.ModePooled }
	for _, tc := range []struct {
		name  string
		mode  func(*config.Config)
		at    hookPoint
		frame string // the function the panic is raised from, in the stack
	}{
		{"session", nil, atReply, "(*Session).relayCall"},
		{"pooled", pooled, atReply, "(*Session).relayCall"},
		{"pipelined reader", pipelined(1, 8), atReply, "(*muxConn).deliver"},
		{"pipelined writer", pipelined(1, 8), atWrite, "(*muxConn).guard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var victim atomic.Value // the address of the client whose call panics
			victim.Store("")
			setPanicHook(t, func(s *Session, at hookPoint) {
				if at == tc.at && s.client.RemoteAddr().String() == victim.Load() {
					panic("test: a bug met serving this client")
				}
			})
			be := echoBackend(t, func(*frame.Reader, *frame.Message, *frame.Header) answer { return reply })
			core, logs := observer.New(zap.InfoLevel)
			srv, addr := startProxyLogged(t, be.Addr().String(), zap.New(core), func(c *config.Config) {
				c.Admin.Listen = "127.0.0.1:0" // metrics on (nothing listens: the command serves them)
				if tc.mode != nil {
					tc.mode(c)
				}
			})
			a, b := dialClient(t, addr), dialClient(t, addr)
			for _, g := range []*goClient{a, b} {
				if h := g.call(t, frame.Invoke, 0, nil, []byte("before")); h.Type != frame.Result {
					t.Fatalf("call before: %v", h.Type)
				}
			}
			client := a.c.LocalAddr().String()
			victim.Store(client)
			// A session's turn as a pipelined connection's writer can outlast its own call
			// (the reply may come back before it ends its turn): then it, not a's session,
			// would write a's request. Let such turns end first.
			waitWritersIdle(t, srv)
			a.send(t, frame.Invoke, 0, nil, []byte("boom"))
			a.expectClosed(t)

			e := waitPanicLogged(t, logs, client)
			fields := e.ContextMap()
			if fields["listener"] != "t" {
				t.Errorf("listener field %v", fields["listener"])
			}
			if stack, _ := fields["stack"].(string); !strings.Contains(stack, tc.frame) {
				t.Errorf("the stack does not name %s:\n%s", tc.frame, stack)
			}
			if n := panicsCounted(t, srv, "t"); n != 1 {
				t.Errorf("pyro_dispatch_panics_total{listener=t} = %v, want 1", n)
			}
			for range 3 {
				if h := b.call(t, frame.Invoke, 0, nil, []byte("after")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
					t.Fatalf("the other client's call after the panic: %v %v", h.Type, h.Flags)
				}
			}
			waitSessions(t, srv, 1)
		})
	}
}

// A panic in a pooled handshake (the dial of an upstream connection, which may run in
// the pool's goroutine) fails that dial only: the client whose CONNECT needed it gets a
// CONNECTFAIL, the panic is logged and counted, and the next client connects.
func TestPanicInPooledHandshake(t *testing.T) {
	var once atomic.Bool
	setPanicHook(t, func(_ *Session, at hookPoint) {
		if at == atHandshake && once.CompareAndSwap(false, true) {
			panic("test: a bug met in a handshake")
		}
	})
	be := echoBackend(t, func(*frame.Reader, *frame.Message, *frame.Header) answer { return reply })
	core, logs := observer.New(zap.InfoLevel)
	srv, addr := startProxyLogged(t, be.Addr().String(), zap.New(core), func(c *config.Config) {
		c.Admin.Listen = "127.0.0.1:0"
		c.Listeners[0].Mode = config.ModePooled
	})
	if h := connectOnce(t, addr); h.Type != frame.ConnectFail {
		t.Fatalf("CONNECT whose handshake panicked answered with %v, want a CONNECTFAIL", h.Type)
	}
	if e := waitPanicLogged(t, logs, "-"); e.ContextMap()["backend"] != be.Addr().String() {
		t.Errorf("backend field %v", e.ContextMap()["backend"])
	}
	if n := panicsCounted(t, srv, "t"); n != 1 {
		t.Errorf("pyro_dispatch_panics_total{listener=t} = %v, want 1", n)
	}
	if h := dialClient(t, addr).call(t, frame.Invoke, 0, nil, []byte("after")); h.Type != frame.Result {
		t.Fatalf("the next client's call: %v", h.Type)
	}
}

// waitWritersIdle waits until no session is in its writer's turn on a pipelined
// connection of srv.
func waitWritersIdle(t *testing.T, srv *Server) {
	t.Helper()
	var conns []*muxConn
	srv.reloadMu.Lock()
	for _, l := range srv.listeners {
		if hs := l.st.Load().handshakes; hs != nil {
			for _, h := range hs.cache.Values() {
				if h.mux != nil {
					h.mux.mu.Lock()
					conns = append(conns, h.mux.conns...)
					h.mux.mu.Unlock()
				}
			}
		}
	}
	srv.reloadMu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range conns {
		for {
			c.mu.Lock()
			writing := c.writing
			c.mu.Unlock()
			if !writing {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a writer's turn did not end")
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// waitPanicLogged waits for the error line of a recovered panic naming client, with its
// stack, and returns it.
func waitPanicLogged(t *testing.T, logs *observer.ObservedLogs, client string) observer.LoggedEntry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range logs.FilterLevelExact(zapcore.ErrorLevel).All() {
			f := e.ContextMap()
			if f["client"] != client || !strings.Contains(e.Message, "panic") {
				continue
			}
			if stack, _ := f["stack"].(string); !strings.Contains(stack, "goroutine") && !strings.Contains(stack, ".go:") {
				t.Fatalf("panic logged without a stack: %v", f)
			}
			return e
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no error line for a panic serving client %s; have %v", client, logs.All())
	return observer.LoggedEntry{}
}

// panicsCounted returns pyro_dispatch_panics_total of listener, as the admin listener's
// /metrics would show it.
func panicsCounted(t *testing.T, srv *Server, listener string) float64 {
	t.Helper()
	mfs, err := srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pyro_dispatch_panics_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelValue(m, "listener") == listener {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// waitSessions waits until srv has n client connections open.
func waitSessions(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions open, want %d", srv.Sessions(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
