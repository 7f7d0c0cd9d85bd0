package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	cases := []struct {
		args        []string
		code        int
		out, errOut string
	}{
		{[]string{"version"}, 0, "pyro-dispatch ", ""},
		{[]string{"--help"}, 0, "Commands:", ""},
		{[]string{"version", "--help"}, 0, "", "Usage: pyro-dispatch version"},
		{[]string{"nope"}, 2, "", `unknown command "nope"`},
		{[]string{"version", "--bogus"}, 2, "", "unknown flag: --bogus"},
		{nil, 2, "", "Usage:"},
		{[]string{"check", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2", "--mode", "pooled", "--pool-pipeline", "8"}, 0, "pipeline: 8", ""},
		{[]string{"check", "--listen", "127.0.0.1:1", "--backend", "127.0.0.1:2", "--mode", "pooled", "--pool-pipeline", "4096"}, 1, "", "pool.pipeline: 4096 is more than 1024"},
		{[]string{"http", "--help"}, 0, "", "Usage: pyro-dispatch http --ns HOST:PORT"},
		{[]string{"http"}, 2, "", "give --ns HOST:PORT"},
		{[]string{"http", "--ns", "127.0.0.1:1", "--gateway-key-file", "/nonexistent/key"}, 2, "", "no such file"},
		{[]string{"http", "--ns", "127.0.0.1:1", "--expose", "("}, 2, "", "pyro-dispatch http:"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stdout.String(), c.out) || !strings.Contains(stderr.String(), c.errOut) {
			t.Errorf("%v: code %d, stdout %q, stderr %q", c.args, code, stdout.String(), stderr.String())
		}
	}
}

// Every example configuration must pass `check`.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs: %v", err)
	}
	for _, f := range files {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check", "--config", f}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "configuration is valid") {
			t.Errorf("%s: exit %d: %s", f, code, stderr.String())
		}
	}
}
