package config

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// SerializerSet is a serializer policy: the serializers whose messages may reach a
// backend. The zero set has no policy: every serializer passes.
type SerializerSet uint16

// ParseSerializers compiles a list of serializer names (key names the list in errors);
// an empty list is no policy.
func ParseSerializers(key string, names StringList) (SerializerSet, error) {
	var set SerializerSet
	for i, n := range names {
		s, ok := frame.ParseSerializer(n)
		if !ok {
			return 0, fieldErr(fmt.Sprintf("%s[%d]", key, i), "unknown serializer %q (want serpent, json, marshal, msgpack, pickle, dill or cloudpickle)", n)
		}
		set |= 1 << s
	}
	return set, nil
}

// Allows reports whether the policy lets messages in serializer s through.
func (p SerializerSet) Allows(s frame.Serializer) bool {
	return p == 0 || (s < 16 && p&(1<<s) != 0)
}

// String lists the serializers the policy allows, "any" without a policy.
func (p SerializerSet) String() string {
	if p == 0 {
		return "any"
	}
	var names []string
	for s := frame.Serializer(1); s < 16; s++ {
		if p&(1<<s) != 0 {
			names = append(names, s.String())
		}
	}
	return strings.Join(names, ", ")
}

// Unsafe are the serializers that run arbitrary code when a daemon deserializes them.
var Unsafe = []frame.Serializer{frame.Pickle, frame.Dill, frame.Cloudpickle}

// AllowsUnsafe returns the unsafe serializers the policy lets through.
func (p SerializerSet) AllowsUnsafe() []frame.Serializer {
	var out []frame.Serializer
	for _, s := range Unsafe {
		if p.Allows(s) {
			out = append(out, s)
		}
	}
	return out
}

// defaultBurst is a token bucket's size when none is configured: a second's worth of
// the rate, at least 1.
func defaultBurst(burst int, rate float64) int {
	if burst > 0 || rate <= 0 {
		return burst
	}
	return max(1, int(rate))
}

// Warnings returns what a valid configuration does that an operator should know: a
// listener bound to a non-loopback address that lets serializers through which run
// arbitrary code on a daemon that deserializes them.
func (c *Config) Warnings() []string {
	var out []string
	if c.Admin.Listen != "" && !loopback(c.Admin.Listen) && c.Admin.TokenFile == "" {
		out = append(out, fmt.Sprintf("admin.listen %s is not loopback and has no token_file: anyone who reaches it can drain members, close clients and reload", c.Admin.Listen))
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		exposed := ""
		for _, a := range l.Listen {
			if !loopback(a) {
				exposed = a
				break
			}
		}
		if exposed == "" {
			continue
		}
		if unsafe := l.unsafeThrough(); len(unsafe) > 0 {
			names := make([]string, len(unsafe))
			for j, s := range unsafe {
				names[j] = s.String()
			}
			out = append(out, fmt.Sprintf("listener %s binds %s (not loopback) and lets %s through: arbitrary code runs on any daemon that accepts them; set serializers: [serpent, json, marshal]",
				l.Name, exposed, strings.Join(names, ", ")))
		}
	}
	return out
}

// unsafeThrough returns the unsafe serializers some route of the listener (or its
// backend) takes past the listener's and the route's policies.
func (l *Listener) unsafeThrough() []frame.Serializer {
	lp, _ := ParseSerializers("", l.Serializers)
	routes := l.Routes
	if len(l.Backend) > 0 {
		routes = append(append([]Route(nil), routes...), Route{To: l.Name})
	}
	var out []frame.Serializer
	for _, s := range lp.AllowsUnsafe() {
		for _, r := range routes {
			rp, _ := ParseSerializers("", r.Serializers)
			if r.Deny == "" && rp.Allows(s) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// loopback reports whether a listen address reaches only this machine: a unix socket,
// a loopback IP or localhost.
func loopback(addr string) bool {
	if strings.HasPrefix(addr, "unix:") {
		return true
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
