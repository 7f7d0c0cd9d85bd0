package config

import (
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
