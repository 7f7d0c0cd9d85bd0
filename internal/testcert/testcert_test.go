package testcert

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, rest := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("%s: want exactly one CERTIFICATE block", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWrite(t *testing.T) {
	start := time.Now()
	f, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{f.CAKey, f.ServerKey, f.ClientKey, f.OtherCAKey, f.OtherClientKey} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
		data, _ := os.ReadFile(p)
		b, _ := pem.Decode(data)
		if b == nil || b.Type != "PRIVATE KEY" {
			t.Fatalf("%s: want a PRIVATE KEY block", p)
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if ek, ok := k.(*ecdsa.PrivateKey); !ok || ek.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", p, k)
		}
	}
	ca, other := readCert(t, f.CACert), readCert(t, f.OtherCACert)
	server, client, otherClient := readCert(t, f.ServerCert), readCert(t, f.ClientCert), readCert(t, f.OtherClientCert)
	for _, c := range []*x509.Certificate{ca, other, server, client, otherClient} {
		if c.NotBefore.After(start.Add(-NotBeforeSkew+time.Minute)) || c.NotAfter.Before(start.Add(Lifetime-time.Minute)) {
			t.Errorf("%s: valid %v..%v", c.Subject.CommonName, c.NotBefore, c.NotAfter)
		}
	}
	if !ca.IsCA || !other.IsCA || server.IsCA || client.IsCA {
		t.Error("IsCA wrong")
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("server cert for %q: %v", name, err)
		}
	}
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"}); err == nil {
		t.Error("server cert valid for example.com")
	}
	clientOpts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := client.Verify(clientOpts); err != nil {
		t.Errorf("client cert: %v", err)
	}
	if _, err := otherClient.Verify(clientOpts); err == nil {
		t.Error("other client cert verified against the test CA")
	}
	if _, err := server.Verify(clientOpts); err == nil {
		t.Error("server cert accepted for client auth")
	}

	for _, pair := range [][2]string{{f.ServerCert, f.ServerKey}, {f.ClientCert, f.ClientKey}, {f.OtherClientCert, f.OtherClientKey}, {f.CACert, f.CAKey}} {
		if _, err := tls.LoadX509KeyPair(pair[0], pair[1]); err != nil {
			t.Errorf("%s: %v", pair[0], err)
		}
	}

	// A second Write makes new keys and serials.
	g, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if readCert(t, g.ServerCert).SerialNumber.Cmp(server.SerialNumber) == 0 {
		t.Error("same serial twice")
	}
}

func TestIssue(t *testing.T) {
	f, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := LoadCA(f.CACert, f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := Template("expired client", time.Now().Add(-48*time.Hour), x509.ExtKeyUsageClientAuth)
	tmpl.NotAfter = time.Now().Add(-24 * time.Hour)
	kp, err := Issue(ca, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	_, err = kp.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if ce, ok := err.(x509.CertificateInvalidError); !ok || ce.Reason != x509.Expired {
		t.Fatalf("expired cert: %v", err)
	}
}

// pyLoad loads every pair into contexts the way Pyro4 does (ssl.create_default_context,
// load_cert_chain, load_verify_locations).
const pyLoad = `
import ssl, sys
ca, other_ca, server, server_key, client, client_key, other_client, other_key = sys.argv[1:9]
s = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
s.load_cert_chain(server, server_key)
s.load_verify_locations(ca)
s.load_verify_locations(other_ca)
s.verify_mode = ssl.CERT_REQUIRED
c = ssl.create_default_context(cafile=ca)
c.load_cert_chain(client, client_key)
c.load_cert_chain(other_client, other_key)
print("ok", ssl.OPENSSL_VERSION, len(s.get_ca_certs()), c.verify_flags)
`

func TestPythonLoads(t *testing.T) {
	pyro4test.PythonModule(t, "ssl")
	f, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pyro4test.DefaultTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, pyro4test.PythonPath, "-c", pyLoad,
		f.CACert, f.OtherCACert, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey, f.OtherClientCert, f.OtherClientKey).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok ") {
		t.Fatalf("python: %v\n%s", err, out)
	}
	t.Logf("python: %s", strings.TrimSpace(string(out)))
}

// pyClient connects to 127.0.0.1:port as server_hostname, sends "ping" and prints what it
// reads back and the TLS version. Client certificate optional. Both Python scripts verify
// with VERIFY_X509_STRICT, which Python 3.13 turns on by default.
const pyClient = `
import socket, ssl, sys
port, name, ca, cert, key = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # a default from Python 3.13 on
if cert:
    ctx.load_cert_chain(cert, key)
with socket.create_connection(("127.0.0.1", int(port)), timeout=20) as s:
    with ctx.wrap_socket(s, server_hostname=name) as tls:
        tls.sendall(b"ping")
        print(tls.recv(100).decode(), tls.version(), flush=True)
`

func TestPythonClientGoServer(t *testing.T) {
	pyro4test.PythonModule(t, "ssl")
	f, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, f.CACert))
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}

	for _, tc := range []struct {
		name    string
		version uint16
		pyName  string
	}{
		{"tls13-localhost", tls.VersionTLS13, "localhost"},
		{"tls12-ip", tls.VersionTLS12, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg.Clone()
			c.MaxVersion = tc.version
			ln, err := tls.Listen("tcp", "127.0.0.1:0", c)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			type result struct {
				cn  string
				err error
			}
			done := make(chan result, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					done <- result{err: err}
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(pyro4test.DefaultTimeout))
				tc := conn.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					done <- result{err: err}
					return
				}
				buf := make([]byte, 4)
				if _, err := io.ReadFull(tc, buf); err != nil {
					done <- result{err: err}
					return
				}
				cn := tc.ConnectionState().PeerCertificates[0].Subject.CommonName
				_, err = fmt.Fprintf(tc, "pong %s %s", buf, cn)
				done <- result{cn: cn, err: err}
			}()
			port := ln.Addr().(*net.TCPAddr).Port
			ctx, cancel := context.WithTimeout(context.Background(), pyro4test.DefaultTimeout)
			defer cancel()
			out, err := exec.CommandContext(ctx, pyro4test.PythonPath, "-c", pyClient, fmt.Sprint(port), tc.pyName, f.CACert, f.ClientCert, f.ClientKey).CombinedOutput()
			ln.Close()
			r := <-done
			if err != nil || r.err != nil {
				t.Fatalf("python: %v %s; go: %v", err, out, r.err)
			}
			want := "pong ping " + ClientName + " " + map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}[tc.version]
			if got := strings.TrimSpace(string(out)); got != want {
				t.Fatalf("python printed %q, want %q", got, want)
			}
		})
	}
}

// pyServer serves one TLS connection on 127.0.0.1 (port printed first) requiring a client
// certificate signed by ca; it replies "pong <data> <client CN> <version>".
const pyServer = `
import socket, ssl, sys
cert, key, ca = sys.argv[1:4]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
ctx.load_verify_locations(ca)
ctx.verify_mode = ssl.CERT_REQUIRED
ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # a default from Python 3.13 on
srv = socket.create_server(("127.0.0.1", 0))
srv.settimeout(20)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
conn.settimeout(20)
try:
    with ctx.wrap_socket(conn, server_side=True) as tls:
        data = tls.recv(100)
        cn = dict(x[0] for x in tls.getpeercert()["subject"])["commonName"]
        tls.sendall(b"pong " + data + b" " + cn.encode() + b" " + tls.version().encode())
        print("served", flush=True)
except Exception as e:
    print("ERROR", type(e).__name__, e, flush=True)
`

func TestGoClientPythonServer(t *testing.T) {
	pyro4test.PythonModule(t, "ssl")
	f, err := Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pyro4test.DefaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, pyro4test.PythonPath, "-c", pyServer, f.ServerCert, f.ServerKey, f.CACert)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		cmd.Wait()
		t.Fatalf("python server printed no port: %s", stderr.String())
	}
	port := strings.TrimSpace(lines.Text())

	cert, err := tls.LoadX509KeyPair(f.ClientCert, f.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, f.CACert))
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: pyro4test.DefaultTimeout}, Config: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, ServerName: "localhost"}}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		cmd.Wait()
		t.Fatalf("dial: %v; python: %s", err, stderr.String())
	}
	conn.SetDeadline(time.Now().Add(pyro4test.DefaultTimeout))
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(conn)
	conn.Close()
	var rest []string
	for lines.Scan() {
		rest = append(rest, lines.Text())
	}
	werr := cmd.Wait()
	if err != nil || werr != nil {
		t.Fatalf("read: %v; python: %v %q %s", err, werr, rest, stderr.String())
	}
	want := "pong ping " + ClientName + " TLSv1.3"
	if string(reply) != want || len(rest) != 1 || rest[0] != "served" {
		t.Fatalf("reply %q (want %q), python printed %q", reply, want, rest)
	}
}
