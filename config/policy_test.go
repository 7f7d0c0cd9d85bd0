package config

import (
	"strings"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

func TestSerializerPolicyValidation(t *testing.T) {
	for _, tc := range []struct{ yml, want string }{
		{"listeners: [{listen: 127.0.0.1:1, backend: 127.0.0.1:2, serializers: [serpent, pikle]}]", "line 1: listeners[0].serializers[1]: unknown serializer \"pikle\""},
		{"listeners:\n  - listen: 127.0.0.1:1\n    routes: [{to: x, serializers: [yaml]}]\nbackends: [{name: x, members: [127.0.0.1:2]}]", "listeners[0].routes[0].serializers[0]: unknown serializer \"yaml\""},
		{"listeners:\n  - listen: 127.0.0.1:1\n    routes: [{deny: no, serializers: [json]}]", "a deny route refuses every serializer already"},
		{"listeners: [{listen: 127.0.0.1:1, backend: 127.0.0.1:2}]\nlimits: {calls_per_second_per_ip: -1}", "limits.calls_per_second_per_ip: must not be negative"},
		{"listeners: [{listen: 127.0.0.1:1, backend: 127.0.0.1:2}]\nlimits: {connection_burst: -3}", "limits.connection_burst: must not be negative"},
	} {
		if _, err := ParseConfig([]byte(tc.yml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yml, err, tc.want)
		}
	}
	cfg, err := ParseConfig([]byte("listeners: [{listen: 127.0.0.1:1, backend: 127.0.0.1:2}]\nlimits: {calls_per_second_per_ip: 0.5, connections_per_second_per_ip: 30, connection_burst: 5}"))
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Limits; l.Burst != 1 || l.ConnectionBurst != 5 {
		t.Errorf("bursts %d, %d; want 1 (the default for a rate below 1), 5", l.Burst, l.ConnectionBurst)
	}
}

func TestSerializerSet(t *testing.T) {
	p, err := ParseSerializers("k", StringList{"json", "serpent"})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Allows(frame.JSON) || p.Allows(frame.Pickle) || p.Allows(frame.Serializer(42)) || p.String() != "serpent, json" {
		t.Errorf("%v", p)
	}
	var none SerializerSet
	if !none.Allows(frame.Pickle) || !none.Allows(frame.Serializer(42)) || none.String() != "any" {
		t.Errorf("no policy: %v", none)
	}
	if got := none.AllowsUnsafe(); len(got) != 3 {
		t.Errorf("no policy lets %v through, want pickle, dill, cloudpickle", got)
	}
}

func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		yml  string
		want string // "" for none
	}{
		{"listeners: [{listen: 0.0.0.0:1, backend: 127.0.0.1:2}]", "listener listener0 binds 0.0.0.0:1 (not loopback) and lets pickle, dill, cloudpickle through"},
		{"listeners: [{listen: [127.0.0.1:1, \"[::]:1\"], backend: 127.0.0.1:2, serializers: [serpent, pickle]}]", "binds [::]:1 (not loopback) and lets pickle through"},
		{"listeners: [{listen: [127.0.0.1:1, \"[::1]:1\", \"localhost:3\", \"unix:/tmp/x\"], backend: 127.0.0.1:2}]", ""},
		{"listeners: [{listen: 0.0.0.0:1, backend: 127.0.0.1:2, serializers: [serpent, json, marshal]}]", ""},
		{"backends: [{name: a, members: [127.0.0.1:2]}]\nlisteners: [{listen: 0.0.0.0:1, routes: [{to: a, serializers: [json]}, {deny: nope}]}]", ""},
		{"backends: [{name: a, members: [127.0.0.1:2]}]\nlisteners: [{listen: 0.0.0.0:1, routes: [{to: a, serializers: [json]}, {to: a, serializers: [dill]}]}]", "lets dill through"},
	} {
		cfg, err := ParseConfig([]byte(tc.yml))
		if err != nil {
			t.Fatal(err)
		}
		w := strings.Join(cfg.Warnings(), "\n")
		if (tc.want == "") != (w == "") || !strings.Contains(w, tc.want) {
			t.Errorf("%s:\ngot %q, want %q", tc.yml, w, tc.want)
		}
	}
}
