package dispatch

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// A client that leaves in the middle of a large request on a pipelined listener: its
// session ends on that (the soak, bench/SOAK.md, found it carrying on to wait for the
// client's next request, which ended it with a warning "closing client: waiting for a
// request: frame: previous payload not consumed" on top of the info line that said why),
// and its connection's replacement serves the next client.
func TestPipelinedClientLeavesMidLargeRequest(t *testing.T) {
	be := echoBackend(t, func(*frame.Reader, *frame.Message, *frame.Header) answer { return reply })
	core, logs := observer.New(zapcore.InfoLevel)
	_, addr := startProxyLogged(t, be.Addr().String(), zap.New(core), pipelined(1, 8))
	gone := dialClient(t, addr)
	msg := frame.AppendMessage(nil, frame.Header{Type: frame.Invoke, Serializer: frame.Marshal}, nil, make([]byte, 1<<20))
	if _, err := gone.c.Write(msg[:len(msg)/2]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the first half is spliced upstream
	gone.c.Close()

	left := "client left in the middle of its large request: its upstream connection is closed"
	for deadline := time.Now().Add(5 * time.Second); logs.FilterMessageSnippet("closing client").Len() == 0 || logs.FilterMessage(left).Len() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the session did not end as the client left: %v", logs.All())
		}
	}
	for _, e := range logs.All() {
		if e.Level >= zapcore.WarnLevel {
			t.Errorf("a client that left is no reason to warn: %s %v", e.Message, e.ContextMap())
		}
	}
	g := dialClient(t, addr)
	if h := g.call(t, frame.Invoke, 0, nil, []byte("after")); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
		t.Fatalf("call after the client left: %v %v", h.Type, h.Flags)
	}
}
