package dispatch

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/testcert"
)

// tlsClientConfig trusts the test CA and, when cert is set, presents cert/key.
func tlsClientConfig(t testing.TB, ca, cert, key string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: roots, ServerName: "localhost"}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		// Presented whatever CAs the server asks for (a Go client would otherwise send
		// none that another CA signed).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil }
		cfg.Certificates = []tls.Certificate{kp} // as a server (the backend)
	}
	return cfg
}

// dialTLS connects a Pyro4 client over TLS and performs its CONNECT.
func dialTLS(t testing.TB, addr string, cfg *tls.Config) (*goClient, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: answerWithin}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	g := &goClient{c: c, r: frame.NewReader(c, 0, frame.Limits{})}
	if o := g.ask(frame.Serpent, frame.Connect, 0, []byte("hello")); o.h.Type != frame.ConnectOK {
		if o.err != nil {
			return nil, o.err
		}
		return nil, &net.OpError{Op: "connect", Err: os.ErrClosed}
	}
	c.SetReadDeadline(time.Time{}) // ask's deadline was for the handshake only
	return g, nil
}

// waitLogged waits for a log entry with message msg whose reason field contains reason.
func waitLogged(t *testing.T, logs *observer.ObservedLogs, msg, reason string) {
	t.Helper()
	deadline := time.Now().Add(answerWithin)
	for time.Now().Before(deadline) {
		for _, e := range logs.FilterMessage(msg).All() {
			if r, _ := e.ContextMap()["reason"].(string); strings.Contains(r, reason) {
				if _, ok := e.ContextMap()["client"]; !ok {
					t.Fatalf("log line %q without the client", msg)
				}
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no log line %q with reason %q; have %v", msg, reason, logs.All())
}

// TLS at both ends: clients with a certificate of the client CA reach a backend that
// speaks TLS and wants a client certificate too, in every mode; clients without one, with
// one of another CA, or speaking plain Pyro4 are refused within seconds with one log line
// naming the client and the reason; a reload after the certificate files changed serves
// the new certificate to new clients while an established one carries on.
func TestTLSBothSides(t *testing.T) {
	for _, mode := range []string{"session", "pooled", "pipelined"} {
		t.Run(mode, func(t *testing.T) {
			f, err := testcert.Write(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			// The backend: TLS, client certificates of the test CA required.
			beCfg := tlsClientConfig(t, f.CACert, f.ServerCert, f.ServerKey)
			beCfg.ClientCAs, beCfg.ClientAuth = beCfg.RootCAs, tls.RequireAndVerifyClientCert
			ln, err := tls.Listen("tcp", "127.0.0.1:0", beCfg)
			if err != nil {
				t.Fatal(err)
			}
			be := serveBackend(t, ln, echoServe(func(*frame.Reader, *frame.Message, *frame.Header) answer { return reply }))
			core, logs := observer.New(zap.InfoLevel)
			srv, addr := startProxyLogged(t, be.Addr().String(), zap.New(core), func(c *config.Config) {
				switch mode {
				case "pooled":
					pipelined(2, 1)(c)
				case "pipelined":
					pipelined(2, 8)(c)
				}
				l := &c.Listeners[0]
				l.TLS = &config.ListenerTLS{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert}
				l.BackendTLS = &config.BackendTLS{CA: f.CACert, Cert: f.ClientCert, Key: f.ClientKey}
				if err := c.Validate(); err != nil {
					t.Fatal(err)
				}
			})
			good := tlsClientConfig(t, f.CACert, f.ClientCert, f.ClientKey)
			g, err := dialTLS(t, addr, good)
			if err != nil {
				t.Fatalf("client with a good certificate: %v", err)
			}
			big := strings.Repeat("x", 300<<10)
			for _, p := range []string{"small", big} {
				if o := g.ask(frame.Serpent, frame.Invoke, 0, []byte(p)); o.h.Type != frame.Result || string(o.payload) != p {
					t.Fatalf("call of %d bytes: %v", len(p), o)
				}
			}
			for _, tc := range []struct {
				name, reason string
				cfg          *tls.Config // nil: a plain client
			}{
				{"no certificate", "client sent no certificate", tlsClientConfig(t, f.CACert, "", "")},
				{"other CA", "client certificate not signed by client_ca", tlsClientConfig(t, f.CACert, f.OtherClientCert, f.OtherClientKey)},
				{"plain", "not TLS: plain Pyro4 client", nil},
			} {
				start := time.Now()
				if tc.cfg == nil {
					p := dialFrom(t, "127.0.0.1", addr)
					o := p.ask(frame.Serpent, frame.Connect, 0, []byte("hello"))
					if err := fromDispatcher(o, frame.ConnectFail, frame.Marshal); err != nil || !bytes.Contains(o.payload, []byte("speaks TLS only")) {
						t.Fatalf("plain client: %v %v", o, err)
					}
				} else if _, err := dialTLS(t, addr, tc.cfg); err == nil {
					t.Fatalf("%s: connected", tc.name)
				}
				if d := time.Since(start); d > answerWithin {
					t.Fatalf("%s: refused after %v", tc.name, d)
				}
				waitLogged(t, logs, "closing client: TLS handshake failed", tc.reason)
			}
			// New certificate files, and a reload: new clients get the new certificate,
			// the established one carries on.
			other, err := testcert.Write(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range [][2]string{{other.ServerCert, f.ServerCert}, {other.ServerKey, f.ServerKey}} {
				b, err := os.ReadFile(p[0])
				if err == nil {
					err = os.WriteFile(p[1], b, 0o600)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := srv.Reload(srv.cfg); err != nil {
				t.Fatal(err)
			}
			if _, err := dialTLS(t, addr, good); err == nil {
				t.Fatal("a client that trusts only the old CA accepted the new certificate")
			}
			if _, err := dialTLS(t, addr, tlsClientConfig(t, other.CACert, f.ClientCert, f.ClientKey)); err != nil {
				t.Fatalf("after the reload: %v", err)
			}
			if o := g.ask(frame.Serpent, frame.Invoke, 0, []byte("still")); string(o.payload) != "still" {
				t.Fatalf("established client after the reload: %v", o)
			}
		})
	}
}

// tlsBench is a TLS listener's configuration for benchmarks and the client dialer that
// trusts it.
func tlsBench(b *testing.B) (func(*config.Config), func(testing.TB, string) *goClient) {
	f, err := testcert.Write(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cfg := tlsClientConfig(b, f.CACert, "", "")
	mutate := func(c *config.Config) {
		c.Listeners[0].TLS = &config.ListenerTLS{Cert: f.ServerCert, Key: f.ServerKey}
	}
	dial := func(tb testing.TB, addr string) *goClient {
		g, err := dialTLS(tb, addr, cfg)
		if err != nil {
			tb.Fatal(err)
		}
		return g
	}
	return mutate, dial
}

// BenchmarkForwardSmallTLS: BenchmarkForwardSmall with the client on TLS (the client's
// side of TLS runs in the benchmark too).
func BenchmarkForwardSmallTLS(b *testing.B) {
	mutate, dial := tlsBench(b)
	benchmarkSmallCallsOver(b, dial, nil, mutate)
}

// BenchmarkForwardLargeTLS: BenchmarkForwardLarge with the client on TLS: payloads are
// copied through a buffer, as TLS cannot splice.
func BenchmarkForwardLargeTLS(b *testing.B) {
	mutate, dial := tlsBench(b)
	benchmarkLarge(b, 8<<20, dial, mutate)
}
