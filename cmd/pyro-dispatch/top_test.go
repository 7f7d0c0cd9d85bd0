package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/admin"
	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/internal/dispatchtest"
)

// topEnv is a dispatcher (pooled listener "main" in front of group "echo" of two Go
// echo daemons) with its admin API served on admin (HOST:PORT or unix:/path).
type topEnv struct {
	srv   *dispatch.Server
	proxy string
	admin string
	a, b  string // the members
}

func startTopEnv(t *testing.T, adminAddr, token string) *topEnv {
	t.Helper()
	var members []config.Member
	for range 2 {
		s := dispatchtest.Echo(t, "127.0.0.1:0", 0)
		members = append(members, config.Member{Address: s.Addr().String()})
	}
	cfg := config.Defaults()
	cfg.Backends = []config.Backend{{Name: "echo", Members: members}}
	cfg.Listeners = []config.Listener{{Name: "main", Listen: config.StringList{"127.0.0.1:0"}, Mode: config.ModePooled,
		Routes: []config.Route{{To: "echo"}}}}
	cfg.Admin.Listen = adminAddr
	cfg.Metrics.Objects = config.StringList{"echo"}
	srv := dispatchtest.Start(t, cfg, zap.NewNop())
	adm := admin.New(srv, admin.Options{Token: token})
	ln, err := admin.Listen(adminAddr)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- adm.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		adm.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("admin Serve: %v", err)
		}
	})
	e := &topEnv{srv: srv, proxy: srv.Addrs()[0].String(), a: members[0].Address, b: members[1].Address}
	e.admin = ln.Addr().String()
	if ln.Addr().Network() == "unix" {
		e.admin = "unix:" + e.admin
	}
	return e
}

// calls makes n echo calls through the dispatcher.
func (e *topEnv) calls(t *testing.T, n int64) {
	t.Helper()
	res, err := bench.Run(context.Background(), bench.Config{Targets: []bench.Target{{Name: "d", Addr: e.proxy}}, Conns: 2, Calls: n, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if st := res.Targets[0].Median; st.Calls != n || st.Errors != 0 {
		t.Fatalf("load: %d calls, %d errors %v", st.Calls, st.Errors, st.ErrorSamples)
	}
}

// memberLines returns the member table's lines of group, by member address: their
// fields (GROUP MEMBER STATE WEIGHT IN-FLIGHT CALLS/S CALLS ERRORS).
func memberLines(out, group string) map[string][]string {
	m := map[string][]string{}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && f[0] == group {
			m[f[1]] = f
		}
	}
	return m
}

func TestTopOnce(t *testing.T) {
	e := startTopEnv(t, "127.0.0.1:0", "")
	e.calls(t, 200)
	resp, err := http.Post("http://"+e.admin+"/api/v1/groups/echo/members/"+e.a+"/drain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	defer http.DefaultClient.CloseIdleConnections()

	var stdout, stderr bytes.Buffer
	start := time.Now()
	if code := run([]string{"top", "--admin", e.admin, "--once"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	t.Logf("top --once in %v:\n%s", time.Since(start), out)
	if strings.Contains(out, "\x1b") {
		t.Error("--once wrote escape sequences")
	}
	for _, want := range []string{"pyro-dispatch top", "ready", "admin API " + e.admin, "calls since start 200 (ok 200)",
		"connections accepted 2", "sessions 0", "GROUP", "POOL LISTENER", "BUSIEST", "SLOWEST", "LISTENER", e.proxy,
		"RECENT WARNINGS AND ERRORS", "backend member drained"} {
		if !strings.Contains(out, want) {
			t.Errorf("top --once: no %q", want)
		}
	}
	members := memberLines(out, "echo")
	a, b := members[e.a], members[e.b]
	if len(members) != 2 || a[2] != "drained" || b[2] != "up" || a[5] != "-" {
		t.Fatalf("member lines: %q", members)
	}
	ca, _ := strconv.Atoi(a[6])
	cb, _ := strconv.Atoi(b[6])
	if ca+cb != 200 || ca == 0 || cb == 0 || a[7] != "0" || b[7] != "0" {
		t.Errorf("member calls: %q", members)
	}
	var busiest bool
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) == 6 && f[0] == "main" && f[1] == "echo" && f[2] == "echo" && f[4] == "200" {
			busiest = true
		}
	}
	if !busiest {
		t.Error("no line main echo echo ... 200 among the busiest objects")
	}
}

// top reads the admin API over a unix socket, with a token.
func TestTopUnixToken(t *testing.T) {
	dir := t.TempDir()
	e := startTopEnv(t, "unix:"+filepath.Join(dir, "admin.sock"), "top-secret")
	e.calls(t, 10)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("top-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"top", "--admin", e.admin, "--once"}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "401") || !strings.Contains(stderr.String(), "--token-file") {
		t.Errorf("top without the token: exit %d, stderr %q", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"top", "--admin", e.admin, "--token-file", tokenFile, "--once"}, &stdout, &stderr); code != 0 {
		t.Fatalf("top with the token: exit %d: %s", code, stderr.String())
	}
	members := memberLines(stdout.String(), "echo")
	if len(members) != 2 || members[e.a][2] != "up" || !strings.Contains(stdout.String(), "calls since start 10 (ok 10)") {
		t.Errorf("top with the token:\n%s", stdout.String())
	}
}

func TestTopErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"top", "--admin", closed, "--once"}, 1, "connection refused"},
		{[]string{"top", "--admin", "nope", "--once"}, 2, "--admin: bad address"},
		{[]string{"top", "--token-file", "/nonexistent/token", "--once"}, 2, "--token-file"},
		{[]string{"top", "extra"}, 2, "unexpected arguments"},
		{[]string{"top", "--help"}, 0, "Usage: pyro-dispatch top [--admin ADDR] [--token-file F] [--once]"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		start := time.Now()
		code := run(c.args, &stdout, &stderr)
		if code != c.code || !strings.Contains(stderr.String(), c.stderr) || time.Since(start) > 6*time.Second {
			t.Errorf("%v: exit %d in %v, stderr %q", c.args, code, time.Since(start), stderr.String())
		}
	}
}

// syncBuffer is a bytes.Buffer for one writer and one reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Live: frames redrawn in place on a terminal, rates from one frame to the next, the
// cursor shown again at the end.
func TestTopLive(t *testing.T) {
	e := startTopEnv(t, "127.0.0.1:0", "")
	c, err := newTopClient(topOptions{admin: e.admin, interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.http.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	done := make(chan int, 1)
	go func() { done <- c.loop(ctx, &out, true) }()
	e.calls(t, 300)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "\x1b[H") < 4 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("loop returned %d", code)
	}
	s := out.String()
	if !strings.HasPrefix(s, "\x1b[?25l\x1b[H\x1b[2J") || !strings.HasSuffix(s, "\x1b[?25h\n") || strings.Count(s, "\x1b[H") < 4 {
		t.Fatalf("terminal output: %q", s)
	}
	// The last frame has rates (from the frame before it) and the colored states.
	frames := strings.Split(s, "\x1b[H")
	last := frames[len(frames)-1]
	if !strings.Contains(last, ansiGreen+"up"+ansiReset) {
		t.Errorf("last frame: %q", last)
	}
	// Colored or not, the columns line up: WEIGHT starts where its header does.
	var header, row int = -1, -1
	for line := range strings.SplitSeq(last, "\n") {
		visible := strings.NewReplacer(ansiGreen, "", ansiReset, "", ansiDefault, "").Replace(line)
		if strings.HasPrefix(visible, "GROUP") {
			header = strings.Index(visible, "WEIGHT")
		} else if strings.HasPrefix(visible, "echo ") {
			row = strings.Index(visible, " 1 ") + 1
		}
	}
	if header < 0 || header != row {
		t.Errorf("WEIGHT at column %d in the header, %d in a row: %q", header, row, last)
	}
	plain := strings.NewReplacer(ansiGreen, "", ansiReset, "", ansiBold, "", ansiDim, "", ansiYellow, "", ansiRed, "", "\x1b[K", "").Replace(last)
	members := memberLines(plain, "echo")
	if len(members) != 2 || members[e.a][5] == "-" || !strings.Contains(plain, "calls since start 300") {
		t.Errorf("last frame:\n%s", plain)
	}
}

func TestTopFormat(t *testing.T) {
	for n, want := range map[uint64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		if got := fmtCount(n); got != want {
			t.Errorf("fmtCount(%d) = %q", n, got)
		}
	}
	if got := sparkline([]float64{0, 1, 4, 8}); got != " ▁▄█" {
		t.Errorf("sparkline = %q", got)
	}
	if got := shorten("unix:/a/very/long/path/to/a/socket", 15); got != "unix:/a…/socket" || len([]rune(got)) != 15 {
		t.Errorf("shorten = %q", got)
	}
	for s, want := range map[float64]string{0: "-", 57e-6: "57µs", 2.5e-3: "2.50ms", 1.5: "1.50s"} {
		if got := fmtLatency(s, 1); got != want {
			t.Errorf("fmtLatency(%v) = %q", s, got)
		}
	}
}
