package dispatch

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// While the only member's pool backs off after failed dials, a call still tries it (no
// other member can take it): once the daemon is back, the next CONNECT and the next call
// succeed at once, not after the backoff (here up to a minute).
func TestLastResortDuringBackoff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		depth int
	}{{"pooled", 1}, {"pipelined", 8}} {
		t.Run(tc.name, func(t *testing.T) {
			var down atomic.Bool
			var mu sync.Mutex
			var conns []net.Conn
			be := testBackend(t, func(c net.Conn, r *frame.Reader) {
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				for {
					m, err := r.Next()
					if err != nil || r.ReadRest(&m) != nil || down.Load() {
						return // down: a hang-up at the handshake
					}
					h := m.Header
					h.Type, h.Flags = frame.Result, 0
					if m.Header.Type == frame.Connect {
						h.Type = frame.ConnectOK
					}
					if _, err := c.Write(frame.AppendMessage(nil, h, nil, m.Payload)); err != nil {
						return
					}
				}
			})
			_, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
				pipelined(1, tc.depth)(c)
				c.Listeners[0].Pool.BackoffMax = time.Minute
			})
			ok := func(g *goClient, what string) {
				t.Helper()
				g.c.SetDeadline(time.Now().Add(5 * time.Second))
				if h := g.call(t, frame.Invoke, 0, nil, []byte(what)); h.Type != frame.Result || h.Flags.Has(frame.FlagException) {
					t.Fatalf("%s: %v %v", what, h.Type, h.Flags)
				}
			}
			g := dialClient(t, addr)
			ok(g, "before")
			// Down: its connections closed (the dispatcher's idle one is found dead), and
			// every handshake hung up on. Six calls and six CONNECTs fail, each after a
			// fresh dial (the last resort), and the backoff doubles each time.
			down.Store(true)
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			for range 6 {
				g.c.SetDeadline(time.Now().Add(5 * time.Second))
				if h := g.call(t, frame.Invoke, 0, nil, []byte("down")); !h.Flags.Has(frame.FlagException) {
					t.Fatalf("call while the backend is down: %v %v", h.Type, h.Flags)
				}
				if h := connectOnce(t, addr); h.Type != frame.ConnectFail {
					t.Fatalf("CONNECT while the backend is down: %v", h.Type)
				}
			}
			down.Store(false)
			ok(g, "back")             // the same client, whose calls were refused
			g2 := dialClient(t, addr) // fails if the CONNECT is refused
			ok(g2, "new client")
		})
	}
}

// connectOnce sends a CONNECT on a new connection and returns the reply's header.
func connectOnce(t *testing.T, addr string) frame.Header {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g := &goClient{c: c, r: frame.NewReader(c, 0, frame.Limits{})}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return g.call(t, frame.Connect, 0, nil, []byte("hello"))
}
