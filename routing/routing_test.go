package routing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// compile parses a YAML configuration and compiles its routing.
func compile(t testing.TB, yml string) (*Table, config.Config) {
	t.Helper()
	cfg, err := config.ParseConfig([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := Compile(&cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tab, cfg
}

// invoke builds a call message as a Pyro4 proxy sends it (serpent payload).
func invoke(object, method string, ann frame.Annotations) *frame.Message {
	payload := []byte(fmt.Sprintf("# serpent utf-8 python3.2\n('%s','%s',(),{})", object, method))
	h := frame.Header{Type: frame.Invoke, Serializer: frame.Serpent, DataLen: len(payload), AnnLen: len(ann)}
	return &frame.Message{Header: h, Annotations: ann, Payload: payload}
}

// connect builds a CONNECT message naming object (serpent), or none when object is "".
func connect(object string) *frame.Message {
	payload := []byte("# serpent utf-8 python3.2\n{'handshake':'hello'}")
	if object != "" {
		payload = []byte(fmt.Sprintf("# serpent utf-8 python3.2\n{'handshake':'hello','object':'%s'}", object))
	}
	return &frame.Message{Header: frame.Header{Type: frame.Connect, Serializer: frame.Serpent, DataLen: len(payload)}, Payload: payload}
}

// blobCall builds a SerializedBlob call: its BLBI annotation holds (info, object, method).
func blobCall(info, object, method string) *frame.Message {
	str := func(b []byte, s string) []byte { return append(append(b, 'z', byte(len(s))), s...) }
	blbi := str(str(str([]byte{')', 3}, info), object), method)
	m := invoke("ignored", "ignored", frame.AppendAnnotation(nil, frame.BLBI, blbi))
	m.Header.Flags |= frame.FlagKeepSerialized
	m.Payload = []byte("opaque blob bytes")
	return m
}

const edge = `
backends:
  - name: ns
    members: [127.0.0.1:9090]
  - name: payments
    members: [127.0.0.1:9201]
  - name: sensors
    members: [127.0.0.1:9301]
  - name: internal
    members: [127.0.0.1:9401]
  - name: blue
    members: [127.0.0.1:9501]
  - name: orders
    members: [127.0.0.1:9601]
  - name: greeters
    members: [127.0.0.1:9101, {address: 127.0.0.1:9102, weight: 3}]
listeners:
  - name: edge
    listen: 127.0.0.1:9999
    mode: pooled
    routes:
      - match: {object: "Pyro.NameServer"}
        to: ns
      - match: {object: "shop.*", method: "checkout"}
        to: payments
      - match: {object: "~^sensor\\.[0-9]+$"}
        to: sensors
      - match: {client: ["10.0.0.0/8"], serializer: [serpent, json]}
        to: internal
      - match: {annotation: {ROUT: "blue"}}
        to: blue
      - match: {blob_info: "orders.*"}
        to: orders
      - match: {object: "admin.*"}
        deny: "not exposed at this edge"
      - to: greeters
`

func TestDecide(t *testing.T) {
	tab, _ := compile(t, edge)
	r := tab.Router("edge")
	local, ten := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3")
	rout := func(v string) frame.Annotations {
		return frame.AppendAnnotation(nil, frame.ChunkID{'R', 'O', 'U', 'T'}, []byte(v))
	}
	cases := []struct {
		name    string
		connect bool
		client  netip.Addr
		m       *frame.Message
		want    string // group name, or "deny:REASON-SUBSTRING"
	}{
		{"name server", false, local, invoke("Pyro.NameServer", "lookup", nil), "ns"},
		{"name server at connect", true, local, connect("Pyro.NameServer"), "ns"},
		{"checkout", false, local, invoke("shop.cart", "checkout", nil), "payments"},
		{"other shop method", false, local, invoke("shop.cart", "add", nil), "greeters"},
		{"shop at connect: no method", true, local, connect("shop.cart"), "greeters"},
		{"sensor regexp", false, local, invoke("sensor.42", "read", nil), "sensors"},
		{"sensor regexp anchored", false, local, invoke("sensor.42x", "read", nil), "greeters"},
		{"client cidr and serializer", false, ten, invoke("thing", "m", nil), "internal"},
		{"annotation", false, local, invoke("thing", "m", rout("blue")), "blue"},
		{"annotation other value", false, local, invoke("thing", "m", rout("green")), "greeters"},
		{"blob info", false, local, blobCall("orders.new", "dispatcher", "process"), "orders"},
		{"blob other info", false, local, blobCall("events.x", "dispatcher", "process"), "greeters"},
		{"deny", false, local, invoke("admin.users", "drop", nil), "deny:not exposed at this edge"},
		{"deny at connect", true, local, connect("admin.users"), "deny:not exposed at this edge"},
		{"connect without object", true, local, connect(""), "greeters"},
		{"unix client", false, netip.Addr{}, invoke("thing", "m", nil), "greeters"},
	}
	var req Request
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for range 2 { // the second time from the cache
				req.Reset(c.connect, c.client, c.m)
				d := r.Decide(&req)
				got := "deny:" + d.Deny
				if d.Group != nil {
					got = d.Group.Name
				}
				if !strings.HasPrefix(got, c.want) {
					t.Fatalf("got %q, want %q", got, c.want)
				}
			}
		})
	}
	// A compressed payload cannot be peeked: object rules do not match it.
	m := invoke("Pyro.NameServer", "lookup", nil)
	m.Header.Flags |= frame.FlagCompressed
	req.Reset(false, local, m)
	if d := r.Decide(&req); d.Group == nil || d.Group.Name != "greeters" {
		t.Errorf("compressed call went to %+v, want greeters", d)
	}
}

func TestNoRoute(t *testing.T) {
	tab, _ := compile(t, `
backends: [{name: a, members: [127.0.0.1:1]}]
listeners:
  - {name: l, listen: 127.0.0.1:2, mode: pooled, routes: [{match: {object: "a.*"}, to: a}]}
`)
	var req Request
	req.Reset(false, netip.MustParseAddr("127.0.0.1"), invoke("b.x", "run", nil))
	d := tab.Router("l").Decide(&req)
	if d.Group != nil || d.Rule != -1 || !strings.Contains(d.Deny, `object "b.x", method "run"`) {
		t.Errorf("decision %+v", d)
	}
}

// Serializer policies: the listener's is the Router's, a route's comes with its
// decision (also from the cache), and check shows both.
func TestSerializerPolicies(t *testing.T) {
	tab, cfg := compile(t, `
backends: [{name: a, members: [127.0.0.1:1]}, {name: b, members: [127.0.0.1:3]}]
listeners:
  - name: l
    listen: 127.0.0.1:2
    mode: pooled
    serializers: [serpent, json, marshal, pickle]
    routes:
      - {match: {object: "a.*"}, to: a, serializers: [serpent]}
      - {to: b}
`)
	r := tab.Router("l")
	if p := r.Policy(); p.Allows(frame.Dill) || !p.Allows(frame.Pickle) || p.String() != "serpent, json, marshal, pickle" {
		t.Errorf("listener policy %v", p)
	}
	var req Request
	for range 2 {
		req.Reset(false, netip.MustParseAddr("127.0.0.1"), invoke("a.x", "run", nil))
		if d := r.Decide(&req); d.Group.Name != "a" || d.Serializers.Allows(frame.JSON) || !d.Serializers.Allows(frame.Serpent) {
			t.Errorf("decision %+v", d)
		}
		req.Reset(false, netip.MustParseAddr("127.0.0.1"), invoke("b.x", "run", nil))
		if d := r.Decide(&req); d.Group.Name != "b" || d.Serializers != 0 || !d.Serializers.Allows(frame.Serializer(42)) {
			t.Errorf("decision %+v", d)
		}
	}
	var b bytes.Buffer
	tab.Describe(&b, &cfg)
	for _, want := range []string{"serializers: serpent, json, marshal, pickle)", `-> a (serializers: serpent)`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, b.String())
		}
	}
}

func TestDecideCacheHitAllocatesNothing(t *testing.T) {
	tab, _ := compile(t, edge)
	r := tab.Router("edge")
	m := invoke("shop.cart", "checkout", frame.AppendAnnotation(nil, frame.CORR, make([]byte, 16)))
	var req Request
	client := netip.MustParseAddr("127.0.0.1")
	req.Reset(false, client, m)
	r.Decide(&req)
	allocs := testing.AllocsPerRun(200, func() {
		req.Reset(false, client, m)
		if d := r.Decide(&req); d.Group == nil || d.Group.Name != "payments" {
			t.Fatalf("decision %+v", d)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per cached decision, want 0", allocs)
	}
}

// An HTTP gateway listener that routes has its router, fed with a call's facts
// (ResetCall) instead of a message: the same decisions, method rules included, and no
// allocation on a cache hit.
func TestHTTPListenerRouter(t *testing.T) {
	tab, _ := compile(t, `
backends: [{name: a, members: [127.0.0.1:1]}, {name: b, members: [127.0.0.1:3]}]
listeners: [{name: l, listen: 127.0.0.1:2, backend: 127.0.0.1:4}]
http:
  - name: web
    listen: 127.0.0.1:8080
    routes:
      - {match: {object: "shop.*", method: "pay*"}, to: a}
      - {match: {client: 10.0.0.0/8}, deny: inside only}
      - {match: {object: "shop.*"}, to: b}
`)
	r := tab.Router("web")
	if r == nil {
		t.Fatal("no router for the http listener")
	}
	ann := frame.AppendAnnotation(nil, frame.CORR, make([]byte, 16))
	local, inside := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.3")
	var req Request
	for _, tc := range []struct {
		client         netip.Addr
		object, method string
		want           string
	}{
		{local, "shop.cart", "pay", "a"},
		{local, "shop.cart", "list", "b"},
		{inside, "shop.cart", "list", "deny: inside only"},
		{local, "other", "x", `deny: no route on listener web for this call (object "other", method "x")`},
	} {
		req.ResetCall(tc.client, frame.JSON, tc.object, tc.method, ann)
		d := r.Decide(&req)
		got := "deny: " + d.Deny
		if d.Group != nil {
			got = d.Group.Name
		}
		if got != tc.want {
			t.Errorf("%v %s.%s: %s, want %s", tc.client, tc.object, tc.method, got, tc.want)
		}
	}
	allocs := testing.AllocsPerRun(200, func() {
		req.ResetCall(local, frame.JSON, "shop.cart", "pay", ann)
		if d := r.Decide(&req); d.Group == nil || d.Group.Name != "a" {
			t.Fatalf("decision %+v", d)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per cached decision, want 0", allocs)
	}
}

func TestSessionListenerRefusesMethodRules(t *testing.T) {
	for _, key := range []string{"method: checkout", `blob_info: "orders.*"`} {
		_, err := config.ParseConfig([]byte(`
backends: [{name: a, members: [127.0.0.1:1]}]
listeners:
  - name: l
    listen: 127.0.0.1:2
    routes:
      - match: {` + key + `}
        to: a
`))
		if err == nil || !strings.Contains(err.Error(), "mode: pooled") || !strings.Contains(err.Error(), "line 7") {
			t.Errorf("%s on a session listener: %v", key, err)
		}
	}
}

// group3 compiles a group of three members with the given balance and weights.
func group3(t testing.TB, balance string, extra string, weights ...int) *Group {
	t.Helper()
	var ms []string
	for i, w := range weights {
		ms = append(ms, fmt.Sprintf("{address: 127.0.0.1:%d, weight: %d}", 9101+i, w))
	}
	tab, _ := compile(t, fmt.Sprintf(`
backends:
  - name: g
    members: [%s]
    balance: %s
%s
listeners: [{name: l, listen: 127.0.0.1:1, mode: pooled, routes: [{to: g}]}]
`, strings.Join(ms, ", "), balance, extra))
	return tab.Group("g")
}

func shares(t testing.TB, g *Group, n int, req func(i int) *Request) map[*Member]int {
	t.Helper()
	got := map[*Member]int{}
	for i := range n {
		m, err := g.Pick(req(i), 0)
		if err != nil {
			t.Fatal(err)
		}
		got[m]++
	}
	return got
}

func TestRoundRobinWeightsAndSmoothness(t *testing.T) {
	g := group3(t, "round_robin", "", 1, 1, 2)
	var last *Member
	run := 0
	for i := range 400 {
		m, err := g.Pick(nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if m == last {
			run++
			if run > 1 {
				t.Fatalf("pick %d: %s three times in a row: not smooth", i, m.Addr)
			}
		} else {
			run = 0
		}
		last = m
	}
	got := shares(t, g, 4000, func(int) *Request { return nil })
	for i, w := range []int{1, 1, 2} {
		if want := 4000 * w / 4; got[g.members[i]] != want {
			t.Errorf("member %d: %d picks, want %d", i, got[g.members[i]], want)
		}
	}
}

func TestLeastInflightAvoidsTheBusyMember(t *testing.T) {
	g := group3(t, "least_inflight", "", 1, 1, 1)
	g.members[0].inflight.Store(8) // a slow member with calls piling up
	got := shares(t, g, 3000, func(int) *Request { return nil })
	if got[g.members[0]] > 3000/10 {
		t.Errorf("busy member got %d of 3000 picks", got[g.members[0]])
	}
	// With no load the weights decide.
	g = group3(t, "least_inflight", "", 1, 1, 2)
	got = shares(t, g, 8000, func(int) *Request { return nil })
	if s := float64(got[g.members[2]]) / 8000; math.Abs(s-0.5) > 0.05 {
		t.Errorf("weight-2 member got %.2f of the picks, want 0.50", s)
	}
}

func TestHashIsConsistent(t *testing.T) {
	g := group3(t, "hash", "    hash_key: annotation:USER", 1, 1, 1)
	reqs := make([]Request, 3000)
	for i := range reqs {
		ann := frame.AppendAnnotation(nil, frame.ChunkID{'U', 'S', 'E', 'R'}, []byte(fmt.Sprintf("user-%d", i)))
		reqs[i].Reset(false, netip.Addr{}, invoke("o", "m", ann))
	}
	before := map[int]*Member{}
	for i := range reqs {
		m1, _ := g.Pick(&reqs[i], 0)
		m2, _ := g.Pick(&reqs[i], 0)
		if m1 != m2 {
			t.Fatalf("key %d went to %s, then %s", i, m1.Addr, m2.Addr)
		}
		before[i] = m1
	}
	counts := map[*Member]int{}
	for _, m := range before {
		counts[m]++
	}
	for _, m := range g.members {
		if c := counts[m]; c < 800 || c > 1200 {
			t.Errorf("member %s has %d of 3000 keys", m.Addr, c)
		}
	}
	// Member 0 out: only its keys move.
	gone := g.members[0]
	gone.Failed(errors.New("test"))
	t.Cleanup(gone.stop)
	moved := 0
	for i := range reqs {
		m, _ := g.Pick(&reqs[i], 0)
		if m == gone {
			t.Fatalf("key %d still on the ejected member", i)
		}
		if m != before[i] {
			if before[i] != gone {
				t.Fatalf("key %d moved from %s, which is still in", i, before[i].Addr)
			}
			moved++
		}
	}
	if moved != counts[gone] {
		t.Errorf("%d keys moved, want the %d of the member that left", moved, counts[gone])
	}
}

func TestHashWithoutKeyFallsBackToRoundRobin(t *testing.T) {
	g := group3(t, "hash", "    hash_key: corr", 1, 1, 1)
	var req Request
	req.Reset(false, netip.Addr{}, invoke("o", "m", nil))
	got := shares(t, g, 300, func(int) *Request { return &req })
	if len(got) != 3 {
		t.Errorf("calls without a CORR went to %d members, want all 3", len(got))
	}
}

func TestEjectionAndPanicMode(t *testing.T) {
	g := group3(t, "round_robin", "    eject: 50ms", 1, 1, 1)
	a, b, c := g.members[0], g.members[1], g.members[2]
	t.Cleanup(func() { a.stop(); b.stop(); c.stop() })
	a.Failed(errors.New("connection refused"))
	for range 30 {
		if m, _ := g.Pick(nil, 0); m == a {
			t.Fatal("ejected member picked while others are in")
		}
	}
	if !strings.Contains(a.Status(), "ejected") {
		t.Errorf("status %q", a.Status())
	}
	// Everyone out: the members are still tried, each once.
	b.Failed(errors.New("x"))
	c.Failed(errors.New("y"))
	var tried Tried
	seen := map[*Member]bool{}
	for range 3 {
		m, err := g.Pick(nil, tried)
		if err != nil {
			t.Fatal(err)
		}
		seen[m] = true
		tried = tried.With(g, m)
	}
	if len(seen) != 3 {
		t.Errorf("panic mode tried %d members, want 3", len(seen))
	}
	if _, err := g.Pick(nil, tried); !errors.Is(err, ErrNoMember) {
		t.Errorf("after every member: %v", err)
	}
	msg := g.NoHealthy(map[*Member]error{a: errors.New("dial refused")}).Error()
	for _, want := range []string{"no healthy backend in group g (", "127.0.0.1:9101: dial refused", "127.0.0.1:9102: ejected"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	// Back after the ejection time; a second failure ejects for twice as long.
	deadline := time.Now().Add(2 * time.Second)
	for a.Out() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if a.Out() {
		t.Fatal("not readmitted after its ejection")
	}
	a.Failed(errors.New("again"))
	a.mu.Lock()
	d := a.ejectFor
	a.mu.Unlock()
	if d != 100*time.Millisecond {
		t.Errorf("second ejection %v, want 100ms", d)
	}
}

func TestHealthChecks(t *testing.T) {
	tab, _ := compile(t, `
backends:
  - name: g
    members: [127.0.0.1:9101, 127.0.0.1:9102]
    health: {interval: 10ms, timeout: 5ms, fall: 2, rise: 2}
listeners: [{name: l, listen: 127.0.0.1:1, routes: [{to: g}]}]
`)
	g := tab.Group("g")
	var down atomic.Bool
	down.Store(true)
	probe := func(_ context.Context, m *Member) error {
		if m.Address == "127.0.0.1:9102" && down.Load() {
			return errors.New("refused")
		}
		return nil
	}
	tab.StartHealth(probe)
	defer tab.Retire(nil)
	waitFor(t, func() bool { return g.members[1].Out() })
	if g.members[0].Out() {
		t.Error("healthy member out")
	}
	if !strings.Contains(g.members[1].Status(), "health check failing: refused") {
		t.Errorf("status %q", g.members[1].Status())
	}
	down.Store(false)
	waitFor(t, func() bool { return !g.members[1].Out() })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 3s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestReloadKeepsMemberState(t *testing.T) {
	yml := `
backends:
  - {name: g, members: [127.0.0.1:9101, 127.0.0.1:9102], eject: 1h}
listeners: [{name: l, listen: 127.0.0.1:1, routes: [{to: g}]}]
`
	t1, _ := compile(t, yml)
	m := t1.Group("g").members[0]
	m.Begin()
	m.Failed(errors.New("refused"))
	cfg2, err := config.ParseConfig([]byte(strings.Replace(yml, "127.0.0.1:9102", "127.0.0.1:9103", 1)))
	if err != nil {
		t.Fatal(err)
	}
	t2, err := Compile(&cfg2, t1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t1.Retire(t2)
	defer t2.Retire(nil)
	g2 := t2.Group("g")
	if g2.members[0] != m || m.InFlight() != 1 || !m.Out() {
		t.Errorf("member state not carried over: same=%v inflight=%d out=%v", g2.members[0] == m, m.InFlight(), m.Out())
	}
	if removed := t1.Group("g").members[1]; !removed.Retired() {
		t.Error("removed member not retired")
	}
	if p, _ := g2.Pick(nil, 0); p != g2.members[1] {
		t.Errorf("picked %s, want the new member", p.Addr)
	}
}

func TestDescribe(t *testing.T) {
	tab, cfg := compile(t, edge)
	var b bytes.Buffer
	tab.Describe(&b, &cfg)
	out := b.String()
	for _, want := range []string{
		"listener edge (pooled mode, routed per call; serializers: any)",
		`1. match {object: "Pyro.NameServer"} -> ns`,
		"never matches pickle",
		`deny "not exposed at this edge"`,
		"8. match {} -> greeters",
		"group greeters: balance round_robin",
		"127.0.0.1:9102 weight 3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func BenchmarkDecideCached(b *testing.B) {
	tab, _ := compile(b, edge)
	r := tab.Router("edge")
	m := invoke("shop.cart", "checkout", nil)
	client := netip.MustParseAddr("127.0.0.1")
	var req Request
	b.ReportAllocs()
	for b.Loop() {
		req.Reset(false, client, m)
		r.Decide(&req)
	}
}

func BenchmarkDecideFixed(b *testing.B) {
	tab, _ := compile(b, `listeners: [{name: l, listen: 127.0.0.1:1, backend: 127.0.0.1:2}]`)
	r := tab.Router("l")
	m := invoke("shop.cart", "checkout", nil)
	var req Request
	b.ReportAllocs()
	for b.Loop() {
		req.Reset(false, netip.Addr{}, m)
		r.Decide(&req)
	}
}

func BenchmarkPick(b *testing.B) {
	for _, bal := range []string{"round_robin", "least_inflight", "hash"} {
		b.Run(bal, func(b *testing.B) {
			g := group3(b, bal, "", 1, 1, 2)
			var req Request
			req.Reset(false, netip.MustParseAddr("127.0.0.1"), invoke("o", "m", nil))
			b.ReportAllocs()
			for b.Loop() {
				g.Pick(&req, 0)
			}
		})
	}
}

// A listener with a name-server view routes learned object ids to their members: after
// the rules that name an object and the deny rules, before a catch-all; a reload keeps
// what was learned but forgets the members it removes.
func TestLearnedObjectIDs(t *testing.T) {
	const yml = `
backends:
  - {name: ns, members: [127.0.0.1:9090]}
  - {name: inside, members: [127.0.0.1:9100, 127.0.0.1:9101]}
  - {name: shop, members: [127.0.0.1:9200]}
listeners:
  - name: edge
    listen: 127.0.0.1:5555
    advertise: gw.example.com:5555
    mode: pooled
    routes:
      - {match: {object: Pyro.NameServer}, to: ns}
      - {match: {object: "shop.*"}, to: shop}
      - {match: {client: 10.0.0.0/8}, deny: not from inside}
      - {to: inside}
`
	tab, cfg := compile(t, yml)
	if l := cfg.Listeners[0]; l.NameServer != "ns" || l.Advertise != "gw.example.com:5555" {
		t.Fatalf("name-server view defaults: %+v", l)
	}
	learned := tab.Learned("edge")
	m101 := tab.MemberAt("tcp", "127.0.0.1:9101")
	shop := tab.MemberAt("tcp", "127.0.0.1:9200")
	if learned == nil || m101 == nil || shop == nil || tab.MemberAt("tcp", "127.0.0.1:1") != nil {
		t.Fatal("learned set or members missing")
	}
	if _, changed := learned.Learn("thing", m101); !changed {
		t.Error("first learn changed nothing")
	}
	if prev, changed := learned.Learn("shop.cart", shop); prev != nil || !changed {
		t.Error("learn of a new id reported a clash")
	}
	if prev, _ := learned.Learn("thing", m101); prev != nil {
		t.Error("the same member again is no clash")
	}
	r := tab.Router("edge")
	local, inside := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.1")
	var req Request
	decide := func(client netip.Addr, object string) Decision {
		req.Reset(false, client, invoke(object, "run", nil))
		return r.Decide(&req)
	}
	for range 2 { // evaluated, then cached
		if d := decide(local, "thing"); d.Member != m101 || d.Group.Name != "inside" {
			t.Errorf("learned id: %+v", d)
		}
		if d := decide(local, "other"); d.Member != nil || d.Group.Name != "inside" {
			t.Errorf("unknown id: %+v", d)
		}
		if d := decide(inside, "thing"); d.Group != nil || d.Deny != "not from inside" {
			t.Errorf("deny before learned: %+v", d)
		}
		if d := decide(local, "shop.cart"); d.Member != nil || d.Group.Name != "shop" {
			t.Errorf("a rule naming the object before learned: %+v", d)
		}
	}
	// An id its name server put on two members: the routes decide.
	learned.Learn("twice", m101)
	learned.Learn("twice", nil)
	if d := decide(local, "twice"); d.Member != nil || d.Group.Name != "inside" || learned.Snapshot()["twice"] != "" {
		t.Errorf("clashing id: %+v", d)
	}
	d := decide(local, "thing")
	for range 3 {
		if m, err := d.Pick(&req, 0); m != m101 || err != nil {
			t.Errorf("pick of a learned member: %v %v", m, err)
		}
	}
	if m, err := d.Pick(&req, Tried(0).With(d.Group, m101)); m != nil || err == nil {
		t.Errorf("learned member tried already: %v %v", m, err)
	}

	// A reload keeps the learned ids; one without 127.0.0.1:9101 forgets its.
	next, err := Compile(&cfg, tab, nil)
	if err != nil {
		t.Fatal(err)
	}
	tab.Retire(next)
	if next.Learned("edge") != learned || learned.Len() != 3 {
		t.Errorf("reload lost the learned ids: %v", learned.Snapshot())
	}
	cfg2, err := config.ParseConfig([]byte(strings.Replace(yml, ", 127.0.0.1:9101]", "]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	third, err := Compile(&cfg2, next, nil)
	if err != nil {
		t.Fatal(err)
	}
	next.Retire(third)
	if got := learned.Snapshot(); len(got) != 2 || got["shop.cart"] != "127.0.0.1:9200" || got["twice"] != "" {
		t.Errorf("after removing the member: %v", got)
	}
	req.Reset(false, local, invoke("thing", "run", nil))
	if d := third.Router("edge").Decide(&req); d.Member != nil || d.Group.Name != "inside" {
		t.Errorf("forgotten id still pinned: %+v", d)
	}
}
