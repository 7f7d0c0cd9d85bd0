package config

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NameServerObject is the object id of every Pyro4 name server.
const NameServerObject = "Pyro.NameServer"

// Learn polls the name server for the objects behind a listener (its list()), on top of
// what the listener learns from the lookups its clients make.
type Learn struct {
	Interval time.Duration `yaml:"interval,omitempty"` // between two list() calls (default 30s; 0 in YAML: the default)
	Prefix   string        `yaml:"prefix,omitempty"`   // list(prefix=...): only names starting with it
}

// Publish registers objects behind the listener in a name server outside, under their
// names, with the listener's advertised URIs, and keeps them up to date.
type Publish struct {
	NameServer string        `yaml:"ns"`                 // the outside name server, HOST:PORT
	Objects    StringList    `yaml:"objects,omitempty"`  // names (in the inside name server) to publish
	Group      string        `yaml:"group,omitempty"`    // or every object whose daemon is a member of this group
	Interval   time.Duration `yaml:"interval,omitempty"` // how often the registrations are checked (default 30s)
}

// Defaults of the name-server view.
const (
	DefaultLearnInterval   = 30 * time.Second
	DefaultPublishInterval = 30 * time.Second
	DefaultBroadcastPort   = 9091
)

// NameServerView reports whether l rewrites name-server replies for clients outside.
func (l *Listener) NameServerView() bool {
	return l.Advertise != "" || l.NameServer != "" || l.Learn != nil || l.Broadcast || l.Publish != nil
}

// validateNAT checks the name-server view keys of a listener whose routes are valid, puts
// in the defaults (advertise: the first listen address; nameserver: the group the routes
// send Pyro.NameServer to, or the listener's own backend) and reports clashes.
func (l *Listener) validateNAT(key string, groups map[string]bool) error {
	if l.BroadcastListen != "" && !l.Broadcast {
		return fieldErr(key+".broadcast_listen", "want HOST:PORT (UDP), with broadcast: true")
	}
	if !l.NameServerView() {
		return nil
	}
	if l.Advertise == "" {
		l.Advertise = l.Listen[0]
	}
	if strings.HasPrefix(l.Advertise, "unix:") {
		return fieldErr(key+".advertise", "clients outside need a HOST:PORT, not %q", l.Advertise)
	}
	host, port, err := net.SplitHostPort(l.Advertise)
	if err != nil || host == "" || port == "" {
		return fieldErr(key+".advertise", "want the HOST:PORT clients outside use: %q", l.Advertise)
	}
	if l.NameServer == "" {
		l.NameServer = l.nameServerGroup()
	}
	switch {
	case l.NameServer == "":
		return fieldErr(key+".nameserver", "no group is the name server: name it (nameserver: GROUP), or route object %s to it", NameServerObject)
	case !groups[l.NameServer]:
		return fieldErr(key+".nameserver", "no backend group named %q (have: %s)", l.NameServer, groupNames(groups))
	}
	if l.Broadcast && l.BroadcastListen == "" {
		l.BroadcastListen = net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultBroadcastPort))
	}
	if l.BroadcastListen != "" {
		if _, _, err := net.SplitHostPort(l.BroadcastListen); err != nil {
			return fieldErr(key+".broadcast_listen", "want HOST:PORT (UDP), with broadcast: true")
		}
	}
	if l.Learn != nil && l.Learn.Interval <= 0 {
		l.Learn.Interval = DefaultLearnInterval
	}
	if p := l.Publish; p != nil {
		if _, _, err := net.SplitHostPort(p.NameServer); err != nil {
			return fieldErr(key+".publish.ns", "want the outside name server's HOST:PORT: %v", err)
		}
		if len(p.Objects) == 0 && p.Group == "" || len(p.Objects) > 0 && p.Group != "" {
			return fieldErr(key+".publish", "give objects (names) or group, one of them")
		}
		if p.Group != "" && !groups[p.Group] {
			return fieldErr(key+".publish.group", "no backend group named %q (have: %s)", p.Group, groupNames(groups))
		}
		if p.Interval <= 0 {
			p.Interval = DefaultPublishInterval
		}
	}
	return nil
}

// nameServerGroup is the group l's rules send the name server's object to: the first
// route that names Pyro.NameServer (literally), else the listener's own backend.
func (l *Listener) nameServerGroup() string {
	for _, r := range l.Routes {
		if r.To != "" && slices.Contains(r.Match.Object, NameServerObject) {
			return r.To
		}
	}
	if len(l.Backend) > 0 {
		return l.Name
	}
	return ""
}
