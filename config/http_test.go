package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHTTPListeners(t *testing.T) {
	const pyro = "listeners: [{listen: 127.0.0.1:1, backend: 127.0.0.1:2}]\n"
	cfg, err := ParseConfig([]byte(pyro + "http: [{listen: 127.0.0.1:8080, ns: 127.0.0.1:9090}]"))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.HTTP[0]
	if h.Name != "http" || h.Expose != DefaultHTTPExpose || h.Timeout != DefaultHTTPTimeout || h.LookupTTL != 5*time.Second || h.PoolSize != 16 {
		t.Errorf("defaults %+v", h)
	}
	for _, tc := range []struct{ yml, want string }{
		{"http: [{listen: nowhere, ns: 127.0.0.1:9090}]", "line 2: http[0].listen: bad address"},
		{"http: [{listen: 127.0.0.1:8080}]", "http[0].ns: want the name server's HOST:PORT"},
		{"http: [{listen: 127.0.0.1:8080, ns: 127.0.0.1:9090, expose: \"(\"}]", "http[0].expose"},
		{"http: [{listen: 127.0.0.1:8080, ns: 127.0.0.1:9090, gateway_key_file: /nonexistent}]", "http[0].gateway_key_file"},
		{"http: [{listen: 127.0.0.1:8080, ns: 127.0.0.1:9090, timeout: -1s}]", "must not be negative"},
		{"http: [{listen: 127.0.0.1:8080, ns: 127.0.0.1:9090, tls: {key: k.pem}}]", "http[0].tls.cert"},
	} {
		if _, err := ParseConfig([]byte(pyro + tc.yml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.yml, err, tc.want)
		}
	}
}

func TestHTTPListenersRouted(t *testing.T) {
	const pyro = "listeners: [{name: pyro, listen: 127.0.0.1:1, backend: 127.0.0.1:2}]\nbackends: [{name: g, members: [127.0.0.1:3]}]\n"
	cfg, err := ParseConfig([]byte(pyro + `http:
  - {listen: 127.0.0.1:8080, routes: [{match: {object: [a, "b*", "~c", d]}, to: g}, {match: {object: e}, deny: no}, {to: g}]}
  - {listen: 127.0.0.1:8081, backend: [127.0.0.1:4, 127.0.0.1:5], balance: hash}
`))
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.HTTP[0]; !h.Routed() || h.Name != "http" || !slices.Equal(h.NamedObjects(), []string{"a", "d"}) {
		t.Errorf("routed listener %+v, named %v", h, h.NamedObjects())
	}
	if h := cfg.HTTP[1]; h.Name != "http1" || !h.Routed() {
		t.Errorf("second listener %+v", h)
	}
	if !slices.ContainsFunc(cfg.Backends, func(b Backend) bool { return b.Name == "http1" && b.Implicit && len(b.Members) == 2 }) {
		t.Errorf("no implicit group for http1's backend: %+v", cfg.Backends)
	}
	for _, tc := range []struct{ yml, want string }{
		{"http: [{listen: 127.0.0.1:8080, ns: 127.0.0.1:9090, backend: 127.0.0.1:4}]", "http[0].ns: calls go to the name server's objects (ns) or to backend groups"},
		{"http: [{listen: 127.0.0.1:8080, routes: [{to: nowhere}]}]", `http[0].routes[0].to: no backend group named "nowhere"`},
		{"http: [{name: pyro, listen: 127.0.0.1:8080, backend: 127.0.0.1:4}]", `duplicate listener name "pyro"`},
		{"http: [{name: g, listen: 127.0.0.1:8080, backend: 127.0.0.1:4}]", "a backend group of that name exists"},
		{"http: [{listen: 127.0.0.1:8080, balance: hash, routes: [{to: g}]}]", "http[0].balance: only with backend"},
	} {
		if _, err := ParseConfig([]byte(pyro + tc.yml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.yml, err, tc.want)
		}
	}
}
