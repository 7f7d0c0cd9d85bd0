package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ClientFiles names the files of a backend group's tls section.
type ClientFiles struct {
	CA         string // PEM CA certificates the backends' certificates must chain to (tls.ca); empty: the system roots
	Cert       string // PEM client certificate chain, leaf first (tls.cert), presented when a backend asks; empty: none
	Key        string // its private key (tls.key); empty: the key is in Cert
	ServerName string // name the backends' certificates must be valid for (tls.server_name); empty: the host dialed
}

// maxHostConfigs bounds the per-host configurations ConfigFor keeps per load.
const maxHostConfigs = 256

// Client is the TLS side of a backend group's dials. It is safe for concurrent use.
type Client struct {
	files ClientFiles

	mu  sync.Mutex // serializes Reload
	cur atomic.Pointer[clientLoad]
}

// clientLoad is one successful reading of the files.
type clientLoad struct {
	cfg    *tls.Config
	cert   *tls.Certificate // nil without Cert
	cas    []*x509.Certificate
	hosts  sync.Map // host -> *tls.Config with ServerName host, when files.ServerName is empty
	nhosts atomic.Int32
}

// NewClient reads the files. Errors name the file and what is wrong with it (*FileError).
func NewClient(f ClientFiles) (*Client, error) {
	if f.Cert == "" && f.Key != "" {
		return nil, &FileError{Role: "key", Path: f.Key, Err: errors.New("given without a cert")}
	}
	c := &Client{files: f}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload re-reads the files. On success later Config and ConfigFor calls, and the client
// certificate of every handshake from now on, use them; on error the last successful
// load stays in use and the error (naming the file) is returned. Established
// connections are not affected. Concurrent calls are serialized.
func (c *Client) Reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := &clientLoad{}
	cfg := &tls.Config{ServerName: c.files.ServerName}
	if c.files.CA != "" {
		pool, cas, err := loadPool("ca", c.files.CA)
		if err != nil {
			return err
		}
		cfg.RootCAs, l.cas = pool, cas
	}
	if c.files.Cert != "" {
		pair, err := loadKeyPair(c.files.Cert, c.files.Key)
		if err != nil {
			return err
		}
		l.cert = pair
		cfg.GetClientCertificate = c.clientCertificate
	}
	l.cfg = cfg
	c.cur.Store(l)
	return nil
}

// clientCertificate presents the certificate of the latest load, also through
// configurations handed out before a Reload.
func (c *Client) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.cur.Load().cert, nil
}

// Config returns the configuration of the latest successful load, for tls.Client or
// tls.Dialer; it must not be modified. Call it for each dial rather than keeping it: it
// does not allocate, and a configuration kept across a Reload still verifies the
// backend against the old CA file (the client certificate it presents is always the
// latest).
//
// With ServerName empty, the configuration has no ServerName: tls.Dialer and
// tls.DialWithDialer fill in the host of the address they dial (copying the
// configuration on each dial), while tls.Client needs a ServerName; use ConfigFor then.
func (c *Client) Config() *tls.Config { return c.cur.Load().cfg }

// ConfigFor is Config for a connection to host (a host name or IP address without port
// or brackets, as net.SplitHostPort returns it), for use with tls.Client on a
// connection the caller dialed: with ServerName set it is Config(); otherwise a copy of
// Config() with ServerName host, which the backend's certificate must be valid for
// (a DNS or IP SAN). The copies are kept per load, so repeated calls for the same few
// backends do not allocate.
func (c *Client) ConfigFor(host string) *tls.Config {
	l := c.cur.Load()
	if l.cfg.ServerName != "" {
		return l.cfg
	}
	if v, ok := l.hosts.Load(host); ok {
		return v.(*tls.Config)
	}
	cfg := l.cfg.Clone()
	cfg.ServerName = host
	if l.nhosts.Add(1) <= maxHostConfigs {
		if v, loaded := l.hosts.LoadOrStore(host, cfg); loaded {
			return v.(*tls.Config)
		}
	}
	return cfg
}

// Certificate returns the client certificate of the latest successful load (read-only),
// or nil when none is configured.
func (c *Client) Certificate() *x509.Certificate {
	if cert := c.cur.Load().cert; cert != nil {
		return cert.Leaf
	}
	return nil
}

// Describe summarizes the latest successful load for a log line, e.g.
//
//	ca "CN=test CA"; client cert "CN=client" serial 6199… issuer "CN=test CA", expires 2027-12-03T11:09:31Z (in 364d); server_name from the dialed host
func (c *Client) Describe() string {
	l := c.cur.Load()
	var b strings.Builder
	if l.cas != nil {
		b.WriteString("ca ")
		describeNames(&b, l.cas)
	} else {
		b.WriteString("ca: system roots")
	}
	if l.cert != nil {
		b.WriteString("; client cert ")
		describeCert(&b, l.cert.Leaf, time.Now())
	} else {
		b.WriteString("; no client cert")
	}
	if c.files.ServerName != "" {
		b.WriteString("; server_name ")
		b.WriteString(c.files.ServerName)
	} else {
		b.WriteString("; server_name from the dialed host")
	}
	return b.String()
}
