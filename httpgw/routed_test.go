package httpgw

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/internal/dispatchtest"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
)

// routedDaemonScript serves http.calc and http.secret; argv[1] tags its answers.
const routedDaemonScript = `
import sys
import Pyro4
tag = sys.argv[1]

@Pyro4.expose
class Calc(object):
    def who(self):
        return tag
    def corr(self):
        return str(Pyro4.current_context.correlation_id)
    def add(self, a, b):
        return int(a) + int(b)
    @property
    def name(self):
        return "calc-" + tag

d = Pyro4.Daemon(host="127.0.0.1", port=0)
d.register(Calc(), "http.calc")
d.register(Calc(), "http.secret")
print(d.locationStr, flush=True)
d.requestLoop()
`

// TestRoutedCalls routes the gateway's calls to a backend group by a route table, with
// real Pyro4 daemons: round robin over the members, deny and no-route refusals, a member
// lost (the next one takes the call), every member lost (503), the correlation id at the
// daemon, and the home page's list.
func TestRoutedCalls(t *testing.T) {
	pyro4test.Python(t)
	a := pyro4test.StartDaemon(t, routedDaemonScript, "a")
	b := pyro4test.StartDaemon(t, routedDaemonScript, "b")
	cfg, err := config.ParseConfig([]byte(`
listeners: [{listen: 127.0.0.1:0, backend: ` + a.Line + `}]
backends:
  - name: calc
    members: [` + a.Line + `, ` + b.Line + `]
    health: {interval: 1h}
http:
  - name: web
    listen: 127.0.0.1:0
    routes:
      - match: {object: http.secret}
        deny: secrets stay inside
      - match: {object: [http.calc, "http.ca*"]}
        to: calc
`))
	if err != nil {
		t.Fatal(err)
	}
	srv := dispatchtest.Start(t, cfg, nil)
	reg := prometheus.NewRegistry()
	hm, err := metrics.NewHTTP(reg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	gw, err := New(Config{Backends: srv.RoutedCalls("web"), Objects: cfg.HTTP[0].NamedObjects(), Timeout: 10 * time.Second,
		Name: "web", AccessLog: true, Metrics: hm.Listener("web")}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(gw)
	defer func() {
		hs.Close()
		gw.Close()
	}()
	base := hs.URL

	seen := map[string]int{}
	for range 10 {
		got := do(t, base, call{path: "/pyro/http.calc/who"})
		if got.status != 200 {
			t.Fatalf("who: %d %s", got.status, got.body)
		}
		seen[string(got.body)]++
	}
	if seen[`"a"`] != 5 || seen[`"b"`] != 5 {
		t.Errorf("round robin over two members: %v, want 5 each", seen)
	}
	check := func(c call, status int, body string) response {
		t.Helper()
		got := do(t, base, c)
		if got.status != status || !strings.Contains(string(got.body), body) {
			t.Errorf("%s %s: %d %s, want %d with %s", c.method, c.path, got.status, got.body, status, body)
		}
		return got
	}
	check(call{path: "/pyro/http.calc/add?a=2&b=40"}, 200, "42")
	check(call{method: "POST", path: "/pyro/http.calc/add", ctype: "application/json", body: `{"args": [1, 2]}`}, 200, "3")
	check(call{path: "/pyro/http.calc/name"}, 200, `"calc-`)
	check(call{path: "/pyro/http.calc/$meta"}, 200, `{"methods": ["add", "corr", "who"], "attributes": ["name"]}`)
	check(call{path: "/pyro/http.secret/who"}, 403, `"pyro-dispatch: secrets stay inside"`)
	check(call{path: "/pyro/http.other/who"}, 404, `pyro-dispatch: no route on listener web for this call (object \"http.other\", method \"who\")`)
	check(call{path: "/pyro/private.calc/who"}, 403, "403 Forbidden - access to the requested object has been denied")
	const id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	got := check(call{path: "/pyro/http.calc/corr", header: map[string]string{"X-Pyro-Correlation-Id": id}}, 200, `"`+id+`"`)
	if got.header.Get("X-Pyro-Correlation-Id") != id {
		t.Errorf("correlation id header %q", got.header.Get("X-Pyro-Correlation-Id"))
	}
	home := check(call{path: "/pyro/"}, 200, "http.calc")
	if strings.Contains(string(home.body), "http.ca*") || strings.Contains(string(home.body), "http.secret") {
		t.Errorf("home page lists patterns or denied objects")
	}

	// One member lost: every call is answered by the other one (its pooled connections
	// fail, it is ejected; a call that cannot connect to it tries the next member).
	a.Stop()
	for i := range 6 {
		check(call{path: "/pyro/http.calc/who"}, 200, `"b"`)
		if t.Failed() {
			t.Fatalf("call %d after member a stopped", i)
		}
	}
	b.Stop()
	down := check(call{path: "/pyro/http.calc/who"}, http.StatusServiceUnavailable, "pyro-dispatch: no healthy backend in group calc")
	if _, err := uuid.Parse(down.header.Get("X-Pyro-Correlation-Id")); err != nil {
		t.Errorf("no correlation id with an error: %v", err)
	}

	// Metrics and the access log saw every request.
	const want = `
# HELP pyro_dispatch_http_requests_in_flight HTTP gateway requests being served, by listener.
# TYPE pyro_dispatch_http_requests_in_flight gauge
pyro_dispatch_http_requests_in_flight{listener="web"} 0
# HELP pyro_dispatch_http_requests_total HTTP gateway requests, by listener and status code.
# TYPE pyro_dispatch_http_requests_total counter
pyro_dispatch_http_requests_total{code="200",listener="web"} 22
pyro_dispatch_http_requests_total{code="403",listener="web"} 2
pyro_dispatch_http_requests_total{code="404",listener="web"} 1
pyro_dispatch_http_requests_total{code="503",listener="web"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pyro_dispatch_http_requests_total", "pyro_dispatch_http_requests_in_flight"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "pyro_dispatch_http_request_duration_seconds"); n != 1 || err != nil {
		t.Errorf("%d duration series (%v), want 1", n, err)
	}
	lines := logs.FilterMessage("http").AllUntimed()
	if len(lines) != 26 {
		t.Fatalf("%d access log lines, want 26", len(lines))
	}
	var found bool
	for _, e := range lines {
		f := e.ContextMap()
		if f["corr"] == id {
			found = f["status"] == int64(200) && f["path"] == "/pyro/http.calc/corr" && f["method"] == "GET" && f["listener"] == "web" && f["bytes"] == int64(len(id)+2)
			if !found {
				t.Errorf("access log line %v", f)
			}
		}
	}
	if !found {
		t.Error("no access log line with the request's correlation id")
	}
}
