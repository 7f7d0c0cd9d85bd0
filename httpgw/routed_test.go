package httpgw

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/internal/dispatchtest"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
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
	base := newGateway(t, Config{Backends: srv.RoutedCalls("web"), Objects: cfg.HTTP[0].NamedObjects(), Timeout: 10 * time.Second})

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
	check(call{path: "/pyro/http.calc/who"}, http.StatusServiceUnavailable, "pyro-dispatch: no healthy backend in group calc")
}
