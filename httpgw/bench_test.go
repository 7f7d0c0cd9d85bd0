package httpgw

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// fakePyro is a Go stand-in for a Pyro4 name server and daemon in one listener: CONNECT
// gets CONNECTOK with the metadata of an object with the methods echo, big and block;
// INVOKE of "lookup" (the name server) answers the URI of object bench_echo on this
// listener, of big a str of bigLen bytes (3,000 characters quoted), of block nothing (the
// connection waits for the gateway to close it, and then its end is sent on blocked), and
// any other INVOKE the JSON string "hello"; PING is answered with PING.
type fakePyro struct {
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	open    map[net.Conn]struct{}
	blocked chan struct{} // one value per connection ended while blocked
}

// bigLen is the length of big's answer: over autoContentLength.
const bigLen = 3000

func startFakePyro(tb testing.TB) *fakePyro {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &fakePyro{ln: ln, open: map[net.Conn]struct{}{}, blocked: make(chan struct{}, 16)}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.open[c] = struct{}{}
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(c)
			}()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		f.closeConns()
		f.wg.Wait()
	})
	return f
}

// closeConns closes every connection the fake daemon has.
func (f *fakePyro) closeConns() {
	f.mu.Lock()
	for c := range f.open {
		c.Close()
	}
	f.mu.Unlock()
}

func (f *fakePyro) serve(c net.Conn) {
	defer c.Close()
	_, port, _ := net.SplitHostPort(f.ln.Addr().String())
	okMeta := []byte(`{"handshake": "hello", "meta": {"methods": ["big", "block", "echo"], "oneway": [], "attrs": []}}`)
	uri := []byte(`{"__class__": "Pyro4.core.URI", "state": ["PYRO", "bench_echo", null, "127.0.0.1", ` + port + `]}`)
	hello := []byte(`"hello"`)
	big := []byte(`"` + strings.Repeat("x", bigLen-2) + `"`)
	r := frame.NewReader(c, 0, frame.Limits{MaxMessageSize: maxMessage})
	var out []byte
	blocking := false
	for {
		m, err := r.Next()
		if err == nil {
			err = r.ReadRest(&m)
		}
		if err != nil {
			if blocking {
				f.blocked <- struct{}{}
			}
			return
		}
		h := frame.Header{Seq: m.Header.Seq, Serializer: frame.JSON}
		var p []byte
		switch m.Header.Type {
		case frame.Connect:
			h.Type, p = frame.ConnectOK, okMeta
		case frame.Invoke:
			h.Type, p = frame.Result, hello
			switch {
			case bytes.Contains(m.Payload, []byte(`"method": "lookup"`)):
				p = uri
			case bytes.Contains(m.Payload, []byte(`"method": "big"`)):
				p = big
			case bytes.Contains(m.Payload, []byte(`"method": "block"`)):
				blocking = true
				continue
			}
		case frame.Ping:
			h.Type = frame.Ping
		default:
			return
		}
		out = frame.AppendMessage(out[:0], h, nil, p)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// nopWriter is a reusable http.ResponseWriter that discards the body, so that what
// BenchmarkServeHTTP counts is the gateway's own work.
type nopWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) WriteHeader(status int)      { w.status = status }
func (w *nopWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// newFakeGateway returns a gateway with cfg in front of a new fakePyro.
func newFakeGateway(tb testing.TB, cfg Config) (*Gateway, *fakePyro) {
	tb.Helper()
	f := startFakePyro(tb)
	cfg.NameServer = f.ln.Addr().String()
	gw, err := New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(gw.Close)
	return gw, f
}

// BenchmarkServeHTTP is one GET /pyro/http.echo/echo?x=hello through Gateway.ServeHTTP
// (lookup cached, pooled connection, a real loopback round trip to the fake daemon) with
// the http.Request and the ResponseWriter reused: the allocations are the gateway's own.
func BenchmarkServeHTTP(b *testing.B) {
	gw, _ := newFakeGateway(b, Config{})
	req := httptest.NewRequest(http.MethodGet, "/pyro/http.echo/echo?x=hello", nil)
	w := &nopWriter{h: http.Header{}}
	gw.ServeHTTP(w, req)
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		clear(w.h)
		w.status = 0
		gw.ServeHTTP(w, req)
	}
	b.StopTimer()
	if w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
}

// benchTarget returns the gateway's target of http.echo, connected.
func benchTarget(tb testing.TB, gw *Gateway) *target {
	tb.Helper()
	at, herr := gw.lookup(context.Background(), "http.echo")
	if herr != nil {
		tb.Fatal(herr)
	}
	t, err := gw.target(at)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// invokeEcho is the payload path: a pooled connection leased, the INVOKE of
// echo("hello") built and sent, the reply read and handed over, the connection released.
func invokeEcho(tb testing.TB, t *target, c *pyroCall, result func(bool, []byte)) {
	ctx := context.Background()
	lease, err := t.acquire(ctx)
	if err == nil {
		err = t.invoke(ctx, lease, c, result)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkInvoke is the Pyro leg alone: target.invoke of echo("hello") on a pooled
// connection (what ServeHTTP does after parsing, lookup and metadata).
func BenchmarkInvoke(b *testing.B) {
	gw, _ := newFakeGateway(b, Config{})
	t := benchTarget(b, gw)
	c := pyroCall{corr: newCorr(), method: "echo", params: [][]byte{[]byte(`"hello"`)}}
	var got []byte
	result := func(_ bool, payload []byte) { got = append(got[:0], payload...) }
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		invokeEcho(b, t, &c, result)
		if string(got) != `"hello"` {
			b.Fatalf("%q", got)
		}
	}
}

// BenchmarkHTTPLoopback is the whole request as a client sees it: net/http client and
// server on loopback, keep-alive, in front of the gateway (allocations include net/http's).
func BenchmarkHTTPLoopback(b *testing.B) {
	gw, _ := newFakeGateway(b, Config{})
	srv := httptest.NewServer(gw)
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	url := srv.URL + "/pyro/http.echo/echo?x=hello"
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != int64(len(`"hello"`)) {
			b.Fatal(resp.Status + " " + strconv.FormatInt(n, 10))
		}
	}
}
