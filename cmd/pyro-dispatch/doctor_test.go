package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/doctor"
	"github.com/pyro-dispatch/pyro-dispatch/internal/dispatchtest"
)

func runDoctorCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(append([]string{"doctor"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDoctorCommandUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.key")
	for _, c := range []struct {
		args   []string
		code   int
		errOut string
	}{
		{[]string{"--help"}, 0, "Usage: pyro-dispatch doctor [flags] TARGET"},
		{nil, 2, "give one TARGET"},
		{[]string{"a:1", "b:2"}, 2, "give one TARGET"},
		{[]string{"PYRO:obj"}, 2, "needs a location"},
		{[]string{"--ns", "127.0.0.1:1", "127.0.0.1:2"}, 2, "goes with a PYRONAME: target"},
		{[]string{"--ns", "127.0.0.1:x", "PYRONAME:a"}, 2, "--ns: name server"},
		{[]string{"--hmac-key-file", missing, "127.0.0.1:1"}, 2, "no such file"},
		{[]string{"--hmac-key-file", missing, "--hmac-key-env", "K", "127.0.0.1:1"}, 2, "not both"},
		{[]string{"--tls-ca", missing, "127.0.0.1:1"}, 2, "tls ca file " + missing},
		{[]string{"--bogus", "127.0.0.1:1"}, 2, "unknown flag: --bogus"},
	} {
		code, _, errOut := runDoctorCmd(c.args...)
		if code != c.code || !strings.Contains(errOut, c.errOut) {
			t.Errorf("%v: exit %d, stderr %q", c.args, code, errOut)
		}
	}
	var out bytes.Buffer
	run([]string{"--help"}, &out, &out)
	if !strings.Contains(out.String(), "  doctor ") {
		t.Errorf("doctor is not among the commands:\n%s", out.String())
	}
}

// A closed port: exit 1, the failure on the tcp connect line, in text and in JSON.
func TestDoctorCommandClosedPort(t *testing.T) {
	echo := dispatchtest.Echo(t, "127.0.0.1:0", 0)
	echo.Close() // nothing listens on its port now
	addr := echo.Addr().String()
	code, out, errOut := runDoctorCmd("--timeout", "2s", addr)
	if code != 1 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{
		"\n  ✗ tcp connect: " + addr + ": connection refused\n",
		"\n✗ verdict: " + addr + " does not answer calls (tcp connect: " + addr + ": connection refused)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}

	code, out, _ = runDoctorCmd("--json", addr)
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	c := r.Sections[0].Check(doctor.CheckConnect)
	if r.OK || r.AnswersCalls || c == nil || c.Status != doctor.Fail || c.Summary != addr+": connection refused" {
		t.Errorf("JSON report: %s", out)
	}
}

// Through pyro-dispatch in front of the Go echo daemon, and with an HMAC key from the
// environment that the echo daemon does not have.
func TestDoctorCommandThroughDispatcher(t *testing.T) {
	echo := dispatchtest.Echo(t, "127.0.0.1:0", 0)
	cfg := config.Defaults()
	cfg.Backends = []config.Backend{{Name: "echo", Members: []config.Member{{Address: echo.Addr().String()}}}}
	cfg.Listeners = []config.Listener{{Name: "main", Listen: config.StringList{"127.0.0.1:0"}, Routes: []config.Route{{To: "echo"}}}}
	srv := dispatchtest.Start(t, cfg, zap.NewNop())
	target := "PYRO:echo@" + srv.Addrs()[0].String()

	code, out, errOut := runDoctorCmd("--pings", "2", target)
	if code != 0 || errOut != "" || !strings.HasSuffix(out, "✓ verdict: "+target+" answers calls\n") ||
		!strings.Contains(out, "✓ ping: round trip ") || !strings.Contains(out, "(best of 2;") {
		t.Errorf("exit %d, stderr %q:\n%s", code, errOut, out)
	}

	t.Setenv("DOCTOR_TEST_KEY", "k")
	code, out, _ = runDoctorCmd("--hmac-key-env", "DOCTOR_TEST_KEY", target)
	if code != 1 || !strings.Contains(out, "✗ hmac: not needed, but a key was given\n") {
		t.Errorf("exit %d:\n%s", code, out)
	}

	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runDoctorCmd("--hmac-key-file", key, "--json", target)
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 1 {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if d, _ := json.Marshal(r.Sections[0].Check(doctor.CheckHMAC).Data); string(d) != `{"key_given":true,"required":false}` {
		t.Errorf("hmac data %s", d)
	}
}
