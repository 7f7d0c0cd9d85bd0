// Package dispatchtest starts an in-process dispatcher, and the Go echo daemon behind it,
// for the tests of the packages that drive one (admin, the command, interop); each is
// stopped when the test ends.
package dispatchtest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
)

// Start makes a server of cfg logging to log, starts it and stops it with the test.
func Start(t testing.TB, cfg config.Config, log *zap.Logger) *dispatch.Server {
	t.Helper()
	srv, err := dispatch.NewServer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

// Echo starts the Go echo daemon (bench.EchoServer) on addr, answering after delay, and
// stops it with the test.
func Echo(t testing.TB, addr string, delay time.Duration) *bench.EchoServer {
	t.Helper()
	s := &bench.EchoServer{Delay: delay}
	if err := s.Listen(addr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return s
}
