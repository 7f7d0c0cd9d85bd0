// Package testcert writes certificates for tests: a test CA with a server certificate for
// localhost and a client certificate, and an unrelated CA with its own client certificate,
// as PEM files (ECDSA P-256, PKCS#8 keys) that Go's crypto/tls and Python's ssl both accept.
package testcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Common names of the generated certificates, for tests that look at a peer's certificate.
const (
	CAName          = "pyro-dispatch test CA"
	ServerName      = "localhost"
	ClientName      = "pyro-dispatch test client"
	OtherCAName     = "pyro-dispatch other test CA"
	OtherClientName = "pyro-dispatch other test client"
)

// Validity of every generated certificate, counted from the time Write runs.
const (
	NotBeforeSkew = time.Hour            // NotBefore is this long before now
	Lifetime      = 365 * 24 * time.Hour // NotAfter is this long after now
)

// Files holds the absolute paths of the PEM files Write created. Keys are PKCS#8
// ("PRIVATE KEY") and mode 0600; certificates hold one CERTIFICATE block each.
type Files struct {
	Dir string // the directory holding all of them

	CACert string // the test CA (self-signed, CN CAName)
	CAKey  string // its key, for tests that issue more certificates

	ServerCert string // CN and DNS SAN "localhost", IP SANs 127.0.0.1 and ::1; signed by CACert; ExtKeyUsageServerAuth
	ServerKey  string

	ClientCert string // CN ClientName; signed by CACert; ExtKeyUsageClientAuth
	ClientKey  string

	OtherCACert string // an unrelated CA (CN OtherCAName)
	OtherCAKey  string

	OtherClientCert string // CN OtherClientName; signed by OtherCACert; ExtKeyUsageClientAuth
	OtherClientKey  string
}

// Write generates fresh keys and certificates and writes them into dir, which must exist,
// as ca.pem, ca.key, server.pem, server.key, client.pem, client.key, other-ca.pem,
// other-ca.key, other-client.pem and other-client.key, replacing any files of those names.
// Every call makes new keys and random serial numbers.
func Write(dir string) (Files, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Files{}, err
	}
	f := Files{
		Dir:             dir,
		CACert:          filepath.Join(dir, "ca.pem"),
		CAKey:           filepath.Join(dir, "ca.key"),
		ServerCert:      filepath.Join(dir, "server.pem"),
		ServerKey:       filepath.Join(dir, "server.key"),
		ClientCert:      filepath.Join(dir, "client.pem"),
		ClientKey:       filepath.Join(dir, "client.key"),
		OtherCACert:     filepath.Join(dir, "other-ca.pem"),
		OtherCAKey:      filepath.Join(dir, "other-ca.key"),
		OtherClientCert: filepath.Join(dir, "other-client.pem"),
		OtherClientKey:  filepath.Join(dir, "other-client.key"),
	}
	now := time.Now()

	ca, err := newCA(CAName, now)
	if err != nil {
		return Files{}, err
	}
	other, err := newCA(OtherCAName, now)
	if err != nil {
		return Files{}, err
	}
	server, err := Issue(ca, Template(ServerName, now, x509.ExtKeyUsageServerAuth))
	if err != nil {
		return Files{}, err
	}
	client, err := Issue(ca, Template(ClientName, now, x509.ExtKeyUsageClientAuth))
	if err != nil {
		return Files{}, err
	}
	otherClient, err := Issue(other, Template(OtherClientName, now, x509.ExtKeyUsageClientAuth))
	if err != nil {
		return Files{}, err
	}

	for _, w := range []struct {
		kp        *KeyPair
		cert, key string
	}{
		{ca, f.CACert, f.CAKey},
		{other, f.OtherCACert, f.OtherCAKey},
		{server, f.ServerCert, f.ServerKey},
		{client, f.ClientCert, f.ClientKey},
		{otherClient, f.OtherClientCert, f.OtherClientKey},
	} {
		if err := w.kp.WriteFiles(w.cert, w.key); err != nil {
			return Files{}, err
		}
	}
	return f, nil
}

// KeyPair is a parsed certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Template returns a leaf certificate template named cn, valid from now-NotBeforeSkew
// for Lifetime, for the given extended key usage. For a server usage it carries the SANs
// of ServerCert: DNS cn, IPs 127.0.0.1 and ::1. Tests may change it before Issue.
func Template(cn string, now time.Time, usage x509.ExtKeyUsage) *x509.Certificate {
	t := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"pyro-dispatch tests"}},
		NotBefore:             now.Add(-NotBeforeSkew),
		NotAfter:              now.Add(Lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
	}
	if usage == x509.ExtKeyUsageServerAuth {
		t.DNSNames = []string{cn}
		t.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	return t
}

// Issue signs template with ca under a new ECDSA P-256 key and a random serial number
// (template.SerialNumber is replaced).
func Issue(ca *KeyPair, template *x509.Certificate) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if template.SerialNumber, err = serial(); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("testcert: issue %q: %w", template.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// LoadCA reads a CA certificate and key written by Write, for tests that issue more
// certificates with Issue.
func LoadCA(certPath, keyPath string) (*KeyPair, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, errors.New("testcert: LoadCA: not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("testcert: LoadCA: key of type %T cannot sign", key)
	}
	return &KeyPair{Cert: cert, Key: signer}, nil
}

// WriteFiles writes the certificate (one CERTIFICATE block, mode 0644) and the key
// (PKCS#8 "PRIVATE KEY", mode 0600). Each file is written to a temporary name and renamed
// into place, so a concurrent reader sees the old file or the new one, never half of one.
func (kp *KeyPair) WriteFiles(certPath, keyPath string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(kp.Key)
	if err != nil {
		return err
	}
	if err := writeAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.Cert.Raw}), 0o644); err != nil {
		return err
	}
	return writeAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
}

func newCA(cn string, now time.Time) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"pyro-dispatch tests"}},
		NotBefore:             now.Add(-NotBeforeSkew),
		NotAfter:              now.Add(Lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	// Self-signed: x509.CreateCertificate fills in SubjectKeyId for a CA, and uses it as
	// the AuthorityKeyId of everything the CA signs (OpenSSL's X509_STRICT wants both).
	der, err := x509.CreateCertificate(rand.Reader, t, t, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("testcert: CA %q: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// serial returns a random positive serial number of at most 127 bits.
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
