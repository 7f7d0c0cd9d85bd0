package tlsfiles

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/testcert"
)

func TestServerWithoutClientCA(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: f.CACert})
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			conn, err := dialAndTalk(t, h.addr(), cfgWithMax(c.ConfigFor("127.0.0.1"), v.v))
			if err != nil {
				t.Fatal(err)
			}
			r := h.next()
			if r.err != nil || r.state.Version != v.v || len(r.state.PeerCertificates) != 0 {
				t.Fatalf("server: %v, version %x, %d peer certs", r.err, r.state.Version, len(r.state.PeerCertificates))
			}
			if got := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; got != testcert.ServerName {
				t.Fatalf("server cert CN %q", got)
			}
		})
	}
	// Config with ServerName empty through tls.Dialer: the dialer names the host.
	ctx, cancel := context.WithTimeout(context.Background(), step)
	defer cancel()
	conn, err := (&tls.Dialer{Config: c.Config()}).DialContext(ctx, "tcp", h.addr())
	if err != nil {
		t.Fatalf("tls.Dialer: %v", err)
	}
	defer conn.Close()
	if err := roundTrip(conn, "dialer"); err != nil {
		t.Fatal(err)
	}
	if r := h.next(); r.err != nil || r.state.ServerName != "" { // no SNI for an IP address
		t.Fatalf("server: %v, SNI %q", r.err, r.state.ServerName)
	}

	d := s.Describe()
	t.Log(d)
	for _, want := range []string{`cert "CN=localhost,O=pyro-dispatch tests" [`, "DNS:localhost IP:127.0.0.1 IP:::1", "expires ", "(in 36", "no client certificates", "min TLS 1.2"} {
		if !strings.Contains(d, want) {
			t.Errorf("Describe lacks %q: %s", want, d)
		}
	}
}

func TestServerWithClientCA(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert})
	h := serve(t, s.Config())
	// ClientFiles with a client certificate, against a server requiring one.
	c := newClient(t, ClientFiles{CA: f.CACert, Cert: f.ClientCert, Key: f.ClientKey, ServerName: "localhost"})
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			if _, err := dialAndTalk(t, h.addr(), cfgWithMax(c.Config(), v.v)); err != nil {
				t.Fatal(err)
			}
			r := h.next()
			if r.err != nil || r.state.Version != v.v {
				t.Fatalf("server: %v, version %x", r.err, r.state.Version)
			}
			if len(r.state.VerifiedChains) != 1 || r.state.PeerCertificates[0].Subject.CommonName != testcert.ClientName {
				t.Fatalf("server saw peer %v, chains %d", r.state.PeerCertificates, len(r.state.VerifiedChains))
			}
		})
	}
	t.Log(s.Describe())
	t.Log(c.Describe())
	if d := s.Describe(); !strings.Contains(d, `client certificates required (client_ca: "CN=`+testcert.CAName) {
		t.Errorf("Describe: %s", d)
	}
	if d := c.Describe(); !strings.Contains(d, `client cert "CN=`+testcert.ClientName+`,O=pyro-dispatch tests" serial `) || !strings.Contains(d, "server_name localhost") {
		t.Errorf("client Describe: %s", d)
	}
}

// refused dials h with cfg, expecting both sides to fail; it returns the server's and
// the client's error (the client's from the handshake or, in TLS 1.3, the first read).
func refused(t *testing.T, h *harness, cfg *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	_, clientErr = dialAndTalk(t, h.addr(), cfg)
	r := h.next()
	if r.err == nil || clientErr == nil {
		t.Fatalf("want both sides to fail; server %v, client %v", r.err, clientErr)
	}
	t.Logf("server error %q -> AcceptReason %q", r.err, AcceptReason(r.err))
	t.Logf("client error %q -> DialReason %q", clientErr, DialReason(clientErr))
	return r.err, clientErr
}

func expectReasons(t *testing.T, serverErr, clientErr error, accept, dial string) {
	t.Helper()
	if got := AcceptReason(serverErr); got != accept {
		t.Errorf("AcceptReason(%q) = %q, want %q", serverErr, got, accept)
	}
	if got := DialReason(clientErr); got != dial {
		t.Errorf("DialReason(%q) = %q, want %q", clientErr, got, dial)
	}
}

func TestClientWithoutCertRefused(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: f.CACert})
	for _, tc := range []struct {
		v                uint16
		name, clientText string
		dial             string
	}{
		{tls.VersionTLS12, "tls12", "remote error: tls: handshake failure",
			"backend refused the handshake (handshake failure alert: client certificate required, or no cipher suite in common)"},
		{tls.VersionTLS13, "tls13", "remote error: tls: certificate required",
			"backend requires a client certificate (certificate required alert)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serr, cerr := refused(t, h, cfgWithMax(c.ConfigFor("127.0.0.1"), tc.v))
			if serr.Error() != "tls: client didn't provide a certificate" || cerr.Error() != tc.clientText {
				t.Errorf("errors %q / %q", serr, cerr)
			}
			expectReasons(t, serr, cerr, "client sent no certificate", tc.dial)
		})
	}
}

func TestClientFromOtherCARefused(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: f.CACert, Cert: f.OtherClientCert, Key: f.OtherClientKey})
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			serr, cerr := refused(t, h, cfgWithMax(c.ConfigFor("localhost"), v.v))
			var cv *tls.CertificateVerificationError
			if !errors.As(serr, &cv) || cerr.Error() != "remote error: tls: unknown certificate authority" {
				t.Errorf("errors %q / %q", serr, cerr)
			}
			expectReasons(t, serr, cerr, "client certificate not signed by client_ca",
				"backend rejected our client certificate (unknown certificate authority alert)")
		})
	}
}

func TestServerCertAsClientCertRefused(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: f.CACert, Cert: f.ServerCert, Key: f.ServerKey})
	serr, cerr := refused(t, h, c.ConfigFor("localhost"))
	expectReasons(t, serr, cerr, "client certificate not for client authentication (extended key usage)",
		"backend rejected our client certificate (bad certificate alert)")
}

func TestExpiredClientCertRefused(t *testing.T) {
	f := writeCerts(t)
	ca, err := testcert.LoadCA(f.CACert, f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := testcert.Template("expired client", time.Now().Add(-48*time.Hour), x509.ExtKeyUsageClientAuth)
	tmpl.NotAfter = time.Now().Add(-24 * time.Hour)
	kp, err := testcert.Issue(ca, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(f.Dir, "expired.pem"), filepath.Join(f.Dir, "expired.key")
	if err := kp.WriteFiles(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: f.CACert, Cert: certPath, Key: keyPath})
	if d := c.Describe(); !strings.Contains(d, "(EXPIRED)") {
		t.Errorf("Describe: %s", d)
	}
	serr, cerr := refused(t, h, c.ConfigFor("localhost"))
	if a := AcceptReason(serr); !strings.HasPrefix(a, "client certificate expired or not yet valid (certificate has expired or is not yet valid: current time ") {
		t.Errorf("AcceptReason %q", a)
	}
	if d := DialReason(cerr); d != "backend rejected our client certificate (expired certificate alert)" {
		t.Errorf("DialReason %q", d)
	}
}

// pyroHeader is the start of a Pyro4 MSG_CONNECT: magic, protocol version 48, type 1.
var pyroHeader = []byte("PYRO\x00\x30\x00\x01\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00")

func TestPlainClient(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert})
	h := serve(t, s.Config())
	for _, tc := range []struct {
		name   string
		send   []byte
		reason string
	}{
		{"pyro4", pyroHeader, "not TLS: plain Pyro4 client (SSL not enabled?)"},
		{"http", []byte("GET / HTTP/1.0\r\n\r\n"), `not TLS (client sent "GET /")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", h.addr(), step)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(step))
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			r := h.next()
			var rh tls.RecordHeaderError
			if !errors.As(r.err, &rh) || r.err.Error() != "tls: first record does not look like a TLS handshake" || rh.Conn == nil {
				t.Fatalf("server error %#v", r.err)
			}
			t.Logf("server error %q, header %q -> %q", r.err, rh.RecordHeader[:], AcceptReason(r.err))
			if got := AcceptReason(r.err); got != tc.reason {
				t.Errorf("AcceptReason %q, want %q", got, tc.reason)
			}
			// The server wrote nothing (no alert) and closed.
			n, err := io.Copy(io.Discard, conn)
			if n != 0 || err != nil {
				t.Errorf("client read %d bytes, %v", n, err)
			}
		})
	}
}

func TestClientDoesNotTrustServer(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey})
	h := serve(t, s.Config())
	t.Run("unknown-ca", func(t *testing.T) {
		c := newClient(t, ClientFiles{CA: f.OtherCACert})
		serr, cerr := refused(t, h, c.ConfigFor("localhost"))
		if serr.Error() != "remote error: tls: bad certificate" || !strings.HasPrefix(cerr.Error(), "tls: failed to verify certificate: x509: certificate signed by unknown authority") {
			t.Errorf("errors %q / %q", serr, cerr)
		}
		expectReasons(t, serr, cerr, "client does not trust our certificate (bad certificate alert)", "backend certificate not signed by ca")
	})
	t.Run("system-roots", func(t *testing.T) {
		c := newClient(t, ClientFiles{})
		if d := c.Describe(); d != "ca: system roots; no client cert; server_name from the dialed host" {
			t.Errorf("Describe %q", d)
		}
		serr, cerr := refused(t, h, c.ConfigFor("localhost"))
		expectReasons(t, serr, cerr, "client does not trust our certificate (bad certificate alert)", "backend certificate not signed by ca")
	})
	t.Run("wrong-name", func(t *testing.T) {
		c := newClient(t, ClientFiles{CA: f.CACert, ServerName: "pyro.example.com"})
		serr, cerr := refused(t, h, c.Config())
		expectReasons(t, serr, cerr, "client does not trust our certificate (bad certificate alert)",
			"backend certificate does not match server_name: certificate is valid for localhost, not pyro.example.com")
	})
}

func TestMinVersion13(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, MinVersion: "1.3"})
	if !strings.HasSuffix(s.Describe(), "min TLS 1.3") {
		t.Errorf("Describe %q", s.Describe())
	}
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: f.CACert})
	serr, cerr := refused(t, h, cfgWithMax(c.ConfigFor("localhost"), tls.VersionTLS12))
	expectReasons(t, serr, cerr, "client's TLS versions are below min_version (client offered TLS 1.2)",
		"no TLS version in common with backend (protocol version not supported alert)")
	if _, err := dialAndTalk(t, h.addr(), c.ConfigFor("localhost")); err != nil {
		t.Fatal(err)
	}
	if r := h.next(); r.err != nil || r.state.Version != tls.VersionTLS13 {
		t.Fatalf("TLS 1.3 client: %v %x", r.err, r.state.Version)
	}

	for _, bad := range []string{"1.1", "1.0", "tls1.3", "1.4"} {
		_, err := NewServer(ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, MinVersion: bad})
		if want := `tls min_version "` + bad + `": want "1.2" or "1.3"`; err == nil || err.Error() != want {
			t.Errorf("MinVersion %q: %v, want %s", bad, err, want)
		}
	}
}

func TestHandshakeTimeoutAndHangup(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey})
	h := serveWithin(t, s.Config(), 100*time.Millisecond)

	conn, err := net.DialTimeout("tcp", h.addr(), step)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := h.next() // the client sends nothing
	t.Logf("silent client: %q -> %q", r.err, AcceptReason(r.err))
	if got := AcceptReason(r.err); got != "handshake timed out" {
		t.Errorf("silent client: %q", got)
	}

	conn2, err := net.DialTimeout("tcp", h.addr(), step)
	if err != nil {
		t.Fatal(err)
	}
	conn2.Close()
	r = h.next()
	t.Logf("hangup: %q -> %q", r.err, AcceptReason(r.err))
	if got := AcceptReason(r.err); got != "client closed the connection during the handshake" {
		t.Errorf("hangup: %q", got)
	}
}

// Reload swaps the certificate for new handshakes; a connection made before keeps
// working.
func TestReload(t *testing.T) {
	f := writeCerts(t)
	g := writeCerts(t) // a second, unrelated set
	dir := t.TempDir()
	cert, key, clientCA := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "client_ca.pem")
	copyFile(t, cert, f.ServerCert)
	copyFile(t, key, f.ServerKey)
	copyFile(t, clientCA, f.CACert)
	bothCAs := filepath.Join(dir, "both.pem")
	concat(t, bothCAs, f.CACert, g.CACert)

	s := newServer(t, ServerFiles{Cert: cert, Key: key, ClientCA: clientCA})
	cfg := s.Config()
	h := serve(t, cfg)
	c := newClient(t, ClientFiles{CA: bothCAs, Cert: f.ClientCert, Key: f.ClientKey})
	oldSerial, newSerial := readCert(t, f.ServerCert).SerialNumber, readCert(t, g.ServerCert).SerialNumber

	old, err := dialAndTalk(t, h.addr(), c.ConfigFor("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if h.next().err != nil || old.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(oldSerial) != 0 {
		t.Fatal("first connection")
	}
	before := s.Describe()

	copyFile(t, cert, g.ServerCert)
	copyFile(t, key, g.ServerKey)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if s.Config() != cfg {
		t.Fatal("Config changed pointer")
	}
	if s.Certificate().SerialNumber.Cmp(newSerial) != 0 || s.Describe() == before {
		t.Fatalf("after reload: %s", s.Describe())
	}
	// The old connection still works, before and after a new handshake.
	if err := roundTrip(old, "still there"); err != nil {
		t.Fatalf("old connection after reload: %v", err)
	}
	fresh, err := dialAndTalk(t, h.addr(), c.ConfigFor("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if r := h.next(); r.err != nil {
		t.Fatal(r.err)
	}
	if got := fresh.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(newSerial) != 0 {
		t.Fatalf("new handshake saw serial %x, want %x (old %x)", got, newSerial, oldSerial)
	}
	if err := roundTrip(old, "and again"); err != nil {
		t.Fatalf("old connection: %v", err)
	}
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(oldSerial) != 0 {
		t.Fatalf("old connection's certificate changed")
	}

	// A new client_ca applies to new handshakes too.
	copyFile(t, clientCA, g.CACert)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	serr, cerr := refused(t, h, c.ConfigFor("127.0.0.1"))
	expectReasons(t, serr, cerr, "client certificate not signed by client_ca",
		"backend rejected our client certificate (unknown certificate authority alert)")
	if err := roundTrip(old, "still"); err != nil {
		t.Fatalf("old connection after client_ca reload: %v", err)
	}
}

// A session resumed after a client_ca reload is checked against the new client_ca.
func TestReloadClientCAResumption(t *testing.T) {
	f := writeCerts(t)
	dir := t.TempDir()
	clientCA := filepath.Join(dir, "client_ca.pem")
	copyFile(t, clientCA, f.CACert)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: clientCA})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: f.CACert, Cert: f.ClientCert, Key: f.ClientKey})
	for _, v := range tlsVersions {
		t.Run(v.name, func(t *testing.T) {
			copyFile(t, clientCA, f.CACert)
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
			cfg := cfgWithMax(c.ConfigFor("localhost"), v.v)
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			for i := range 2 {
				conn, err := dialAndTalk(t, h.addr(), cfg) // the read also takes in a TLS 1.3 ticket
				if err != nil {
					t.Fatal(err)
				}
				if r := h.next(); r.err != nil || conn.ConnectionState().DidResume != (i == 1) {
					t.Fatalf("connection %d: %v, resumed %v", i, r.err, conn.ConnectionState().DidResume)
				}
			}
			copyFile(t, clientCA, f.OtherCACert)
			if err := s.Reload(); err != nil {
				t.Fatal(err)
			}
			serr, cerr := refused(t, h, cfg)
			expectReasons(t, serr, cerr, "client certificate not signed by client_ca",
				"backend rejected our client certificate (unknown certificate authority alert)")
		})
	}
}

func TestReloadBrokenFileKeepsOld(t *testing.T) {
	f := writeCerts(t)
	g := writeCerts(t)
	dir := t.TempDir()
	cert, key, clientCA := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "client_ca.pem")
	reset := func() {
		copyFile(t, cert, f.ServerCert)
		copyFile(t, key, f.ServerKey)
		copyFile(t, clientCA, f.CACert)
	}
	reset()
	s := newServer(t, ServerFiles{Cert: cert, Key: key, ClientCA: clientCA})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: f.CACert, Cert: f.ClientCert, Key: f.ClientKey})
	serial := readCert(t, f.ServerCert).SerialNumber
	desc := s.Describe()

	for _, tc := range []struct {
		name   string
		break_ func()
		want   string
	}{
		{"key-garbage", func() { os.WriteFile(key, []byte("garbage\n"), 0o600) },
			"tls key file " + key + ": not PEM (no -----BEGIN block)"},
		{"key-mismatch", func() { copyFile(t, key, g.ServerKey) },
			"tls key file " + key + ": key does not match the certificate in " + cert},
		{"cert-half-written", func() {
			data, _ := os.ReadFile(g.ServerCert)
			os.WriteFile(cert, data[:len(data)/2], 0o600)
		}, "tls cert file " + cert + ": not PEM (no -----BEGIN block)"},
		{"cert-missing", func() { os.Remove(cert) },
			"tls cert file " + cert + ": does not exist: file does not exist"},
		{"client-ca-is-a-key", func() { copyFile(t, clientCA, f.CAKey) },
			"tls client_ca file " + clientCA + ": no CERTIFICATE block (found PRIVATE KEY)"},
		{"client-ca-empty", func() { os.WriteFile(clientCA, nil, 0o600) },
			"tls client_ca file " + clientCA + ": empty file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer reset()
			tc.break_()
			err := s.Reload()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Reload: %v\nwant %s", err, tc.want)
			}
			var fe *FileError
			if !errors.As(err, &fe) || !strings.Contains(tc.want, fe.Path) {
				t.Fatalf("not a FileError naming the file: %#v", err)
			}
			if s.Describe() != desc {
				t.Fatal("Describe changed after a failed reload")
			}
			conn, err := dialAndTalk(t, h.addr(), c.ConfigFor("localhost"))
			if err != nil {
				t.Fatal(err)
			}
			if r := h.next(); r.err != nil || conn.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(serial) != 0 {
				t.Fatalf("after a failed reload: %v, serial changed", r.err)
			}
		})
	}
	if err := s.Reload(); err != nil {
		t.Fatalf("reload of the repaired files: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	f := writeCerts(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	der := filepath.Join(dir, "cert.der")
	os.WriteFile(der, readCert(t, f.ServerCert).Raw, 0o600)
	encrypted := filepath.Join(dir, "enc.key")
	os.WriteFile(encrypted, []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"), 0o600)
	combined := filepath.Join(dir, "combined.pem")
	concat(t, combined, f.ServerCert, f.ServerKey)

	for _, tc := range []struct {
		name  string
		files ServerFiles
		want  string
	}{
		{"cert-missing", ServerFiles{Cert: missing, Key: f.ServerKey}, "tls cert file " + missing + ": does not exist: file does not exist"},
		{"cert-none", ServerFiles{Key: f.ServerKey}, `tls cert file "": no file name given`},
		{"cert-der", ServerFiles{Cert: der, Key: f.ServerKey}, "tls cert file " + der + ": not PEM (no -----BEGIN block)"},
		{"cert-is-key", ServerFiles{Cert: f.ServerKey, Key: f.ServerKey}, "tls cert file " + f.ServerKey + ": no CERTIFICATE block (found PRIVATE KEY)"},
		{"cert-dir", ServerFiles{Cert: dir, Key: f.ServerKey}, "tls cert file " + dir + ": is a directory"},
		{"key-is-cert", ServerFiles{Cert: f.ServerCert, Key: f.ServerCert}, "tls key file " + f.ServerCert + ": no PRIVATE KEY block (found CERTIFICATE)"},
		{"key-mismatch", ServerFiles{Cert: f.ServerCert, Key: f.ClientKey}, "tls key file " + f.ClientKey + ": key does not match the certificate in " + f.ServerCert},
		{"key-encrypted", ServerFiles{Cert: f.ServerCert, Key: encrypted}, "tls key file " + encrypted + ": encrypted private keys are not supported"},
		{"key-not-in-cert", ServerFiles{Cert: f.ServerCert}, "tls cert file " + f.ServerCert + ": no PRIVATE KEY block (found CERTIFICATE)"},
		{"client-ca-missing", ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: missing}, "tls client_ca file " + missing + ": does not exist: file does not exist"},
		{"client-ca-der", ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: der}, "tls client_ca file " + der + ": not PEM (no -----BEGIN block)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(tc.files)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
	if _, err := NewServer(ServerFiles{Cert: missing, Key: f.ServerKey}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(ErrNotExist): %v", err)
	}
	if _, err := NewServer(ServerFiles{Cert: f.ServerCert, Key: f.ClientKey}); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("errors.Is(ErrKeyMismatch): %v", err)
	}
	if _, err := NewServer(ServerFiles{Cert: combined}); err != nil {
		t.Errorf("combined cert+key file: %v", err)
	}

	for _, tc := range []struct {
		name  string
		files ClientFiles
		want  string
	}{
		{"ca-missing", ClientFiles{CA: missing}, "tls ca file " + missing + ": does not exist: file does not exist"},
		{"ca-is-key", ClientFiles{CA: f.CAKey}, "tls ca file " + f.CAKey + ": no CERTIFICATE block (found PRIVATE KEY)"},
		{"key-without-cert", ClientFiles{CA: f.CACert, Key: f.ClientKey}, "tls key file " + f.ClientKey + ": given without a cert"},
		{"cert-mismatch", ClientFiles{CA: f.CACert, Cert: f.ClientCert, Key: f.OtherClientKey}, "tls key file " + f.OtherClientKey + ": key does not match the certificate in " + f.ClientCert},
	} {
		t.Run("client-"+tc.name, func(t *testing.T) {
			_, err := NewClient(tc.files)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

// A client certificate replaced on disk is presented after Client.Reload, also through a
// configuration obtained before it; a new CA file applies to configurations obtained after.
func TestClientReload(t *testing.T) {
	f := writeCerts(t)
	ca, err := testcert.LoadCA(f.CACert, f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	second, err := testcert.Issue(ca, testcert.Template("second client", time.Now(), x509.ExtKeyUsageClientAuth))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key, caFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key"), filepath.Join(dir, "ca.pem")
	copyFile(t, cert, f.ClientCert)
	copyFile(t, key, f.ClientKey)
	copyFile(t, caFile, f.CACert)

	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: caFile, Cert: cert, Key: key})
	kept := c.ConfigFor("localhost")
	cn := func(cfg *tls.Config) string {
		t.Helper()
		if _, err := dialAndTalk(t, h.addr(), cfg); err != nil {
			t.Fatal(err)
		}
		r := h.next()
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.state.PeerCertificates[0].Subject.CommonName
	}
	if got := cn(kept); got != testcert.ClientName {
		t.Fatalf("CN %q", got)
	}
	if err := second.WriteFiles(cert, key); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := cn(kept); got != "second client" {
		t.Fatalf("kept config presented %q after reload", got)
	}
	if got := cn(c.ConfigFor("localhost")); got != "second client" {
		t.Fatalf("new config presented %q", got)
	}
	if c.Certificate().Subject.CommonName != "second client" {
		t.Fatal("Certificate")
	}

	// A broken CA file: the old load stays.
	os.WriteFile(caFile, []byte("nope"), 0o600)
	if err := c.Reload(); err == nil || err.Error() != "tls ca file "+caFile+": not PEM (no -----BEGIN block)" {
		t.Fatalf("Reload: %v", err)
	}
	if got := cn(c.ConfigFor("localhost")); got != "second client" {
		t.Fatalf("after a failed reload: %q", got)
	}
	// A CA file that no longer trusts the server applies to configs obtained afterwards.
	copyFile(t, caFile, f.OtherCACert)
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	serr, cerr := refused(t, h, c.ConfigFor("localhost"))
	expectReasons(t, serr, cerr, "client does not trust our certificate (bad certificate alert)", "backend certificate not signed by ca")
}

// Pyro4 setups often trust a daemon's self-signed certificate directly (SSL_CACERTS
// naming the certificate itself, not a CA).
func TestSelfSignedBackend(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := testcert.Template("localhost", time.Now(), x509.ExtKeyUsageServerAuth)
	tmpl.SerialNumber = big.NewInt(4242)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	cert, keyPath := filepath.Join(dir, "self.pem"), filepath.Join(dir, "self.key")
	if err := (&testcert.KeyPair{Cert: leaf, Key: key}).WriteFiles(cert, keyPath); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, ServerFiles{Cert: cert, Key: keyPath})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: cert})
	for _, host := range []string{"localhost", "127.0.0.1"} {
		conn, err := dialAndTalk(t, h.addr(), c.ConfigFor(host))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		if r := h.next(); r.err != nil || conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64() != 4242 {
			t.Fatalf("%s: %v", host, r.err)
		}
	}
}

func TestDialPlainBackend(t *testing.T) {
	f := writeCerts(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3; i++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.SetDeadline(time.Now().Add(step))
			buf := make([]byte, 24)
			io.ReadFull(conn, buf)
			switch i {
			case 0: // a plain daemon answering garbage with a Pyro4 message
				conn.Write(bytes.Repeat(pyroHeader, 2))
			case 1: // a daemon that hangs up cleanly
				conn.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, conn)
			}
			conn.Close() // case 2: with the rest of the ClientHello unread: a reset
		}
	}()
	c := newClient(t, ClientFiles{CA: f.CACert})
	for _, want := range []string{
		"not TLS: plain Pyro4 daemon (SSL not enabled?)",
		"backend closed the connection during the handshake",
		"backend reset the connection during the handshake",
	} {
		conn, err := dial(t, ln.Addr().String(), c.ConfigFor("127.0.0.1"))
		conn.Close()
		t.Logf("%q -> %q", err, DialReason(err))
		if got := DialReason(err); got != want {
			t.Errorf("DialReason %q, want %q", got, want)
		}
	}
	<-done
}

func TestNoAllocs(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert})
	c := newClient(t, ClientFiles{CA: f.CACert, Cert: f.ClientCert, Key: f.ClientKey})
	c.ConfigFor("127.0.0.1")
	for name, fn := range map[string]func(){
		"Server.Config":             func() { s.Config() },
		"Server.GetConfigForClient": func() { s.Config().GetConfigForClient(nil) },
		"Client.Config":             func() { c.Config() },
		"Client.ConfigFor":          func() { c.ConfigFor("127.0.0.1") },
		"GetClientCertificate":      func() { c.Config().GetClientCertificate(nil) },
		"AcceptReason":              func() { AcceptReason(os.ErrDeadlineExceeded) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
	if c.ConfigFor("127.0.0.1") == c.ConfigFor("::1") || c.ConfigFor("::1").ServerName != "::1" {
		t.Error("ConfigFor")
	}
	named := newClient(t, ClientFiles{CA: f.CACert, ServerName: "localhost"})
	if named.ConfigFor("127.0.0.1") != named.Config() {
		t.Error("ConfigFor with ServerName set should be Config")
	}
}

func TestReasonPassThrough(t *testing.T) {
	if AcceptReason(nil) != "" {
		t.Error("nil")
	}
	if got := AcceptReason(errors.New("something odd")); got != "something odd" {
		t.Errorf("%q", got)
	}
}

// A TLS 1.3 server that refuses the client certificate: the client's handshake succeeds,
// its writes start failing once the server has gone, and ReadAlert finds the alert.
func TestReadAlert(t *testing.T) {
	f := writeCerts(t)
	s := newServer(t, ServerFiles{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert})
	h := serve(t, s.Config())
	c := newClient(t, ClientFiles{CA: f.CACert})
	conn, err := dial(t, h.addr(), c.ConfigFor("localhost"))
	if err != nil {
		t.Fatalf("TLS 1.3 client handshake: %v", err)
	}
	if r := h.next(); r.err == nil {
		t.Fatal("server accepted a client without certificate")
	}
	deadline := time.Now().Add(step)
	for err == nil && time.Now().Before(deadline) {
		_, err = conn.Write([]byte("PYRO"))
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("write: %v -> %q", err, DialReason(err))
	if DialReason(err) != "backend reset the connection during the handshake" && DialReason(err) != "backend closed the connection during the handshake (broken pipe)" {
		t.Fatalf("write error %v", err)
	}
	alert := ReadAlert(conn, err, step)
	if alert.Error() != "remote error: tls: certificate required" {
		t.Fatalf("ReadAlert: %v", alert)
	}
	if got := DialReason(alert); got != "backend requires a client certificate (certificate required alert)" {
		t.Errorf("DialReason %q", got)
	}
	if other := io.ErrUnexpectedEOF; ReadAlert(conn, other, step) != other || ReadAlert(nil, err, step) != err {
		t.Error("ReadAlert changed an error it should pass through")
	}
}
