package httpgw

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/raceflag"
)

// splitRoute splits as pyro4-httpgateway's ^(.+)/(.+) does: on hand-picked paths and on
// every string of up to 6 characters over an alphabet of what matters (a slash, a
// newline, a carriage return, a letter, a multi-byte character, a byte that is not UTF-8).
func TestSplitRoute(t *testing.T) {
	re := regexp.MustCompile(`^(.+)/(.+)`)
	check := func(rest string) {
		t.Helper()
		m := re.FindStringSubmatch(rest)
		object, method, ok := splitRoute(rest)
		if ok != (m != nil) || ok && (object != m[1] || method != m[2]) {
			t.Errorf("splitRoute(%q) = %q, %q, %v; the regexp gives %q", rest, object, method, ok, m)
		}
	}
	for _, p := range []string{
		"", "/", "//", "///", "a", "a/", "/a", "a/b", "a//b", "a/b/", "a/b//", "/a/b", "//a", "a//",
		"http.echo/echo", "http.echo/x/echo", "http.echo%2Fx/echo", "/http.echo/echo", "http.echo/$meta",
		"a\n/b", "a/\nb", "a/b\nc/d", "\n", "a/b\n", "\na/b", "a/b\r", "a\r/b", "é/ü", "\xff/\xfe", "a/b/c/d/e",
	} {
		check(p)
	}
	alphabet := []string{"a", "/", "\n", "\r", "é", "\xff"}
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		check(prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+c, n-1)
		}
	}
	gen("", 6)
}

// The payload path (a pooled connection leased, the INVOKE built and sent, the reply read
// and handed over, the connection released) allocates nothing; a whole request through
// ServeHTTP allocates only its correlation id's header value and the context that carries
// it to the dials.
func TestPayloadPathAllocs(t *testing.T) {
	if raceflag.Enabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	gw, _ := newFakeGateway(t, Config{})
	tg := benchTarget(t, gw)
	c := pyroCall{corr: newCorr(), method: "echo", params: [][]byte{[]byte(`"hello"`)}}
	var got []byte
	result := func(_ bool, payload []byte) { got = append(got[:0], payload...) }
	if n := testing.AllocsPerRun(500, func() { invokeEcho(t, tg, &c, result) }); n != 0 || string(got) != `"hello"` {
		t.Errorf("target.invoke: %v allocations per call (reply %q), want 0", n, got)
	}

	req := httptest.NewRequest(http.MethodGet, "/pyro/http.echo/echo?x=hello", nil)
	w := &nopWriter{h: http.Header{}}
	n := testing.AllocsPerRun(500, func() {
		clear(w.h)
		w.status = 0
		gw.ServeHTTP(w, req)
	})
	if w.status != http.StatusOK {
		t.Fatalf("status %d", w.status)
	}
	if n > 2 {
		t.Errorf("ServeHTTP: %v allocations per request, want at most 2", n)
	}
}

// Every answer has a Content-Length, as pyro4-httpgateway's: net/http's for a short body,
// the gateway's for a longer one (which HTTP/1.1 would otherwise send chunked), over
// HTTP/1.1 and HTTP/2.
func TestContentLength(t *testing.T) {
	gw, _ := newFakeGateway(t, Config{})
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		srv := httptest.NewUnstartedServer(gw)
		if proto == "HTTP/2.0" {
			srv.EnableHTTP2 = true
			srv.StartTLS()
		} else {
			srv.Start()
		}
		c := srv.Client()
		for _, tc := range []struct {
			path, options string
			status, size  int
		}{
			{path: "/pyro/http.echo/echo?x=hello", status: 200, size: len(`"hello"`)},
			{path: "/pyro/http.echo/big", status: 200, size: bigLen},
			{path: "/pyro/http.echo/echo", options: "oneway", status: 200, size: 0},
			{path: "/pyro/http.echo/nosuchmethod", status: 500},
			{path: "/pyro/http.echo", status: 404},
		} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			if tc.options != "" {
				req.Header.Set("X-Pyro-Options", tc.options)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.Proto != proto || resp.StatusCode != tc.status || tc.status == 200 && len(b) != tc.size {
				t.Errorf("%s %s: %s %d, %d bytes, want %s %d, %d bytes", proto, tc.path, resp.Proto, resp.StatusCode, len(b), proto, tc.status, tc.size)
			}
			if resp.ContentLength != int64(len(b)) || len(resp.TransferEncoding) != 0 {
				t.Errorf("%s %s: Content-Length %d, Transfer-Encoding %q for %d bytes", proto, tc.path, resp.ContentLength, resp.TransferEncoding, len(b))
			}
		}
		srv.Close()
	}
}

// A client gone and the timeout each abort the call in flight: its connection to the
// daemon is closed, and the next call works.
func TestCallAborted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		cancel  bool
	}{
		{name: "client-gone", cancel: true},
		{name: "timeout", timeout: 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw, f := newFakeGateway(t, Config{Timeout: tc.timeout})
			srv := httptest.NewServer(gw)
			defer srv.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/pyro/http.echo/block", nil)
			answer := make(chan string, 1)
			go func() {
				resp, err := srv.Client().Do(req)
				if err != nil {
					answer <- err.Error()
					return
				}
				resp.Body.Close()
				answer <- strconv.Itoa(resp.StatusCode)
			}()
			if tc.cancel {
				time.Sleep(200 * time.Millisecond)
				cancel()
			}
			select {
			case <-f.blocked:
			case <-time.After(10 * time.Second):
				f.closeConns() // so that the handler, and the server, can end
				t.Fatal("the daemon connection of the call was not closed")
			}
			got := <-answer
			if want := map[bool]string{true: "context canceled", false: "504"}[tc.cancel]; !strings.Contains(got, want) {
				t.Errorf("answer %q, want %q", got, want)
			}
			resp, err := srv.Client().Get(srv.URL + "/pyro/http.echo/echo")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != `"hello"` {
				t.Errorf("next call: %d %q", resp.StatusCode, b)
			}
		})
	}
}
