package pyro4test

import (
	"strings"
	"testing"
)

func TestRunPython(t *testing.T) {
	out, errOut := RunPython(t, `
import sys, Pyro4
data = sys.stdin.read()
print(Pyro4.__version__, sys.argv[1:], data.upper())
print("to stderr", file=sys.stderr)
`, []byte("ünï"), "a", "b c")
	if got, want := string(out), "4.82 ['a', 'b c'] ÜNÏ\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}
	if string(errOut) != "to stderr\n" {
		t.Errorf("stderr %q", errOut)
	}
}

func TestStartDaemon(t *testing.T) {
	p := StartDaemon(t, `
import sys, time
sys.stderr.write("starting\n")
sys.stdout.write("ready %s\nmore\n" % sys.argv[1])  # one write: both lines come before the kill
time.sleep(600)
`, "x")
	if p.Line != "ready x" {
		t.Errorf("Line %q", p.Line)
	}
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop: %v, want killed", err)
	}
	<-p.Done()
	if p.Stdout() != "ready x\nmore\n" || p.Stderr() != "starting\n" {
		t.Errorf("stdout %q, stderr %q", p.Stdout(), p.Stderr())
	}
	if err := p.Stop(); err == nil {
		t.Error("second Stop: nil error")
	}
}

func TestStartDaemonExitCode(t *testing.T) {
	p := StartDaemon(t, `print("only line")`)
	<-p.Done()
	if err := p.Stop(); err != nil || p.Line != "only line" {
		t.Errorf("Stop: %v, Line %q", err, p.Line)
	}
}
