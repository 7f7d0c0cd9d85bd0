package dispatch

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// A pipelined call whose member a reload removes while its connection is being opened is
// routed again, to a member still there (the soak, bench/SOAK.md, found the session
// losing its handshake on the way: the next member's lookup panicked, and the client's
// connection was closed under a reload that is to fail no call).
func TestPipelinedCallRoutedAgainWhenReloadRemovesItsMember(t *testing.T) {
	echo := func(*frame.Reader, *frame.Message, *frame.Header) answer { return reply }
	a, b := echoBackend(t, echo), echoBackend(t, echo)
	withGroup := func(members ...config.Member) config.Config {
		cfg := config.Defaults()
		cfg.Backends = []config.Backend{{Name: "g", Members: members}}
		cfg.Listeners = []config.Listener{{Name: "t", Listen: config.StringList{"127.0.0.1:0"}, Mode: config.ModePooled,
			Pool: config.Pool{MaxOpen: 2, Pipeline: 4}, Routes: []config.Route{{To: "g"}}}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	onlyA := withGroup(config.Member{Address: a.Addr().String()})
	// B takes every call it can: the first call after the reload that adds it goes there.
	withB := withGroup(config.Member{Address: a.Addr().String(), Weight: 1}, config.Member{Address: b.Addr().String(), Weight: 1000})

	var srv *Server
	var armed atomic.Bool
	reloaded := make(chan error, 1)
	setPanicHook(t, func(_ *Session, at hookPoint) {
		// The first dial of B: the reload that removes B comes now.
		if at == atHandshake && armed.CompareAndSwap(true, false) {
			go func() { reloaded <- srv.Reload(onlyA) }()
			select {
			case err := <-reloaded:
				reloaded <- err
			case <-time.After(2 * time.Second):
			}
		}
	})
	core, logs := observer.New(zapcore.InfoLevel)
	var err error
	if srv, err = NewServer(onlyA, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(canceledContext()) })
	t.Cleanup(func() {
		for _, e := range logs.All() {
			if e.Level >= zapcore.ErrorLevel {
				t.Errorf("%s %v", e.Message, e.ContextMap()["panic"])
			}
		}
	})
	addr := srv.Addrs()[0].String()

	g := dialClient(t, addr)
	if h := g.call(t, frame.Invoke, 0, nil, []byte("on A")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("first call: %v %v", h.Type, h.Flags)
	}
	if err := srv.Reload(withB); err != nil {
		t.Fatal(err)
	}
	armed.Store(true)
	g.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if h := g.call(t, frame.Invoke, 0, nil, []byte("picks B")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("the call whose member left: %v %v", h.Type, h.Flags)
	}
	if armed.Load() {
		t.Fatal("the call did not dial B: the reload did not come while it did")
	}
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
	if h := g.call(t, frame.Invoke, 0, nil, []byte("after")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("a call after the reload: %v %v", h.Type, h.Flags)
	}
}

// A reload that removes a member drains its pipelined connections: one whose reply is
// being relayed (taken off the connection's queue, not yet through) closes only once
// the reply is through (the soak found a large reply cut by a reload).
func TestPipelinedDrainWaitsForReplyInDelivery(t *testing.T) {
	const size = 32 << 20 // more than the sockets hold: the client's reading paces it
	big := func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
		if string(m.Payload) == "big" {
			m.Payload = bytes.Repeat([]byte("y"), size)
		}
		return reply
	}
	a, b := echoBackend(t, big), echoBackend(t, big)
	only := func(ln net.Listener) config.Config {
		cfg := config.Defaults()
		cfg.Backends = []config.Backend{{Name: "g", Members: []config.Member{{Address: ln.Addr().String()}}}}
		cfg.Listeners = []config.Listener{{Name: "t", Listen: config.StringList{"127.0.0.1:0"}, Mode: config.ModePooled,
			Pool: config.Pool{MaxOpen: 2, Pipeline: 4}, Routes: []config.Route{{To: "g"}}}}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	srv, err := NewServer(only(b), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(canceledContext()) })
	g := dialClient(t, srv.Addrs()[0].String())
	g.send(t, frame.Invoke, 0, nil, []byte("big"))
	g.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(g.c, make([]byte, 1<<20)); err != nil { // the reply is under way
		t.Fatal(err)
	}
	if err := srv.Reload(only(a)); err != nil { // b's handshake leaves: its mux drains
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	rest, err := io.Copy(io.Discard, io.LimitReader(g.c, int64(frame.HeaderSize+size-1<<20)))
	if err != nil || rest != int64(frame.HeaderSize+size-1<<20) {
		t.Fatalf("the reply after the reload: %d of %d bytes more, %v", rest, frame.HeaderSize+size-1<<20, err)
	}
}
