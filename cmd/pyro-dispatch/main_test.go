package main

import (
	"bytes"
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
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stdout.String(), c.out) || !strings.Contains(stderr.String(), c.errOut) {
			t.Errorf("%v: code %d, stdout %q, stderr %q", c.args, code, stdout.String(), stderr.String())
		}
	}
}
