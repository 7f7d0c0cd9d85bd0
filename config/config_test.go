package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
listeners:
  - name: front
    listen: ["127.0.0.1:9999", "[::1]:9999"]
    backend: unix:/run/pyro.sock
  - listen: unix:/tmp/d.sock
    backend: 127.0.0.1:9090
    mode: session
limits:
  max_message_size: 32MiB
  max_connections_per_ip: 50
timeouts:
  idle: 10m
  call: 30s
log:
  level: debug
  format: json
  access: true
`))
	if err != nil {
		t.Fatal(err)
	}
	l0, l1 := cfg.Listeners[0], cfg.Listeners[1]
	if l0.Name != "front" || len(l0.Listen) != 2 || l0.Backend[0] != "unix:/run/pyro.sock" || l0.Mode != ModeSession {
		t.Errorf("listener 0: %+v", l0)
	}
	if l1.Name != "listener1" || l1.Listen[0] != "unix:/tmp/d.sock" {
		t.Errorf("listener 1: %+v", l1)
	}
	if cfg.Limits.MaxMessageSize != 32<<20 || cfg.Limits.MaxConnectionsPer != 50 || cfg.Limits.MaxConnections != DefaultMaxConnections {
		t.Errorf("limits: %+v", cfg.Limits)
	}
	if cfg.Timeouts.Idle != 10*time.Minute || cfg.Timeouts.Call != 30*time.Second || cfg.Timeouts.Header != DefaultHeaderTimeout {
		t.Errorf("timeouts: %+v", cfg.Timeouts)
	}
	if !cfg.Log.Access || cfg.Log.Format != "json" {
		t.Errorf("log: %+v", cfg.Log)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := "listeners:\n  - listen: 127.0.0.1:1\n    backend: 127.0.0.1:2\n"
	cases := map[string]struct{ yaml, want string }{
		"unknown key":      {base + "limits:\n  max_msg: 5\n", "line 5: field max_msg not found"},
		"unknown nested":   {"listeners:\n  - listen: 127.0.0.1:1\n    backnd: x\n", "line 3: field backnd not found"},
		"bad duration":     {base + "timeouts:\n  idle: soon\n", "line 5: timeouts.idle: cannot unmarshal !!str `soon` into time.Duration"},
		"bad size":         {base + "limits:\n  max_message_size: lots\n", `line 5: limits.max_message_size: bad size "lots"`},
		"bad backend":      {"listeners:\n  - listen: 127.0.0.1:1\n    backend: nowhere\n", `line 3: listeners[0].backend[0]: bad address "nowhere"`},
		"bad listen":       {"listeners:\n  - listen: [\"127.0.0.1:1\", \"x:y:z\"]\n    backend: a:1\n", `line 2: listeners[0].listen[1]: bad address "x:y:z"`},
		"bad mode":         {base + "    mode: turbo\n", `line 4: listeners[0].mode: unknown mode "turbo"`},
		"no listeners":     {"log:\n  level: info\n", "listeners: at least one listener"},
		"no backend":       {"listeners:\n  - listen: 127.0.0.1:1\n", "listeners[0].backend: no backend address"},
		"bad level":        {base + "log:\n  level: loud\n", `line 5: log.level: unknown level "loud"`},
		"negative timeout": {base + "timeouts:\n  dial: -1s\n", "line 5: timeouts.dial: must not be negative"},
		"duplicate names":  {"listeners:\n  - {name: a, listen: 'x:1', backend: 'y:1'}\n  - {name: a, listen: 'x:2', backend: 'y:1'}\n", "line 3: listeners[1].name: duplicate"},
		"not yaml":         {"listeners: [", "did not find expected node content"},
		"deep pipeline":    {base + "    mode: pooled\n    pool:\n      pipeline: 5000\n", "line 6: listeners[0].pool.pipeline: 5000 is more than 1024"},
		"negative pipe":    {base + "    mode: pooled\n    pool:\n      pipeline: -2\n", "line 6: listeners[0].pool.pipeline: must not be negative"},
	}
	for name, c := range cases {
		_, err := ParseConfig([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
}

func TestParseAddress(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9090":   "tcp 127.0.0.1:9090",
		"[::1]:9090":       "tcp [::1]:9090",
		"localhost:1":      "tcp localhost:1",
		":9090":            "tcp :9090",
		"unix:/tmp/a.sock": "unix /tmp/a.sock",
	} {
		n, a, err := ParseAddress(in)
		if err != nil || n+" "+a != want {
			t.Errorf("%s: %s %s %v", in, n, a, err)
		}
	}
	for _, bad := range []string{"", "unix:", "host", "host:port", "1.2.3.4:70000", "::1:80"} {
		if _, _, err := ParseAddress(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"512": 512, "64KiB": 64 << 10, "32 MiB": 32 << 20, "1GiB": 1 << 30, "2MB": 2 << 20, "7K": 7 << 10} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-1", "1.5MiB", "10XB", "99999999999GiB"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if s := ByteSize(64 << 20).String(); s != "64MiB" {
		t.Errorf("String: %s", s)
	}
	if s := ByteSize(1000).String(); s != "1000" {
		t.Errorf("String: %s", s)
	}
}
