package dispatch

import (
	"crypto/tls"
	"errors"
	"fmt"

	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// This file: what the admin API shows of a running server, and the actions it takes.

// sessionStats are what a session did, for the admin API (Session.mu).
type sessionStats struct {
	started        time.Time
	calls          uint64
	reqBytes       uint64
	repBytes       uint64
	backend        string    // the member of its last call (session mode: its own)
	callStart      time.Time // the call in progress; zero when idle
	corr           []byte
	object, method string
}

// beginCall notes the call in progress (metrics on only).
func (s *Session) beginCall(start time.Time, corr []byte, object, method string) {
	s.mu.Lock()
	s.stats.callStart, s.stats.object, s.stats.method = start, object, method
	s.stats.corr = append(s.stats.corr[:0], corr...)
	s.mu.Unlock()
}

// endCall notes a call's end (from logCall, metrics on only).
func (s *Session) endCall(member *routing.Member, h frame.Header, replyBytes int) {
	s.mu.Lock()
	s.stats.calls++
	s.stats.reqBytes += uint64(max(h.DataLen, 0))
	s.stats.repBytes += uint64(max(replyBytes, 0))
	if member != nil {
		s.stats.backend = member.Addr
	}
	s.stats.callStart = time.Time{}
	s.mu.Unlock()
}

// SessionInfo is one client connection as the admin API shows it.
type SessionInfo struct {
	ID        uint64    `json:"id"`
	Client    string    `json:"client"`
	Listener  string    `json:"listener"`
	Mode      string    `json:"mode"`
	TLS       bool      `json:"tls"`
	Backend   string    `json:"backend,omitempty"` // the member of its last call
	Pinned    bool      `json:"pinned"`
	PinReason string    `json:"pin_reason,omitempty"`
	Parked    bool      `json:"parked"` // idle past pool.park_after: no goroutine, no buffers
	Since     time.Time `json:"since"`
	Calls     uint64    `json:"calls"`
	ReqBytes  uint64    `json:"request_bytes"`
	RepBytes  uint64    `json:"reply_bytes"`
	// The call in progress, if any.
	Corr   string  `json:"corr,omitempty"`
	Object string  `json:"object,omitempty"`
	Method string  `json:"method,omitempty"`
	Age    float64 `json:"age_seconds,omitempty"`
}

// SessionList lists the client connections, oldest first.
func (s *Server) SessionList() []SessionInfo {
	s.mu.Lock()
	list := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		list = append(list, sess)
	}
	s.mu.Unlock()
	now := time.Now()
	out := make([]SessionInfo, 0, len(list))
	for _, sess := range list {
		out = append(out, sess.info(now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *Session) info(now time.Time) SessionInfo {
	mode := s.st.cfg.Mode
	if s.st.pooled && s.st.cfg.Pool.Pipeline > 1 {
		mode = "pipelined"
	}
	_, isTLS := s.client.(*tls.Conn)
	s.mu.Lock()
	defer s.mu.Unlock()
	in := SessionInfo{
		ID: s.id, Client: remoteAddr{s.client}.String(), Listener: s.st.name, Mode: mode, TLS: isTLS,
		Backend: s.stats.backend, Pinned: s.pinned, PinReason: s.pinReason, Parked: s.parked, Since: s.stats.started,
		Calls: s.stats.calls, ReqBytes: s.stats.reqBytes, RepBytes: s.stats.repBytes,
	}
	if !s.stats.callStart.IsZero() {
		in.Corr, in.Object, in.Method = corrID(s.stats.corr).String(), s.stats.object, s.stats.method
		in.Age = now.Sub(s.stats.callStart).Seconds()
	}
	return in
}

// ParkedSessions returns the number of client connections parked now (pooled listeners:
// idle past pool.park_after, holding no goroutine or buffer).
func (s *Server) ParkedSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sess := range s.sessions {
		if sess.isParked() {
			n++
		}
	}
	return n
}

// CloseSession closes a client connection (who asked is logged); false when there is
// no such session.
func (s *Server) CloseSession(id uint64, who string) bool {
	s.mu.Lock()
	var found *Session
	for sess := range s.sessions {
		if sess.id == id {
			found = sess
			break
		}
	}
	s.mu.Unlock()
	if found == nil {
		return false
	}
	found.logger().Warn("closing client: asked by the admin API", zap.String("by", who))
	found.closeClient()
	return true
}

// ListenerInfo is a listener as the admin API shows it.
type ListenerInfo struct {
	Name        string   `json:"name"`
	Addresses   []string `json:"addresses"`
	Mode        string   `json:"mode"`
	TLS         string   `json:"tls,omitempty"` // the certificate in use
	Serializers string   `json:"serializers"`
	HMAC        string   `json:"hmac"` // "re-signs" or "passes through"
	Clients     int      `json:"clients"`
	// Advertise is the address of the name-server view (NAT edge), and Learned how many
	// object ids it learned; empty without a view.
	Advertise string `json:"advertise,omitempty"`
	Learned   int    `json:"learned,omitempty"`
}

// LearnedIDs returns, per listener with a name-server view, the object ids it learned and
// the member (address as configured) that serves each.
func (s *Server) LearnedIDs() map[string]map[string]string {
	t := s.table.Load()
	out := map[string]map[string]string{}
	for _, lc := range s.Config().Listeners {
		if l := t.Learned(lc.Name); l != nil {
			out[lc.Name] = l.Snapshot()
		}
	}
	return out
}

// Listeners describes the listeners.
func (s *Server) Listeners() []ListenerInfo {
	clients := map[string]int{}
	s.mu.Lock()
	for sess := range s.sessions {
		clients[sess.st.name]++
	}
	s.mu.Unlock()
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	byName := map[string]int{}
	var out []ListenerInfo
	for _, l := range s.listeners {
		i, ok := byName[l.name]
		if !ok {
			st := l.st.Load()
			in := ListenerInfo{Name: l.name, Mode: st.cfg.Mode, Serializers: st.router.Policy().String(), Clients: clients[l.name], HMAC: "passes through"}
			if st.pooled && st.cfg.Pool.Pipeline > 1 {
				in.Mode = fmt.Sprintf("pooled, pipeline %d", st.cfg.Pool.Pipeline)
			}
			if st.tls != nil {
				in.TLS = st.tls.Describe()
			}
			if st.hmac.resign() {
				in.HMAC = "re-signs"
			}
			if st.nsv != nil {
				in.Advertise = st.cfg.Advertise
				if l := s.table.Load().Learned(l.name); l != nil {
					in.Learned = l.Len()
				}
			}
			i = len(out)
			byName[l.name] = i
			out = append(out, in)
		}
		out[i].Addresses = append(out[i].Addresses, l.Addr().String())
	}
	return out
}

// MemberInfo is a backend member as the admin API shows it.
type MemberInfo struct {
	Address  string `json:"address"`
	Weight   int    `json:"weight"`
	Up       bool   `json:"up"`
	Drained  bool   `json:"drained"`
	Status   string `json:"status"` // "up", or why it is out (drained, health check error, ejection)
	InFlight int64  `json:"in_flight"`
}

// GroupInfo is a backend group as the admin API shows it.
type GroupInfo struct {
	Name    string       `json:"name"`
	Balance string       `json:"balance"`
	Health  string       `json:"health"`
	TLS     bool         `json:"tls"`
	Members []MemberInfo `json:"members"`
}

// Groups describes the backend groups and their members.
func (s *Server) Groups() []GroupInfo {
	t := s.table.Load()
	var out []GroupInfo
	for _, b := range s.Config().Backends {
		g := t.Group(b.Name)
		if g == nil {
			continue
		}
		gi := GroupInfo{Name: g.Name, Balance: b.Balance, Health: "off", TLS: b.TLS != nil}
		if b.Health.Interval > 0 {
			gi.Health = fmt.Sprintf("every %v (fall %d, rise %d)", b.Health.Interval, b.Health.Fall, b.Health.Rise)
		}
		for _, m := range g.Members() {
			gi.Members = append(gi.Members, MemberInfo{Address: m.Addr, Weight: m.Weight(), Up: !m.Out(), Drained: m.Drained(),
				Status: m.Status(), InFlight: m.InFlight()})
		}
		out = append(out, gi)
	}
	return out
}

// ErrNoMember is returned by DrainMember and EnableMember for an unknown member.
var ErrNoMember = errors.New("no such member")

// DrainMember takes a member of a group out of service (routing.Member.Drain): no new
// call or client goes to it, what is in flight finishes; who asked is logged.
func (s *Server) DrainMember(group, addr, who string) error {
	return s.memberAction(group, addr, "drain", func(m *routing.Member) { m.Drain(who) })
}

// EnableMember puts a drained member back in service.
func (s *Server) EnableMember(group, addr, who string) error {
	return s.memberAction(group, addr, "enable", func(m *routing.Member) { m.Enable(who) })
}

func (s *Server) memberAction(group, addr, action string, do func(*routing.Member)) error {
	g := s.table.Load().Group(group)
	if g == nil {
		return fmt.Errorf("%w: no group %s", ErrNoMember, group)
	}
	for _, m := range g.Members() {
		if m.Addr == addr {
			do(m)
			if s.metrics != nil {
				s.metrics.MemberAction(group, addr, action)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: %s in group %s", ErrNoMember, addr, group)
}

// PoolInfo is the pooled upstream connections of one listener to one member, summed
// over its handshakes (one pool per distinct client CONNECT).
type PoolInfo struct {
	Listener     string `json:"listener"`
	Group        string `json:"group"`
	Member       string `json:"member"`
	Handshakes   int    `json:"handshakes"`
	MaxOpen      int    `json:"max_open"` // per handshake
	Open         int    `json:"open"`
	Idle         int    `json:"idle"`
	InUse        int    `json:"in_use"`
	Dialing      int    `json:"dialing"`
	Waiting      int    `json:"waiting"`
	Dials        uint64 `json:"dials"`
	DialFailures uint64 `json:"dial_failures"`
	Stale        uint64 `json:"stale"`
	Beyond       uint64 `json:"beyond_max_open"`
}

// Pools describes the pools of the pooled listeners.
func (s *Server) Pools() []PoolInfo { return s.poolStats() }

func (s *Server) poolStats() []PoolInfo {
	s.reloadMu.Lock()
	seen := map[*handshakes]string{}
	for _, l := range s.listeners {
		if st := l.st.Load(); st.handshakes != nil {
			seen[st.handshakes] = st.name
		}
	}
	s.reloadMu.Unlock()
	type key struct{ listener, member string }
	agg := map[key]*PoolInfo{}
	var keys []key
	for hs, name := range seen {
		for _, h := range hs.cache.Values() {
			st := h.pool.Stats()
			k := key{name, h.key.member.Addr}
			p := agg[k]
			if p == nil {
				p = &PoolInfo{Listener: name, Group: h.key.member.GroupName(), Member: h.key.member.Addr, MaxOpen: hs.cfg.MaxOpen}
				agg[k] = p
				keys = append(keys, k)
			}
			p.Handshakes++
			p.Open += st.Open
			p.Idle += st.Idle
			p.InUse += st.InUse
			p.Dialing += st.Dialing
			p.Waiting += st.Waiting
			p.Dials += st.Dials
			p.DialFailures += st.DialFailures
			p.Stale += st.Stale
			p.Beyond += st.Beyond
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].listener < keys[j].listener || (keys[i].listener == keys[j].listener && keys[i].member < keys[j].member)
	})
	out := make([]PoolInfo, len(keys))
	for i, k := range keys {
		out[i] = *agg[k]
	}
	return out
}

// Config returns the configuration in effect.
func (s *Server) Config() config.Config {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.cfg
}

// Ready reports whether every listener listens and every group has a member in
// service, and if not, why.
func (s *Server) Ready() (bool, string) {
	s.reloadMu.Lock()
	listening := len(s.listeners) > 0
	s.reloadMu.Unlock()
	if !listening || s.draining.Load() {
		return false, "not listening"
	}
	for _, g := range s.Groups() {
		up := false
		for _, m := range g.Members {
			up = up || m.Up
		}
		if !up {
			return false, "group " + g.Name + " has no member in service"
		}
	}
	return true, "ready"
}

// RoutesInfo is a listener's routing as the admin API shows it.
type RoutesInfo struct {
	Listener    string             `json:"listener"`
	Serializers string             `json:"serializers"`
	Rules       []routing.RuleInfo `json:"rules"`
}

// Routes describes the routes in service, by listener.
func (s *Server) Routes() []RoutesInfo {
	t := s.table.Load()
	var out []RoutesInfo
	for _, l := range s.Config().Listeners {
		r := t.Router(l.Name)
		if r == nil {
			continue
		}
		out = append(out, RoutesInfo{Listener: l.Name, Serializers: r.Policy().String(), Rules: r.Rules()})
	}
	return out
}
