package httpgw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

const nsScript = `
import sys
import Pyro4, Pyro4.naming
uri, daemon, bc = Pyro4.naming.startNS(host="127.0.0.1", port=0, enableBroadcast=False)
print(daemon.locationStr, flush=True)
daemon.requestLoop()
`

const daemonScript = `
import sys, time
import Pyro4
Pyro4.config.SERIALIZERS_ACCEPTED = {"json", "serpent", "marshal"}
ns_port, down_port = int(sys.argv[1]), int(sys.argv[2])

@Pyro4.expose
class Echo(object):
    def echo(self, message=None):
        return message
    def kw(self, **kw):
        return [[k, v] for k, v in kw.items()]
    def types(self, **kw):
        return [type(v).__name__ for v in kw.values()]
    def fail(self, **kw):
        raise ValueError("this is a test error")
    def failu(self):
        raise KeyError("cl\u00e9 \u2603")
    def unicode(self):
        return "h\u00e9llo \u2603 \U0001F600 \x7f"
    def sleep(self, secs="0.5"):
        time.sleep(float(secs))
        return "slept"
    def nothing(self):
        return None
    @property
    def value(self):
        return 42
    @Pyro4.oneway
    def fire(self, **kw):
        raise ValueError("lost")

class Hidden(object):
    def secret(self):
        return 1

d = Pyro4.Daemon(host="127.0.0.1", port=0)
ns = Pyro4.locateNS("127.0.0.1", ns_port)
uri = d.register(Echo(), "http_echo")
ns.register("http.echo", uri)
ns.register("http.echoXYZ", uri)
ns.register("private.echo", uri)
ns.register("http.hidden", d.register(Hidden(), "http_hidden"))
ns.register("http.gone", "PYRO:http_gone@" + d.locationStr)
ns.register("http.down", "PYRO:http_down@127.0.0.1:%d" % down_port)
print(d.locationStr, flush=True)
d.requestLoop()
`

const pyGatewayScript = `
import sys
import Pyro4
Pyro4.config.NS_HOST = "127.0.0.1"
Pyro4.config.NS_PORT = int(sys.argv[1])
from Pyro4.utils import httpgateway
httpgateway.main(sys.argv[2:])
`

// reregisterScript registers http.moving in the name server at port argv[1] as argv[2],
// or as http.echo's URI when argv[2] is empty.
const reregisterScript = `
import sys
import Pyro4
ns = Pyro4.locateNS("127.0.0.1", int(sys.argv[1]))
target = sys.argv[2] or ns.lookup("http.echo")
ns.remove("http.moving")
ns.register("http.moving", target)
`

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// world is a name server, a daemon with http.* objects and Pyro4's own gateway.
type world struct {
	ns     string // host:port of the name server
	pyGW   string // base URL of pyro4-httpgateway
	pyGWKy string // base URL of pyro4-httpgateway with -g s3cr3t
	pyGWT  string // base URL of pyro4-httpgateway with -t 0.3
}

func startWorld(t *testing.T) *world {
	pyro4test.Python(t)
	ns := pyro4test.StartDaemon(t, nsScript)
	_, nsPort, _ := net.SplitHostPort(ns.Line)
	pyro4test.StartDaemon(t, daemonScript, nsPort, strconv.Itoa(freePort(t)))
	w := &world{ns: ns.Line}
	for i, extra := range [][]string{nil, {"-g", "s3cr3t"}, {"-t", "0.3"}} {
		port := strconv.Itoa(freePort(t))
		args := append([]string{nsPort, "-H", "127.0.0.1", "-p", port, "-e", `http\.`}, extra...)
		pyro4test.StartDaemon(t, pyGatewayScript, args...)
		waitListening(t, "127.0.0.1:"+port)
		*[]*string{&w.pyGW, &w.pyGWKy, &w.pyGWT}[i] = "http://127.0.0.1:" + port
	}
	return w
}

func newGateway(t *testing.T, cfg Config) string {
	t.Helper()
	gw, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
	return srv.URL
}

var client = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	status int
	header http.Header
	body   []byte
}

type call struct {
	method, path string
	ctype, body  string
	header       map[string]string
}

func do(t *testing.T, base string, c call) response {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(method, base+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// compare modes
const (
	exact  = iota // byte-identical bodies
	jsonEq        // equal as JSON values
	metaEq        // equal as JSON with the lists of $meta compared as sets
)

func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, b)
	}
	return v
}

func sortLists(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, x := range m {
		if l, ok := x.([]any); ok {
			s := make([]string, len(l))
			for i, e := range l {
				s[i] = fmt.Sprint(e)
			}
			slices.Sort(s)
			m[k] = s
		}
	}
	return m
}

func TestCompatibleWithPyro4Gateway(t *testing.T) {
	w := startWorld(t)
	ours := newGateway(t, Config{NameServer: w.ns, Timeout: 20 * time.Second})
	oursKey := newGateway(t, Config{NameServer: w.ns, GatewayKey: "s3cr3t", Timeout: 20 * time.Second})
	oursT := newGateway(t, Config{NameServer: w.ns, Timeout: 300 * time.Millisecond})

	cases := []struct {
		name   string
		c      call
		mode   int
		keyed  bool
		timed  bool // against -t 0.3 and Timeout 300ms
		status int  // when it differs from Pyro4's on purpose (503)
	}{
		{name: "redirect", c: call{path: "/"}},
		{name: "redirect-post", c: call{method: "POST", path: "/"}},
		{name: "not-found", c: call{path: "/foo"}},
		{name: "pyro-no-slash", c: call{path: "/pyro"}},
		{name: "method-not-allowed", c: call{method: "PUT", path: "/pyro/http.echo/echo"}},
		{name: "delete-not-allowed", c: call{method: "DELETE", path: "/nothing/here/pyro/"}},
		{name: "no-method", c: call{path: "/pyro/http.echo"}},
		{name: "no-method-slash", c: call{path: "/pyro/http.echo/"}},
		{name: "not-exposed", c: call{path: "/pyro/private.echo/echo?message=x"}},
		{name: "echo", c: call{path: "/pyro/http.echo/echo?message=hello"}},
		{name: "echo-plus", c: call{path: "/pyro/http.echo/echo?message=a+b%20c%26d"}},
		{name: "echo-none", c: call{path: "/pyro/http.echo/echo"}},
		{name: "kw-order", c: call{path: "/pyro/http.echo/kw?z=1&b=x&b=y&c=&d&a=%2F"}},
		{name: "types", c: call{path: "/pyro/http.echo/types?a=1&b=2.5&c=true"}},
		{name: "semicolon", c: call{path: "/pyro/http.echo/kw?a=1;b=2"}},
		{name: "form", c: call{method: "POST", path: "/pyro/http.echo/kw?a=3&q=1", ctype: "application/x-www-form-urlencoded", body: "b=2&a=1"}},
		{name: "form-charset", c: call{method: "POST", path: "/pyro/http.echo/kw", ctype: "application/x-www-form-urlencoded; charset=utf-8", body: "x=1"}},
		{name: "text-body-ignored", c: call{method: "POST", path: "/pyro/http.echo/kw?a=1", ctype: "text/plain", body: "b=2"}},
		{name: "daemon-exception", c: call{path: "/pyro/http.echo/fail?x=1"}},
		{name: "daemon-exception-unicode", c: call{path: "/pyro/http.echo/failu"}},
		{name: "head-not-allowed", c: call{method: "HEAD", path: "/pyro/http.echo/echo"}},
		{name: "post-no-content-type", c: call{method: "POST", path: "/pyro/http.echo/kw?a=1", body: "b=2"}},
		{name: "escaped-slash", c: call{path: "/pyro/http.echo%2Fx/echo"}, mode: jsonEq},
		{name: "double-slash", c: call{path: "/pyro//http.echo/echo"}},
		{name: "meta-oneway", c: call{path: "/pyro/http.echo/$meta", header: map[string]string{"X-Pyro-Options": "oneway"}}, mode: metaEq},
		{name: "unicode", c: call{path: "/pyro/http.echo/unicode"}},
		{name: "nothing", c: call{path: "/pyro/http.echo/nothing"}},
		{name: "attribute", c: call{path: "/pyro/http.echo/value"}},
		{name: "attribute-params", c: call{path: "/pyro/http.echo/value?x=1"}, mode: jsonEq},
		{name: "meta", c: call{path: "/pyro/http.echo/$meta?ignored=1"}, mode: metaEq},
		{name: "unknown-method", c: call{path: "/pyro/http.echo/nosuchmethod"}, mode: jsonEq},
		{name: "unknown-name", c: call{path: "/pyro/http.nothere/echo"}, mode: jsonEq},
		{name: "greedy", c: call{path: "/pyro/http.echo/x/echo"}, mode: jsonEq},
		{name: "expose-prefix", c: call{path: "/pyro/http.echoXYZ/echo?message=p"}},
		{name: "not-in-daemon", c: call{path: "/pyro/http.gone/echo"}, mode: jsonEq},
		{name: "daemon-down", c: call{path: "/pyro/http.down/echo"}, mode: jsonEq, status: http.StatusServiceUnavailable},
		{name: "exposes-nothing", c: call{path: "/pyro/http.hidden/secret"}, mode: jsonEq},
		{name: "oneway-header", c: call{path: "/pyro/http.echo/echo?message=x", header: map[string]string{"X-Pyro-Options": "oneway"}}},
		{name: "oneway-header-list", c: call{path: "/pyro/http.echo/echo?message=x", header: map[string]string{"X-Pyro-Options": "foo,oneway"}}},
		{name: "oneway-header-space", c: call{path: "/pyro/http.echo/echo?message=x", header: map[string]string{"X-Pyro-Options": "foo, oneway"}}},
		{name: "oneway-attribute", c: call{path: "/pyro/http.echo/value", header: map[string]string{"X-Pyro-Options": "oneway"}}},
		{name: "oneway-daemon", c: call{path: "/pyro/http.echo/fire?x=1"}},
		{name: "corr-braces", c: call{path: "/pyro/http.echo/echo?message=c", header: map[string]string{"X-Pyro-Correlation-Id": "{8399A042-AAEB-40DD-877E-E5C1075F784D}"}}},
		{name: "corr-bare", c: call{path: "/pyro/http.echo/echo?message=c", header: map[string]string{"X-Pyro-Correlation-Id": "8399a042aaeb40dd877ee5c1075f784d"}}},
		{name: "corr-urn", c: call{path: "/pyro/http.echo/$meta", header: map[string]string{"X-Pyro-Correlation-Id": "urn:uuid:8399a042-aaeb-40dd-877e-e5c1075f784d"}}, mode: metaEq},
		{name: "corr-bad", c: call{path: "/pyro/http.echo/echo", header: map[string]string{"X-Pyro-Correlation-Id": "nope"}}, mode: jsonEq},
		{name: "corr-bad-unknown-name", c: call{path: "/pyro/http.nothere/echo", header: map[string]string{"X-Pyro-Correlation-Id": "nope"}}, mode: jsonEq},
		{name: "key-header", keyed: true, c: call{path: "/pyro/http.echo/kw?a=1", header: map[string]string{"X-Pyro-Gateway-Key": "s3cr3t"}}},
		{name: "key-param", keyed: true, c: call{path: "/pyro/http.echo/kw?a=1&$key=s3cr3t"}},
		{name: "key-header-wins", keyed: true, c: call{path: "/pyro/http.echo/kw?a=1&$key=wrong", header: map[string]string{"X-Pyro-Gateway-Key": "s3cr3t"}}},
		{name: "key-wrong", keyed: true, c: call{path: "/pyro/http.echo/kw?$key=wrong"}},
		{name: "key-missing", keyed: true, c: call{path: "/pyro/http.echo/kw"}},
		{name: "key-before-expose", keyed: true, c: call{path: "/pyro/private.echo/kw"}},
		{name: "key-then-expose", keyed: true, c: call{path: "/pyro/private.echo/kw?$key=s3cr3t"}},
		{name: "timeout", timed: true, c: call{path: "/pyro/http.echo/sleep?secs=1"}, mode: jsonEq, status: http.StatusGatewayTimeout},
		{name: "within-timeout", timed: true, c: call{path: "/pyro/http.echo/sleep?secs=0.05"}},
		{name: "key-passed-without-g", c: call{path: "/pyro/http.echo/kw?$key=k"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pyBase, goBase := w.pyGW, ours
			if tc.keyed {
				pyBase, goBase = w.pyGWKy, oursKey
			}
			if tc.timed {
				pyBase, goBase = w.pyGWT, oursT
			}
			want := do(t, pyBase, tc.c)
			got := do(t, goBase, tc.c)
			t.Logf("Pyro4: %d %q", want.status, want.body)
			wantStatus := want.status
			if tc.status != 0 {
				wantStatus = tc.status
			}
			if got.status != wantStatus {
				t.Fatalf("status %d, want %d (Pyro4: %d %q; ours: %q)", got.status, wantStatus, want.status, want.body, got.body)
			}
			for _, h := range []string{"Content-Type", "Location"} {
				if g, p := got.header.Get(h), want.header.Get(h); g != p {
					t.Errorf("%s %q, Pyro4 %q", h, g, p)
				}
			}
			// Pyro4 sends the correlation id with results only; ours is in every answer to
			// a call that got one (errors too).
			gc, pc := got.header.Get("X-Pyro-Correlation-Id"), want.header.Get("X-Pyro-Correlation-Id")
			if pc != "" && gc == "" || tc.c.header["X-Pyro-Correlation-Id"] != "" && pc != "" && gc != pc {
				t.Errorf("X-Pyro-Correlation-Id %q, Pyro4 %q", gc, pc)
			}
			switch tc.mode {
			case exact:
				if !bytes.Equal(got.body, want.body) {
					t.Errorf("body\n got %q\nwant %q", got.body, want.body)
				}
			case jsonEq:
				if g, p := jsonValue(t, got.body), jsonValue(t, want.body); !reflect.DeepEqual(g, p) {
					t.Errorf("JSON body\n got %s\nwant %s", got.body, want.body)
				}
			case metaEq:
				if g, p := sortLists(jsonValue(t, got.body)), sortLists(jsonValue(t, want.body)); !reflect.DeepEqual(g, p) {
					t.Errorf("$meta\n got %s\nwant %s", got.body, want.body)
				}
			}
		})
	}
}

func TestExtensions(t *testing.T) {
	w := startWorld(t)
	base := newGateway(t, Config{NameServer: w.ns, Timeout: 400 * time.Millisecond})

	check := func(t *testing.T, c call, status int, body string) {
		t.Helper()
		got := do(t, base, c)
		if got.status != status || string(got.body) != body {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, got.status, got.body, status, body)
		}
	}
	t.Run("json-args", func(t *testing.T) {
		check(t, call{method: "POST", path: "/pyro/http.echo/echo", ctype: "application/json", body: `{"args": ["x"]}`}, 200, `"x"`)
	})
	t.Run("json-kwargs", func(t *testing.T) {
		check(t, call{method: "POST", path: "/pyro/http.echo/kw?b=q&a=s", ctype: "application/json", body: `{"kwargs": {"a": 5, "c": [1, {"d": null}]}}`}, 200, `[["b", "q"], ["a", 5], ["c", [1, {"d": null}]]]`)
	})
	t.Run("json-bad", func(t *testing.T) {
		got := do(t, base, call{method: "POST", path: "/pyro/http.echo/echo", ctype: "application/json", body: `[1]`})
		if got.status != 400 {
			t.Errorf("status %d %q", got.status, got.body)
		}
	})
	t.Run("utf8-params", func(t *testing.T) {
		check(t, call{path: "/pyro/http.echo/echo?message=%C3%A9"}, 200, `"é"`)
	})
	t.Run("repeated-key-no-crash", func(t *testing.T) {
		check(t, call{path: "/pyro/http.echo/kw?a=1&a=2"}, 200, `[["a", ["1", "2"]]]`)
	})
	t.Run("timeout", func(t *testing.T) {
		check(t, call{path: "/pyro/http.echo/sleep?secs=2"}, 504, `{"__class__": "Pyro4.errors.TimeoutError", "__exception__": true, "args": ["receiving: timeout"], "attributes": {}}`)
		// the connection was dropped, the next call works
		check(t, call{path: "/pyro/http.echo/echo?message=after"}, 200, `"after"`)
	})
	t.Run("concurrent", func(t *testing.T) {
		slow := newGateway(t, Config{NameServer: w.ns, Timeout: 10 * time.Second})
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan string, 16)
		for range 16 {
			wg.Go(func() {
				req, _ := http.NewRequest("GET", slow+"/pyro/http.echo/sleep?secs=0.3", nil)
				resp, err := client.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != `"slept"` {
					errs <- fmt.Sprintf("%d %q", resp.StatusCode, b)
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("16 concurrent 0.3s calls took %v", d)
		}
	})
	t.Run("lookup-dropped-on-connect-failure", func(t *testing.T) {
		cached := newGateway(t, Config{NameServer: w.ns, LookupTTL: time.Hour})
		_, nsPort, _ := net.SplitHostPort(w.ns)
		register := func(target string) {
			pyro4test.RunPython(t, reregisterScript, nil, nsPort, target)
		}
		register("PYRO:http_echo@127.0.0.1:" + strconv.Itoa(freePort(t)))
		got := do(t, cached, call{path: "/pyro/http.moving/echo?message=m"})
		if got.status != 503 || !strings.Contains(string(got.body), "Connection refused") {
			t.Fatalf("dead address: %d %q", got.status, got.body)
		}
		// the cached lookup was dropped: the new registration is found at once
		register("")
		check := do(t, cached, call{path: "/pyro/http.moving/echo?message=m"})
		if check.status != 200 || string(check.body) != `"m"` {
			t.Fatalf("after re-registering: %d %q", check.status, check.body)
		}
		// a working lookup stays cached for LookupTTL
		register("PYRO:http_echo@127.0.0.1:" + strconv.Itoa(freePort(t)))
		check = do(t, cached, call{path: "/pyro/http.moving/echo?message=n"})
		if check.status != 200 || string(check.body) != `"n"` {
			t.Fatalf("cached lookup: %d %q", check.status, check.body)
		}
	})
	t.Run("home", func(t *testing.T) {
		got := do(t, base, call{path: "/pyro/"})
		if got.status != 200 || !strings.Contains(string(got.body), "http.echo") || strings.Contains(string(got.body), "private.echo") {
			t.Errorf("home: %d %s", got.status, got.body)
		}
	})
	t.Run("name-server-down", func(t *testing.T) {
		down := newGateway(t, Config{NameServer: "127.0.0.1:" + strconv.Itoa(freePort(t))})
		got := do(t, down, call{path: "/pyro/http.echo/echo"})
		want := `{"__class__": "Pyro4.errors.NamingError", "__exception__": true, "args": ["Failed to locate the nameserver"], "attributes": {}}`
		if got.status != 503 || string(got.body) != want {
			t.Errorf("%d %q", got.status, got.body)
		}
		if got := do(t, down, call{path: "/pyro/"}); got.status != 503 {
			t.Errorf("home with the name server down: %d %q", got.status, got.body)
		}
	})
}
