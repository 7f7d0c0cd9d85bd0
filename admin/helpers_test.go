package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/admin"
	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/dispatchtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup describes a test dispatcher.
type setup struct {
	token     string
	delayA    time.Duration // of the first echo daemon's calls
	noMetrics bool          // no admin.listen: the server keeps no metrics
	reload    func() error  // Options.Reload; nil: a counter (env.reloads)
	noReload  bool          // Options.Reload nil
	sessionLn bool          // the listener in session mode rather than pooled
}

// env is a running dispatcher with its admin API served over HTTP: listener "main"
// (pooled) routes method "secret" to a deny and everything else to group "echo" of two
// Go echo daemons (A, B); group "local" has one echo daemon on a unix socket, reached
// by object "local.*".
type env struct {
	srv     *dispatch.Server
	adm     *admin.Admin
	base    string // http://HOST:PORT
	proxy   string // the dispatcher's listener
	a, b    *bench.EchoServer
	unix    string // group local's member: unix:/path
	token   string
	reloads atomic.Int32
	logs    *observer.ObservedLogs // the admin's log
}

const denyReason = "not exposed here"

func start(t testing.TB, s setup) *env {
	t.Helper()
	e := &env{token: s.token}
	e.a = dispatchtest.Echo(t, "127.0.0.1:0", s.delayA)
	e.b = dispatchtest.Echo(t, "127.0.0.1:0", 0)
	e.unix = "unix:" + filepath.Join(t.TempDir(), "echo.sock")
	dispatchtest.Echo(t, e.unix, 0)

	cfg := config.Defaults()
	cfg.Backends = []config.Backend{
		{Name: "echo", Members: []config.Member{{Address: e.a.Addr().String()}, {Address: e.b.Addr().String()}}},
		{Name: "local", Members: []config.Member{{Address: e.unix}}},
	}
	mode := config.ModePooled
	routes := []config.Route{
		{Match: config.Match{Object: config.StringList{"local.*"}}, To: "local"},
		{Match: config.Match{Method: config.StringList{"secret"}}, Deny: denyReason},
		{To: "echo"},
	}
	if s.sessionLn {
		mode = config.ModeSession
		routes = append(routes[:1], routes[2:]...) // no method rule in session mode
	}
	cfg.Listeners = []config.Listener{{Name: "main", Listen: config.StringList{"127.0.0.1:0"}, Mode: mode, Routes: routes}}
	if !s.noMetrics {
		cfg.Admin.Listen = "127.0.0.1:0"
	}
	cfg.Metrics.Objects = config.StringList{"echo"}
	srv := dispatchtest.Start(t, cfg, zap.NewNop())
	e.srv = srv
	e.proxy = srv.Addrs()[0].String()

	core, logs := observer.New(zapcore.InfoLevel)
	e.logs = logs
	opt := admin.Options{Token: s.token, Log: zap.New(core), Reload: s.reload}
	if opt.Reload == nil && !s.noReload {
		opt.Reload = func() error { e.reloads.Add(1); return nil }
	}
	e.adm = admin.New(srv, opt)
	ln, err := admin.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.adm.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.adm.Shutdown(ctx); err != nil {
			t.Errorf("admin shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("admin Serve: %v", err)
		}
		http.DefaultClient.CloseIdleConnections()
	})
	e.base = "http://" + ln.Addr().String()
	return e
}

// do sends a request to the admin API (with the env's token unless auth is given: ""
// sends none) and returns the status and body.
func (e *env) do(t testing.TB, method, path string, auth ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := e.token
	if len(auth) > 0 {
		tok = auth[0]
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// getJSON GETs path, wants 200 and decodes the JSON answer into v.
func (e *env) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	code, h, b := e.do(t, http.MethodGet, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// member returns the member addr of group as GET /api/v1/groups shows it.
func (e *env) member(t testing.TB, group, addr string) dispatch.MemberInfo {
	t.Helper()
	var gs []dispatch.GroupInfo
	e.getJSON(t, "/api/v1/groups", &gs)
	for _, g := range gs {
		for _, m := range g.Members {
			if g.Name == group && m.Address == addr {
				return m
			}
		}
	}
	t.Fatalf("no member %s in group %s: %+v", addr, group, gs)
	return dispatch.MemberInfo{}
}

// wantError checks an error answer: the status and a JSON {"error": ...} body.
func wantError(t testing.TB, what string, code, wantCode int, h http.Header, b []byte) {
	t.Helper()
	var er admin.Error
	if code != wantCode || h.Get("Content-Type") != "application/json" || json.Unmarshal(b, &er) != nil || er.Error == "" {
		t.Errorf("%s: %d %q %s, want %d with a JSON error", what, code, h.Get("Content-Type"), b, wantCode)
	}
}

// pyroClient is a Pyro4 client speaking JSON-serialized frames.
type pyroClient struct {
	c   net.Conn
	r   *frame.Reader
	seq uint16
}

// dialPyro connects to addr and makes the CONNECT handshake for object.
func dialPyro(t testing.TB, addr, object string) *pyroClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &pyroClient{c: c, r: frame.NewReader(c, 0, frame.Limits{})}
	obj, _ := json.Marshal(object)
	payload := []byte(`{"handshake": "hello", "object": ` + string(obj) + `}`)
	m, err := p.roundTrip(frame.Header{Type: frame.Connect, Serializer: frame.JSON}, payload)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Type != frame.ConnectOK {
		t.Fatalf("CONNECT answered %v: %s", m.Header.Type, m.Payload)
	}
	return p
}

// reply is a message read whole.
type reply struct {
	Header  frame.Header
	Payload []byte
}

func (p *pyroClient) roundTrip(h frame.Header, payload []byte) (reply, error) {
	p.c.SetDeadline(time.Now().Add(10 * time.Second))
	h.Seq = p.seq
	p.seq++
	if _, err := p.c.Write(frame.AppendMessage(nil, h, nil, payload)); err != nil {
		return reply{}, err
	}
	m, err := p.r.Next()
	if err == nil {
		err = p.r.ReadRest(&m)
	}
	if err != nil {
		return reply{}, err
	}
	if m.Header.Seq != h.Seq {
		return reply{}, fmt.Errorf("reply seq %d to request seq %d", m.Header.Seq, h.Seq)
	}
	return reply{m.Header, append([]byte(nil), m.Payload...)}, nil
}

// call calls object.method(arg) and returns the reply's payload; an exception reply is
// an error.
func (p *pyroClient) call(object, method, arg string) (string, error) {
	args, _ := json.Marshal([]any{arg})
	o, _ := json.Marshal(object)
	me, _ := json.Marshal(method)
	payload := `{"object": ` + string(o) + `, "method": ` + string(me) + `, "params": ` + string(args) + `, "kwargs": {}}`
	m, err := p.roundTrip(frame.Header{Type: frame.Invoke, Serializer: frame.JSON}, []byte(payload))
	if err != nil {
		return "", err
	}
	if m.Header.Type != frame.Result {
		return "", fmt.Errorf("answered %v", m.Header.Type)
	}
	if m.Header.Flags.Has(frame.FlagException) {
		return "", fmt.Errorf("exception: %s", m.Payload)
	}
	return string(m.Payload), nil
}

// mustCall calls echo.echo(arg) and checks the echo.
func (p *pyroClient) mustCall(t testing.TB, arg string) {
	t.Helper()
	got, err := p.call("echo", "echo", arg)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := json.Marshal(arg); got != string(want) {
		t.Fatalf("echo(%q) = %s", arg, got)
	}
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func zapString(k, v string) zap.Field { return zap.String(k, v) }
