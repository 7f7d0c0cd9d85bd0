package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pyro-dispatch/pyro-dispatch/admin"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
)

func TestHealthAndReady(t *testing.T) {
	e := start(t, setup{})
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		code, _, b := e.do(t, http.MethodGet, path)
		if code != http.StatusOK || string(b) != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, code, b, want)
		}
	}
	// A group with no member in service: not ready, and why.
	e.do(t, http.MethodPost, "/api/v1/groups/local/members/"+url.PathEscape(e.unix)+"/drain")
	code, _, b := e.do(t, http.MethodGet, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "group local has no member in service") {
		t.Errorf("GET /readyz with group local drained: %d %q", code, b)
	}
	e.do(t, http.MethodPost, "/api/v1/groups/local/members/"+url.PathEscape(e.unix)+"/enable")
	if code, _, b := e.do(t, http.MethodGet, "/readyz"); code != http.StatusOK {
		t.Errorf("GET /readyz after enable: %d %q", code, b)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	e := start(t, setup{})
	c := dialPyro(t, e.proxy, "echo")
	for i := range 5 {
		c.mustCall(t, "m"+strconv.Itoa(i))
	}
	code, h, b := e.do(t, http.MethodGet, "/metrics")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %q", code, h.Get("Content-Type"))
	}
	var sum float64
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, `pyro_dispatch_calls_total{`) && strings.Contains(line, `outcome="ok"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	if sum != 5 {
		t.Errorf("pyro_dispatch_calls_total{outcome=ok} sums to %v, want 5", sum)
	}
	for _, name := range []string{"pyro_dispatch_call_duration_seconds_bucket", "pyro_dispatch_backend_up", "go_goroutines"} {
		if !bytes.Contains(b, []byte(name)) {
			t.Errorf("/metrics has no %s", name)
		}
	}
}

// The registry the admin listener serves passes the Prometheus linter, with every kind
// of series present: calls of each outcome kind, objects, pools, member actions.
func TestMetricsLint(t *testing.T) {
	e := start(t, setup{})
	c := dialPyro(t, e.proxy, "echo")
	c.mustCall(t, "x")
	if _, err := c.call("echo", "secret", "x"); err == nil {
		t.Fatal("a call of the denied method went through")
	}
	e.do(t, http.MethodPost, "/api/v1/groups/echo/members/"+e.a.Addr().String()+"/drain")
	e.do(t, http.MethodPost, "/api/v1/groups/echo/members/"+e.a.Addr().String()+"/enable")
	problems, err := testutil.GatherAndLint(e.srv.Metrics().Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestReadEndpoints(t *testing.T) {
	e := start(t, setup{})
	c := dialPyro(t, e.proxy, "echo")
	const calls = 7
	if _, err := c.call("echo", "secret", "x"); err == nil || !strings.Contains(err.Error(), denyReason) {
		t.Fatalf("denied call: %v", err)
	}
	for i := range calls {
		c.mustCall(t, "r"+strconv.Itoa(i))
	}

	var cfg map[string]any
	e.getJSON(t, "/api/v1/config", &cfg)
	ls, _ := cfg["listeners"].([]any)
	if len(ls) != 1 || ls[0].(map[string]any)["name"] != "main" || ls[0].(map[string]any)["mode"] != "pooled" {
		t.Errorf("config listeners: %v", cfg["listeners"])
	}
	if adm, _ := cfg["admin"].(map[string]any); adm["listen"] != "127.0.0.1:0" {
		t.Errorf("config admin: %v", cfg["admin"])
	}
	if to, _ := cfg["timeouts"].(map[string]any); to["dial"] != "5s" {
		t.Errorf("config timeouts, want YAML's units: %v", cfg["timeouts"])
	}

	var listeners []dispatch.ListenerInfo
	var learned map[string]map[string]string
	e.getJSON(t, "/api/v1/learned", &learned)
	if learned == nil || len(learned) != 0 {
		t.Errorf("learned without a name-server view: %v", learned)
	}
	e.getJSON(t, "/api/v1/listeners", &listeners)
	if len(listeners) != 1 || listeners[0].Name != "main" || len(listeners[0].Addresses) != 1 ||
		listeners[0].Addresses[0] != e.proxy || listeners[0].Clients != 1 {
		t.Errorf("listeners: %+v", listeners)
	}

	var routes []dispatch.RoutesInfo
	e.getJSON(t, "/api/v1/routes", &routes)
	if len(routes) != 1 || routes[0].Listener != "main" || len(routes[0].Rules) != 3 {
		t.Errorf("routes: %+v", routes)
	}

	var groups []dispatch.GroupInfo
	e.getJSON(t, "/api/v1/groups", &groups)
	if len(groups) != 2 || groups[0].Name != "echo" || len(groups[0].Members) != 2 || groups[1].Name != "local" {
		t.Fatalf("groups: %+v", groups)
	}
	for _, m := range groups[0].Members {
		if !m.Up || m.Drained || m.Status != "up" || m.InFlight != 0 {
			t.Errorf("member: %+v", m)
		}
	}

	var pools []dispatch.PoolInfo
	e.getJSON(t, "/api/v1/pools", &pools)
	var dials uint64
	for _, p := range pools {
		if p.Listener != "main" || p.Group != "echo" {
			t.Errorf("pool: %+v", p)
		}
		dials += p.Dials
	}
	if len(pools) != 2 || dials < 2 {
		t.Errorf("pools: %+v", pools)
	}

	var sessions []dispatch.SessionInfo
	e.getJSON(t, "/api/v1/sessions", &sessions)
	// The session counts its calls (the denied one too once dispatch's refuseCall ends
	// the call it noted: see the report) and has none in progress.
	if len(sessions) != 1 || sessions[0].Calls < calls || sessions[0].Calls > calls+1 || sessions[0].Listener != "main" ||
		sessions[0].Client != c.c.LocalAddr().String() || sessions[0].Mode != "pooled" || sessions[0].Corr != "" || sessions[0].Age != 0 {
		t.Errorf("sessions: %+v", sessions)
	}

	var st admin.Stats
	e.getJSON(t, "/api/v1/stats", &st)
	if !st.Metrics || len(st.History) != metrics.HistorySeconds-1 || st.Sessions != 1 {
		t.Errorf("stats: metrics %v, %d points, %d sessions", st.Metrics, len(st.History), st.Sessions)
	}
	tot := st.Totals
	if tot.Calls != calls+1 || tot.Errors != 1 || tot.Outcomes["ok"] != calls || tot.Outcomes["denied"] != 1 ||
		tot.Accepted != 1 || tot.RequestBytes == 0 || tot.ReplyBytes == 0 {
		t.Errorf("stats totals: %+v", tot)
	}
	var perMember uint64
	for _, m := range st.Members {
		if m.Group == "echo" {
			perMember += m.Calls
		} else if m.Group != metrics.None || m.Calls != 1 || m.Errors != 1 {
			t.Errorf("stats member: %+v", m)
		}
	}
	if perMember != calls {
		t.Errorf("stats members: %+v", st.Members)
	}
	if len(st.Objects) == 0 || st.Objects[0].Object != "echo" || st.Objects[0].Method != "echo" || st.Objects[0].Calls != calls {
		t.Errorf("stats objects: %+v", st.Objects)
	}
	if len(st.Slowest) == 0 || st.Slowest[0].Corr == "" || st.Slowest[0].Listener != "main" {
		t.Errorf("stats slowest: %+v", st.Slowest)
	}
	// The calls ended within the last few seconds: the history holds them all (the
	// current second is not in it yet, so wait for it to end).
	waitFor(t, 2*time.Second, "the calls in the history", func() bool {
		e.getJSON(t, "/api/v1/stats?seconds=10", &st)
		var n uint64
		for _, p := range st.History {
			n += p.Calls
		}
		return n == calls+1
	})
	if len(st.History) != 10 || st.Recent.Seconds != admin.RecentSeconds || st.Recent.CallsPerSecond != float64(calls+1)/admin.RecentSeconds {
		t.Errorf("stats?seconds=10: %d points, recent %+v", len(st.History), st.Recent)
	}
	if last := st.History[len(st.History)-1]; last.Time != st.Last.Time || st.Time.Unix() <= last.Time {
		t.Errorf("stats last %+v, history ends %+v, at %v", st.Last, last, st.Time)
	}

	// A drain logs a warning: the recent errors show it.
	e.do(t, http.MethodPost, "/api/v1/groups/echo/members/"+e.b.Addr().String()+"/drain")
	var entries []metrics.LogEntry
	e.getJSON(t, "/api/v1/errors", &entries)
	if len(entries) == 0 || entries[len(entries)-1].Message != "backend member drained" || entries[len(entries)-1].Level != "warn" {
		t.Errorf("errors: %+v", entries)
	}
}

func TestStatsParams(t *testing.T) {
	e := start(t, setup{})
	var st admin.Stats
	e.getJSON(t, "/api/v1/stats?seconds=1&objects=0", &st)
	if len(st.History) != 1 || st.Objects == nil || st.Slowest == nil || st.Members == nil {
		t.Errorf("stats?seconds=1: %+v", st)
	}
	for _, q := range []string{"seconds=0", "seconds=301", "seconds=x", "objects=-1"} {
		code, h, b := e.do(t, http.MethodGet, "/api/v1/stats?"+q)
		wantError(t, "stats?"+q, code, http.StatusBadRequest, h, b)
	}
	// Lists are [], never null, before any call.
	for _, path := range []string{"/api/v1/sessions", "/api/v1/pools", "/api/v1/errors"} {
		if _, _, b := e.do(t, http.MethodGet, path); string(b) != "[]\n" {
			t.Errorf("GET %s with none: %q", path, b)
		}
	}
}

func TestNoMetrics(t *testing.T) {
	e := start(t, setup{noMetrics: true})
	code, _, b := e.do(t, http.MethodGet, "/metrics")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "admin.listen") {
		t.Errorf("GET /metrics without metrics: %d %q", code, b)
	}
	var st admin.Stats
	e.getJSON(t, "/api/v1/stats", &st)
	if st.Metrics || len(st.History) != 0 {
		t.Errorf("stats without metrics: %+v", st)
	}
	var entries []metrics.LogEntry
	e.getJSON(t, "/api/v1/errors", &entries)
}

func TestNotFoundAndMethods(t *testing.T) {
	e := start(t, setup{})
	cases := []struct {
		method, path string
		code         int
		allow        string
	}{
		{"GET", "/api/v1/nope", 404, ""},
		{"GET", "/api/v1/sessions/1", 404, ""},
		{"POST", "/api/v1/groups/echo/members/" + e.a.Addr().String() + "/explode", 404, ""},
		{"POST", "/api/v1/groups/echo/" + e.a.Addr().String() + "/drain", 404, ""},
		{"POST", "/api/v1/groups", 405, "GET, HEAD"},
		{"POST", "/api/v1/stats", 405, "GET, HEAD"},
		{"DELETE", "/api/v1/sessions", 405, "GET, HEAD"},
		{"GET", "/api/v1/reload", 405, "POST"},
		{"GET", "/api/v1/groups/echo/members/" + e.a.Addr().String() + "/drain", 405, "POST"},
		{"PUT", "/api/v1/sessions/1/close", 405, "POST"},
	}
	for _, c := range cases {
		code, h, b := e.do(t, c.method, c.path)
		wantError(t, c.method+" "+c.path, code, c.code, h, b)
		if h.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, h.Get("Allow"), c.allow)
		}
	}
	if m := e.member(t, "echo", e.a.Addr().String()); m.Drained {
		t.Errorf("a GET drained the member: %+v", m)
	}
}

// Drain: no new call goes to the member, the call in flight on it finishes; enable
// brings it back. Each action is logged with who asked.
func TestDrainEnable(t *testing.T) {
	const delay = 500 * time.Millisecond
	e := start(t, setup{delayA: delay})
	a, b := e.a.Addr().String(), e.b.Addr().String()
	path := func(addr, action string) string {
		return "/api/v1/groups/echo/members/" + url.PathEscape(addr) + "/" + action
	}
	post := func(addr, action string) admin.ActionResult {
		t.Helper()
		code, _, body := e.do(t, http.MethodPost, path(addr, action))
		var res admin.ActionResult
		if code != http.StatusOK || json.Unmarshal(body, &res) != nil {
			t.Fatalf("POST %s: %d %s", path(addr, action), code, body)
		}
		return res
	}

	// A call in flight on A (B drained so that it goes there).
	post(b, "drain")
	c := dialPyro(t, e.proxy, "echo")
	var wg sync.WaitGroup
	var inFlightErr error
	wg.Go(func() {
		_, inFlightErr = c.call("echo", "echo", "in flight")
	})
	waitFor(t, 2*time.Second, "A's call in flight", func() bool { return e.member(t, "echo", a).InFlight == 1 })
	post(b, "enable")
	res := post(a, "drain")
	if res.Action != "drain" || res.Group != "echo" || res.Member == nil || res.Member.Address != a || !res.Member.Drained ||
		res.Member.Up || res.Member.Status != "drained" || !strings.HasPrefix(res.By, "admin API from 127.0.0.1:") {
		t.Errorf("drain answer: %+v (member %+v)", res, res.Member)
	}
	if m := e.member(t, "echo", a); !m.Drained || m.Up || m.InFlight != 1 {
		t.Errorf("A drained with its call in flight: %+v", m)
	}
	wg.Wait()
	if inFlightErr != nil {
		t.Fatalf("the call in flight on the drained member: %v", inFlightErr)
	}
	if n := e.a.Stats().Calls; n != 1 {
		t.Fatalf("A answered %d calls, want the one in flight", n)
	}

	// Drained: every new call, from this client and a new one, goes to B.
	c2 := dialPyro(t, e.proxy, "echo")
	before := e.b.Stats().Calls
	for i := range 10 {
		c.mustCall(t, "after drain "+strconv.Itoa(i))
		c2.mustCall(t, "new client "+strconv.Itoa(i))
	}
	if na, nb := e.a.Stats().Calls, e.b.Stats().Calls-before; na != 1 || nb != 20 {
		t.Errorf("after drain: A answered %d more calls, B %d; want 0 and 20", na-1, nb)
	}

	// Enabled: A takes calls again (round robin: half of them).
	res = post(a, "enable")
	if res.Member == nil || !res.Member.Up || res.Member.Drained || res.Member.Status != "up" {
		t.Errorf("enable answer: %+v", res.Member)
	}
	for i := range 6 {
		c.mustCall(t, "after enable "+strconv.Itoa(i))
	}
	if na := e.a.Stats().Calls - 1; na != 3 {
		t.Errorf("after enable A answered %d of 6 calls, want 3", na)
	}

	// Unknown member or group: 404.
	for _, p := range []string{path("127.0.0.1:1", "drain"), "/api/v1/groups/nope/members/" + a + "/drain", path(e.unix, "enable")} {
		code, h, body := e.do(t, http.MethodPost, p)
		wantError(t, "POST "+p, code, http.StatusNotFound, h, body)
	}

	// Each action logged, with who asked.
	var actions []string
	for _, le := range e.logs.FilterMessage("admin action").All() {
		f := le.ContextMap()
		if by, _ := f["by"].(string); !strings.HasPrefix(by, "admin API from 127.0.0.1:") {
			t.Errorf("logged action without who asked: %v", f)
		}
		actions = append(actions, f["action"].(string)+" "+f["member"].(string))
	}
	want := []string{"drain " + b, "enable " + b, "drain " + a, "enable " + a}
	if strings.Join(actions, ",") != strings.Join(want, ",") {
		t.Errorf("logged actions %q, want %q", actions, want)
	}
	if n := e.logs.FilterMessage("admin action failed").Len(); n != 3 {
		t.Errorf("%d failed actions logged, want 3", n)
	}
}

// A member address with '/' (a unix socket) is taken escaped and as is.
func TestDrainUnixMember(t *testing.T) {
	e := start(t, setup{})
	for _, p := range []string{
		"/api/v1/groups/local/members/" + url.PathEscape(e.unix) + "/drain",
		"/api/v1/groups/local/members/" + e.unix + "/enable",
		"/api/v1/groups/local/members/" + strings.ReplaceAll(e.unix, "/", "%2F") + "/drain",
	} {
		code, _, b := e.do(t, http.MethodPost, p)
		var res admin.ActionResult
		if code != http.StatusOK || json.Unmarshal(b, &res) != nil || res.Member == nil || res.Member.Address != e.unix ||
			res.Member.Drained != strings.HasSuffix(p, "/drain") {
			t.Errorf("POST %s: %d %s", p, code, b)
		}
	}
	if m := e.member(t, "local", e.unix); !m.Drained {
		t.Errorf("unix member: %+v", m)
	}
}

func TestCloseSession(t *testing.T) {
	e := start(t, setup{})
	c := dialPyro(t, e.proxy, "echo")
	c.mustCall(t, "hello")
	other := dialPyro(t, e.proxy, "echo")
	var sessions []dispatch.SessionInfo
	e.getJSON(t, "/api/v1/sessions", &sessions)
	if len(sessions) != 2 {
		t.Fatalf("sessions: %+v", sessions)
	}
	var id uint64
	for _, s := range sessions {
		if s.Client == c.c.LocalAddr().String() {
			id = s.ID
		}
	}
	p := "/api/v1/sessions/" + strconv.FormatUint(id, 10) + "/close"
	code, _, b := e.do(t, http.MethodPost, p)
	var res admin.ActionResult
	if code != http.StatusOK || json.Unmarshal(b, &res) != nil || res.Action != "close" || res.Session != id {
		t.Fatalf("POST %s: %d %s", p, code, b)
	}
	// The client sees its connection closed; the other one carries on.
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Errorf("closed client reads %v, want EOF", err)
	}
	other.mustCall(t, "still here")
	waitFor(t, 2*time.Second, "one session left", func() bool {
		e.getJSON(t, "/api/v1/sessions", &sessions)
		return len(sessions) == 1
	})
	code, h, b := e.do(t, http.MethodPost, p)
	wantError(t, "close again", code, http.StatusNotFound, h, b)
	code, h, b = e.do(t, http.MethodPost, "/api/v1/sessions/x/close")
	wantError(t, "close x", code, http.StatusBadRequest, h, b)
	if e.logs.FilterMessage("admin action").FilterField(zapString("action", "close")).Len() != 1 {
		t.Errorf("close not logged: %v", e.logs.All())
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(ne.Err.Error(), "reset")
}

func TestReload(t *testing.T) {
	e := start(t, setup{})
	code, _, b := e.do(t, http.MethodPost, "/api/v1/reload")
	var res admin.ActionResult
	if code != http.StatusOK || json.Unmarshal(b, &res) != nil || res.Action != "reload" || e.reloads.Load() != 1 {
		t.Errorf("POST /api/v1/reload: %d %s, %d reloads", code, b, e.reloads.Load())
	}

	bad := start(t, setup{reload: func() error { return errors.New("line 3: bad indentation") }})
	code, h, b := bad.do(t, http.MethodPost, "/api/v1/reload")
	wantError(t, "failed reload", code, http.StatusUnprocessableEntity, h, b)
	if !strings.Contains(string(b), "line 3: bad indentation") {
		t.Errorf("failed reload: %s", b)
	}

	none := start(t, setup{noReload: true})
	code, h, b = none.do(t, http.MethodPost, "/api/v1/reload")
	wantError(t, "no reload", code, http.StatusNotImplemented, h, b)
}

func TestToken(t *testing.T) {
	const token = "s3cret-token"
	e := start(t, setup{token: token})
	for _, path := range []string{"/", "/metrics", "/api/v1/groups", "/api/v1/stats", "/api/v1/config", "/api/v1/nope"} {
		for _, auth := range []string{"", "wrong", token + "x", token[:4]} {
			code, h, _ := e.do(t, http.MethodGet, path, auth)
			if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("GET %s with token %q: %d", path, auth, code)
			}
		}
		if code, _, b := e.do(t, http.MethodGet, path); code != http.StatusOK && path != "/api/v1/nope" {
			t.Errorf("GET %s with the token: %d %s", path, code, b)
		}
	}
	code, h, b := e.do(t, http.MethodGet, "/api/v1/groups", "")
	wantError(t, "no token", code, http.StatusUnauthorized, h, b)
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, _ := e.do(t, http.MethodGet, path, ""); code != http.StatusOK {
			t.Errorf("GET %s without the token: %d", path, code)
		}
	}
	// The page takes ?token= (the API does not).
	if code, h, b := e.do(t, http.MethodGet, "/?token="+token, ""); code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
		!bytes.Contains(b, []byte("uPlot")) {
		t.Errorf("GET /?token=: %d %q", code, h.Get("Content-Type"))
	}
	if code, _, _ := e.do(t, http.MethodGet, "/?token=wrong", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /?token=wrong: %d", code)
	}
	if code, _, _ := e.do(t, http.MethodGet, "/api/v1/groups?token="+token, ""); code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/groups?token=: %d", code)
	}
	// Actions too; who asked says the token was used.
	if code, _, _ := e.do(t, http.MethodPost, "/api/v1/reload", ""); code != http.StatusUnauthorized || e.reloads.Load() != 0 {
		t.Errorf("POST /api/v1/reload without the token: %d, %d reloads", code, e.reloads.Load())
	}
	code, _, b = e.do(t, http.MethodPost, "/api/v1/reload")
	var res admin.ActionResult
	if code != http.StatusOK || json.Unmarshal(b, &res) != nil || !strings.HasSuffix(res.By, "(token)") || e.reloads.Load() != 1 {
		t.Errorf("POST /api/v1/reload with the token: %d %s", code, b)
	}
}

// GET /debug/pprof/goroutine: every goroutine's stack, behind the token; a client's
// session shows there while it is connected and is gone once it left.
func TestGoroutineDump(t *testing.T) {
	const token = "dump-token"
	e := start(t, setup{token: token})
	if code, _, _ := e.do(t, http.MethodGet, "/debug/pprof/goroutine?debug=2", ""); code != http.StatusUnauthorized {
		t.Errorf("without the token: %d", code)
	}
	dump := func(debug string) (http.Header, string) {
		code, h, b := e.do(t, http.MethodGet, "/debug/pprof/goroutine?debug="+debug)
		if code != http.StatusOK {
			t.Fatalf("debug=%s: %d %s", debug, code, b)
		}
		return h, string(b)
	}
	const session = "dispatch.(*Session).run"
	p := dialPyro(t, e.proxy, "echo")
	p.mustCall(t, "x")
	if h, b := dump("2"); !strings.HasPrefix(h.Get("Content-Type"), "text/plain") || !strings.Contains(b, "goroutine ") || !strings.Contains(b, session) {
		t.Errorf("debug=2 with a client connected: %q, no %s in\n%s", h.Get("Content-Type"), session, b)
	}
	if _, b := dump("1"); !strings.Contains(b, "goroutine profile: total ") {
		t.Errorf("debug=1: %.300s", b)
	}
	if h, b := dump("0"); h.Get("Content-Type") != "application/octet-stream" || !strings.HasPrefix(b, "\x1f\x8b") {
		t.Errorf("debug=0: %q, %q", h.Get("Content-Type"), b[:min(len(b), 8)])
	}
	p.c.Close()
	waitFor(t, 5*time.Second, "the session's goroutine to end", func() bool {
		_, b := dump("2")
		return !strings.Contains(b, session)
	})
}

// Another site's page cannot post actions through a browser (no token configured).
func TestCrossOrigin(t *testing.T) {
	e := start(t, setup{})
	req, _ := http.NewRequest(http.MethodPost, e.base+"/api/v1/reload", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, "cross-site POST", resp.StatusCode, http.StatusForbidden, resp.Header, b)
	if e.reloads.Load() != 0 {
		t.Error("a cross-site POST reloaded")
	}
	// The page's own requests are same-origin.
	req, _ = http.NewRequest(http.MethodPost, e.base+"/api/v1/reload", nil)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || e.reloads.Load() != 1 {
		t.Errorf("same-origin POST: %d", resp.StatusCode)
	}
}

func TestDashboardPage(t *testing.T) {
	e := start(t, setup{})
	code, h, b := e.do(t, http.MethodGet, "/")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", code, h.Get("Content-Type"))
	}
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'sha256-") {
		t.Errorf("CSP %q", csp)
	}
	// Self-contained: nothing to fetch but the API.
	for _, s := range []string{"<script src", "<link rel=\"stylesheet\"", "http://", "https://"} {
		if i := bytes.Index(b, []byte(s)); i >= 0 && !bytes.Contains(b[i:min(i+60, len(b))], []byte("github.com/leeoniya/uPlot")) {
			t.Errorf("the page refers to %q: %s", s, b[i:min(i+80, len(b))])
		}
	}
	if code, _, _ := e.do(t, http.MethodGet, "/index.html"); code != http.StatusNotFound {
		t.Errorf("GET /index.html: %d", code)
	}
}

func TestServeShutdown(t *testing.T) {
	e := start(t, setup{})
	a := admin.New(e.srv, admin.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("still serving after Shutdown")
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestListenAndReadToken(t *testing.T) {
	dir := t.TempDir()
	ln, err := admin.Listen("unix:" + dir + "/admin.sock")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Listen("unix:" + dir + "/admin.sock"); err == nil {
		t.Error("a second Listen on a live socket worked")
	}
	ln.Close()
	if _, err := admin.Listen("nope"); err == nil {
		t.Error("Listen(nope) worked")
	}
	f := dir + "/token"
	writeFile(t, f, "  tok\n")
	if tok, err := admin.ReadToken(f); err != nil || tok != "tok" {
		t.Errorf("ReadToken: %q %v", tok, err)
	}
	writeFile(t, f, " \n")
	if _, err := admin.ReadToken(f); err == nil {
		t.Error("ReadToken of an empty file worked")
	}
}
