// Package tlsfiles builds TLS configurations from certificate, key and CA files (the tls
// sections of listeners and backend groups), re-reads the files on demand (SIGHUP) without
// touching established connections, and names why a handshake failed, for log lines.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ServerFiles names the files of a listener's tls section.
type ServerFiles struct {
	Cert       string // PEM certificate chain, leaf first (tls.cert)
	Key        string // PEM private key of the leaf (tls.key); empty: the key is in Cert
	ClientCA   string // PEM CA certificates (tls.client_ca); set: clients must present a certificate one of them signed
	MinVersion string // lowest TLS version accepted (tls.min_version): "1.2" (also when empty) or "1.3"
}

// ParseMinVersion turns a min_version setting into a tls.VersionTLS* constant: "" and
// "1.2" give TLS 1.2, "1.3" TLS 1.3; anything else is an error naming the value.
func ParseMinVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("tls min_version %q: want \"1.2\" or \"1.3\"", s)
}

// Server is the TLS side of a listener. It is safe for concurrent use.
type Server struct {
	files ServerFiles
	min   uint16
	cfg   *tls.Config // built once; its GetConfigForClient hands out cur's config

	mu  sync.Mutex // serializes Reload
	cur atomic.Pointer[serverLoad]
}

// serverLoad is one successful reading of the files.
type serverLoad struct {
	cfg  *tls.Config // what handshakes started after this load use
	leaf *x509.Certificate
	cas  []*x509.Certificate // from ClientCA
}

// NewServer reads the files. Errors name the file and what is wrong with it (*FileError),
// or the bad MinVersion.
func NewServer(f ServerFiles) (*Server, error) {
	min, err := ParseMinVersion(f.MinVersion)
	if err != nil {
		return nil, err
	}
	s := &Server{files: f, min: min}
	s.cfg = &tls.Config{MinVersion: min, GetConfigForClient: s.configForClient}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the configuration for tls.NewListener / tls.Server. It is the same
// pointer on every call (no allocation) and must not be modified: each handshake picks
// up the certificate and client CAs of the latest successful load through
// GetConfigForClient, so a Reload affects new handshakes only, never established
// connections. With ClientCA set, clients must present a certificate that verifies
// against it for client authentication (tls.RequireAndVerifyClientCert); a session a
// client resumes is checked against the current ClientCA too (crypto/tls does that).
func (s *Server) Config() *tls.Config { return s.cfg }

func (s *Server) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return s.cur.Load().cfg, nil
}

// Reload re-reads the files. On success new handshakes use them; on error the files of
// the last successful load stay in use and the error (naming the file) is returned.
// Concurrent calls are serialized.
func (s *Server) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pair, err := loadKeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return err
	}
	l := &serverLoad{leaf: pair.Leaf}
	l.cfg = &tls.Config{
		MinVersion:   s.min,
		Certificates: []tls.Certificate{*pair},
	}
	if s.files.ClientCA != "" {
		pool, cas, err := loadPool("client_ca", s.files.ClientCA)
		if err != nil {
			return err
		}
		l.cas = cas
		l.cfg.ClientCAs = pool
		l.cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	s.cur.Store(l)
	return nil
}

// Certificate returns the leaf certificate of the latest successful load (read-only), for
// example to export its expiry as a metric.
func (s *Server) Certificate() *x509.Certificate { return s.cur.Load().leaf }

// Describe summarizes the latest successful load for a log line, e.g.
//
//	cert "CN=localhost" [DNS:localhost IP:127.0.0.1 IP:::1] serial 7ea0c7ad… issuer "CN=test CA", expires 2027-12-03T11:09:31Z (in 364d); client certificates required (client_ca: "CN=test CA"); min TLS 1.2
func (s *Server) Describe() string {
	l := s.cur.Load()
	var b strings.Builder
	b.WriteString("cert ")
	describeCert(&b, l.leaf, time.Now())
	if l.cas != nil {
		b.WriteString("; client certificates required (client_ca: ")
		describeNames(&b, l.cas)
		b.WriteString(")")
	} else {
		b.WriteString("; no client certificates")
	}
	if s.min == tls.VersionTLS13 {
		b.WriteString("; min TLS 1.3")
	} else {
		b.WriteString("; min TLS 1.2")
	}
	return b.String()
}

// describeCert writes subject, SANs, serial, issuer and expiry of c.
func describeCert(b *strings.Builder, c *x509.Certificate, now time.Time) {
	fmt.Fprintf(b, "%q", c.Subject.String())
	sep := " ["
	for _, n := range c.DNSNames {
		fmt.Fprintf(b, "%sDNS:%s", sep, n)
		sep = " "
	}
	for _, ip := range c.IPAddresses {
		fmt.Fprintf(b, "%sIP:%s", sep, ip)
		sep = " "
	}
	for _, u := range c.URIs {
		fmt.Fprintf(b, "%sURI:%s", sep, u)
		sep = " "
	}
	for _, e := range c.EmailAddresses {
		fmt.Fprintf(b, "%semail:%s", sep, e)
		sep = " "
	}
	if sep == " " {
		b.WriteString("]")
	}
	fmt.Fprintf(b, " serial %x issuer %q, expires %s", c.SerialNumber, c.Issuer.String(), c.NotAfter.UTC().Format(time.RFC3339))
	switch left := c.NotAfter.Sub(now); {
	case left <= 0:
		b.WriteString(" (EXPIRED)")
	case now.Before(c.NotBefore):
		fmt.Fprintf(b, " (NOT YET VALID until %s)", c.NotBefore.UTC().Format(time.RFC3339))
	case left < 48*time.Hour:
		fmt.Fprintf(b, " (in %s)", left.Round(time.Minute))
	default:
		fmt.Fprintf(b, " (in %dd)", int(left/(24*time.Hour)))
	}
}

// describeNames writes the quoted subjects of certs, comma-separated.
func describeNames(b *strings.Builder, certs []*x509.Certificate) {
	for i, c := range certs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%q", c.Subject.String())
	}
}
