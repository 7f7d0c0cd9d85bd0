package interop

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// The command line, with the pyro-dispatch binary built once for TestCLI's subtests.

// cliProc is a running pyro-dispatch process. It is killed when the test ends.
type cliProc struct {
	cmd            *exec.Cmd
	stdout, stderr pyro4test.LockedBuffer
	done           chan struct{}
	waitErr        error
}

func cliStart(t *testing.T, bin string, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("pyro-dispatch %s stderr:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// cliRun runs the binary to completion (bounded) and returns its exit code and outputs.
func cliRun(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := cliStart(t, bin, args...)
	return p.exit(t, faultWait), p.stdout.String(), p.stderr.String()
}

// exit waits for the process to end within `within` and returns its exit code.
func (p *cliProc) exit(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("pyro-dispatch still running %v later\n--- stderr:\n%s", within, p.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case p.waitErr == nil:
		return 0
	case errors.As(p.waitErr, &ee) && ee.Exited():
		return ee.ExitCode()
	default:
		t.Fatalf("pyro-dispatch: %v\n--- stderr:\n%s", p.waitErr, p.stderr.String())
		return -1
	}
}

func (p *cliProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// logLines returns the log lines (stderr) whose message is msg, with their fields. Both
// formats are understood: json, and console ("TIME\tLEVEL\tMSG\t{fields}").
func (p *cliProc) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		fields := map[string]any{}
		if strings.HasPrefix(line, "{") {
			if json.Unmarshal([]byte(line), &fields) != nil || fields["msg"] != msg {
				continue
			}
		} else {
			parts := strings.SplitN(line, "\t", 4)
			if len(parts) < 3 || parts[2] != msg {
				continue
			}
			if len(parts) == 4 && json.Unmarshal([]byte(parts[3]), &fields) != nil {
				continue
			}
			fields["level"], fields["msg"] = parts[1], parts[2]
		}
		out = append(out, fields)
	}
	return out
}

// waitLog waits for a log line with message msg and returns its fields.
func (p *cliProc) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	var lines []map[string]any
	faultWaitFor(t, fmt.Sprintf("log line %q from pyro-dispatch", msg), func() bool {
		lines = p.logLines(msg)
		select {
		case <-p.done:
			if len(lines) == 0 {
				t.Fatalf("pyro-dispatch exited (%v) without logging %q\n--- stderr:\n%s", p.waitErr, msg, p.stderr.String())
			}
		default:
		}
		return len(lines) > 0
	})
	return lines[0]
}

// ready waits for the ready line and returns the listen addresses it names, in dispatch
// form ("127.0.0.1:PORT", "[::1]:PORT", "unix:/path"), and its backends field.
func (p *cliProc) ready(t *testing.T) (listen []string, backends string) {
	t.Helper()
	f := p.waitLog(t, "ready")
	for _, a := range strings.Split(fmt.Sprint(f["listen"]), ",") {
		if rest, ok := strings.CutPrefix(a, "tcp:"); ok {
			a = rest
		}
		listen = append(listen, a)
	}
	return listen, fmt.Sprint(f["backends"])
}

// cliFreePort returns a 127.0.0.1 address that was free a moment ago.
func cliFreePort(t *testing.T) string { return faultClosedPort(t) }

// cliTempDir is a short temporary directory, for unix socket paths (at most 107 bytes).
func cliTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func cliWriteFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pyro-dispatch.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCLI runs the pyro-dispatch binary: serve with flags and with a file, address forms,
// shutdown by SIGTERM (draining a call in flight) and SIGINT, a port in use, and check.
func TestCLI(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	bin := buildDispatcher(t, t.TempDir())

	// serve --listen 127.0.0.1:PORT --backend 127.0.0.1:PORT: one ready line naming both,
	// a real Pyro4 client works through it; SIGINT with an idle client connected exits 0
	// at once (idle clients are not waited for).
	t.Run("serve with flags, SIGINT", func(t *testing.T) {
		t.Parallel()
		_, backend := faultDaemon(t, "127.0.0.1:0")
		listen := cliFreePort(t)
		p := cliStart(t, bin, "serve", "--listen", listen, "--backend", backend, "--log-format", "json", "--drain-timeout", "60s")
		addrs, backends := p.ready(t)
		if len(addrs) != 1 || addrs[0] != listen {
			t.Errorf("ready line names listen addresses %v, want [%s]", addrs, listen)
		}
		if !strings.Contains(backends, backend) {
			t.Errorf("ready line names backends %q, want %s in it", backends, backend)
		}
		faultWantOK(t, faultCall(t, pyroURI("fault.svc", listen), "echo", []any{"via cli"}, nil), "via cli")
		if n := len(p.logLines("ready")); n != 1 {
			t.Errorf("%d ready lines, want 1", n)
		}

		idle := rawDial(t, listen)
		idle.handshake(t)
		idle.ping(t)
		start := time.Now()
		p.signal(t, syscall.SIGINT)
		if code := p.exit(t, faultWait); code != 0 {
			t.Fatalf("exit code %d after SIGINT, want 0\n%s", code, p.stderr.String())
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("SIGINT with only an idle client took %v (drain timeout 60s: idle clients must not be waited for)", d)
		}
		idle.expectClosed(t, faultWait)
		p.waitLog(t, "stopped")
	})

	// [::1]:0 and unix:/path listen forms, a unix backend, console log format; SIGTERM
	// exits 0 and removes the unix socket.
	t.Run("serve ipv6 and unix addresses", func(t *testing.T) {
		t.Parallel()
		dir := cliTempDir(t)
		_, backend := faultDaemon(t, "unix:"+filepath.Join(dir, "daemon.sock"))
		sock := filepath.Join(dir, "front.sock")
		p := cliStart(t, bin, "serve", "--listen", "[::1]:0", "--listen", "unix:"+sock, "--backend", backend)
		addrs, backends := p.ready(t)
		if len(addrs) != 2 || !strings.HasPrefix(addrs[0], "[::1]:") || addrs[1] != "unix:"+sock {
			t.Fatalf("ready line names listen addresses %v, want [::1]:PORT and unix:%s", addrs, sock)
		}
		if !strings.Contains(backends, backend) {
			t.Errorf("ready line names backends %q, want %s in it", backends, backend)
		}
		for _, a := range addrs {
			faultWantOK(t, faultCall(t, pyroURI("fault.svc", a), "echo", []any{a}, nil), a)
		}
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, faultWait); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
		if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("unix socket %s left behind: %v", sock, err)
		}
	})

	// SIGTERM while a call is in flight: new connections are refused, the call completes
	// (the drain), then the process exits 0.
	t.Run("SIGTERM drains a call in flight", func(t *testing.T) {
		t.Parallel()
		daemon, backend := faultDaemon(t, "127.0.0.1:0")
		p := cliStart(t, bin, "serve", "--listen", "127.0.0.1:0", "--backend", backend, "--log-format", "json", "--drain-timeout", "60s")
		addrs, _ := p.ready(t)
		call := faultStartCall(t, pyroURI("fault.svc", addrs[0]), "slow", []any{1.5, "drained"}, nil)
		faultWaitFor(t, "the slow call to reach the daemon", func() bool { return strings.Contains(daemon.Stdout(), "slow-begin drained") })
		p.signal(t, syscall.SIGTERM)
		p.waitLog(t, "shutting down: draining in-flight calls")
		faultWaitFor(t, "the listener to close", func() bool {
			c, err := net.DialTimeout("tcp", addrs[0], time.Second)
			if err == nil {
				c.Close()
			}
			return err != nil
		})
		select {
		case <-p.done:
			t.Fatalf("pyro-dispatch exited before the call in flight completed\n%s", p.stderr.String())
		default:
		}
		faultWantOK(t, faultWaitCall(t, call, faultWait), "slow-done drained")
		if code := p.exit(t, faultWait); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
		p.waitLog(t, "stopped")
		if lines := p.logLines("drain timed out: closed the remaining connections"); len(lines) > 0 {
			t.Errorf("drain timed out: %v", lines)
		}
	})

	// An address that cannot be listened on: non-zero exit, a message naming it.
	t.Run("cannot listen", func(t *testing.T) {
		t.Parallel()
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		backend := faultClosedPort(t)
		for _, c := range []struct{ listen, want string }{
			{taken.Addr().String(), "cannot listen on " + taken.Addr().String() + ": "},
			{"unix:" + filepath.Join(cliTempDir(t), "no", "such", "dir.sock"), "cannot listen on unix:"},
		} {
			code, _, stderr := cliRun(t, bin, "serve", "--listen", c.listen, "--backend", backend)
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Errorf("serve --listen %s: exit %d, stderr %q; want non-zero and %q", c.listen, code, stderr, c.want)
			}
			if c.listen == taken.Addr().String() && !strings.Contains(stderr, "address already in use") {
				t.Errorf("serve --listen %s: stderr %q does not say the address is in use", c.listen, stderr)
			}
			if strings.Contains(stderr, `"msg":"ready"`) || strings.Contains(stderr, "\tready\t") {
				t.Errorf("serve --listen %s: logged ready: %q", c.listen, stderr)
			}
		}
	})

	// serve --config FILE works, and set flags override the file's values: the file's
	// backend is dead and its log format console; --backend and --log-format win.
	t.Run("serve with a config file and overriding flags", func(t *testing.T) {
		t.Parallel()
		_, backend := faultDaemon(t, "127.0.0.1:0")
		dead := faultClosedPort(t)
		listen := cliFreePort(t)
		file := cliWriteFile(t, fmt.Sprintf(`# pyro-dispatch test configuration
listeners:
  - name: front
    listen: %s
    backend: %s
limits:
  max_connections: 10
timeouts:
  dial: 2s
log:
  format: console
`, listen, dead))
		p := cliStart(t, bin, "serve", "--config", file, "--backend", backend, "--log-format", "json")
		addrs, backends := p.ready(t)
		if !strings.Contains(p.stderr.String(), `"msg":"ready"`) {
			t.Errorf("--log-format json did not override the file's console format:\n%s", p.stderr.String())
		}
		if len(addrs) != 1 || addrs[0] != listen || !strings.Contains(backends, "front="+backend) {
			t.Errorf("ready line: listen %v backends %q; want the file's listener %s named front, and the flag's backend %s", addrs, backends, listen, backend)
		}
		faultWantOK(t, faultCall(t, pyroURI("fault.svc", listen), "echo", []any{"file"}, nil), "file")
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, faultWait); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}

		// Without the override, the file's dead backend is what clients get.
		p = cliStart(t, bin, "serve", "--config", file, "--listen", "127.0.0.1:0")
		addrs, backends = p.ready(t)
		if !strings.Contains(backends, dead) {
			t.Errorf("backends %q, want the file's %s (a set --listen keeps the file's one backend)", backends, dead)
		}
		r := faultCall(t, pyroURI("fault.svc", addrs[0]), "echo", []any{"x"}, nil)
		faultWantError(t, r, []string{"pyro-dispatch: backend " + dead + " unreachable"})
		p.signal(t, syscall.SIGTERM)
		if code := p.exit(t, faultWait); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
	})

	// check --config FILE: the effective configuration for a valid file (exit 0, flags
	// applied); exit 1 with the key and line for an unknown key and for bad values.
	t.Run("check", func(t *testing.T) {
		t.Parallel()
		base := "listeners:\n  - name: front\n    listen: [127.0.0.1:7001, \"[::1]:7001\"]\n    backend: unix:/run/pyro.sock\n"
		file := cliWriteFile(t, base+"limits:\n  max_message_size: 32MiB\ntimeouts:\n  idle: 90s\n")
		code, stdout, stderr := cliRun(t, bin, "check", "--config", file, "--max-conns", "77")
		if code != 0 {
			t.Fatalf("check of a valid file: exit %d, stderr %q", code, stderr)
		}
		for _, want := range []string{"configuration is valid", "name: front", "- 127.0.0.1:7001", "- '[::1]:7001'", "backend: unix:/run/pyro.sock",
			"mode: session", "max_message_size: 32MiB", "max_connections: 77", "idle: 1m30s", "header: 10s"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("check output lacks %q:\n%s", want, stdout)
			}
		}

		for _, c := range []struct {
			name, yaml string
			want       []string
		}{
			{"unknown key", base + "limits:\n  max_conections: 5\n", []string{"line 6", "max_conections"}},
			{"unknown top-level key", base + "timeout:\n  idle: 5s\n", []string{"line 5", "timeout"}},
			{"bad size", base + "limits:\n  max_message_size: lots\n", []string{"line 6", "max_message_size", "lots"}},
			{"bad duration", base + "timeouts:\n  idle: soon\n", []string{"line 6", "idle", "soon"}},
			{"bad number", base + "limits:\n  max_connections: many\n", []string{"line 6", "max_connections", "many"}},
			{"negative duration", base + "timeouts:\n  dial: -1s\n", []string{"line 6", "timeouts.dial", "must not be negative"}},
			{"bad address", base + "  - listen: 127.0.0.1:7002\n    backend: nowhere\n", []string{"line 6", "listeners[1].backend", "nowhere"}},
			{"bad mode", base + "    mode: turbo\n", []string{"line 5", "listeners[0].mode", "turbo"}},
		} {
			file := cliWriteFile(t, c.yaml)
			code, stdout, stderr := cliRun(t, bin, "check", "--config", file)
			if code != 1 || stdout != "" {
				t.Errorf("%s: exit %d, stdout %q; want exit 1 and nothing on stdout", c.name, code, stdout)
			}
			for _, want := range append(c.want, file) {
				if !strings.Contains(stderr, want) {
					t.Errorf("%s: message %q does not contain %q", c.name, strings.TrimSpace(stderr), want)
				}
			}
		}

		// serve refuses the same file before listening.
		bad := cliWriteFile(t, base+"limits:\n  max_conections: 5\n")
		code, _, stderr = cliRun(t, bin, "serve", "--config", bad)
		if code == 0 || !strings.Contains(stderr, "line 6") || !strings.Contains(stderr, "max_conections") {
			t.Errorf("serve with an unknown key: exit %d, stderr %q", code, stderr)
		}
	})
}
