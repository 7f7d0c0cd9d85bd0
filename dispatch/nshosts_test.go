package dispatch

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/nsview"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// hostAddrs: IP address texts without a lookup (IPv4-mapped as IPv4, unspecified ones
// dropped), names through the resolver once per hostTTL, failures kept as well.
func TestHostAddrs(t *testing.T) {
	h := newHostAddrs()
	lookups := map[string]int{}
	resolve := h.lookup
	h.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
		lookups[host]++
		if host == "down.example" {
			return nil, errors.New("no answer")
		}
		return resolve(ctx, host)
	}
	v4 := netip.MustParseAddr("127.0.0.1")
	for host, want := range map[string][]netip.Addr{
		"127.0.0.1":        {v4},
		"::ffff:127.0.0.1": {v4},
		"::1":              {netip.IPv6Loopback()},
		"0.0.0.0":          {},
		"::":               {},
	} {
		if got := h.of(host); !slices.Equal(got, want) {
			t.Errorf("of(%q) = %v, want %v", host, got, want)
		}
	}
	if len(lookups) != 0 {
		t.Errorf("address texts were looked up: %v", lookups)
	}
	for range 3 {
		if got := h.of("localhost"); !slices.Contains(got, v4) {
			t.Fatalf("of(localhost) = %v, want it to hold 127.0.0.1", got)
		}
		if got := h.of("down.example"); len(got) != 0 {
			t.Fatalf("of a name that fails = %v", got)
		}
	}
	if lookups["localhost"] != 1 || lookups["down.example"] != 1 {
		t.Errorf("lookups %v, want each name once within hostTTL", lookups)
	}
	e, _ := h.cache.Get("down.example")
	e.until = time.Now().Add(-time.Second)
	h.cache.Add("down.example", e)
	h.of("down.example")
	if lookups["down.example"] != 2 {
		t.Errorf("an expired answer was used: %v", lookups)
	}
}

// A URI matches a member written another way: the same IP address on the same port.
func TestMemberByAddr(t *testing.T) {
	cfg, err := config.ParseConfig([]byte(`
backends:
  - {name: ns, members: [127.0.0.1:9090]}
  - {name: inside, members: [127.0.0.1:9100, "localhost:9200", "[::1]:9300"]}
listeners:
  - name: edge
    listen: 127.0.0.1:5555
    advertise: gw.example.com:5555
    routes:
      - {match: {object: Pyro.NameServer}, to: ns}
      - {to: inside}
`))
	if err != nil {
		t.Fatal(err)
	}
	tab, err := routing.Compile(&cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := newHostAddrs()
	for _, c := range []struct {
		host string
		port int
		want string // the member's address, "" for none
	}{
		{"localhost", 9100, "127.0.0.1:9100"},
		{"::ffff:127.0.0.1", 9100, "127.0.0.1:9100"},
		{"127.0.0.1", 9200, "localhost:9200"},
		{"0:0:0:0:0:0:0:1", 9300, "[::1]:9300"},
		{"127.0.0.1", 9101, ""}, // no member on the port
		{"10.9.8.7", 9100, ""},  // another host
		{"0.0.0.0", 9100, ""},   // no host in particular
		{"127.0.0.1", 9300, ""}, // ::1 is another address
		{"::1", 9090, ""},       // 127.0.0.1 is another address
		{"localhost", 9090, "127.0.0.1:9090"},
	} {
		got := ""
		if m := h.memberByAddr(tab, nsview.Addr{Host: c.host, Port: c.port}); m != nil {
			got = m.Address
		}
		if got != c.want {
			t.Errorf("%s port %d: member %q, want %q", c.host, c.port, got, c.want)
		}
	}
}
