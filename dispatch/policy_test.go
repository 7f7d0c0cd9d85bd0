package dispatch

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// seenBackend is an echo daemon that records the serializer of every message it reads.
type seenBackend struct {
	net.Listener
	mu   sync.Mutex
	sers []frame.Serializer
}

func newSeenBackend(t *testing.T) *seenBackend {
	b := &seenBackend{}
	b.Listener = echoBackend(t, func(_ *frame.Reader, m *frame.Message, h *frame.Header) answer {
		b.mu.Lock()
		b.sers = append(b.sers, m.Header.Serializer)
		b.mu.Unlock()
		if m.Header.Type == frame.Ping {
			h.Type = frame.Ping
		}
		return reply
	})
	return b
}

func (b *seenBackend) saw(s frame.Serializer) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range b.sers {
		if x == s {
			return true
		}
	}
	return false
}

// dialFrom connects to addr from local address from (another loopback IP: another client).
func dialFrom(t *testing.T, from, addr string) *goClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: answerWithin}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &goClient{c: c, r: frame.NewReader(c, 0, frame.Limits{})}
}

// A listener's serializer policy: a CONNECT in a refused serializer gets a CONNECTFAIL
// naming it, a later call in one a SerializeError, and the connection stays usable; the
// backend never sees either. PING (Message.ping's id 42) passes. A route's policy adds
// to the listener's.
func TestSerializerPolicy(t *testing.T) {
	for _, mode := range []string{"session", "pooled", "pipelined"} {
		t.Run(mode, func(t *testing.T) {
			be := newSeenBackend(t)
			_, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
				switch mode {
				case "pooled":
					pipelined(4, 1)(c)
				case "pipelined":
					pipelined(2, 8)(c)
				}
				l := &c.Listeners[0]
				l.Serializers = config.StringList{"serpent", "json", "marshal", "pickle"}
				c.Backends = append(c.Backends, config.Backend{Name: "strict", Members: []config.Member{{Address: be.Addr().String()}}})
				l.Routes = []config.Route{{Match: config.Match{Client: config.StringList{"127.0.0.3"}}, To: "strict", Serializers: config.StringList{"json"}}}
				if err := c.Validate(); err != nil {
					t.Fatal(err)
				}
			})
			g := dialFrom(t, "127.0.0.1", addr)
			o := g.ask(frame.Dill, frame.Connect, 0, []byte("hello"))
			if err := fromDispatcher(o, frame.ConnectFail, frame.Dill); err != nil || !bytes.Contains(o.payload, []byte("not accepted: dill (the policy of listener t accepts serpent, json, marshal, pickle)")) {
				t.Fatalf("CONNECT in dill: %v %v", o, err)
			}
			g = dialFrom(t, "127.0.0.1", addr)
			if o := g.ask(frame.Serpent, frame.Connect, 0, []byte("hello")); o.h.Type != frame.ConnectOK {
				t.Fatalf("CONNECT in serpent: %v", o)
			}
			o = g.ask(frame.Cloudpickle, frame.Invoke, 0, []byte("call"))
			if err := fromDispatcher(o, frame.Result, frame.Cloudpickle); err != nil ||
				!bytes.Contains(o.payload, []byte("SerializeError")) || !bytes.Contains(o.payload, []byte("not accepted: cloudpickle")) {
				t.Fatalf("call in cloudpickle: %v %v", o, err)
			}
			if o := g.ask(frame.Serializer(42), frame.Ping, 0, []byte("ping")); o.h.Type != frame.Ping {
				t.Fatalf("PING: %v", o)
			}
			for _, ser := range []frame.Serializer{frame.Serpent, frame.Pickle} {
				if o := g.ask(ser, frame.Invoke, 0, []byte("ok")); o.h.Type != frame.Result || o.h.Flags != 0 || string(o.payload) != "ok" {
					t.Fatalf("call in %v after a refusal: %v", ser, o)
				}
			}
			// The route of client 127.0.0.3 accepts json only.
			g3 := dialFrom(t, "127.0.0.3", addr)
			if o := g3.ask(frame.JSON, frame.Connect, 0, []byte("hello")); o.h.Type != frame.ConnectOK {
				t.Fatalf("CONNECT in json through the strict route: %v", o)
			}
			o = g3.ask(frame.Serpent, frame.Invoke, 0, []byte("call"))
			if err := fromDispatcher(o, frame.Result, frame.Serpent); err != nil || !bytes.Contains(o.payload, []byte("the policy of route 0 of listener t accepts json")) {
				t.Fatalf("serpent call through the strict route: %v %v", o, err)
			}
			if be.saw(frame.Dill) || be.saw(frame.Cloudpickle) {
				t.Error("the backend saw a message in a refused serializer")
			}
		})
	}
}

// Rate limits per client IP: calls over the rate get a CommunicationError and the client
// stays connected; another client IP at the same time is not limited; connections over
// their rate get a CONNECTFAIL.
func TestRateLimits(t *testing.T) {
	be := newSeenBackend(t)
	_, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
		c.Limits.CallsPerSecondPerIP, c.Limits.Burst = 0.001, 5 // 5 calls, then none for the test
		c.Limits.ConnectionsPerSecondPerIP, c.Limits.ConnectionBurst = 0.001, 3
	})
	connect := func(from string) (*goClient, outcome) {
		g := dialFrom(t, from, addr)
		return g, g.ask(frame.Serpent, frame.Connect, 0, []byte("hello"))
	}
	a, o := connect("127.0.0.1")
	if o.h.Type != frame.ConnectOK {
		t.Fatalf("CONNECT: %v", o)
	}
	a2, _ := connect("127.0.0.1") // the same IP: shares the bucket
	for i := range 5 {
		g := []*goClient{a, a2}[i%2]
		if o := g.ask(frame.Serpent, frame.Invoke, 0, []byte("x")); o.h.Flags != 0 {
			t.Fatalf("call %d within the burst: %v", i, o)
		}
	}
	o = a.ask(frame.Serpent, frame.Invoke, 0, []byte("x"))
	if err := fromDispatcher(o, frame.Result, frame.Serpent); err != nil || !bytes.Contains(o.payload, []byte("rate limit of 0.001 calls/s per client IP exceeded by 127.0.0.1 (burst 5)")) {
		t.Fatalf("call over the rate: %v %v", o, err)
	}
	if o := a.ask(frame.Serpent, frame.Ping, 0, []byte("p")); o.h.Type != frame.Ping {
		t.Fatalf("the limited client's connection is not usable: %v", o)
	}
	b, o := connect("127.0.0.2")
	if o.h.Type != frame.ConnectOK {
		t.Fatalf("CONNECT from another IP: %v", o)
	}
	for range 5 {
		if o := b.ask(frame.Serpent, frame.Invoke, 0, []byte("y")); o.h.Flags != 0 {
			t.Fatalf("another IP's call: %v", o)
		}
	}
	// 127.0.0.1 has made 2 connections of its 3; the 4th is refused.
	connect("127.0.0.1")
	start := time.Now()
	_, o = connect("127.0.0.1")
	if err := fromDispatcher(o, frame.ConnectFail, frame.Serpent); err != nil || !bytes.Contains(o.payload, []byte("connection rate limit of 0.001/s per client IP exceeded by 127.0.0.1 (burst 3)")) {
		t.Fatalf("connection over the rate: %v %v", o, err)
	}
	if d := time.Since(start); d > answerWithin {
		t.Fatalf("refusal took %v", d)
	}
}
