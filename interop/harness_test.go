package interop

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/internal/dispatchtest"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// proxy is a dispatcher running in the test process.
type proxy struct {
	srv  *dispatch.Server
	addr string // first listen address, "HOST:PORT" or "unix:/path"
	logs *observer.ObservedLogs
}

// startProxy runs a dispatcher on 127.0.0.1:0 in front of backend (any dispatch address
// form). mutate may change the configuration before it starts (its listen addresses
// too). Every log line is recorded in logs, and written to the test log when
// PYRO_DISPATCH_TEST_LOG is set. The dispatcher is shut down when the test ends.
func startProxy(t testing.TB, backend string, mutate func(*config.Config)) *proxy {
	t.Helper()
	cfg := config.Defaults()
	cfg.Log.Level = "debug"
	cfg.Listeners = []config.Listener{{Name: "test", Listen: config.StringList{"127.0.0.1:0"}, Backend: config.StringList{backend}}}
	if mutate != nil {
		mutate(&cfg)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	if os.Getenv("PYRO_DISPATCH_TEST_LOG") != "" {
		log = zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	}
	srv := dispatchtest.Start(t, cfg, log)
	a := srv.Addrs()[0]
	addr := a.String()
	if a.Network() == "unix" {
		addr = "unix:" + addr
	}
	return &proxy{srv: srv, addr: addr, logs: logs}
}

// uri returns the Pyro4 URI of object id through the dispatcher.
func (p *proxy) uri(object string) string { return pyroURI(object, p.addr) }

// pyroURI returns the Pyro4 URI of object at a dispatch-style address.
func pyroURI(object, addr string) string {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "PYRO:" + object + "@./u:" + path
	}
	return "PYRO:" + object + "@" + addr
}

// waitLog waits up to 5 s for a log line whose message contains msg and whose fields
// contain every key=value in fields (values compared as printed by %v), and returns it.
func (p *proxy) waitLog(t testing.TB, msg string, fields map[string]string) observer.LoggedEntry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, e := range p.logs.All() {
			if strings.Contains(e.Message, msg) && fieldsMatch(e, fields) {
				return e
			}
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, e := range p.logs.All() {
				b, _ := json.Marshal(e.ContextMap())
				seen = append(seen, e.Message+" "+string(b))
			}
			t.Fatalf("no log line %q with %v; lines:\n%s", msg, fields, strings.Join(seen, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fieldsMatch(e observer.LoggedEntry, fields map[string]string) bool {
	ctx := e.ContextMap()
	for k, want := range fields {
		got, ok := ctx[k]
		if !ok || !strings.Contains(toString(got), want) {
			return false
		}
	}
	return true
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

// script returns the Python source of interop/testdata/NAME.
func script(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// buildDispatcher builds the pyro-dispatch binary into dir (without -race: tests that
// measure it want the production binary) and returns its path.
func buildDispatcher(tb testing.TB, dir string) string {
	tb.Helper()
	goTool, err := exec.LookPath("go") // go test puts its own GOROOT/bin first on PATH
	if err != nil {
		tb.Fatalf("cannot build the binary: %v", err)
	}
	bin := filepath.Join(dir, "pyro-dispatch")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, "github.com/pyro-dispatch/pyro-dispatch/cmd/pyro-dispatch")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// pyroTestdata makes sure real Pyro4 is there before a test starts anything.
func requirePyro4(t testing.TB) { pyro4test.Python(t) }
