package config

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
)

// ListenerTLS terminates TLS for a listener's clients (Pyro4's SSL=True). With ClientCA
// a client certificate signed by it is required (SSL_REQUIRECLIENTCERT).
type ListenerTLS struct {
	Cert       string `yaml:"cert"`                  // PEM certificate (chain) file
	Key        string `yaml:"key,omitempty"`         // PEM private key file (default: in cert)
	ClientCA   string `yaml:"client_ca,omitempty"`   // PEM CA file: client certificates required
	MinVersion string `yaml:"min_version,omitempty"` // "1.2" (default) or "1.3"
}

// BackendTLS dials a group's daemons with TLS (daemons started with SSL=True).
type BackendTLS struct {
	CA         string `yaml:"ca,omitempty"`          // PEM CA file the daemons' certificates chain to (default: system roots)
	Cert       string `yaml:"cert,omitempty"`        // client certificate, for daemons with SSL_REQUIRECLIENTCERT
	Key        string `yaml:"key,omitempty"`         // its key (default: in cert)
	ServerName string `yaml:"server_name,omitempty"` // name to verify (default: the member's host)
}

// HMAC makes the dispatcher verify and re-sign Pyro4's HMAC signatures: client messages
// are verified with the client key and signed with the backend key, replies the other
// way round. A key comes from a file (its whole content; one trailing newline is
// dropped) or an environment variable, never from the command line. A side without a
// key sends and gets unsigned messages; with the same key on both sides messages pass
// through untouched.
type HMAC struct {
	ClientKeyFile  string `yaml:"client_key_file,omitempty"`
	ClientKeyEnv   string `yaml:"client_key_env,omitempty"`
	BackendKeyFile string `yaml:"backend_key_file,omitempty"`
	BackendKeyEnv  string `yaml:"backend_key_env,omitempty"`
}

// Keys reads the keys (nil for a side without one).
func (h *HMAC) Keys() (client, backend []byte, err error) {
	if h == nil {
		return nil, nil, nil
	}
	if client, err = readKey(h.ClientKeyFile, h.ClientKeyEnv); err != nil {
		return nil, nil, fmt.Errorf("client key: %w", err)
	}
	if backend, err = readKey(h.BackendKeyFile, h.BackendKeyEnv); err != nil {
		return nil, nil, fmt.Errorf("backend key: %w", err)
	}
	return client, backend, nil
}

func readKey(file, env string) ([]byte, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		b = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
		if len(b) == 0 {
			return nil, fmt.Errorf("%s is empty", file)
		}
		return b, nil
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return nil, fmt.Errorf("environment variable %s is not set", env)
		}
		return []byte(v), nil
	}
	return nil, nil
}

func (t *ListenerTLS) validate(key string) error {
	if t == nil {
		return nil
	}
	if t.Cert == "" {
		return fieldErr(key+".cert", "a TLS listener needs a certificate file")
	}
	switch t.MinVersion {
	case "":
		t.MinVersion = "1.2"
	case "1.2", "1.3":
	default:
		return fieldErr(key+".min_version", "unknown TLS version %q (want 1.2 or 1.3)", t.MinVersion)
	}
	return nil
}

func (t *BackendTLS) validate(key string) error {
	if t != nil && t.Key != "" && t.Cert == "" {
		return fieldErr(key+".key", "a key without a cert")
	}
	return nil
}

func (h *HMAC) validate(key string) error {
	if h == nil {
		return nil
	}
	if h.ClientKeyFile != "" && h.ClientKeyEnv != "" {
		return fieldErr(key+".client_key_env", "give client_key_file or client_key_env, not both")
	}
	if h.BackendKeyFile != "" && h.BackendKeyEnv != "" {
		return fieldErr(key+".backend_key_env", "give backend_key_file or backend_key_env, not both")
	}
	if _, _, err := h.Keys(); err != nil {
		return fieldErr(key, "%v", err)
	}
	return nil
}

func (h *HTTPListener) fill(key string) error {
	if h.Name == "" {
		h.Name = "http"
	}
	if _, _, err := ParseAddress(h.Listen); err != nil {
		return fieldErr(key+".listen", "%v", err)
	}
	switch {
	case h.NameServer != "" && h.Routed():
		return fieldErr(key+".ns", "calls go to the name server's objects (ns) or to backend groups (backend, routes), not both")
	case h.Routed():
	default:
		if _, _, err := net.SplitHostPort(h.NameServer); err != nil {
			return fieldErr(key+".ns", "want the name server's HOST:PORT (or backend or routes): %v", err)
		}
	}
	if h.Expose == "" {
		h.Expose = DefaultHTTPExpose
	}
	if _, err := regexp.Compile(h.Expose); err != nil {
		return fieldErr(key+".expose", "%v", err)
	}
	if h.GatewayKeyFile != "" {
		if _, err := os.ReadFile(h.GatewayKeyFile); err != nil {
			return fieldErr(key+".gateway_key_file", "%v", err)
		}
	}
	if h.Timeout < 0 || h.LookupTTL < 0 || h.PoolSize < 0 {
		return fieldErr(key, "timeout, lookup_ttl and pool_size must not be negative")
	}
	if h.Timeout == 0 {
		h.Timeout = DefaultHTTPTimeout
	}
	if h.LookupTTL == 0 {
		h.LookupTTL = DefaultHTTPLookupTTL
	}
	if h.PoolSize == 0 {
		h.PoolSize = DefaultHTTPPoolSize
	}
	return h.TLS.validate(key + ".tls")
}

// Validate checks an HTTP gateway listener on its own (pyro-dispatch http) and fills in
// its defaults.
func (h *HTTPListener) Validate() error { return h.fill("http") }
