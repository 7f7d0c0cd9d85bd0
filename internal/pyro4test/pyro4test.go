// Package pyro4test runs real Pyro4 (Debian python3-pyro4, /usr/bin/python3) from Go
// tests: one-shot Python scripts, and long-running Python daemons or clients whose first
// printed line (a URI, a port) the test waits for.
//
// Tests skip when Pyro4 cannot be imported, unless the environment variable
// PYRO_DISPATCH_REQUIRE_PYRO4=1 is set, in which case they fail. Functions taking a
// testing.TB must be called from the test's goroutine (they may call t.Fatal).
package pyro4test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// PythonPath is the interpreter that has Debian's Pyro4 4.82; the python3 on PATH may not.
const PythonPath = "/usr/bin/python3"

// RequireEnv is the environment variable that turns a missing Pyro4 into a test failure
// instead of a skip when set to "1".
const RequireEnv = "PYRO_DISPATCH_REQUIRE_PYRO4"

// DefaultTimeout bounds one RunPython script.
const DefaultTimeout = 60 * time.Second

// StartTimeout bounds how long StartDaemon waits for the first line of output.
const StartTimeout = 30 * time.Second

var (
	moduleMu    sync.Mutex
	moduleCache = map[string]error{} // module name -> result of importing it
)

// importError reports whether PythonPath can import module, caching the answer for the
// life of the test binary.
func importError(module string) error {
	moduleMu.Lock()
	defer moduleMu.Unlock()
	if err, ok := moduleCache[module]; ok {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
	defer cancel()
	var err error
	if out, e := exec.CommandContext(ctx, PythonPath, "-c", "import "+module).CombinedOutput(); e != nil {
		err = fmt.Errorf("%s cannot import %s: %v: %s", PythonPath, module, e, bytes.TrimSpace(out))
	}
	moduleCache[module] = err
	return err
}

// Python returns PythonPath after checking that it can import Pyro4. When it cannot, the
// test is skipped, or fails if RequireEnv is "1".
func Python(t testing.TB) string {
	t.Helper()
	if err := importError("Pyro4"); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("real Pyro4 required (%s=1): %v", RequireEnv, err)
		}
		t.Skipf("real Pyro4 not available (set %s=1 to fail instead): %v", RequireEnv, err)
	}
	return PythonPath
}

// PythonModule returns PythonPath after checking that it can import module (say "ssl",
// for tests of Python's side of TLS that need no Pyro4); skipped or failed like Python.
func PythonModule(t testing.TB, module string) string {
	t.Helper()
	if err := importError(module); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s required (%s=1): %v", module, RequireEnv, err)
		}
		t.Skipf("%s not available (set %s=1 to fail instead): %v", module, RequireEnv, err)
	}
	return PythonPath
}

// HasModule reports whether the Pyro4 Python can import module, such as "msgpack",
// "dill" or "cloudpickle" (optional serializers). It skips or fails like Python when Pyro4
// itself is missing.
func HasModule(t testing.TB, module string) bool {
	t.Helper()
	Python(t)
	return importError(module) == nil
}

// writeScript stores script in a fresh temporary directory of t and returns its path.
func writeScript(t testing.TB, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func command(ctx context.Context, python, path string, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, python, append([]string{"-u", path}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// RunPython runs script (Python source) with args as sys.argv[1:] and stdin as its
// standard input, within DefaultTimeout and the test's context, and returns what it wrote
// to stdout and stderr. A non-zero exit or a timeout fails the test, showing both outputs.
func RunPython(t testing.TB, script string, stdin []byte, args ...string) (stdout, stderr []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), DefaultTimeout)
	defer cancel()
	return RunPythonContext(ctx, t, script, stdin, args...)
}

// RunPythonContext is RunPython with the caller's context as the only deadline.
func RunPythonContext(ctx context.Context, t testing.TB, script string, stdin []byte, args ...string) (stdout, stderr []byte) {
	t.Helper()
	python := Python(t)
	cmd := command(ctx, python, writeScript(t, script), args)
	cmd.Stdin = bytes.NewReader(stdin)
	var outb, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &errb
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", err, ctxErr)
		}
		t.Fatalf("python script failed: %v\n--- stdout:\n%s\n--- stderr:\n%s", err, outb.Bytes(), errb.Bytes())
	}
	return outb.Bytes(), errb.Bytes()
}

// Process is a Python process started by StartDaemon. It is killed when the test ends.
type Process struct {
	// Line is the first line the process printed on stdout, without the line ending:
	// typically the URI or port it listens on.
	Line string

	cmd     *exec.Cmd
	out     *lineBuffer
	errb    *LockedBuffer
	done    chan struct{}
	waitErr error // set before done is closed
}

// StartDaemon starts script with args as sys.argv[1:] (no stdin), waits up to
// StartTimeout for its first line on stdout and returns the running process with that
// line in Line. The script must print that line once it is ready (the interpreter runs
// unbuffered). If the process exits or stays silent, the test fails with its stderr.
// The process is killed in t.Cleanup, and its stderr is logged if the test failed.
func StartDaemon(t testing.TB, script string, args ...string) *Process {
	t.Helper()
	python := Python(t)
	cmd := command(context.Background(), python, writeScript(t, script), args)
	p := &Process{
		cmd:  cmd,
		out:  &lineBuffer{first: make(chan string, 1)},
		errb: &LockedBuffer{},
		done: make(chan struct{}),
	}
	cmd.Stdout, cmd.Stderr = p.out, p.errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("start python daemon: %v", err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("python daemon (pid %d) stderr:\n%s", cmd.Process.Pid, p.Stderr())
		}
	})
	timer := time.NewTimer(StartTimeout)
	defer timer.Stop()
	select {
	case p.Line = <-p.out.first:
		return p
	case <-p.done:
		select { // a line written just before exiting still counts
		case p.Line = <-p.out.first:
			return p
		default:
		}
		t.Fatalf("python daemon exited before printing a line: %v\n--- stdout:\n%s\n--- stderr:\n%s", p.waitErr, p.out.String(), p.Stderr())
	case <-timer.C:
		p.Stop()
		t.Fatalf("python daemon printed no line within %v\n--- stderr:\n%s", StartTimeout, p.Stderr())
	}
	return nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stdout returns everything the process wrote to stdout so far, first line included.
func (p *Process) Stdout() string { return p.out.String() }

// Stderr returns everything the process wrote to stderr so far.
func (p *Process) Stderr() string { return p.errb.String() }

// Done is closed when the process has exited and its output is collected.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop kills the process if it is still running and waits for it. It returns nil when the
// process had already exited successfully, else the error from waiting for it (a kill
// shows as "signal: killed"). It is safe to call more than once.
func (p *Process) Stop() error {
	select {
	case <-p.done:
	default:
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return err
		}
		<-p.done
	}
	return p.waitErr
}

// LockedBuffer is a bytes.Buffer safe for one writer and concurrent readers, for the
// output of processes a test starts.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// lineBuffer collects output and sends its first complete line on first.
type lineBuffer struct {
	LockedBuffer
	first chan string // buffered, receives exactly one line
	sent  bool
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.b.Write(p)
	if !b.sent {
		if line, _, ok := strings.Cut(b.b.String(), "\n"); ok {
			b.first <- strings.TrimSuffix(line, "\r")
			b.sent = true
		}
	}
	return n, err
}
