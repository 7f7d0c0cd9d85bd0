package interop

import (
	"fmt"
	"maps"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// This file: balancing between replicas under load (round_robin shares, least_inflight
// against a slow replica, hash keys kept and moved by a reload), and a replica killed,
// restarted and all replicas down while clients call. The load comes from Go clients
// (routeLoad: Python clients are too slow for it); the replicas are Go echo daemons in
// this process (bench.EchoServer, counting calls, told apart by the length of their
// replies) or, where one is SIGKILLed, real Pyro4 daemons (testdata/routing_daemon.py).

// routeCallTimeout bounds one dial, CONNECT or call of a Go load client.
const routeCallTimeout = 10 * time.Second

// routeConn is a Go Pyro4 client connection (serpent) for load from goroutines: where
// rawClient fails the test, it returns errors.
type routeConn struct {
	c   net.Conn
	seq uint16
}

// routeDial connects to addr from the IP local ("": any) and sends a CONNECT for object
// as a Pyro4 proxy does (without asking for metadata); anything but a CONNECTOK is an
// error.
func routeDial(addr, local, object string) (*routeConn, error) {
	d := net.Dialer{Timeout: routeCallTimeout}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(routeCallTimeout))
	connect := fmt.Sprintf("# serpent utf-8 python3.2\n{'handshake':'hello','object':'%s'}", object)
	h, payload, err := scaleReadAfter(c, rawMsg(frame.Connect, 0, nil, connect))
	if err == nil && h.Type != frame.ConnectOK {
		err = fmt.Errorf("CONNECT answered with %v: %q", h.Type, payload)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return &routeConn{c: c}, nil
}

// routeException is a call answered with a Pyro4 exception (its serpent payload): the
// connection is still in step.
type routeException string

// Error returns "CLASS: MESSAGE" from the serpent exception dict, or the whole payload.
func (e routeException) Error() string {
	s := string(e)
	class, msg := routeBetween(s, "'__class__':'", "'"), routeBetween(s, "'args':('", "',)")
	if class == "" || msg == "" {
		return "exception: " + s
	}
	return class + ": " + msg
}

// routeBetween returns the text of s between the first from and the next to after it.
func routeBetween(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, to)
	return v
}

// call sends an INVOKE (serpent payload, annotations ann) and returns the reply payload.
func (rc *routeConn) call(ann frame.Annotations, payload string) ([]byte, error) {
	rc.seq++
	rc.c.SetDeadline(time.Now().Add(routeCallTimeout))
	h, p, err := scaleReadAfter(rc.c, rawMsg(frame.Invoke, rc.seq, ann, payload))
	switch {
	case err != nil:
		return nil, err
	case h.Type != frame.Result || h.Seq != rc.seq:
		return nil, fmt.Errorf("call seq %d answered with %v seq %d: %q", rc.seq, h.Type, h.Seq, p)
	case h.Flags.Has(frame.FlagException):
		return nil, routeException(p)
	}
	return p, nil
}

// routeSpec is what the clients of a routeLoad do.
type routeSpec struct {
	addr    string
	object  string // named in the CONNECT: session mode routes by it
	clients int
	// calls per client, after which it stops; 0: until the load is stopped.
	calls int
	pause time.Duration // between two calls of a client
	// reconnect: a client opens a new connection after this many calls on one (0: never).
	reconnect int
	// perConn: routeLoad.allowed is read when a connection opens (session mode routes
	// connections), not when a call starts (pooled mode routes calls).
	perConn bool
	local   func(client, conn int) string // source IP of a client's conn-th connection; nil: any
	// call returns a client's n-th call: a hash key to record ("": none), its annotations
	// and its serpent payload.
	call     func(client, n int) (key string, ann frame.Annotations, payload string)
	classify func(reply []byte) string // which replica a reply comes from
}

// routeFailure is a failed dial, CONNECT or call of a load client.
type routeFailure struct {
	at   time.Time // when it started
	took time.Duration
	err  string
}

// routeLoad is Go clients calling through a dispatcher, each on its own connection,
// recording which replica served each call and every failure.
type routeLoad struct {
	spec routeSpec
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	done chan struct{} // closed when every client has returned

	// allowed, when set, is the set of replicas the routes in service send calls to: a
	// call (or connection, see perConn) may reach those in service when it started or
	// when it ended; others count as wrong.
	allowed atomic.Pointer[map[string]bool]

	mu       sync.Mutex
	calls    int64
	served   map[string]int64
	byKey    map[string]map[string]int64
	failures []routeFailure
	wrong    int64
	wrongEx  []string // the first few wrong ones
	last     map[string]time.Time
}

// routeStart starts the clients of spec; they are stopped when the test ends at the latest.
func routeStart(t testing.TB, spec routeSpec) *routeLoad {
	l := &routeLoad{spec: spec, stop: make(chan struct{}), done: make(chan struct{}),
		served: map[string]int64{}, byKey: map[string]map[string]int64{}, last: map[string]time.Time{}}
	for i := range spec.clients {
		l.wg.Go(func() { l.client(i) })
	}
	go func() {
		l.wg.Wait()
		close(l.done)
	}()
	t.Cleanup(func() {
		l.once.Do(func() { close(l.stop) })
		<-l.done
	})
	return l
}

// allow sets the replicas calls started from now on may reach.
func (l *routeLoad) allow(replicas ...string) {
	m := map[string]bool{}
	for _, r := range replicas {
		m[r] = true
	}
	l.allowed.Store(&m)
}

func (l *routeLoad) client(i int) {
	var rc *routeConn
	defer func() {
		if rc != nil {
			rc.c.Close()
		}
	}()
	var allowed *map[string]bool
	onConn, conns := 0, 0
	for n := 0; l.spec.calls == 0 || n < l.spec.calls; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		start := time.Now()
		if rc == nil {
			before := l.allowed.Load()
			local := ""
			if l.spec.local != nil {
				local = l.spec.local(i, conns)
			}
			var err error
			if rc, err = routeDial(l.spec.addr, local, l.spec.object); err != nil {
				l.fail(start, fmt.Errorf("dial: %w", err))
				l.sleep(20 * time.Millisecond)
				continue
			}
			if l.spec.perConn { // routed at its CONNECT: by the routes before it or after
				allowed = routeUnion(before, l.allowed.Load())
			}
			onConn = 0
			conns++
		}
		before := l.allowed.Load()
		key, ann, payload := l.spec.call(i, n)
		reply, err := rc.call(ann, payload)
		if err != nil {
			l.fail(start, err)
			if _, ok := err.(routeException); !ok {
				rc.c.Close()
				rc = nil
			}
		} else {
			if !l.spec.perConn { // routed while it was in flight: by the routes before or after
				allowed = routeUnion(before, l.allowed.Load())
			}
			l.record(start, key, l.spec.classify(reply), allowed)
		}
		if onConn++; rc != nil && l.spec.reconnect > 0 && onConn >= l.spec.reconnect {
			rc.c.Close()
			rc = nil
		}
		l.sleep(l.spec.pause)
	}
}

// routeUnion returns the union of two allowed sets (nil: anything).
func routeUnion(a, b *map[string]bool) *map[string]bool {
	if a == nil || b == nil {
		return nil
	}
	if a == b {
		return a
	}
	m := maps.Clone(*a)
	maps.Copy(m, *b)
	return &m
}

func (l *routeLoad) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-l.stop:
	case <-time.After(d):
	}
}

// routeLost reports whether a call failed as one lost in flight does: the dispatcher
// closed the client's connection, as the lost daemon's would be.
func routeLost(err string) bool {
	if strings.Contains(err, "pyro-dispatch") { // an exception: the dispatcher answered
		return false
	}
	return strings.HasSuffix(err, "EOF") || strings.Contains(err, "connection reset by peer")
}

func (l *routeLoad) fail(start time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, routeFailure{at: start, took: time.Since(start), err: err.Error()})
}

func (l *routeLoad) record(start time.Time, key, who string, allowed *map[string]bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	l.served[who]++
	l.last[who] = now
	if key != "" {
		if l.byKey[key] == nil {
			l.byKey[key] = map[string]int64{}
		}
		l.byKey[key][who]++
	}
	if allowed != nil && !(*allowed)[who] {
		if l.wrong++; len(l.wrongEx) < 5 {
			l.wrongEx = append(l.wrongEx, fmt.Sprintf("%s for a call from %s to %s, routes allowing %v", who, start.Format("15:04:05.000000"), now.Format("15:04:05.000000"), slices.Sorted(maps.Keys(*allowed))))
		}
	}
}

// finish stops the clients and waits for them (a call in flight ends within
// routeCallTimeout).
func (l *routeLoad) finish(t testing.TB) {
	t.Helper()
	l.once.Do(func() { close(l.stop) })
	l.wait(t)
}

// wait waits for the clients to return (by themselves after spec.calls, or stopped).
func (l *routeLoad) wait(t testing.TB) {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(2 * routeCallTimeout):
		t.Fatalf("load clients still running %v after they were stopped (a hang)", 2*routeCallTimeout)
	}
}

// servedBy returns the calls served so far, by replica, and their total.
func (l *routeLoad) servedBy() (map[string]int64, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int64, len(l.served))
	for k, v := range l.served {
		out[k] = v
	}
	return out, l.calls
}

// failuresSince returns the failures of calls started at or after t0.
func (l *routeLoad) failuresSince(t0 time.Time) []routeFailure {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []routeFailure
	for _, f := range l.failures {
		if !f.at.Before(t0) {
			out = append(out, f)
		}
	}
	return out
}

// keys returns, for every hash key, the replicas that served it.
func (l *routeLoad) keys() map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for k, by := range l.byKey {
		for who := range by {
			out[k] = append(out[k], who)
		}
	}
	return out
}

// routeEchoCall is a call of the echo daemons' echo('x').
func routeEchoCall(int, int) (string, frame.Annotations, string) {
	return "", nil, "# serpent utf-8 python3.2\n('echo','echo',('x',),{})"
}

// routeWho returns the str a Python daemon answered in serpent: who() and work() give
// their daemon's name.
func routeWho(reply []byte) string {
	s := strings.TrimPrefix(string(reply), "# serpent utf-8 python3.2\n")
	return strings.Trim(s, "'")
}

// routeReplicas are Go echo daemons in this process, told apart by the length of their
// replies (each answers echo with a str of its own length).
type routeReplicas struct {
	names []string
	addrs []string
	srv   []*bench.EchoServer
	byLen map[int]string
	base  []bench.EchoStats // after the probes that learnt the reply lengths
}

// routeEchoReplicas starts one echo daemon per delay (how long each call takes), named
// r0, r1, ...; they are closed when the test ends.
func routeEchoReplicas(t testing.TB, delays ...time.Duration) *routeReplicas {
	t.Helper()
	r := &routeReplicas{byLen: map[int]string{}}
	for i, d := range delays {
		s := &bench.EchoServer{Delay: d, ResponseSize: 8 + i}
		if err := s.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		go s.Serve()
		t.Cleanup(func() { s.Close() })
		name := fmt.Sprintf("r%d", i)
		r.names, r.addrs, r.srv = append(r.names, name), append(r.addrs, s.Addr().String()), append(r.srv, s)
		rc, err := routeDial(s.Addr().String(), "", bench.EchoObject)
		if err != nil {
			t.Fatal(err)
		}
		_, _, payload := routeEchoCall(0, 0)
		reply, err := rc.call(nil, payload)
		rc.c.Close()
		if err != nil {
			t.Fatal(err)
		}
		r.byLen[len(reply)] = name
	}
	for _, s := range r.srv {
		r.base = append(r.base, s.Stats())
	}
	return r
}

func (r *routeReplicas) classify(reply []byte) string {
	if n, ok := r.byLen[len(reply)]; ok {
		return n
	}
	return fmt.Sprintf("unknown reply %q", reply)
}

// stats returns what replica i did since routeEchoReplicas returned: calls and
// connections.
func (r *routeReplicas) stats(i int) (calls, conns int64) {
	s := r.srv[i].Stats()
	return s.Calls - r.base[i].Calls, s.Connections - r.base[i].Connections
}

// group is a backend group of the replicas with weights (nil: 1 each) and balance.
func (r *routeReplicas) group(name, balance string, weights ...int) config.Backend {
	b := config.Backend{Name: name, Balance: balance}
	for i, a := range r.addrs {
		m := config.Member{Address: a}
		if weights != nil {
			m.Weight = weights[i]
		}
		b.Members = append(b.Members, m)
	}
	return b
}

// routeNoFailures fails the test if the load had failed calls.
func routeNoFailures(t testing.TB, l *routeLoad) {
	t.Helper()
	f := l.failuresSince(time.Time{})
	for i, x := range f[:min(len(f), 5)] {
		t.Errorf("failure %d of %d: %s (after %v)", i+1, len(f), x.err, x.took.Round(time.Millisecond))
	}
}

// TestRoutingRoundRobinShares: 64 Go clients call through a group of three replicas
// with weights 1, 1, 2 (round_robin) as fast as they can. Pooled mode (a pick per call):
// each replica's share of the calls is within ±10% of its weight's share (25/25/50%), and
// every call the clients saw served is one the replica counted. Session mode (a pick per
// connection): the 64 connections split exactly 16/16/32, and so do the calls within
// ±10%.
func TestRoutingRoundRobinShares(t *testing.T) {
	// Not parallel, as the other measurements under load: they run alone.
	weights := []int{1, 1, 2}
	for _, mode := range []string{config.ModePooled, config.ModeSession} {
		t.Run(mode, func(t *testing.T) {
			reps := routeEchoReplicas(t, 0, 0, 0)
			p := routeProxy(t, mode, []config.Backend{reps.group("replicas", config.BalanceRoundRobin, weights...)},
				[]config.Route{{To: "replicas"}})
			l := routeStart(t, routeSpec{addr: p.addr, object: bench.EchoObject, clients: 64, call: routeEchoCall, classify: reps.classify})
			time.Sleep(1500 * time.Millisecond)
			l.finish(t)
			routeNoFailures(t, l)
			served, total := l.servedBy()
			if total < 1000 {
				t.Fatalf("only %d calls in 1.5s", total)
			}
			for i, name := range reps.names {
				calls, conns := reps.stats(i)
				want := float64(weights[i]) / 4
				share := float64(served[name]) / float64(total)
				t.Logf("%s (weight %d): %d of %d calls (%.1f%%, want %.0f%% ±10%%), %d connections", name, weights[i], served[name], total, 100*share, 100*want, conns)
				if math.Abs(share-want) > 0.1*want {
					t.Errorf("%s (weight %d) got %.1f%% of the calls, want %.1f%% ±10%%", name, weights[i], 100*share, 100*want)
				}
				if calls != served[name] {
					t.Errorf("%s counted %d calls, the clients %d replies from it", name, calls, served[name])
				}
				if wantConns := int64(16 * weights[i]); mode == config.ModeSession && conns != wantConns {
					t.Errorf("%s (weight %d) got %d of the 64 client connections, want %d", name, weights[i], conns, wantConns)
				}
			}
		})
	}
}

// TestRoutingLeastInflight: pooled mode, balance least_inflight, 64 Go clients calling as
// fast as they can; replica r0 takes 5 ms per call, r1 and r2 answer at once. r0 gets
// clearly fewer calls: less than half of either fast replica's, and less than a quarter
// of all (round robin would give each a third). (The fast replicas are not free here:
// with everything in this process under -race, calls spend a few ms in flight on them
// too, and the balancer evens out calls in flight; the share of r0 comes out at 14-16%.)
func TestRoutingLeastInflight(t *testing.T) {
	// Not parallel, as the other measurements under load: they run alone.
	reps := routeEchoReplicas(t, 5*time.Millisecond, 0, 0)
	p := routeProxy(t, config.ModePooled, []config.Backend{reps.group("replicas", config.BalanceLeastInflight)}, []config.Route{{To: "replicas"}})
	l := routeStart(t, routeSpec{addr: p.addr, object: bench.EchoObject, clients: 64, call: routeEchoCall, classify: reps.classify})
	var sum [3]int64
	samples := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		for i, a := range reps.addrs {
			sum[i] += routeMember(t, p, "replicas", a).InFlight()
		}
		samples++
	}
	t.Logf("calls in flight on r0, r1, r2 (mean of %d samples): %.1f, %.1f, %.1f", samples, float64(sum[0])/float64(samples), float64(sum[1])/float64(samples), float64(sum[2])/float64(samples))
	l.finish(t)
	routeNoFailures(t, l)
	served, total := l.servedBy()
	for _, name := range reps.names {
		t.Logf("%s: %d of %d calls (%.1f%%)", name, served[name], total, 100*float64(served[name])/float64(total))
	}
	if total < 1000 {
		t.Fatalf("only %d calls in 2s", total)
	}
	if slow, fast := served["r0"], min(served["r1"], served["r2"]); slow*2 > fast || slow*4 > total {
		t.Errorf("the slow replica r0 got %d of %d calls, the fast ones at least %d each: want less than half of theirs and a quarter of all", slow, total, fast)
	}
}

// routeKeyCalls returns the call function of `clients` clients that send `keys` hash
// keys in turn (the n-th call of client c sends key (c + n*clients) mod keys), each in the
// annotation USER of an echo('x') call.
func routeKeyCalls(clients, keys int) func(client, n int) (string, frame.Annotations, string) {
	return func(client, n int) (string, frame.Annotations, string) {
		key := fmt.Sprintf("user-%d", (client+n*clients)%keys)
		_, _, payload := routeEchoCall(0, 0)
		return key, frame.AppendAnnotation(nil, frame.ChunkID([]byte("USER")), []byte(key)), payload
	}
}

// routeKeyMap returns the one replica each key went to, failing the test for a key that
// went to several.
func routeKeyMap(t *testing.T, l *routeLoad, what string) map[string]string {
	t.Helper()
	out := map[string]string{}
	split := 0
	for k, who := range l.keys() {
		if len(who) != 1 {
			if split++; split <= 5 {
				t.Errorf("%s: key %s went to %v, want one replica", what, k, who)
			}
			continue
		}
		out[k] = who[0]
	}
	if split > 0 {
		t.Errorf("%s: %d keys went to more than one replica", what, split)
	}
	return out
}

// TestRoutingHashKeys: balance hash over three replicas keeps every key on one replica,
// and a reload (dispatch.Server.Reload) that removes one replica moves only the keys it
// had, about a third: the others stay where they were. Pooled mode hashes the annotation
// USER of each call (64 clients, 300 keys, each key sent at least 4 times, by 4 different
// clients); session mode hashes the client IP of each connection (64 clients, each
// opening 8 connections in turn from 256 source addresses 127.0.1.0-255: two connections
// per address, from two clients, three calls on each).
func TestRoutingHashKeys(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode, hashKey string
		spec          func(addr string) routeSpec
		keys          int
	}{
		{config.ModePooled, "annotation:USER", func(addr string) routeSpec {
			return routeSpec{addr: addr, object: bench.EchoObject, clients: 64, calls: 19, call: routeKeyCalls(64, 300)}
		}, 300},
		{config.ModeSession, config.HashClientIP, func(addr string) routeSpec {
			// Client c's k-th connection comes from 127.0.1.((8c + k) mod 256).
			ip := func(client, conn int) string { return fmt.Sprintf("127.0.1.%d", (8*client+conn)%256) }
			call := func(client, n int) (string, frame.Annotations, string) {
				_, ann, payload := routeEchoCall(0, 0)
				return ip(client, n/3), ann, payload
			}
			return routeSpec{addr: addr, object: bench.EchoObject, clients: 64, calls: 8 * 3, reconnect: 3, local: ip, call: call}
		}, 256},
	}
	for _, c := range cases {
		t.Run(c.mode+" "+c.hashKey, func(t *testing.T) {
			t.Parallel()
			reps := routeEchoReplicas(t, 0, 0, 0)
			g := reps.group("replicas", config.BalanceHash)
			g.HashKey = c.hashKey
			routes := []config.Route{{To: "replicas"}}
			p := routeProxy(t, c.mode, []config.Backend{g}, routes)
			spec := c.spec(p.addr)
			spec.classify = reps.classify
			run := func(what string) map[string]string {
				l := routeStart(t, spec)
				l.wait(t)
				routeNoFailures(t, l)
				m := routeKeyMap(t, l, what)
				if len(m) != c.keys {
					t.Fatalf("%s: %d keys served, want %d", what, len(m), c.keys)
				}
				return m
			}
			before := run("three replicas")
			per := map[string]int{}
			for _, who := range before {
				per[who]++
			}
			t.Logf("three replicas: keys per replica %v", per)
			for _, name := range reps.names {
				if n := per[name]; n < c.keys/6 {
					t.Errorf("%s has %d of %d keys: hashing does not spread them", name, n, c.keys)
				}
			}

			// Reload without r1.
			g2 := g
			g2.Members = []config.Member{g.Members[0], g.Members[2]}
			routeReload(t, p, c.mode, []config.Backend{g2}, routes)
			calls1, _ := reps.stats(1)
			after := run("r1 removed")
			if calls, _ := reps.stats(1); calls != calls1 {
				t.Errorf("the removed replica r1 took %d calls after the reload", calls-calls1)
			}
			moved, kept := 0, 0
			for k, was := range before {
				now := after[k]
				switch {
				case was == "r1" && now == "r1":
					t.Errorf("key %s still on the removed r1", k)
				case was == "r1":
					moved++
				case now != was:
					t.Errorf("key %s moved from %s to %s, though %s stayed", k, was, now, was)
				default:
					kept++
				}
			}
			frac := float64(moved) / float64(c.keys)
			t.Logf("r1 removed: %d of %d keys moved (%.0f%%, those of r1), %d kept their replica", moved, c.keys, 100*frac, kept)
			if frac < 0.2 || frac > 0.47 { // 1/3 ± 4.5 standard deviations
				t.Errorf("%.0f%% of the keys moved, want about a third", 100*frac)
			}
		})
	}
}

// routeMember returns the member of group with address addr in the routes in service.
func routeMember(t testing.TB, p *proxy, group, addr string) *routing.Member {
	t.Helper()
	g := p.srv.Table().Group(group)
	if g == nil {
		t.Fatalf("no group %s in service", group)
	}
	for _, m := range g.Members() {
		if m.Addr == addr {
			return m
		}
	}
	t.Fatalf("group %s has no member %s", group, addr)
	return nil
}

// TestRoutingReplicaKilledUnderLoad: pooled mode, three real Pyro4 replicas (round_robin,
// health checks every 200 ms, fall 2, rise 1, eject 500 ms), 64 Go clients calling
// work(20 ms) every 20 ms. One replica is SIGKILLed: the calls that fail are those in
// flight on it then (at most the pool's max_open), and at most 2 that started after it
// was gone (routed to it before the loss was seen), all with their client's connection
// closed, as the daemon's loss would close it (routeLost); every
// call started 500 ms after that succeeds, and the health check puts it out. Restarted
// on the same port, it takes calls again within interval × rise plus 1 s, and no call
// fails. Then all three are killed: calls get the clean "no healthy backend in group
// replicas" error within the dial timeout, and so does a real Pyro4 client's CONNECT.
// Not parallel, as the other measurements under load: they run alone.
func TestRoutingReplicaKilledUnderLoad(t *testing.T) {
	requirePyro4(t)
	const ( // health checks, and the dial timeout
		interval = 200 * time.Millisecond
		rise     = 1
		dial     = 3 * time.Second
		slack    = time.Second
	)
	procs := make([]*pyro4test.Process, 3)
	addrs := make([]string, 3)
	g := config.Backend{Name: "replicas", Health: config.Health{Interval: interval, Timeout: interval, Fall: 2, Rise: rise}, Eject: 500 * time.Millisecond}
	names := []string{"r0", "r1", "r2"}
	for i, name := range names {
		procs[i], addrs[i] = routeDaemonAt(t, name, "")
		g.Members = append(g.Members, config.Member{Address: addrs[i]})
	}
	p := routeProxy(t, config.ModePooled, []config.Backend{g}, []config.Route{{To: "replicas"}}, func(c *config.Config) { c.Timeouts.Dial = dial })
	l := routeStart(t, routeSpec{addr: p.addr, object: "svc", clients: 64, pause: 20 * time.Millisecond, call: routeWork(0.02), classify: routeWho})
	defer l.finish(t)

	time.Sleep(time.Second)
	served, total := l.servedBy()
	t.Logf("warm-up: %d calls %v", total, served)
	routeNoFailures(t, l)
	for _, n := range names {
		if served[n] == 0 {
			t.Fatalf("replica %s took no call in the warm-up: %v", n, served)
		}
	}

	// SIGKILL r1 while calls are in flight on it.
	m1 := routeMember(t, p, "replicas", addrs[1])
	inflight := m1.InFlight()
	killed := time.Now()
	procs[1].Stop() // SIGKILL, and wait until it is gone: its sockets are closed then
	dead := time.Now()
	time.Sleep(2 * time.Second) // ejected (500 ms), then out by its health check
	var inFlight, after []routeFailure
	for _, f := range l.failuresSince(killed.Add(-time.Second)) {
		switch {
		case !routeLost(f.err):
			t.Errorf("failure %q is not a connection closed with the call in flight (r1 lost)", f.err)
		case f.at.After(dead):
			after = append(after, f) // sent to r1 once it was gone
		default:
			inFlight = append(inFlight, f)
		}
	}
	t.Logf("r1 killed (%d calls in flight on it just before; %v until it was gone): %d calls failed that had started before it was gone, %d that started after",
		inflight, dead.Sub(killed).Round(time.Millisecond), len(inFlight), len(after))
	for _, f := range append(inFlight, after...) {
		t.Logf("  started %+v after the SIGKILL, failed %v later: %s", f.at.Sub(killed).Round(time.Millisecond), f.took.Round(time.Millisecond), f.err)
	}
	if maxOpen := config.DefaultPoolMaxOpen; len(inFlight) > maxOpen {
		t.Errorf("%d calls started before r1 was gone failed, more than can be in flight on it (pool max_open %d)", len(inFlight), maxOpen)
	}
	// A call routed to r1 in the moment before the loss of its calls was seen may fail
	// too; more are calls sent on r1's pooled connections that died with it.
	if len(after) > 2 {
		t.Errorf("%d calls that started after r1 was gone failed (want at most 2, routed to it in the moment before its loss was seen)", len(after))
	}
	for _, f := range after {
		if f.at.After(dead.Add(500 * time.Millisecond)) {
			t.Errorf("a call started %v after r1 was gone failed: %s", f.at.Sub(dead).Round(time.Millisecond), f.err)
		}
	}
	if st := m1.Status(); !strings.Contains(st, "health check failing") {
		t.Errorf("r1 status 2s after the kill: %q, want its health check failing", st)
	}
	served, _ = l.servedBy()
	r1Calls := served["r1"]

	// Restart r1 on the same port: it takes calls again within interval × rise + slack.
	restartAt := time.Now()
	procs[1], _ = routeDaemonAt(t, "r1", addrs[1])
	up := time.Now()
	within := time.Duration(rise)*interval + slack
	var back time.Duration
	for back == 0 && time.Since(up) < within+2*time.Second {
		if served, _ = l.servedBy(); served["r1"] > r1Calls {
			back = time.Since(up)
		}
		time.Sleep(5 * time.Millisecond)
	}
	switch {
	case back == 0:
		t.Errorf("r1 took no call within %v of its restart (want within health interval × rise + %v = %v); status %q", within+2*time.Second, slack, within, m1.Status())
	case back > within:
		t.Errorf("r1 took calls again %v after its restart, want within health interval × rise + %v = %v", back.Round(time.Millisecond), slack, within)
	default:
		t.Logf("r1 restarted (%v to start): took calls again %v after it listened", up.Sub(restartAt).Round(time.Millisecond), back.Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)
	for _, f := range l.failuresSince(dead.Add(500 * time.Millisecond)) {
		t.Errorf("a call started %v after r1 was gone failed (r1 restarted %v after that): %s", f.at.Sub(dead).Round(time.Millisecond), up.Sub(dead).Round(time.Millisecond), f.err)
	}
	servedBefore, _ := l.servedBy()

	// All three down: a clean refusal, in far less than the dial timeout.
	allDown := time.Now()
	for _, pp := range procs {
		pp.Stop()
	}
	time.Sleep(time.Second)
	l.finish(t)
	servedAfter, _ := l.servedBy()
	var noHealthy, lost, other int
	var slowest time.Duration
	for _, f := range l.failuresSince(allDown) {
		switch {
		case strings.Contains(f.err, "pyro-dispatch: no healthy backend in group replicas ("):
			noHealthy++
			slowest = max(slowest, f.took)
		case routeLost(f.err):
			lost++ // in flight when they were killed
		default:
			if other++; other <= 3 {
				t.Errorf("with every replica down, a call failed after %v with %q, want no healthy backend", f.took.Round(time.Millisecond), f.err)
			}
		}
	}
	t.Logf("all down: %d calls refused (no healthy backend, slowest %v), %d lost in flight, %d other failures, %v served after",
		noHealthy, slowest.Round(time.Millisecond), lost, other, routeDiff(servedAfter, servedBefore))
	if other > 3 {
		t.Errorf("%d calls in all failed otherwise than no healthy backend or lost in flight", other)
	}
	if noHealthy < 64 {
		t.Errorf("only %d calls refused in the second after every replica went down", noHealthy)
	}
	if slowest >= dial {
		t.Errorf("a no healthy backend refusal took %v, not less than the dial timeout %v", slowest, dial)
	}
	r := faultCall(t, p.uri("svc"), "who", nil, nil)
	faultWantError(t, r, []string{"rejected: pyro-dispatch: no healthy backend in group replicas (", addrs[0]})
	if took := time.Duration(r.Elapsed * float64(time.Second)); took >= dial {
		t.Errorf("a Pyro4 client got the refusal after %v, not less than the dial timeout %v", took, dial)
	}
}

// routeWork is a call of the routing_daemon.py replicas' svc.work(seconds), which answers
// with the replica's name.
func routeWork(seconds float64) func(int, int) (string, frame.Annotations, string) {
	return func(int, int) (string, frame.Annotations, string) {
		return "", nil, fmt.Sprintf("# serpent utf-8 python3.2\n('svc','work',(%g,),{})", seconds)
	}
}

// routeTwoReplicas starts real Pyro4 replicas r0 and r1 and returns their group
// (health checks every 200 ms, fall 2, rise 1, eject 500 ms), processes and addresses.
func routeTwoReplicas(t *testing.T) (config.Backend, []*pyro4test.Process, []string) {
	g := config.Backend{Name: "replicas", Health: config.Health{Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond, Fall: 2, Rise: 1}, Eject: 500 * time.Millisecond}
	procs := make([]*pyro4test.Process, 2)
	addrs := make([]string, 2)
	for i, name := range []string{"r0", "r1"} {
		procs[i], addrs[i] = routeDaemonAt(t, name, "")
		g.Members = append(g.Members, config.Member{Address: addrs[i]})
	}
	return g, procs, addrs
}

// TestRoutingRestartedReplicaIdleConnections: pooled mode, two real Pyro4 replicas (round
// robin, health checks every 200 ms, fall 2, rise 1). 16 clients call work(100 ms) at
// once, so the pool of each replica opens several connections, idle once the calls are
// done. r1 is SIGKILLed while no call is in flight, its health check puts it out; it is
// restarted on the same port and its health check puts it back. Then 8 clients make 4
// calls each: every call succeeds, r1 takes its share, and it stays in service. (A call
// sent on one of r1's pooled connections from before the kill would fail with "lost
// during the call" and eject r1 again.) With calls one at a time per backend connection,
// and pipelined.
func TestRoutingRestartedReplicaIdleConnections(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	for _, pipeline := range []int{1, 8} {
		t.Run(fmt.Sprintf("pipeline %d", pipeline), func(t *testing.T) {
			t.Parallel()
			g, procs, addrs := routeTwoReplicas(t)
			p := routeProxy(t, config.ModePooled, []config.Backend{g}, []config.Route{{To: "replicas"}},
				func(c *config.Config) { c.Listeners[0].Pool.Pipeline = pipeline })
			l := routeStart(t, routeSpec{addr: p.addr, object: "svc", clients: 16, calls: 1, call: routeWork(0.1), classify: routeWho})
			l.wait(t)
			routeNoFailures(t, l)
			served, _ := l.servedBy()
			t.Logf("16 concurrent calls: %v", served)

			m1 := routeMember(t, p, "replicas", addrs[1])
			procs[1].Stop()
			faultWaitFor(t, "r1 out by its health check", func() bool { return strings.Contains(m1.Status(), "health check failing") })
			procs[1], _ = routeDaemonAt(t, "r1", addrs[1])
			faultWaitFor(t, "r1 back in service", func() bool { return m1.Status() == "up" })

			l = routeStart(t, routeSpec{addr: p.addr, object: "svc", clients: 8, calls: 4, call: routeWork(0), classify: routeWho})
			l.wait(t)
			served, total := l.servedBy()
			t.Logf("after r1's restart: %d calls served %v; r1 status %q", total, served, m1.Status())
			routeNoFailures(t, l)
			if served["r1"] == 0 {
				t.Errorf("the restarted r1 took none of the %d calls", total)
			}
			if st := m1.Status(); st != "up" {
				t.Errorf("r1 after the calls: %q, want up", st)
			}
		})
	}
}

// TestRoutingKilledReplicaPoolWaiters: pooled mode, two real Pyro4 replicas (round
// robin, pool max_open 2, wait_timeout 5 s, dial timeout 3 s, health checks every
// 200 ms); clients call work(600 ms) at once, so each replica has 2 calls in flight and
// the others wait for one of its 2 connections; 300 ms later replicas are SIGKILLed.
// The calls in flight on them fail (their connections closed: routeLost). One killed (12 clients: 4
// waiting on each replica): the calls that waited for its connections are retried on
// the other and succeed. Both killed (40 clients: 18 waiting on each): every call that
// waited gets the clean "no healthy backend in group replicas" refusal in less than the
// dial timeout, none the pool's wait timeout.
func TestRoutingKilledReplicaPoolWaiters(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	const dial = 3 * time.Second
	for _, c := range []struct{ kill, clients int }{{1, 12}, {2, 40}} {
		kill := c.kill
		t.Run(fmt.Sprintf("%d of 2 killed", kill), func(t *testing.T) {
			t.Parallel()
			g, procs, addrs := routeTwoReplicas(t)
			p := routeProxy(t, config.ModePooled, []config.Backend{g}, []config.Route{{To: "replicas"}}, func(c *config.Config) {
				c.Listeners[0].Pool.MaxOpen, c.Listeners[0].Pool.WaitTimeout, c.Timeouts.Dial = 2, 5*time.Second, dial
			})
			l := routeStart(t, routeSpec{addr: p.addr, object: "svc", clients: c.clients, calls: 1, call: routeWork(0.6), classify: routeWho})
			time.Sleep(300 * time.Millisecond)
			var inflight int64
			for i := 2 - kill; i < 2; i++ {
				inflight += routeMember(t, p, "replicas", addrs[i]).InFlight()
				procs[i].Stop()
			}
			l.wait(t)
			served, total := l.servedBy()
			failed := l.failuresSince(time.Time{})
			t.Logf("%d calls in flight on the killed replicas; %d calls served %v, %d failed", inflight, total, served, len(failed))
			var lost, refused, slowRefused, waited, other int
			var slowest time.Duration
			for _, f := range failed {
				slowest = max(slowest, f.took)
				switch {
				case routeLost(f.err):
					lost++
				case kill == 2 && strings.Contains(f.err, "pyro-dispatch: no healthy backend in group replicas ("):
					if f.took < dial {
						refused++
					} else {
						slowRefused++
					}
				case strings.Contains(f.err, "free in time"):
					waited++ // the pool's wait timeout
				default:
					if other++; other <= 3 {
						t.Errorf("a call failed after %v: %s", f.took.Round(time.Millisecond), f.err)
					}
				}
			}
			t.Logf("%d lost in flight, %d refused (no healthy backend) within the dial timeout %v, %d after it, %d failed with the pool's wait timeout; slowest failure %v",
				lost, refused, dial, slowRefused, waited, slowest.Round(time.Millisecond))
			if slowRefused+waited+other > 0 {
				t.Errorf("%d calls that waited for a connection to a killed replica were refused later than the dial timeout, and %d failed with the pool's wait timeout (\"no connection ... free in time\") after %v",
					slowRefused, waited, slowest.Round(time.Millisecond))
			}
			if lost > int(inflight) {
				t.Errorf("%d calls lost, more than the %d in flight on the killed replicas", lost, inflight)
			}
			if total+int64(len(failed)) != int64(c.clients) {
				t.Errorf("%d calls served and %d failed, want %d in all", total, len(failed), c.clients)
			}
		})
	}
}

// routeDaemonAt starts a routing_daemon.py with one daemon, name, serving object "svc",
// at addr ("": a free port) and returns it and its address.
func routeDaemonAt(t testing.TB, name, addr string) (*pyro4test.Process, string) {
	t.Helper()
	args := []string{name + "=svc"}
	if addr != "" {
		args = append([]string{"--port", addr[strings.LastIndexByte(addr, ':')+1:]}, args...)
	}
	p, where := routeDaemons(t, args...)
	if addr != "" && where[name] != addr {
		t.Fatalf("%s listens on %s, want %s", name, where[name], addr)
	}
	return p, where[name]
}

// routeDiff returns after - before, by key, leaving out zeros.
func routeDiff(after, before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
