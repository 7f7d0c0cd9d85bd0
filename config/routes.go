package config

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// Backend is a named group of Pyro4 daemons that routes send clients and calls to.
type Backend struct {
	Name    string   `yaml:"name"`
	Members []Member `yaml:"members"`
	// Balance picks a member per connection (session mode) or call (pooled mode):
	// round_robin (the default; smooth, weighted), least_inflight or hash.
	Balance string `yaml:"balance,omitempty"`
	// HashKey is what balance: hash hashes: client_ip, object, corr or annotation:XXXX.
	HashKey string `yaml:"hash_key,omitempty"`
	Health  Health `yaml:"health,omitempty"`
	// Eject is how long a member whose dial or handshake failed, or that was lost in
	// the middle of a call, is left out; it doubles while the member keeps failing.
	Eject time.Duration `yaml:"eject,omitempty"`
	// TLS dials the group's daemons with TLS.
	TLS *BackendTLS `yaml:"tls,omitempty"`
	// Implicit marks the group a listener's backend key forms (named after the listener).
	Implicit bool `yaml:"-"`
}

// Member is one daemon of a backend group: an address, or {address, weight}.
type Member struct {
	Address string `yaml:"address"`
	Weight  int    `yaml:"weight,omitempty"` // relative share of the group's clients or calls
}

// UnmarshalYAML accepts "ADDR" or {address: ADDR, weight: N}.
func (m *Member) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*m = Member{Address: n.Value}
		return nil
	}
	type plain Member
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*m = Member(p)
	return nil
}

// Health configures the active health check of a group's members: a real Pyro4
// handshake and PING every Interval. A zero Interval turns active checks off.
type Health struct {
	Interval time.Duration `yaml:"interval,omitempty"`
	Timeout  time.Duration `yaml:"timeout,omitempty"` // for one check (default 1s, at most Interval)
	Fall     int           `yaml:"fall,omitempty"`    // consecutive failures before a member is out (default 2)
	Rise     int           `yaml:"rise,omitempty"`    // consecutive successes before it is back (default 1)
}

// Route is one routing rule of a listener: when Match holds, the client or call goes to
// the group To, or is refused with the reason Deny.
type Route struct {
	Match Match  `yaml:"match,omitempty"`
	To    string `yaml:"to,omitempty"`
	Deny  string `yaml:"deny,omitempty"`
	// Serializers is the route's serializer policy, on top of the listener's: a client
	// or call the route takes in another serializer is refused as the listener's policy
	// refuses it.
	Serializers StringList `yaml:"serializers,omitempty"`
}

// Match is what a rule requires; every key given must hold, and a list matches any of
// its entries. Patterns are path.Match globs, or regular expressions after a "~".
type Match struct {
	Object     StringList            `yaml:"object,omitempty"`     // object id patterns
	Method     StringList            `yaml:"method,omitempty"`     // method name patterns (pooled mode)
	BlobInfo   StringList            `yaml:"blob_info,omitempty"`  // SerializedBlob info patterns (pooled mode)
	Client     StringList            `yaml:"client,omitempty"`     // client addresses or CIDR prefixes
	Serializer StringList            `yaml:"serializer,omitempty"` // serializer names
	Annotation map[string]StringList `yaml:"annotation,omitempty"` // 4-letter chunk id: value patterns
}

// Empty reports whether the match has no key: the rule takes everything.
func (m *Match) Empty() bool {
	return len(m.Object) == 0 && len(m.Method) == 0 && len(m.BlobInfo) == 0 && len(m.Client) == 0 &&
		len(m.Serializer) == 0 && len(m.Annotation) == 0
}

// Balance policies.
const (
	BalanceRoundRobin    = "round_robin"
	BalanceLeastInflight = "least_inflight"
	BalanceHash          = "hash"
)

// Hash keys of balance: hash (besides "annotation:XXXX").
const (
	HashClientIP = "client_ip"
	HashObject   = "object"
	HashCorr     = "corr"
)

// Defaults of backend groups.
const (
	DefaultEject         = 10 * time.Second
	DefaultHealthTimeout = time.Second
	DefaultHealthFall    = 2
	DefaultHealthRise    = 1
	MaxWeight            = 1000
)

// CompilePattern turns a rule pattern into a matcher: "~RE" is a regular expression
// (unanchored, as in Go's regexp), anything else a path.Match glob.
func CompilePattern(p string) (func(string) bool, error) {
	if re, ok := strings.CutPrefix(p, "~"); ok {
		r, err := regexp.Compile(re)
		if err != nil {
			return nil, fmt.Errorf("bad regular expression %q: %v", re, err)
		}
		return r.MatchString, nil
	}
	if _, err := path.Match(p, ""); err != nil {
		return nil, fmt.Errorf("bad pattern %q: %v", p, err)
	}
	if !strings.ContainsAny(p, `*?[\`) {
		return func(s string) bool { return s == p }, nil
	}
	return func(s string) bool { ok, _ := path.Match(p, s); return ok }, nil
}

// ParsePrefix parses a client match entry: an IP address or a CIDR prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad CIDR prefix %q: %v", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad client address %q: want an IP or a CIDR prefix", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// ParseChunkID checks a 4-character annotation chunk id.
func ParseChunkID(s string) (frame.ChunkID, error) {
	if len(s) != 4 {
		return frame.ChunkID{}, fmt.Errorf("annotation id %q: want 4 ASCII characters, as CORR or ROUT", s)
	}
	return frame.ChunkID([]byte(s)), nil
}

// validateBackends checks the backend groups, fills their defaults and returns them by name.
func (c *Config) validateBackends() (map[string]bool, error) {
	groups := map[string]bool{}
	explicit := make([]Backend, 0, len(c.Backends))
	for _, b := range c.Backends {
		if !b.Implicit { // added by an earlier Validate: added again below
			explicit = append(explicit, b)
		}
	}
	c.Backends = explicit
	for i := range c.Backends {
		b := &c.Backends[i]
		key := fmt.Sprintf("backends[%d]", i)
		if b.Name == "" {
			return nil, fieldErr(key+".name", "a backend group needs a name")
		}
		if groups[b.Name] {
			return nil, fieldErr(key+".name", "duplicate backend group name %q", b.Name)
		}
		groups[b.Name] = true
		if err := b.fill(key); err != nil {
			return nil, err
		}
	}
	return groups, nil
}

// fill checks a group and puts in its defaults.
func (b *Backend) fill(key string) error {
	if len(b.Members) == 0 {
		return fieldErr(key+".members", "a backend group needs at least one member")
	}
	tlsKey := key + ".tls"
	if b.Implicit {
		tlsKey = key + ".backend_tls"
	}
	if err := b.TLS.validate(tlsKey); err != nil {
		return err
	}
	seen := map[string]bool{}
	for j := range b.Members {
		m := &b.Members[j]
		mk := fmt.Sprintf("%s.members[%d]", key, j)
		if _, _, err := ParseAddress(m.Address); err != nil {
			return fieldErr(mk, "%v", err)
		}
		if seen[m.Address] {
			return fieldErr(mk, "member %s is listed twice", m.Address)
		}
		seen[m.Address] = true
		switch {
		case m.Weight == 0:
			m.Weight = 1
		case m.Weight < 0 || m.Weight > MaxWeight:
			return fieldErr(mk+".weight", "must be within 1..%d", MaxWeight)
		}
	}
	switch b.Balance {
	case "":
		b.Balance = BalanceRoundRobin
	case BalanceRoundRobin, BalanceLeastInflight:
	case BalanceHash:
		if b.HashKey == "" {
			b.HashKey = HashClientIP
		}
	default:
		return fieldErr(key+".balance", "unknown balance %q (want %s, %s or %s)", b.Balance, BalanceRoundRobin, BalanceLeastInflight, BalanceHash)
	}
	if b.HashKey != "" {
		if b.Balance != BalanceHash {
			return fieldErr(key+".hash_key", "only with balance: hash")
		}
		switch b.HashKey {
		case HashClientIP, HashObject, HashCorr:
		default:
			id, ok := strings.CutPrefix(b.HashKey, "annotation:")
			if !ok {
				return fieldErr(key+".hash_key", "unknown hash key %q (want client_ip, object, corr or annotation:XXXX)", b.HashKey)
			}
			if _, err := ParseChunkID(id); err != nil {
				return fieldErr(key+".hash_key", "%v", err)
			}
		}
	}
	h := &b.Health
	for name, v := range map[string]time.Duration{"interval": h.Interval, "timeout": h.Timeout} {
		if v < 0 {
			return fieldErr(key+".health."+name, "must not be negative")
		}
	}
	if h.Fall < 0 || h.Rise < 0 {
		return fieldErr(key+".health", "fall and rise must not be negative")
	}
	if h.Interval > 0 {
		if h.Timeout == 0 {
			h.Timeout = min(DefaultHealthTimeout, h.Interval)
		}
		if h.Fall == 0 {
			h.Fall = DefaultHealthFall
		}
		if h.Rise == 0 {
			h.Rise = DefaultHealthRise
		}
	}
	switch {
	case b.Eject < 0:
		return fieldErr(key+".eject", "must not be negative")
	case b.Eject == 0:
		b.Eject = DefaultEject
	}
	return nil
}

// validateRoutes checks a listener's backend and routes against the groups and its mode,
// and adds the implicit group its backend key forms.
func (c *Config) validateRoutes(l *Listener, key string, groups map[string]bool) error {
	if len(l.Backend) == 0 && len(l.Routes) == 0 {
		return fieldErr(key+".backend", "no backend address and no routes")
	}
	if l.Balance != "" && len(l.Backend) == 0 {
		return fieldErr(key+".balance", "only with backend (routes name groups, which have their own balance)")
	}
	if l.BackendTLS != nil && len(l.Backend) == 0 {
		return fieldErr(key+".backend_tls", "only with backend (routes name groups, which have their own tls)")
	}
	if len(l.Backend) > 0 {
		if groups[l.Name] {
			return fieldErr(key+".name", "listener %q has a backend key, and a backend group of that name exists: rename one", l.Name)
		}
		b := Backend{Name: l.Name, Balance: l.Balance, Implicit: true, TLS: l.BackendTLS}
		for _, a := range l.Backend {
			b.Members = append(b.Members, Member{Address: a})
		}
		if err := b.fill(key); err != nil {
			if fe, ok := err.(*FieldError); ok { // "listeners[0].members[1]" is listeners[0].backend[1]
				fe.Key = strings.Replace(fe.Key, key+".members", key+".backend", 1)
			}
			return err
		}
		c.Backends = append(c.Backends, b)
		groups[l.Name] = true
	}
	for j := range l.Routes {
		r := &l.Routes[j]
		rk := fmt.Sprintf("%s.routes[%d]", key, j)
		switch {
		case r.To == "" && r.Deny == "":
			return fieldErr(rk, "a route needs to: GROUP or deny: REASON")
		case r.To != "" && r.Deny != "":
			return fieldErr(rk, "a route has either to or deny, not both")
		case r.To != "" && !groups[r.To]:
			return fieldErr(rk+".to", "no backend group named %q (have: %s)", r.To, groupNames(groups))
		}
		if err := validateMatch(&r.Match, rk+".match", l.Mode); err != nil {
			return err
		}
		if _, err := ParseSerializers(rk+".serializers", r.Serializers); err != nil {
			return err
		}
		if r.Deny != "" && len(r.Serializers) > 0 {
			return fieldErr(rk+".serializers", "a deny route refuses every serializer already")
		}
	}
	return nil
}

func validateMatch(m *Match, key, mode string) error {
	for name, list := range map[string]StringList{"object": m.Object, "method": m.Method, "blob_info": m.BlobInfo} {
		for i, p := range list {
			if _, err := CompilePattern(p); err != nil {
				return fieldErr(fmt.Sprintf("%s.%s[%d]", key, name, i), "%v", err)
			}
		}
	}
	if mode == ModeSession {
		switch {
		case len(m.Method) > 0:
			return fieldErr(key+".method", "a session listener routes each client once, at its CONNECT, which names no method: method rules need mode: pooled")
		case len(m.BlobInfo) > 0:
			return fieldErr(key+".blob_info", "a session listener routes each client once, at its CONNECT, which carries no SerializedBlob: blob_info rules need mode: pooled")
		}
	}
	for i, s := range m.Client {
		if _, err := ParsePrefix(s); err != nil {
			return fieldErr(fmt.Sprintf("%s.client[%d]", key, i), "%v", err)
		}
	}
	if _, err := ParseSerializers(key+".serializer", m.Serializer); err != nil {
		return err
	}
	for id, pats := range m.Annotation {
		if _, err := ParseChunkID(id); err != nil {
			return fieldErr(key+".annotation."+id, "%v", err)
		}
		for i, p := range pats {
			if _, err := CompilePattern(p); err != nil {
				return fieldErr(fmt.Sprintf("%s.annotation.%s[%d]", key, id, i), "%v", err)
			}
		}
	}
	return nil
}

func groupNames(groups map[string]bool) string {
	names := make([]string, 0, len(groups))
	for n := range groups {
		names = append(names, strconv.Quote(n))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
