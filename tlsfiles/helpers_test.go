package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/testcert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// step bounds every single network operation in these tests.
const step = 5 * time.Second

func writeCerts(t *testing.T) testcert.Files {
	t.Helper()
	f, err := testcert.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newServer(t *testing.T, f ServerFiles) *Server {
	t.Helper()
	s, err := NewServer(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newClient(t *testing.T, f ClientFiles) *Client {
	t.Helper()
	c, err := NewClient(f)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// accepted is the outcome of one server-side handshake.
type accepted struct {
	err   error
	state tls.ConnectionState
}

// harness is a TCP listener on 127.0.0.1 that runs a TLS server handshake on every
// connection with cfg, reports the outcome, and then echoes what the client sends.
type harness struct {
	t         *testing.T
	ln        net.Listener
	cfg       *tls.Config
	handshake time.Duration // deadline of the server's handshake
	results   chan accepted

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func serve(t *testing.T, cfg *tls.Config) *harness {
	t.Helper()
	return serveWithin(t, cfg, step)
}

// serveWithin is serve with the given deadline for the server's handshakes.
func serveWithin(t *testing.T, cfg *tls.Config, handshake time.Duration) *harness {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ln: ln, cfg: cfg, handshake: handshake, results: make(chan accepted, 16)}
	t.Cleanup(h.close)
	h.wg.Add(1)
	go h.accept()
	return h
}

func (h *harness) addr() string { return h.ln.Addr().String() }

func (h *harness) accept() {
	defer h.wg.Done()
	for {
		raw, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns = append(h.conns, raw)
		h.mu.Unlock()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer raw.Close()
			conn := tls.Server(raw, h.cfg)
			conn.SetDeadline(time.Now().Add(h.handshake))
			err := conn.Handshake()
			h.results <- accepted{err: err, state: conn.ConnectionState()}
			if err != nil {
				return
			}
			conn.SetDeadline(time.Now().Add(4 * step))
			io.Copy(conn, conn)
		}()
	}
}

func (h *harness) close() {
	h.ln.Close()
	h.mu.Lock()
	for _, c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// next waits for the outcome of the next server-side handshake.
func (h *harness) next() accepted {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(2 * step):
		h.t.Fatal("no server handshake within the deadline")
		return accepted{}
	}
}

// dial connects to addr and runs the client handshake with cfg (a nil cfg is not
// allowed); the connection is closed at the end of the test.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, step)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	conn := tls.Client(raw, cfg)
	conn.SetDeadline(time.Now().Add(step))
	return conn, conn.Handshake()
}

// roundTrip writes msg and reads it back (the harness echoes).
func roundTrip(conn net.Conn, msg string) error {
	conn.SetDeadline(time.Now().Add(step))
	if _, err := conn.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch: " + string(buf))
	}
	return nil
}

// dialAndTalk is dial plus one roundTrip; it returns the first error, which in TLS 1.3
// comes from the roundTrip when the server refuses the client's certificate (through
// ReadAlert when the write failed).
func dialAndTalk(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	conn, err := dial(t, addr, cfg)
	if err != nil {
		return conn, err
	}
	if err := roundTrip(conn, "ping"); err != nil {
		if alert := ReadAlert(conn, err, step); alert != err {
			t.Logf("write failed (%v); ReadAlert found: %v", err, alert)
			return conn, alert
		}
		return conn, err
	}
	return conn, nil
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: not PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func copyFile(t *testing.T, dst, src string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// Write to a temporary name and rename, like an operator's deploy tool would.
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

func concat(t *testing.T, dst string, srcs ...string) {
	t.Helper()
	var all []byte
	for _, s := range srcs {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	if err := os.WriteFile(dst, all, 0o600); err != nil {
		t.Fatal(err)
	}
}

func cfgWithMax(cfg *tls.Config, max uint16) *tls.Config {
	c := cfg.Clone()
	c.MaxVersion = max
	return c
}

var tlsVersions = []struct {
	name string
	v    uint16
}{{"tls12", tls.VersionTLS12}, {"tls13", tls.VersionTLS13}}
