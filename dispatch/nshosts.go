package dispatch

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/pyro-dispatch/pyro-dispatch/nsview"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

const (
	hostTTL           = 30 * time.Second // how long a host name's addresses (or its failure) are kept
	hostLookupTimeout = 2 * time.Second  // the longest a name server reply waits for one lookup
	hostCacheSize     = 512              // host names kept
)

// hostAddrs gives the IP addresses a host name or address text names, for matching the
// URIs of a name server to members written another way (a daemon registered as
// localhost, its member 127.0.0.1). Answers, failures too, are kept for hostTTL, so a
// name that does not resolve delays one reply, not every one. Safe for concurrent use.
type hostAddrs struct {
	cache  *lru.Cache[string, hostEntry]
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

type hostEntry struct {
	addrs []netip.Addr
	until time.Time
}

func newHostAddrs() *hostAddrs {
	c, _ := lru.New[string, hostEntry](hostCacheSize) // only a size under 1 fails
	return &hostAddrs{cache: c, lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}}
}

// of returns the addresses host names: itself for an IP address (an IPv4-mapped IPv6
// address as IPv4), else what the resolver answers, nil when it fails. Unspecified
// addresses (0.0.0.0, ::) are left out: they name no daemon in particular.
func (h *hostAddrs) of(host string) []netip.Addr {
	if a, err := netip.ParseAddr(host); err == nil {
		return specified([]netip.Addr{a})
	}
	now := time.Now()
	if e, ok := h.cache.Get(host); ok && now.Before(e.until) {
		return e.addrs
	}
	ctx, cancel := context.WithTimeout(context.Background(), hostLookupTimeout)
	addrs, err := h.lookup(ctx, host)
	cancel()
	if err != nil {
		addrs = nil
	}
	addrs = specified(addrs)
	h.cache.Add(host, hostEntry{addrs: addrs, until: now.Add(hostTTL)})
	return addrs
}

// specified returns addrs unmapped, without the unspecified ones.
func specified(addrs []netip.Addr) []netip.Addr {
	out := addrs[:0]
	for _, a := range addrs {
		if a = a.Unmap(); !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	return out
}

// memberByAddr returns the TCP member of t on a's port whose host names one of the IP
// addresses a's host names, nil when none does. a's host is only looked up once a
// member on its port is found.
func (h *hostAddrs) memberByAddr(t *routing.Table, a nsview.Addr) *routing.Member {
	port := strconv.Itoa(a.Port)
	var want []netip.Addr
	looked := false
	return t.MemberFunc("tcp", func(address string) bool {
		host, p, err := net.SplitHostPort(address)
		if err != nil || p != port {
			return false
		}
		if !looked {
			want, looked = h.of(a.Host), true
		}
		if len(want) == 0 {
			return false
		}
		return slices.ContainsFunc(h.of(host), func(x netip.Addr) bool { return slices.Contains(want, x) })
	})
}
