package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRunCountsCalls(t *testing.T) {
	for _, mode := range []Mode{ModeCall, ModeOneway, ModeBlob} {
		for _, ser := range []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal} {
			t.Run(string(mode)+"/"+ser.String(), func(t *testing.T) {
				s := startEcho(t, nil)
				res := run(t, Config{
					Targets: []Target{{"echo", s.Addr().String()}},
					Conns:   3, Calls: 300, Payload: 100, Serializer: ser, Mode: mode,
				})
				tr := res.Targets[0]
				if len(tr.Rounds) != 1 || tr.Median.Calls != 300 || tr.Median.Errors != 0 {
					t.Fatalf("calls %d, errors %v %v", tr.Median.Calls, tr.Median.ErrorsByKind, tr.Median.ErrorSamples)
				}
				m := tr.Median
				if m.CallsPerSec <= 0 || m.MBPerSec <= 0 || m.P50 <= 0 || m.P50 > m.P99 || m.P99 > m.Max || tr.Latency.TotalCount() != 300 {
					t.Errorf("stats %+v", m)
				}
				st := s.Stats()
				switch mode {
				case ModeOneway:
					// Every oneway call was read before the closing echo call of its
					// connection was answered.
					if st.Oneway != 300 || st.Calls != 3 {
						t.Errorf("server saw %+v", st)
					}
				case ModeBlob:
					if st.Blobs != 300 || st.Calls != 300 {
						t.Errorf("server saw %+v", st)
					}
				default:
					if st.Calls != 300 || st.Exceptions != 0 || st.Handshakes != 3 {
						t.Errorf("server saw %+v", st)
					}
				}
				// Request and echoed reply are both over 100 bytes.
				if perCall := m.Bytes / m.Calls; mode != ModeOneway && perCall < 2*(100+frame.HeaderSize) {
					t.Errorf("%d bytes per call", perCall)
				}
			})
		}
	}
}

// brokenServer answers the handshake correctly and then breaks every reply with bend.
func brokenServer(t *testing.T, bend func(h *frame.Header)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := frame.NewReader(c, 0, frame.Limits{})
				for {
					m, err := r.Next()
					if err != nil || r.ReadRest(&m) != nil {
						return
					}
					h := m.Header
					payload := m.Payload
					if h.Type == frame.Connect {
						h.Type = frame.ConnectOK
						payload, _ = frame.AppendStringPayload(nil, h.Serializer, "hello")
					} else {
						h.Type = frame.Result
						bend(&h)
					}
					h.Flags &^= frame.FlagOneway | frame.FlagMetaOnConnect | frame.FlagKeepSerialized
					if _, err := c.Write(frame.AppendMessage(nil, h, nil, payload)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRunVerifiesReplies(t *testing.T) {
	cases := map[string]func(h *frame.Header){
		"seq":        func(h *frame.Header) { h.Seq += 7 },
		"exception":  func(h *frame.Header) { h.Flags |= frame.FlagException },
		"type":       func(h *frame.Header) { h.Type = frame.ConnectOK },
		"serializer": func(h *frame.Header) { h.Serializer = frame.Marshal },
	}
	for kind, bend := range cases {
		t.Run(kind, func(t *testing.T) {
			addr := brokenServer(t, bend)
			res := run(t, Config{Targets: []Target{{"broken", addr}}, Conns: 2, Calls: 20, Serializer: frame.JSON, Timeout: 2 * time.Second})
			m := res.Targets[0].Median
			if m.Calls != 0 || m.ErrorsByKind[kind] != 20 || m.Errors != 20 || m.ErrorSamples[kind] == "" {
				t.Errorf("calls %d, errors %v, samples %v", m.Calls, m.ErrorsByKind, m.ErrorSamples)
			}
		})
	}
}

// TestRunUnique: with Unique every call's x is its own (a reply carrying another call's
// x fails), every reply is checked against it, and Observe is told of every call.
func TestRunUnique(t *testing.T) {
	for _, mode := range []Mode{ModeCall, ModeBlob} {
		for _, ser := range []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal} {
			t.Run(string(mode)+"/"+ser.String(), func(t *testing.T) {
				s := startEcho(t, nil)
				var mu sync.Mutex
				seen := map[int]int{}
				res := run(t, Config{Targets: []Target{{"echo", s.Addr().String()}}, Conns: 2, Calls: 100, Payload: 3000,
					Serializer: ser, Mode: mode, Unique: true, Observe: func(c Call) {
						mu.Lock()
						defer mu.Unlock()
						if c.Err != nil || c.Target != "echo" || c.End.Before(c.Start) {
							t.Errorf("observed %+v", c)
						}
						seen[c.Conn]++
					}})
				if m := res.Targets[0].Median; m.Calls != 100 || m.Errors != 0 {
					t.Fatalf("calls %d, errors %v %v", m.Calls, m.ErrorsByKind, m.ErrorSamples)
				}
				if seen[0]+seen[1] != 100 {
					t.Errorf("observed calls by connection %v, want 100 on connections 0 and 1", seen)
				}

				// The next call's x differs from this one's at each of its tags, and a
				// reply carrying one call's x does not pass for another's.
				w := &worker{rd: &round{p: newPlan(Config{Payload: 3000, Serializer: ser, Mode: mode, Unique: true})}}
				w.req = append([]byte(nil), w.rd.p.req...)
				x1 := append([]byte(nil), w.stamp()...)
				x2 := w.stamp()
				reply := appendStr(nil, ser, string(x1))
				if ser == frame.Serpent {
					reply = append([]byte(serpentHeader), reply...)
				}
				for k := 0; k < 3000; k += 1 << 10 {
					if bytes.Equal(x1[k:k+UniqueTagLen], x2[k:k+UniqueTagLen]) {
						t.Errorf("tag at %d is the same in two calls: %q", k, x1[k:k+UniqueTagLen])
					}
				}
				if !carries(reply, x1) || carries(reply, x2) || carries(reply[:len(reply)-2], x1) {
					t.Errorf("carries is wrong about %q", reply[:60])
				}
			})
		}
	}
	// A server whose replies are not the call's x: every call fails, as "payload".
	s := startEcho(t, func(s *EchoServer) { s.ResponseSize = 3000 })
	res := run(t, Config{Targets: []Target{{"fixed", s.Addr().String()}}, Conns: 2, Calls: 20, Payload: 3000, Unique: true})
	if m := res.Targets[0].Median; m.Calls != 0 || m.ErrorsByKind["payload"] != 20 || !strings.Contains(m.ErrorSamples["payload"], "reply to call") {
		t.Errorf("calls %d, errors %v %v", m.Calls, m.ErrorsByKind, m.ErrorSamples)
	}
}

func TestRunUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "echo.sock")
	s := &EchoServer{}
	if err := s.Listen("unix:" + path); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Close()
	if !strings.HasSuffix(s.URI(), "@./u:"+path) {
		t.Errorf("URI %s", s.URI())
	}
	// A second server on the same live socket is refused rather than stealing it.
	if err := (&EchoServer{}).Listen("unix:" + path); err == nil {
		t.Error("listened on a live socket")
	}
	res := run(t, Config{Targets: []Target{{"unix", "unix:" + path}}, Conns: 2, Calls: 100})
	if m := res.Targets[0].Median; m.Calls != 100 || m.Errors != 0 {
		t.Errorf("calls %d errors %v", m.Calls, m.ErrorsByKind)
	}
}

func TestRunUnreachableTarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res := run(t, Config{Targets: []Target{{"gone", addr}}, Conns: 2, Duration: 300 * time.Millisecond, Timeout: time.Second})
	m := res.Targets[0].Median
	if m.Calls != 0 || m.ErrorsByKind["dial"] == 0 {
		t.Errorf("calls %d, errors %v", m.Calls, m.ErrorsByKind)
	}
	// A round that ends after a number of calls gives up on a dead target too.
	res = run(t, Config{Targets: []Target{{"gone", addr}}, Conns: 2, Calls: 1000, Timeout: time.Second})
	if res.Targets[0].Median.Calls != 0 {
		t.Error("calls to a closed port succeeded")
	}
}

func TestRunWrongObjectIsAHandshakeError(t *testing.T) {
	s := startEcho(t, nil)
	res := run(t, Config{Targets: []Target{{"echo", s.Addr().String()}}, Object: "nobody", Calls: 5, Timeout: time.Second})
	m := res.Targets[0].Median
	if m.Calls != 0 || m.ErrorsByKind["handshake"] == 0 || !strings.Contains(m.ErrorSamples["handshake"], "unknown object") {
		t.Errorf("errors %v %v", m.ErrorsByKind, m.ErrorSamples)
	}
}

func TestRunOpenLoopRate(t *testing.T) {
	s := startEcho(t, nil)
	res := run(t, Config{Targets: []Target{{"echo", s.Addr().String()}}, Conns: 4, Rate: 2000,
		Duration: time.Second, Warmup: 100 * time.Millisecond})
	m := res.Targets[0].Median
	// 2000 calls are due in the measured second; allow for a loaded test machine.
	if m.Calls < 1800 || m.Calls > 2010 || m.CallsPerSec < 1600 || m.CallsPerSec > 2200 {
		t.Errorf("open loop at 2000/s for 1s: %d calls, %.0f calls/s", m.Calls, m.CallsPerSec)
	}
}

// TestRunOpenLoopCountsStalls: a server slower than the rate builds a queue, and the
// latencies, counted from when each call was due, show it; a closed loop would not.
func TestRunOpenLoopCountsStalls(t *testing.T) {
	s := startEcho(t, func(s *EchoServer) { s.Delay = 10 * time.Millisecond })
	target := []Target{{"slow", s.Addr().String()}}
	open := run(t, Config{Targets: target, Conns: 1, Rate: 200, Duration: 600 * time.Millisecond})
	closed := run(t, Config{Targets: target, Conns: 1, Duration: 300 * time.Millisecond})
	om, cm := open.Targets[0].Median, closed.Targets[0].Median
	// At most ~100 calls/s are served while 200/s are due: by the end of the round the
	// calls are about 0.3 s late.
	if om.Max < 150*time.Millisecond || om.P50 < 3*cm.P50 {
		t.Errorf("open loop p50 %v max %v; closed loop p50 %v", om.P50, om.Max, cm.P50)
	}
	if cm.P99 > 100*time.Millisecond {
		t.Errorf("closed loop p99 %v", cm.P99)
	}
}

func TestRunInterleavesRounds(t *testing.T) {
	a, b := startEcho(t, nil), startEcho(t, nil)
	res := run(t, Config{
		Targets: []Target{{"a", a.Addr().String()}, {"b", b.Addr().String()}},
		Calls:   50, Rounds: 3,
	})
	var got []string
	for _, o := range res.Order {
		got = append(got, o.Target+string(rune('0'+o.Round)))
	}
	if strings.Join(got, " ") != "a1 b1 a2 b2 a3 b3" {
		t.Errorf("order %v", got)
	}
	for _, tr := range res.Targets {
		if len(tr.Rounds) != 3 || tr.Median.Calls != 150 || tr.Latency.TotalCount() != 150 {
			t.Errorf("%s: %d rounds, %d calls", tr.Name, len(tr.Rounds), tr.Median.Calls)
		}
		// The median of three rounds is one of them.
		found := false
		for _, rr := range tr.Rounds {
			found = found || rr.CallsPerSec == tr.Median.CallsPerSec
		}
		if !found {
			t.Errorf("%s: median %v is none of the rounds", tr.Name, tr.Median.CallsPerSec)
		}
	}
	if r := res.Targets[0].Ratio; r.CallsPerSec != 1 || r.P99 != 1 {
		t.Errorf("first target's ratio %+v", r)
	}
	if res.Targets[1].Ratio.CallsPerSec <= 0 {
		t.Error("no ratio for the second target")
	}
}

func TestRunCancel(t *testing.T) {
	s := startEcho(t, func(s *EchoServer) { s.Delay = 5 * time.Millisecond })
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Run(ctx, Config{Targets: []Target{{"echo", s.Addr().String()}}, Conns: 2, Duration: time.Minute})
	if err == nil || res == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("Run returned %v after %v", err, time.Since(start))
	}
	if m := res.Targets[0].Median; m.Calls == 0 || m.Errors != 0 {
		t.Errorf("partial result: %d calls, errors %v", m.Calls, m.ErrorsByKind)
	}
}

func TestRunProgress(t *testing.T) {
	s := startEcho(t, nil)
	var last Progress
	n := 0
	run(t, Config{Targets: []Target{{"echo", s.Addr().String()}}, Duration: 700 * time.Millisecond,
		Progress: func(p Progress) { last = p; n++ }})
	if n < 2 || last.Target != "echo" || last.Round != 1 || last.Calls == 0 || last.CallsPerSec == 0 || last.RoundLength != 700*time.Millisecond {
		t.Errorf("%d progress calls, last %+v", n, last)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Targets: []Target{{"a", "x:1"}}}
	bad := []func(*Config){
		func(c *Config) { c.Targets = nil },
		func(c *Config) { c.Targets = append(c.Targets, Target{"a", "y:2"}) },
		func(c *Config) { c.Duration, c.Calls = time.Second, 5 },
		func(c *Config) { c.Serializer = frame.Pickle },
		func(c *Config) { c.Mode = "stream" },
		func(c *Config) { c.Rate = -1 },
		func(c *Config) { c.Unique, c.Payload = true, UniqueTagLen-1 },
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, f := range bad {
		c := good
		f(&c)
		if c.Validate() == nil {
			t.Errorf("case %d accepted", i)
		}
	}
	for in, want := range map[string]Target{"a=h:1": {"a", "h:1"}, "h:1": {"h:1", "h:1"}, "u=unix:/s": {"u", "unix:/s"}} {
		if got, err := ParseTarget(in); err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseTarget("=x"); err == nil {
		t.Error("empty name accepted")
	}
}

func TestStatsPercentiles(t *testing.T) {
	h := newHistogram()
	for i := int64(1); i <= 10000; i++ {
		h.RecordValue(i * 1000) // 1µs .. 10ms, uniform
	}
	s := Stats{Calls: 10000, Bytes: 2e6, Elapsed: 2 * time.Second}
	s.fill(h)
	near := func(got, want time.Duration) bool {
		d := got - want
		return d >= -want/500 && d <= want/500 // HDR with 3 digits: within 0.1%, and rank rounding
	}
	if !near(s.P50, 5*time.Millisecond) || !near(s.P90, 9*time.Millisecond) || !near(s.P99, 9900*time.Microsecond) ||
		!near(s.P999, 9990*time.Microsecond) || !near(s.Max, 10*time.Millisecond) || !near(s.Mean, 5000500*time.Nanosecond) {
		t.Errorf("percentiles %+v", s)
	}
	if s.CallsPerSec != 5000 || s.MBPerSec != 1 {
		t.Errorf("rates %v calls/s %v MB/s", s.CallsPerSec, s.MBPerSec)
	}
	if got := median([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Errorf("median %v", got)
	}
}

// fakeResult builds a result with known numbers, without running anything.
func fakeResult(names ...string) *Result {
	res := &Result{Config: Config{Conns: 4, Duration: time.Second, Payload: 16, Serializer: frame.JSON, Mode: ModeCall, Rounds: 2, Object: "echo"},
		Start: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Elapsed: 4 * time.Second}
	for i, n := range names {
		tr := &TargetResult{Target: Target{n, "127.0.0.1:1"}}
		for round := 1; round <= 2; round++ {
			h := newHistogram()
			for v := int64(1); v <= 5000; v++ {
				h.RecordValue(int64(20000*(i+1)) + v*int64(10*(i+1)))
			}
			h.RecordValue(int64(3 * time.Millisecond))
			rr := &RoundResult{Round: round, Latency: h, Stats: Stats{Calls: 5001, Bytes: 5001 * 100, Elapsed: time.Second}}
			if i == 1 {
				rr.Errors, rr.ErrorsByKind, rr.ErrorSamples = 2, map[string]int64{"closed": 2}, map[string]string{"closed": "EOF <&>"}
			}
			rr.fill(h)
			tr.Rounds = append(tr.Rounds, rr)
			res.Order = append(res.Order, RoundRef{n, round})
		}
		res.Targets = append(res.Targets, tr)
	}
	res.summarize()
	return res
}

func TestWriteTableAndJSON(t *testing.T) {
	res := fakeResult("direct", "proxy <x>")
	var tbl bytes.Buffer
	if err := res.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"direct", "proxy <x>", "calls/s vs direct", "1.00×", "calls/s by round", "errors of proxy <x>: 4 closed", "p99.9"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Config  struct{ Serializer string }
		Targets []struct {
			Name   string
			Median struct {
				Calls   int64
				Latency struct{ P50 float64 } `json:"latency_us"`
			}
			Rounds      []json.RawMessage
			Percentiles []struct{ Percentile, Latency float64 } `json:"percentiles"`
		}
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Config.Serializer != "json" || len(back.Targets) != 2 || back.Targets[1].Median.Calls != 10002 ||
		len(back.Targets[0].Rounds) != 2 || len(back.Targets[0].Percentiles) != len(CurvePercentiles) ||
		back.Targets[0].Median.Latency.P50 < 40 || back.Targets[0].Median.Latency.P50 > 50 {
		t.Errorf("json: %s", js.String())
	}
}

// checkSVG parses the chart as XML and returns its text content.
func checkSVG(t *testing.T, b []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var text strings.Builder
	root := ""
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not valid XML: %v\n%s", err, b)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
				if tok.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", tok.Name.Space)
				}
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q", root)
	}
	return text.String()
}

func TestWriteChart(t *testing.T) {
	res := fakeResult("direct", "proxy <x>", "haproxy")
	var b bytes.Buffer
	if err := res.WriteChart(&b); err != nil {
		t.Fatal(err)
	}
	text := checkSVG(t, b.Bytes())
	for _, want := range []string{"direct", "proxy <x>", "haproxy", "Latency by percentile", "Throughput", "99.9%", "max"} {
		if !strings.Contains(text, want) {
			t.Errorf("chart text lacks %q", want)
		}
	}
	// A run without a single successful call still draws.
	empty := fakeResult()
	empty.Targets = []*TargetResult{{Target: Target{"down", "x:1"}, Latency: newHistogram()}}
	b.Reset()
	if err := empty.WriteChart(&b); err != nil {
		t.Fatal(err)
	}
	if text := checkSVG(t, b.Bytes()); !strings.Contains(text, "down") || !strings.Contains(text, "no successful calls") {
		t.Errorf("empty chart: %s", text)
	}
}

func TestChartOfARealRun(t *testing.T) {
	a, b := startEcho(t, nil), startEcho(t, func(s *EchoServer) { s.Delay = 200 * time.Microsecond })
	res := run(t, Config{Targets: []Target{{"fast", a.Addr().String()}, {"slow", b.Addr().String()}}, Conns: 2, Calls: 400, Rounds: 2})
	var buf bytes.Buffer
	if err := res.WriteChart(&buf); err != nil {
		t.Fatal(err)
	}
	text := checkSVG(t, buf.Bytes())
	if !strings.Contains(text, "fast") || !strings.Contains(text, "slow") {
		t.Errorf("chart text: %s", text)
	}
}
