package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/tlsfiles"
)

// TLSOptions make the doctor speak TLS to daemons and name servers (Pyro4's SSL=True)
// from the start, instead of trying TLS only when plain Pyro4 gets no answer.
type TLSOptions struct {
	// Files are the CA the certificates must chain to (empty: the system roots), the
	// client certificate for daemons with SSL_REQUIRECLIENTCERT, and the name to verify
	// (empty: the host dialed).
	Files tlsfiles.ClientFiles
	// Insecure accepts any certificate (the check then warns).
	Insecure bool
}

// ExpiryWarning is how close to its expiry a verified certificate makes the tls check warn.
const ExpiryWarning = 30 * 24 * time.Hour

// TLSData is what the tls check found about the peer's certificate.
type TLSData struct {
	Required    bool      `json:"required"`
	Verified    bool      `json:"verified"`
	Version     string    `json:"version,omitempty"`
	Subject     string    `json:"subject,omitempty"`
	Issuer      string    `json:"issuer,omitempty"`
	DNSNames    []string  `json:"dns_names,omitempty"`
	IPAddresses []string  `json:"ip_addresses,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	// DaysLeft is the whole days from the check to NotAfter (negative: expired).
	DaysLeft int `json:"days_left"`
}

// Names returns the certificate's names as the report shows them: "DNS a, b; IP c".
func (d *TLSData) Names() string {
	var parts []string
	if len(d.DNSNames) > 0 {
		parts = append(parts, "DNS "+strings.Join(d.DNSNames, ", "))
	}
	if len(d.IPAddresses) > 0 {
		parts = append(parts, "IP "+strings.Join(d.IPAddresses, ", "))
	}
	if len(parts) == 0 {
		return "no names"
	}
	return strings.Join(parts, "; ")
}

// describe is the certificate part of the tls check's summary.
func (d *TLSData) describe() string {
	return fmt.Sprintf("certificate %s (%s), issued by %s, expires %s (in %d days)",
		d.Subject, d.Names(), d.Issuer, d.NotAfter.UTC().Format(time.DateOnly), d.DaysLeft)
}

// certName is a certificate name as the report shows it: CN=..., else the whole name.
func certName(n interface{ String() string }, cn string) string {
	if cn != "" {
		return "CN=" + cn
	}
	return n.String()
}

// tlsData describes the handshake cs at time now.
func tlsData(cs tls.ConnectionState, now time.Time) *TLSData {
	d := &TLSData{Required: true, Version: tls.VersionName(cs.Version)}
	if len(cs.PeerCertificates) == 0 {
		return d
	}
	leaf := cs.PeerCertificates[0]
	d.Subject = certName(leaf.Subject, leaf.Subject.CommonName)
	d.Issuer = certName(leaf.Issuer, leaf.Issuer.CommonName)
	d.DNSNames = leaf.DNSNames
	for _, ip := range leaf.IPAddresses {
		d.IPAddresses = append(d.IPAddresses, ip.String())
	}
	d.NotAfter = leaf.NotAfter
	d.DaysLeft = int(leaf.NotAfter.Sub(now) / (24 * time.Hour))
	return d
}

// verifyPeer checks the chain of cs against roots (nil: the system's) for name, as
// Python's ssl does for a Pyro4 client (check_hostname).
func verifyPeer(cs tls.ConnectionState, roots *x509.CertPool, name string) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return errors.New("the daemon sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// tlsReason names a TLS failure as tlsfiles.DialReason does, for a daemon.
func tlsReason(err error) string {
	return strings.ReplaceAll(tlsfiles.DialReason(err), "backend", "daemon")
}

// verifyReason names why verifyPeer refused a certificate for name.
func verifyReason(err error, name string) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return "signed by an unknown CA"
	case errors.As(err, &he):
		return "not valid for " + name
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return "expired or not yet valid"
	case errors.As(err, &ci) && ci.Reason == x509.IncompatibleUsage:
		return "not for server authentication"
	}
	return strings.TrimPrefix(err.Error(), "x509: ")
}

// verifyHint says what to do about a certificate that failed verifyPeer.
func verifyHint(err error, d *TLSData) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return "pass --tls-ca FILE with the CA that signed it (" + d.Issuer + "), the file Pyro4 clients give as SSL_CACERTS; or --tls-insecure to check the rest without trusting it"
	case errors.As(err, &he):
		return "it is valid for " + d.Names() + ": use one of those in the URI, or --tls-server-name NAME"
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return "renew the daemon's certificate (its SSL_SERVERCERT); clients refuse an expired one"
	}
	return "Pyro4 clients verify the daemon's certificate the same way; fix it, or pass --tls-insecure to check the rest"
}

// isAlert reports whether err is a TLS alert the peer sent.
func isAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// alertHint says what to do about a handshake the daemon refused (reason from tlsReason).
func alertHint(reason string) string {
	if strings.Contains(reason, "client certificate") {
		return "the daemon wants a client certificate (SSL_REQUIRECLIENTCERT): pass --tls-cert FILE and --tls-key FILE, signed by a CA in its SSL_CACERTS"
	}
	return "compare the daemon's SSL_* settings with --tls-ca, --tls-cert and --tls-key"
}

// handshakeTLS runs the client side of a TLS handshake on conn, for the host dialed,
// without verifying the certificate (the tls check does, to report what it found).
func handshakeTLS(ctx context.Context, conn net.Conn, client *tlsfiles.Client, host string, timeout time.Duration) (*tls.Conn, error) {
	cfg := client.ConfigFor(host).Clone()
	cfg.InsecureSkipVerify = true
	tc := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, err
	}
	return tc, nil
}
