package interop

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// This file: the edge across a NAT (a listener's name-server view). testdata/nat_world.py
// is the inside: a name server and two daemons registered with their internal URIs (one
// on a unix socket), no nathost; testdata/nat_client.py is a client outside that knows
// only the edge and records every address it connects to.

// natWorld is the inside, as nat_world.py printed it.
type natWorld struct {
	NS string `json:"ns"`
	A  string `json:"a"` // daemon a's unix socket
	B  string `json:"b"` // daemon b's host:port
}

func startNATWorld(t *testing.T) natWorld {
	t.Helper()
	p := pyro4test.StartDaemon(t, script(t, "nat_world.py"), t.TempDir())
	var w natWorld
	if err := json.Unmarshal([]byte(p.Line), &w); err != nil {
		t.Fatalf("nat_world.py printed %q: %v", p.Line, err)
	}
	return w
}

// natRegister registers name as uri (and tag) in the inside name server, as a daemon
// inside would.
func natRegister(t *testing.T, w natWorld, name, uri string) {
	t.Helper()
	pyro4test.RunPython(t, script(t, "nat_world.py"), nil, "--register", w.NS, name, uri)
}

// natRemove removes name from the world's name server.
func natRemove(t *testing.T, w natWorld, name string) {
	t.Helper()
	pyro4test.RunPython(t, script(t, "nat_world.py"), nil, "--remove", w.NS, name)
}

// natClientOut is what nat_client.py prints.
type natClientOut struct {
	Connected []string             `json:"connected"`
	NS        string               `json:"ns"`
	Lookup    map[string][3]string `json:"lookup"`
	Meta      map[string][2]any    `json:"meta"`
	List      map[string]string    `json:"list"`
	ListMeta  map[string][2]any    `json:"list_meta"`
	MetaAny   map[string]string    `json:"meta_any"`
	MetaAll   map[string][2]any    `json:"meta_all"`
	marshal   bool                 // the client used marshal: no lookup with metadata (Pyro4 cannot)
}

func natClient(t *testing.T, args ...string) natClientOut {
	t.Helper()
	stdout, stderr := pyro4test.RunPython(t, script(t, "nat_client.py"), nil, args...)
	var out natClientOut
	if err := json.Unmarshal(stdout, &out); err != nil {
		t.Fatalf("nat_client.py %v: %v\nstdout: %s\nstderr: %s", args, err, stdout, stderr)
	}
	out.marshal = slices.Contains(args, "marshal")
	return out
}

// freeAddr returns a 127.0.0.1 address free a moment ago (TCP, or UDP).
func freeAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestEdgeAcrossNAT: a client outside locates the name server through the edge, looks
// objects up (lookup, with metadata, list with prefix, metadata filters and metadata) in
// serpent, json and marshal, and calls every object, in session and pooled mode, having
// connected to nothing but the edge: every URI the name server hands out comes back
// pointing at the edge, and each call reaches the daemon that serves its object (learned
// from those URIs; the catch-all group has both daemons). Objects registered later are
// reached without a restart, a daemon that moves is followed after the next lookup, the
// broadcast lookup is answered, and the objects are published in a name server outside.
// Pipelined mode too: the name server's calls leave the pipelines, the others stay.
func TestEdgeAcrossNAT(t *testing.T) {
	requirePyro4(t)
	w := startNATWorld(t)
	outside := pyro4test.StartDaemon(t, script(t, "routing_daemon.py"), "--nameserver")
	for _, name := range []string{config.ModeSession, config.ModePooled, "pipelined"} {
		t.Run(name, func(t *testing.T) {
			mode, pipeline := name, 0
			if name == "pipelined" {
				mode, pipeline = config.ModePooled, 8
			}
			edge := freeAddr(t, "tcp")
			bc := freeAddr(t, "udp")
			host, port, _ := net.SplitHostPort(edge)
			_, bcPort, _ := net.SplitHostPort(bc)
			p := startProxy(t, "", func(c *config.Config) {
				c.Backends = []config.Backend{routeGroup("ns", w.NS), routeGroup("inside", "unix:"+w.A, w.B)}
				l := &c.Listeners[0]
				l.Listen, l.Backend, l.Mode = config.StringList{edge}, nil, mode
				if pipeline > 0 {
					l.Pool.Pipeline = pipeline
				}
				l.Routes = []config.Route{routeTo("ns", config.Match{Object: config.StringList{config.NameServerObject}}), {To: "inside"}}
				l.Advertise = edge
				l.Broadcast, l.BroadcastListen = true, bc
				l.Learn = &config.Learn{Interval: 200 * time.Millisecond}
				l.Publish = &config.Publish{NameServer: outside.Line, Group: "inside", Interval: 200 * time.Millisecond}
				c.Timeouts.Dial = 3 * time.Second
			})
			at := func(object string) string { return "PYRO:" + object + "@" + edge }
			check := func(out natClientOut, names map[string]string) {
				t.Helper()
				if len(out.Connected) != 1 || out.Connected[0] != edge {
					t.Errorf("the client connected to %v, want only the edge %s", out.Connected, edge)
				}
				if out.NS != at(config.NameServerObject) {
					t.Errorf("name server %s", out.NS)
				}
				for name, who := range names {
					if got := out.Lookup[name]; got != [3]string{at(name), who, who} {
						t.Errorf("lookup %s: %v, want %s answered by %s (directly and by PYRONAME)", name, got, at(name), who)
					}
					if got, ok := out.Meta[name]; ok && got[0] != at(name) || !ok && !out.marshal {
						t.Errorf("lookup %s with metadata: %v", name, got)
					}
				}
				want := map[string]string{"thing.one": at("thing.one"), "thing.two": at("thing.two")}
				for _, l := range []map[string]string{out.List, out.MetaAny} {
					for k, v := range want {
						if l[k] != v {
							t.Errorf("list: %v, want %v", l, want)
						}
					}
				}
				if got := out.ListMeta["thing.one"]; got[0] != at("thing.one") {
					t.Errorf("list with metadata: %v", out.ListMeta)
				}
				if got := out.MetaAll["thing.two"]; len(out.MetaAll) != 1 || got[0] != at("thing.two") {
					t.Errorf("list by metadata with metadata: %v", out.MetaAll)
				}
			}
			for _, ser := range []string{"serpent", "json", "marshal"} {
				check(natClient(t, host, port, ser, "thing.one", "thing.two"), map[string]string{"thing.one": "a", "thing.two": "b"})
			}

			learned := p.srv.LearnedIDs()["test"]
			if learned["thing.one"] != "unix:"+w.A || learned["thing.two"] != w.B {
				t.Errorf("learned object ids %v", learned)
			}
			if ls := p.srv.Listeners(); ls[0].Advertise != edge || ls[0].Learned < 2 {
				t.Errorf("listener info %+v", ls[0])
			}

			// Registered later, and moving from daemon a to daemon b.
			natRegister(t, w, "late.one", "PYRO:late.one@"+w.B)
			natRegister(t, w, "mover", "PYRO:mover@./u:"+w.A)
			check(natClient(t, host, port, "serpent", "late.one", "mover"), map[string]string{"late.one": "b", "mover": "a"})
			natRegister(t, w, "mover", "PYRO:mover@"+w.B)
			check(natClient(t, host, port, "json", "mover"), map[string]string{"mover": "b"})

			// A daemon with Pyro4's default HOST writes localhost in its URIs; its member is
			// written 127.0.0.1: the same address, so the URI is the edge's all the same.
			_, bPort, _ := net.SplitHostPort(w.B)
			natRegister(t, w, "by.name", "PYRO:by.name@localhost:"+bPort)
			check(natClient(t, host, port, "marshal", "by.name"), map[string]string{"by.name": "b"})
			if got := p.srv.LearnedIDs()["test"]["by.name"]; got != w.B {
				t.Errorf("by.name learned on %q, want %s", got, w.B)
			}

			// An object id the name server puts on two members: the routes decide (and the
			// log says so), found by the learn loop's list().
			natRegister(t, w, "dup.x", "PYRO:twice@./u:"+w.A)
			natRegister(t, w, "dup.y", "PYRO:twice@"+w.B)
			p.waitLog(t, "object id on two members in one name server answer: the routes decide where its calls go", map[string]string{"object": "twice"})
			if got, ok := p.srv.LearnedIDs()["test"]["twice"]; !ok || got != "" {
				t.Errorf("an id on two members is learned as %q (%v), want left to the routes", got, ok)
			}

			// Broadcast lookup: locateNS() with no host.
			out := natClient(t, "--broadcast", bcPort, "marshal", "thing.one")
			check(out, map[string]string{"thing.one": "a"})

			// Published outside with the edge's URIs.
			// Published outside with the edge's URIs; an object that leaves the inside name
			// server is removed outside.
			natRegister(t, w, "pub.gone", "PYRO:late.one@"+w.B)
			outsideHas := func(what string, ok func(map[string]string) bool) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for {
					stdout, _ := pyro4test.RunPython(t, `
import json, sys, Pyro4
h, p = sys.argv[1].rsplit(":", 1)
ns = Pyro4.locateNS(h, int(p))
print(json.dumps(dict(ns.list(prefix="thing."), **ns.list(prefix="pub."))))
`, nil, outside.Line)
					var got map[string]string
					json.Unmarshal(stdout, &got)
					if ok(got) {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("outside name server lists %v, want %s", got, what)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
			outsideHas("every object published", func(got map[string]string) bool {
				return got["thing.one"] == at("thing.one") && got["thing.two"] == at("thing.two") && got["pub.gone"] == at("late.one")
			})
			if e := p.waitLog(t, "published", map[string]string{"name": "thing.one"}); toString(e.ContextMap()["uri"]) != at("thing.one") {
				t.Errorf("published log %v", e.ContextMap())
			}
			natRemove(t, w, "pub.gone")
			p.waitLog(t, "unpublished: no longer behind the listener", map[string]string{"name": "pub.gone"})
			outsideHas("pub.gone removed", func(got map[string]string) bool {
				_, gone := got["pub.gone"]
				return !gone && got["thing.one"] == at("thing.one")
			})
		})
	}
}

// hmacNSScript runs a real name server with HMAC key argv[1] and registers
// "thing" at its own address (a member of the edge's ns group).
const hmacNSScript = `
import sys, threading
import Pyro4, Pyro4.naming
uri, daemon, bc = Pyro4.naming.startNS(host="127.0.0.1", port=0, enableBroadcast=False, hmac=sys.argv[1])
threading.Thread(target=daemon.requestLoop, daemon=True).start()
ns = Pyro4.Proxy(uri)
ns._pyroHmacKey = sys.argv[1]
ns.register("thing", "PYRO:thing@" + daemon.locationStr)
print(daemon.locationStr, flush=True)
threading.Event().wait()
`

// TestEdgeNSViewHMAC: the name server's replies are HMAC-signed; the edge translates
// them and signs them again, with the client key when it re-signs, with the one key when
// both sides share it. A Pyro4 client with its key sees the edge's URI.
func TestEdgeNSViewHMAC(t *testing.T) {
	requirePyro4(t)
	const backendKey = "inside-key"
	ns := pyro4test.StartDaemon(t, hmacNSScript, backendKey)
	dir := t.TempDir()
	write := func(name, key string) string {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	bkf := write("backend.key", backendKey)
	for _, tc := range []struct{ name, clientKey string }{{"resigned", "outside-key"}, {"same-key", backendKey}} {
		t.Run(tc.name, func(t *testing.T) {
			edge := freeAddr(t, "tcp")
			startProxy(t, ns.Line, func(c *config.Config) {
				l := &c.Listeners[0]
				l.Listen, l.Advertise, l.Mode = config.StringList{edge}, edge, config.ModePooled
				l.HMAC = &config.HMAC{ClientKeyFile: write(tc.name+".key", tc.clientKey), BackendKeyFile: bkf}
			})
			host, port, _ := net.SplitHostPort(edge)
			stdout, _ := pyro4test.RunPython(t, `
import json, sys, Pyro4
ns = Pyro4.locateNS(sys.argv[1], int(sys.argv[2]), hmac_key=sys.argv[3])
print(json.dumps([str(ns.lookup("thing")), ns.list(prefix="thing")]))
`, nil, host, port, tc.clientKey)
			want := "PYRO:thing@" + edge
			var got []any
			if err := json.Unmarshal(stdout, &got); err != nil || len(got) != 2 || got[0] != want ||
				got[1].(map[string]any)["thing"] != want {
				t.Errorf("through the edge: %s (%v), want %s", stdout, err, want)
			}
		})
	}
}
