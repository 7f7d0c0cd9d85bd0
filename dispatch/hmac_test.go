package dispatch

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// signedBackend is an echo daemon with an HMAC key: it verifies every message (closing
// the connection on a bad one, as Pyro4's daemon does after a CONNECT) and signs its
// replies; bad counts the messages it refused, health the dispatcher's own PINGs (seq
// 0xFFFF) it answered.
func signedBackend(t *testing.T, key []byte, bad, health *atomic.Int64) string {
	ln := testBackend(t, func(c net.Conn, r *frame.Reader) {
		sg := frame.NewSigner(key)
		for {
			m, err := r.Next()
			if err != nil || r.ReadRest(&m) != nil {
				return
			}
			if err := sg.Verify(m.Payload, m.Annotations); err != nil {
				bad.Add(1)
				return
			}
			h := m.Header
			h.Type, h.Flags = frame.Result, 0
			switch m.Header.Type {
			case frame.Connect:
				h.Type = frame.ConnectOK
			case frame.Ping:
				h.Type = frame.Ping
				if m.Header.Seq == 0xFFFF {
					health.Add(1)
				}
			}
			head, _, err := sg.AppendSignedHead(nil, h, m.Payload, m.Annotations, nil)
			if err != nil {
				return
			}
			if _, err := c.Write(append(head, m.Payload...)); err != nil {
				return
			}
		}
	})
	return ln.Addr().String()
}

// signedClient sends messages signed with key (nil: unsigned) and checks replies with it.
type signedClient struct {
	*goClient
	sg *frame.Signer
}

func (g *signedClient) ask(t *testing.T, typ frame.MsgType, payload []byte) (frame.Message, error) {
	t.Helper()
	g.seq++
	head, _, err := g.sg.AppendSignedHead(nil, frame.Header{Type: typ, Seq: g.seq, Serializer: frame.Serpent}, payload, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.c.SetDeadline(time.Now().Add(answerWithin))
	if _, err := g.c.Write(append(head, payload...)); err != nil {
		return frame.Message{}, err
	}
	m, err := g.r.Next()
	if err == nil {
		err = g.r.ReadRest(&m)
	}
	if err == nil {
		err = g.sg.Verify(m.Payload, m.Annotations)
	}
	return m, err
}

// HMAC re-signing: clients with the client key reach a daemon with another key, replies
// come back signed with the client key and carry a correlation id; a wrong or missing
// client signature is refused as Pyro4's daemon refuses it, and never forwarded.
func TestHMACResign(t *testing.T) {
	dir := t.TempDir()
	clientKey, backendKey := []byte("client secret"), []byte("backend secret")
	if err := os.WriteFile(filepath.Join(dir, "client.key"), append(clientKey, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PYRO_DISPATCH_TEST_BACKEND_KEY", string(backendKey))
	for _, mode := range []string{"session", "pooled", "pipelined"} {
		t.Run(mode, func(t *testing.T) {
			var bad, health atomic.Int64
			be := signedBackend(t, backendKey, &bad, &health)
			_, addr := startProxy(t, be, func(c *config.Config) {
				switch mode {
				case "pooled":
					pipelined(2, 1)(c)
				case "pipelined":
					pipelined(2, 8)(c)
				}
				c.Listeners[0].HMAC = &config.HMAC{ClientKeyFile: filepath.Join(dir, "client.key"), BackendKeyEnv: "PYRO_DISPATCH_TEST_BACKEND_KEY"}
				c.Listeners[0].Pool.HealthInterval = 20 * time.Millisecond // idle connections PINGed, signed
			})
			dial := func(key []byte) *signedClient {
				g := dialFrom(t, "127.0.0.1", addr)
				return &signedClient{g, frame.NewSigner(key)}
			}
			g := dial(clientKey)
			if m, err := g.ask(t, frame.Connect, []byte("hello")); err != nil || m.Header.Type != frame.ConnectOK {
				t.Fatalf("CONNECT: %v %v", m.Header, err)
			}
			big := bytes.Repeat([]byte("x"), 300<<10) // over buffered_payload: buffered whole to re-sign
			for _, p := range [][]byte{[]byte("small"), big} {
				m, err := g.ask(t, frame.Invoke, p)
				if err != nil || m.Header.Type != frame.Result || !bytes.Equal(m.Payload, p) {
					t.Fatalf("call of %d bytes: %v %v", len(p), m.Header, err)
				}
				if corr, ok := m.Annotations.Lookup(frame.CORR); !ok || len(corr) != frame.CorrLen {
					t.Errorf("reply without the correlation id the dispatcher injected")
				}
			}
			if m, err := g.ask(t, frame.Ping, []byte("p")); err != nil || m.Header.Type != frame.Ping {
				t.Fatalf("PING: %v %v", m.Header, err)
			}
			// A wrong key and no key: at CONNECT a CONNECTFAIL the client's own check
			// rejects (as from a daemon with a key), then the connection closes.
			for _, key := range [][]byte{[]byte("wrong"), nil} {
				w := dial(key)
				_, err := w.ask(t, frame.Connect, []byte("hello"))
				want := frame.ErrHMACMismatch
				if key == nil {
					want = frame.ErrHMACNotSymmetric
				}
				if !errors.Is(err, want) {
					t.Fatalf("CONNECT with key %q: %v, want %v", key, err, want)
				}
				if _, err := w.r.Next(); err == nil {
					t.Fatal("connection still open after a refused CONNECT")
				}
			}
			// A bad signature after a good CONNECT: no reply, the connection closes.
			g.sg = frame.NewSigner([]byte("wrong"))
			if _, err := g.ask(t, frame.Invoke, []byte("forged")); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("forged call: %v, want the connection closed", err)
			}
			if mode == "pooled" { // idle pooled connections get signed PINGs (pipelined ones stay leased)
				deadline := time.Now().Add(answerWithin)
				for health.Load() == 0 && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if health.Load() == 0 {
					t.Error("no health-check PING reached the daemon")
				}
			}
			if n := bad.Load(); n != 0 {
				t.Errorf("the daemon got %d messages that failed its check", n)
			}
		})
	}
}
