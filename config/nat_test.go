package config

import (
	"strings"
	"testing"
	"time"
)

func TestNameServerView(t *testing.T) {
	const groups = "backends: [{name: ns, members: [127.0.0.1:9090]}, {name: inside, members: [127.0.0.1:9100]}]\n"
	cfg, err := ParseConfig([]byte(groups + `listeners:
  - name: edge
    listen: 0.0.0.0:5555
    routes: [{match: {object: Pyro.NameServer}, to: ns}, {to: inside}]
    learn: {prefix: "shop."}
    broadcast: true
    publish: {ns: 203.0.113.5:9090, group: inside}
  - {name: plain, listen: 127.0.0.1:5556, backend: 127.0.0.1:9100}
  - {name: side, listen: 127.0.0.1:5557, backend: 127.0.0.1:9090, advertise: "gw:5557"}
`))
	if err != nil {
		t.Fatal(err)
	}
	edge, plain, side := cfg.Listeners[0], cfg.Listeners[1], cfg.Listeners[2]
	if !edge.NameServerView() || edge.Advertise != "0.0.0.0:5555" || edge.NameServer != "ns" ||
		edge.Learn.Interval != DefaultLearnInterval || edge.BroadcastListen != "0.0.0.0:9091" || edge.Publish.Interval != 30*time.Second {
		t.Errorf("edge defaults: %+v %+v", edge, edge.Learn)
	}
	if plain.NameServerView() || plain.Advertise != "" {
		t.Errorf("a listener without the keys has no view: %+v", plain)
	}
	if side.NameServer != "side" {
		t.Errorf("the listener's own backend is its name server: %q", side.NameServer)
	}
	for _, tc := range []struct{ yml, want string }{
		{"{listen: 127.0.0.1:1, routes: [{to: inside}], advertise: gw:1}", "listeners[0].nameserver: no group is the name server"},
		{"{listen: 127.0.0.1:1, routes: [{to: inside}], nameserver: nope}", `listeners[0].nameserver: no backend group named "nope"`},
		{"{listen: unix:/tmp/x, backend: 127.0.0.1:9090, learn: {}}", "listeners[0].advertise: clients outside need a HOST:PORT"},
		{"{listen: 127.0.0.1:1, backend: 127.0.0.1:9090, advertise: nohost}", "listeners[0].advertise: want the HOST:PORT"},
		{"{listen: 127.0.0.1:1, backend: 127.0.0.1:9090, broadcast_listen: 127.0.0.1:9}", "broadcast_listen: want HOST:PORT (UDP), with broadcast: true"},
		{"{listen: 127.0.0.1:1, backend: 127.0.0.1:9090, publish: {ns: 127.0.0.1:1}}", "listeners[0].publish: give objects (names) or group"},
		{"{listen: 127.0.0.1:1, backend: 127.0.0.1:9090, publish: {ns: x, objects: [a]}}", "listeners[0].publish.ns"},
		{"{listen: 127.0.0.1:1, backend: 127.0.0.1:9090, publish: {ns: 127.0.0.1:1, group: g}}", `publish.group: no backend group named "g"`},
	} {
		if _, err := ParseConfig([]byte(groups + "listeners: [" + tc.yml + "]")); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.yml, err, tc.want)
		}
	}
}
