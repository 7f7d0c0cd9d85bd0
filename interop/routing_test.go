package interop

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// This file: routing with real Pyro4 daemons and clients through one dispatcher
// listener: one port in front of several daemons and a name server, and the rules of a
// pooled listener (method, blob_info, deny, client, serializer, annotation); and the
// configuration files shipped in configs/. routing_load_test.go has the balancing and
// the failures under load, routing_reload_test.go the reloads. testdata/routing_daemon.py
// runs the daemons (each object's who() names its daemon), testdata/routing_client.py the
// Pyro4 clients. Helpers are named route*.

// routeDenied is the reason the deny rules of these tests give.
const routeDenied = "not exposed at this edge"

// routeDaemons starts testdata/routing_daemon.py with args (NAME=OBJ,... specs and
// options) and returns it and each daemon's address by name. It is killed when the test
// ends.
func routeDaemons(t testing.TB, args ...string) (*pyro4test.Process, map[string]string) {
	t.Helper()
	p := pyro4test.StartDaemon(t, script(t, "routing_daemon.py"), args...)
	var where map[string]string
	if err := json.Unmarshal([]byte(p.Line), &where); err != nil {
		t.Fatalf("routing_daemon.py printed %q: %v", p.Line, err)
	}
	return p, where
}

// routeGroup is a backend group of members with the default balance, health and eject.
func routeGroup(name string, members ...string) config.Backend {
	b := config.Backend{Name: name}
	for _, m := range members {
		b.Members = append(b.Members, config.Member{Address: m})
	}
	return b
}

// routeTo is a rule sending what match takes to group.
func routeTo(group string, match config.Match) config.Route {
	return config.Route{Match: match, To: group}
}

// routeProxy starts an in-process dispatcher (startProxy) whose one listener, in mode,
// has routes over the backend groups and no backend key of its own; more may change the
// configuration further.
func routeProxy(t testing.TB, mode string, groups []config.Backend, routes []config.Route, more ...func(*config.Config)) *proxy {
	t.Helper()
	return startProxy(t, "", routeConfig(mode, groups, routes, more...))
}

// routeConfig is the configuration change of routeProxy.
func routeConfig(mode string, groups []config.Backend, routes []config.Route, more ...func(*config.Config)) func(*config.Config) {
	return func(c *config.Config) {
		l := &c.Listeners[0]
		l.Backend, l.Mode, l.Routes = nil, mode, routes
		c.Backends = groups
		c.Timeouts.Dial = 3 * time.Second
		for _, f := range more {
			f(c)
		}
	}
}

// routeFullConfig is the whole configuration of a routeProxy with these groups and
// routes: what to reload it with (same listener: its socket is kept).
func routeFullConfig(mode string, groups []config.Backend, routes []config.Route, more ...func(*config.Config)) config.Config {
	cfg := config.Defaults()
	cfg.Listeners = []config.Listener{{Name: "test", Listen: config.StringList{"127.0.0.1:0"}}} // as startProxy
	routeConfig(mode, groups, routes, more...)(&cfg)
	return cfg
}

// routeReload puts a routeProxy configuration with these groups and routes in service
// (dispatch.Server.Reload).
func routeReload(t testing.TB, p *proxy, mode string, groups []config.Backend, routes []config.Route, more ...func(*config.Config)) {
	t.Helper()
	if err := p.srv.Reload(routeFullConfig(mode, groups, routes, more...)); err != nil {
		t.Fatalf("reload: %v", err)
	}
}

// routeClient runs one scenario of testdata/routing_client.py against the dispatcher at
// addr and returns its result, failing the test if the scenario raised.
func routeClient(t *testing.T, addr, scenario string, names ...string) map[string]json.RawMessage {
	t.Helper()
	stdout, stderr := pyro4test.RunPython(t, script(t, "routing_client.py"), nil, append([]string{"--addr", addr, scenario}, names...)...)
	var line struct {
		OK      bool                       `json:"ok"`
		Result  map[string]json.RawMessage `json:"result"`
		Error   string                     `json:"error"`
		Trace   string                     `json:"trace"`
		Seconds float64                    `json:"seconds"`
	}
	if err := json.Unmarshal(stdout, &line); err != nil {
		t.Fatalf("routing_client.py printed %q: %v\n--- stderr:\n%s", stdout, err, stderr)
	}
	if !line.OK {
		t.Fatalf("scenario %s failed: %s\n%s", scenario, line.Error, line.Trace)
	}
	t.Logf("scenario %s (%.2fs)", scenario, line.Seconds)
	return line.Result
}

// routeField decodes one field of a scenario result into v.
func routeField(t *testing.T, res map[string]json.RawMessage, key string, v any) {
	t.Helper()
	raw, ok := res[key]
	if !ok {
		t.Fatalf("scenario result has no %q", key)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("scenario result %q = %s: %v", key, raw, err)
	}
}

// routeOutcome returns the outcome of one call in a scenario result.
func routeOutcome(t *testing.T, res map[string]json.RawMessage, key string) pooledOutcome {
	t.Helper()
	var o pooledOutcome
	routeField(t, res, key, &o)
	return o
}

// routeServedBy fails unless the call succeeded and was served by daemon (its result is
// that name, or a dict whose "daemon" is), and returns the result.
func routeServedBy(t *testing.T, res map[string]json.RawMessage, key, daemon string) pooledOutcome {
	t.Helper()
	o := routeOutcome(t, res, key)
	got := o.OK
	if m, ok := o.OK.(map[string]any); ok {
		got = m["daemon"]
	}
	if o.Class != "" || got != daemon {
		t.Errorf("%s: %v, want a result from daemon %q", key, o, daemon)
	} else {
		t.Logf("%s: served by %s", key, daemon)
	}
	return o
}

// TestRoutingOnePortManyDaemons: one dispatcher port in front of three Pyro4 daemons and
// a Pyro4 name server, in session and pooled mode. The daemons register their objects in
// the name server; a real Pyro4 client locates the name server at the dispatcher's port
// (route object "Pyro.NameServer"), looks names up there and resolves PYRONAME URIs
// through it, which give the daemons' own URIs; with their location replaced by the
// dispatcher's, every call reaches the daemon that serves the object: by glob
// ("shop.*"), by anchored regular expression ("~^sensor\.[0-9]+$", so "sensor.x1" falls
// to the default group), or by the catch-all rule. An object a rule denies gets a
// CONNECTFAIL with the rule's reason, and the name server proxy works on.
func TestRoutingOnePortManyDaemons(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	want := map[string]string{ // object (name server name) -> daemon
		"shop.cart": "shop", "shop.orders": "shop",
		"sensor.1": "sensors", "sensor.22": "sensors",
		"greeter": "greeters", "sensor.x1": "greeters",
	}
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, mode := range []string{config.ModeSession, config.ModePooled} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			nsd := pyro4test.StartDaemon(t, script(t, "routing_daemon.py"), "--nameserver")
			ns := nsd.Line
			_, shop := routeDaemons(t, "--ns", ns, "shop=shop.cart,shop.orders")
			_, sensors := routeDaemons(t, "--ns", ns, "sensors=sensor.1,sensor.22")
			_, greeters := routeDaemons(t, "--ns", ns, "greeters=greeter,sensor.x1")
			own := map[string]string{"shop": shop["shop"], "sensors": sensors["sensors"], "greeters": greeters["greeters"]}
			p := routeProxy(t, mode,
				[]config.Backend{routeGroup("ns", ns), routeGroup("shop", own["shop"]), routeGroup("sensors", own["sensors"]), routeGroup("greeters", own["greeters"])},
				[]config.Route{
					routeTo("ns", config.Match{Object: config.StringList{"Pyro.NameServer"}}),
					routeTo("shop", config.Match{Object: config.StringList{"shop.*"}}),
					routeTo("sensors", config.Match{Object: config.StringList{`~^sensor\.[0-9]+$`}}),
					{Match: config.Match{Object: config.StringList{"admin.*"}}, Deny: routeDenied},
					{To: "greeters"},
				})
			res := routeClient(t, p.addr, "nameserver", names...)

			var nsLocation string
			routeField(t, res, "ns_location", &nsLocation)
			if nsLocation != p.addr {
				t.Errorf("locateNS at the dispatcher gave a name server proxy at %q, want the dispatcher %s", nsLocation, p.addr)
			}
			var listed []string
			routeField(t, res, "listed", &listed)
			for _, n := range append([]string{"Pyro.NameServer"}, names...) {
				if !slices.Contains(listed, n) {
					t.Errorf("ns.list() through the dispatcher: %v, lacks %q", listed, n)
				}
			}
			var got map[string]struct {
				Lookup        string `json:"lookup"`
				Pyroname      string `json:"pyroname"`
				Who           string `json:"who"`
				WhoAgain      string `json:"who_again"`
				ProxyLocation string `json:"proxy_location"`
			}
			routeField(t, res, "names", &got)
			for _, n := range names {
				r, daemon := got[n], want[n]
				ownURI := "PYRO:" + n + "@" + own[daemon]
				if r.Lookup != ownURI || r.Pyroname != ownURI {
					t.Errorf("%s: ns.lookup %q, PYRONAME resolution %q; want the daemon's own URI %s", n, r.Lookup, r.Pyroname, ownURI)
				}
				if r.ProxyLocation != p.addr || r.Who != daemon || r.WhoAgain != daemon {
					t.Errorf("%s through the dispatcher (location %s): who() = %q, %q; want daemon %q", n, r.ProxyLocation, r.Who, r.WhoAgain, daemon)
				}
			}
			routeOutcome(t, res, "denied").wantError(t, "a client of admin.panel", "connection to ", "rejected: pyro-dispatch: "+routeDenied)
			if o := routeOutcome(t, res, "ns_after_denied"); o.Class != "" {
				t.Errorf("name server ping after the denied client: %v", o)
			}
			p.waitLog(t, "refused client", map[string]string{"reason": "pyro-dispatch: " + routeDenied})
		})
	}
}

// TestRoutingPooledRules: the rules a pooled listener applies to every call, with real
// Pyro4 clients of object shop.cart, which six daemons serve (one process), one per
// group: first match wins. checkout goes to "payments" (method rule), also for a client
// that another rule would send elsewhere; secret is refused with the deny rule's reason
// and the same proxy calls on (a raw client shows the dispatcher keeps the connection,
// which Pyro4 drops on any CommunicationError); SerializedBlob calls whose info
// matches "orders.*" go to "orders", other infos to the default; a proxy adding the
// annotation ROUT=blue (a Proxy subclass overriding _pyroAnnotations) goes to "blue",
// ROUT=green to the default; a marshal client from 127.0.0.1 matches the rule on client
// 127.0.0.0/8 and serializer marshal ("internal"), a json one does not, and the rule on
// client 10.0.0.0/8 matches nobody; a client of an object a rule denies gets a
// CONNECTFAIL.
func TestRoutingPooledRules(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	daemons := []string{"default", "payments", "orders", "blue", "internal", "ten"}
	specs := make([]string, len(daemons))
	for i, d := range daemons {
		specs[i] = d + "=shop.cart"
	}
	_, where := routeDaemons(t, specs...)
	groups := make([]config.Backend, len(daemons))
	for i, d := range daemons {
		groups[i] = routeGroup(d, where[d])
	}
	shop := config.StringList{"shop.*"}
	p := routeProxy(t, config.ModePooled, groups, []config.Route{
		{Match: config.Match{Object: config.StringList{"admin.*"}}, Deny: routeDenied},
		routeTo("payments", config.Match{Object: shop, Method: config.StringList{"checkout"}}),
		{Match: config.Match{Object: shop, Method: config.StringList{"secret"}}, Deny: "secret is " + routeDenied},
		routeTo("orders", config.Match{BlobInfo: config.StringList{"orders.*"}}),
		routeTo("ten", config.Match{Client: config.StringList{"10.0.0.0/8"}}),
		routeTo("blue", config.Match{Annotation: map[string]config.StringList{"ROUT": {"blue"}}}),
		routeTo("internal", config.Match{Client: config.StringList{"127.0.0.0/8"}, Serializer: config.StringList{"marshal"}}),
		{To: "default"},
	})
	res := routeClient(t, p.addr, "rules")

	routeServedBy(t, res, "browse", "default")
	routeServedBy(t, res, "checkout", "payments")
	routeOutcome(t, res, "secret").wantError(t, "secret()", "pyro-dispatch: secret is "+routeDenied)
	routeServedBy(t, res, "after_secret", "default")
	for key, info := range map[string]string{"blob_orders": "orders.eu", "blob_orders2": "orders.us.42", "blob_other": "invoices"} {
		daemon := "orders"
		if key == "blob_other" {
			daemon = "default"
		}
		o := routeServedBy(t, res, key, daemon)
		if m, ok := o.OK.(map[string]any); ok && m["info"] != info {
			t.Errorf("%s: the daemon saw blob info %v, want %q", key, m["info"], info)
		}
	}
	routeServedBy(t, res, "blue_browse", "blue")
	routeServedBy(t, res, "blue_checkout", "payments")
	keys := routeOutcome(t, res, "blue_annotations")
	if !strings.Contains(fmt.Sprint(keys.OK), "ROUT") {
		t.Errorf("the daemon did not see the client's ROUT annotation: %v", keys)
	}
	routeServedBy(t, res, "green_browse", "default")
	routeServedBy(t, res, "marshal_browse", "internal")
	routeServedBy(t, res, "marshal_checkout", "payments")
	routeServedBy(t, res, "json_browse", "default")
	routeOutcome(t, res, "admin_connect").wantError(t, "a client of admin.panel", "connection to ", "rejected: pyro-dispatch: "+routeDenied)
	p.waitLog(t, "call refused", map[string]string{"error": "pyro-dispatch: secret is " + routeDenied})

	// Pyro4 drops a connection on any CommunicationError, so a raw client shows that the
	// dispatcher keeps it: after the refused call, calls on the same connection go on,
	// each to its group.
	c := rawDial(t, p.addr)
	c.handshake(t)
	for _, call := range []struct{ method, want string }{
		{"browse", "default"}, {"secret", "pyro-dispatch: secret is " + routeDenied}, {"browse", "default"}, {"checkout", "payments"}, {"secret", routeDenied}, {"who", "default"},
	} {
		c.seq++
		arg := ""
		if call.method == "checkout" {
			arg = "1,"
		}
		c.rawSend(t, rawMsg(frame.Invoke, c.seq, nil, fmt.Sprintf("# serpent utf-8 python3.2\n('shop.cart','%s',(%s),{})", call.method, arg)))
		m := c.read(t)
		if m.Header.Seq != c.seq || m.Header.Flags.Has(frame.FlagException) != (call.method == "secret") || !strings.Contains(string(m.Payload), call.want) {
			t.Errorf("raw client, call %d %s() on one connection: %v flags %v seq %d %q; want %q", c.seq, call.method, m.Header.Type, m.Header.Flags, m.Header.Seq, m.Payload, call.want)
		}
	}
}

// TestRoutingConfigFiles: every configuration file in configs/ loads, validates and
// compiles into routes, and a server can be made from it, as `check --config` and
// `serve --config` would.
func TestRoutingConfigFiles(t *testing.T) {
	t.Parallel()
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join("..", "configs", pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no configuration file in configs/")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := config.LoadConfig(f)
			if err != nil {
				t.Fatalf("invalid: %v", err)
			}
			tab, err := routing.Compile(&cfg, nil, nil)
			if err != nil {
				t.Fatalf("routes do not compile: %v", err)
			}
			tab.Describe(io.Discard, &cfg)
			if _, err := dispatch.NewServer(cfg, nil); err != nil {
				t.Fatalf("no server from it: %v", err)
			}
		})
	}
}
