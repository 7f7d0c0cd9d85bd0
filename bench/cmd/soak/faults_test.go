package main

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/internal/dispatchtest"
)

// Every kind of bad input the garbage fault sends gets its connection closed by the
// dispatcher within the fault's bound, whether it is shorter than a header or not; a
// CONNECT the dispatcher refuses (no member up) is no problem of the fault's.
func TestGarbageIsClosed(t *testing.T) {
	echo := dispatchtest.Echo(t, "127.0.0.1:0", 0)
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down.Close() // a member that is not there
	cfg := config.Defaults()
	// Longer than the 3 s the dispatcher has to close the others: fewer bytes than a
	// header wait for it too.
	cfg.Timeouts.Header = 3500 * time.Millisecond
	cfg.Limits.MaxMessageSize = maxMessageSize
	for _, l := range []struct{ name, mode, backend string }{
		{"session", config.ModeSession, echo.Addr().String()}, {"pooled", config.ModePooled, echo.Addr().String()},
		{"down", config.ModePooled, down.Addr().String()},
	} {
		cfg.Listeners = append(cfg.Listeners, config.Listener{Name: l.name, Listen: config.StringList{"127.0.0.1:0"},
			Mode: l.mode, Backend: config.StringList{l.backend}})
	}
	srv := dispatchtest.Start(t, cfg, zap.NewNop())
	s := &soak{w: &world{ports: map[string]int{}, header: cfg.Timeouts.Header}}
	for i, a := range srv.Addrs() {
		_, port, _ := net.SplitHostPort(a.String())
		s.w.ports[cfg.Listeners[i].Name], _ = strconv.Atoi(port)
	}
	var wg sync.WaitGroup
	for _, g := range garbageKinds {
		for _, l := range []string{"session", "pooled"} {
			for _, n := range []int{10, 3000} {
				junk := make([]byte, n)
				wg.Go(func() {
					if took, err := s.garbage(l, g.name, junk); err != nil {
						t.Errorf("%s (%d bytes) on %s: %v after %v", g.name, n, l, err, took)
					}
				})
			}
		}
	}
	wg.Wait()
	if _, err := s.garbage("down", "garbage after a CONNECT", make([]byte, 100)); !errors.Is(err, errRefusedConnect) {
		t.Errorf("a refused CONNECT: %v", err)
	}
}
