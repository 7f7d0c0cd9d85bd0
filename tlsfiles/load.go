package tlsfiles

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// FileError is a certificate, key or CA file that could not be used. Its text names the
// configuration key (Role), the path and what is wrong, for example
//
//	tls key file /etc/pyro/server.key: key does not match the certificate in /etc/pyro/server.pem
//
// Err is the cause; errors.Is(err, fs.ErrNotExist) works for a missing file.
type FileError struct {
	Role string // "cert", "key", "client_ca" or "ca": the YAML key naming the file
	Path string
	Err  error
}

// Error returns "tls <role> file <path>: <cause>".
func (e *FileError) Error() string {
	return fmt.Sprintf("tls %s file %s: %v", e.Role, e.Path, e.Err)
}

// Unwrap returns the cause, Err.
func (e *FileError) Unwrap() error { return e.Err }

// Causes held by a FileError, for errors.Is.
var (
	// ErrNotPEM: the file has no PEM block at all (DER, or not a certificate file).
	ErrNotPEM = errors.New("not PEM (no -----BEGIN block)")
	// ErrNoCertificate: PEM blocks, but no CERTIFICATE among them.
	ErrNoCertificate = errors.New("no CERTIFICATE block")
	// ErrNoKey: PEM blocks, but no private key among them.
	ErrNoKey = errors.New("no PRIVATE KEY block")
	// ErrKeyMismatch: the key is not the certificate's.
	ErrKeyMismatch = errors.New("key does not match the certificate")
)

// readFile reads path, turning the usual failures into a FileError with a short cause.
func readFile(role, path string) ([]byte, error) {
	if path == "" {
		return nil, &FileError{Role: role, Path: `""`, Err: errors.New("no file name given")}
	}
	data, err := os.ReadFile(path)
	if err == nil {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, &FileError{Role: role, Path: path, Err: errors.New("empty file")}
		}
		return data, nil
	}
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = fmt.Errorf("does not exist: %w", fs.ErrNotExist)
	case errors.Is(err, fs.ErrPermission):
		err = fmt.Errorf("permission denied: %w", fs.ErrPermission)
	case errors.As(err, &pe):
		err = pe.Err // "is a directory" and the like; the path is already in FileError
	}
	return nil, &FileError{Role: role, Path: path, Err: err}
}

// blockTypes lists the PEM block types in data.
func blockTypes(data []byte) (types []string) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return types
		}
		types = append(types, b.Type)
	}
}

// parseCerts returns the certificates in a PEM file, in order.
func parseCerts(role, path string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	var types []string
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		types = append(types, b.Type)
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, &FileError{Role: role, Path: path, Err: fmt.Errorf("certificate %d: %w", len(certs)+1, err)}
		}
		certs = append(certs, c)
	}
	if len(types) == 0 {
		return nil, &FileError{Role: role, Path: path, Err: ErrNotPEM}
	}
	if len(certs) == 0 {
		return nil, &FileError{Role: role, Path: path, Err: fmt.Errorf("%w (found %s)", ErrNoCertificate, strings.Join(types, ", "))}
	}
	return certs, nil
}

// loadPool reads a CA file: one or more PEM certificates (a self-signed leaf is accepted
// as its own root, as Pyro4's SSL_CACERTS allows).
func loadPool(role, path string) (*x509.CertPool, []*x509.Certificate, error) {
	data, err := readFile(role, path)
	if err != nil {
		return nil, nil, err
	}
	certs, err := parseCerts(role, path, data)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, certs, nil
}

// loadKeyPair reads a certificate chain (leaf first) and its private key. With keyPath
// empty the key is read from certPath (a combined PEM file, as Python's load_cert_chain
// allows).
func loadKeyPair(certPath, keyPath string) (*tls.Certificate, error) {
	certPEM, err := readFile("cert", certPath)
	if err != nil {
		return nil, err
	}
	if _, err := parseCerts("cert", certPath, certPEM); err != nil {
		return nil, err
	}
	keyRole, keyFile, keyPEM := "key", keyPath, certPEM
	if keyPath == "" {
		keyRole, keyFile = "cert", certPath
	} else if keyPEM, err = readFile("key", keyPath); err != nil {
		return nil, err
	}
	types := blockTypes(keyPEM)
	if len(types) == 0 {
		return nil, &FileError{Role: keyRole, Path: keyFile, Err: ErrNotPEM}
	}
	hasKey := false
	for _, t := range types {
		if t == "PRIVATE KEY" || strings.HasSuffix(t, " PRIVATE KEY") {
			hasKey = true
		}
		if t == "ENCRYPTED PRIVATE KEY" {
			return nil, &FileError{Role: keyRole, Path: keyFile, Err: errors.New("encrypted private keys are not supported")}
		}
	}
	if !hasKey {
		return nil, &FileError{Role: keyRole, Path: keyFile, Err: fmt.Errorf("%w (found %s)", ErrNoKey, strings.Join(types, ", "))}
	}
	if b, _ := pem.Decode(keyPEM); b != nil && b.Headers["Proc-Type"] != "" {
		return nil, &FileError{Role: keyRole, Path: keyFile, Err: errors.New("encrypted private keys are not supported")}
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.Contains(err.Error(), "does not match") {
			err = fmt.Errorf("%w in %s", ErrKeyMismatch, certPath)
		} else {
			err = errors.New(strings.TrimPrefix(err.Error(), "tls: "))
		}
		return nil, &FileError{Role: keyRole, Path: keyFile, Err: err}
	}
	if pair.Leaf == nil { // set by X509KeyPair since Go 1.23
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, &FileError{Role: "cert", Path: certPath, Err: err}
		}
	}
	return &pair, nil
}
