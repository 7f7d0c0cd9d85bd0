package dispatch

import (
	"bytes"
	"context"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/testcert"
)

// A flood of connections from one IP (3,000 here, standing in for a million: the
// mechanism is the same) costs bounded memory and sessions, and a client from another
// IP is served throughout.
func TestConnectionFloodFromOneIP(t *testing.T) {
	be := echoBackend(t, func(*frame.Reader, *frame.Message, *frame.Header) answer { return reply })
	srv, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
		c.Limits.MaxConnectionsPer = 32
		c.Timeouts.Header = 2 * time.Second
	})
	other := dialFrom(t, "127.0.0.2", addr)
	if o := other.ask(frame.Serpent, frame.Connect, 0, []byte("hello")); o.h.Type != frame.ConnectOK {
		t.Fatalf("CONNECT: %v", o)
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const flood = 3000
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}, Timeout: answerWithin}
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	maxSessions := 0
	for i := range flood {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		if i%100 == 0 {
			maxSessions = max(maxSessions, srv.Sessions())
			if o := other.ask(frame.Serpent, frame.Invoke, 0, []byte("still here")); string(o.payload) != "still here" {
				t.Fatalf("the other client during the flood (%d connections): %v", i, o)
			}
		}
	}
	maxSessions = max(maxSessions, srv.Sessions())
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// Within the per-IP limit, plus the 256 answered with a CONNECTFAIL: the rest are
	// closed at once, holding nothing.
	// (+1 the other client, +1 the one being refused at the instant of a count)
	if limit := 32 + rejectBacklog + 2; maxSessions > limit {
		t.Errorf("%d sessions open during the flood, want at most %d", maxSessions, limit)
	}
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 32<<20 {
		t.Errorf("heap grew by %d MiB during a flood of %d connections", grew>>20, flood)
	}
	t.Logf("%d connections from one IP: at most %d sessions, heap %+d KiB", flood, maxSessions, (int64(after.HeapInuse)-int64(before.HeapInuse))>>10)
}

// A TLS listener against garbage before the handshake and a client asking to
// renegotiate (openssl s_client's "R", TLS 1.2): each connection is closed with a log
// line, and a TLS client connected meanwhile carries on.
func TestTLSHostile(t *testing.T) {
	f, err := testcert.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	be := echoBackend(t, func(*frame.Reader, *frame.Message, *frame.Header) answer { return reply })
	core, logs := observer.New(zap.InfoLevel)
	_, addr := startProxyLogged(t, be.Addr().String(), zap.New(core), func(c *config.Config) {
		c.Listeners[0].TLS = &config.ListenerTLS{Cert: f.ServerCert, Key: f.ServerKey}
		c.Timeouts.Header = 2 * time.Second
	})
	good, err := dialTLS(t, addr, tlsClientConfig(t, f.CACert, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	// Garbage before the handshake.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(bytes.Repeat([]byte{0x16, 0x03, 0x01, 0xff, 0xff}, 100))
	c.SetReadDeadline(time.Now().Add(answerWithin))
	if _, err := io.Copy(io.Discard, c); err != nil { // an alert at most, then the end
		t.Errorf("garbage before the handshake: %v, want the connection closed", err)
	}
	waitLogged(t, logs, "closing client: TLS handshake failed", "")
	if o := good.ask(frame.Serpent, frame.Invoke, 0, []byte("ok")); string(o.payload) != "ok" {
		t.Fatalf("TLS client after the garbage: %v", o)
	}
	// Renegotiation, asked for by openssl s_client after a TLS 1.2 handshake.
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr, "-tls1_2", "-CAfile", f.CACert, "-servername", "localhost")
	cmd.Stdin = strings.NewReader("R\n")
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("openssl s_client hung:\n%s", out)
	}
	if !bytes.Contains(out, []byte("RENEGOTIATING")) {
		t.Fatalf("openssl did not try to renegotiate:\n%s", out)
	}
	if after := out[bytes.Index(out, []byte("RENEGOTIATING")):]; !bytes.Contains(after, []byte("alert")) {
		t.Fatalf("renegotiation not refused with an alert:\n%s", out)
	}
	if o := good.ask(frame.Serpent, frame.Invoke, 0, []byte("still")); string(o.payload) != "still" {
		t.Fatalf("TLS client after a renegotiation attempt: %v", o)
	}
}

// A client that resets its connection (a killed process), idle, in the middle of a call
// or of a large (spliced) reply, ended: its session closes with an info line, as at EOF,
// not a warning, and the backend is not blamed.
func TestClientResetIsAnEnd(t *testing.T) {
	be := echoBackend(t, func(_ *frame.Reader, m *frame.Message, _ *frame.Header) answer {
		switch string(m.Payload) {
		case "slow":
			time.Sleep(100 * time.Millisecond)
		case "big":
			m.Payload = bytes.Repeat([]byte("y"), 32<<20) // more than the sockets hold
		}
		return reply
	})
	core, logs := observer.New(zap.InfoLevel)
	_, addr := startProxyLogged(t, be.Addr().String(), zap.New(core), nil)
	reset := func(g *goClient) {
		g.c.(*net.TCPConn).SetLinger(0) // its close sends a reset
		g.c.Close()
	}
	idle := dialClient(t, addr)
	reset(idle)
	inCall := dialClient(t, addr)
	inCall.send(t, frame.Invoke, 0, nil, []byte("slow"))
	time.Sleep(20 * time.Millisecond)
	reset(inCall)
	inReply := dialClient(t, addr)
	inReply.send(t, frame.Invoke, 0, nil, []byte("big"))
	if _, err := io.ReadFull(inReply.c, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	reset(inReply)
	deadline := time.Now().Add(answerWithin)
	for logs.FilterMessage("closing client: connection ended").FilterFieldKey("error").Len() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("log lines: %v", logs.All())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, e := range logs.FilterMessage("closing client: connection ended").All() {
		if e.Level != zap.InfoLevel {
			t.Errorf("%s at %v", e.Message, e.Level)
		}
	}
	if w := logs.FilterLevelExact(zap.WarnLevel); w.Len() > 0 {
		t.Errorf("a client's reset logged as a warning: %v", w.All())
	}
}

// A daemon that resets its connection in the middle of a large (spliced) request is a
// backend lost during a call, not a client that left: the client's connection is closed,
// as the daemon's loss would close it, with the backend named in the warning.
func TestBackendResetMidLargeRequest(t *testing.T) {
	be := testBackend(t, func(c net.Conn, r *frame.Reader) {
		for {
			m, err := r.Next()
			if err != nil {
				return
			}
			if m.Header.Type == frame.Connect {
				r.ReadRest(&m)
				h := m.Header
				h.Type = frame.ConnectOK
				c.Write(frame.AppendMessage(nil, h, nil, nil))
				continue
			}
			io.CopyN(io.Discard, c, 256<<10) // a part of it, then a reset
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			return
		}
	})
	core, logs := observer.New(zap.InfoLevel)
	_, addr := startProxyLogged(t, be.Addr().String(), zap.New(core), nil)
	g := dialClient(t, addr)
	go g.c.Write(frame.AppendMessage(nil, frame.Header{Type: frame.Invoke, Seq: 1, Serializer: frame.Serpent, DataLen: 32 << 20}, nil,
		bytes.Repeat([]byte("z"), 32<<20))) // ends with an error once the proxy closes
	g.expectClosed(t)
	deadline := time.Now().Add(answerWithin)
	for logs.FilterMessage("backend lost during a call: closing the client's connection, as the daemon's loss would").Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("log lines: %v", logs.All())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A daemon that fails in the middle of a large reply (spliced to the client) loses that
// call as a daemon's loss would, in session and pipelined mode: the client's connection
// is closed, and the loss is a warning naming the backend.
func TestBackendLostMidLargeReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode func(*config.Config)
	}{{"session", nil}, {"pipelined", pipelined(1, 8)}} {
		t.Run(tc.name, func(t *testing.T) {
			be := testBackend(t, func(c net.Conn, r *frame.Reader) {
				for {
					m, err := r.Next()
					if err != nil || r.ReadRest(&m) != nil {
						return
					}
					h := m.Header
					h.Type = frame.Result
					if m.Header.Type == frame.Connect {
						h.Type = frame.ConnectOK
						c.Write(frame.AppendMessage(nil, h, nil, nil))
						continue
					}
					h.DataLen, h.AnnLen = 8<<20, 0 // then only 1 MiB of it, and a reset
					c.Write(append(h.Append(nil), bytes.Repeat([]byte("y"), 1<<20)...))
					c.(*net.TCPConn).SetLinger(0)
					return
				}
			})
			core, logs := observer.New(zap.InfoLevel)
			_, addr := startProxyLogged(t, be.Addr().String(), zap.New(core), tc.mode)
			g := dialClient(t, addr)
			g.send(t, frame.Invoke, 0, nil, []byte("big"))
			g.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := io.Copy(io.Discard, g.c); err != nil || n >= frame.HeaderSize+8<<20 {
				t.Fatalf("the client got %d bytes, %v; want the connection closed before the whole reply", n, err)
			}
			deadline := time.Now().Add(answerWithin)
			for logs.FilterMessage(msgBackendLost).FilterField(zap.String("backend", be.Addr().String())).Len() == 0 {
				if time.Now().After(deadline) {
					t.Fatalf("log lines: %v", logs.All())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
