package routing

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
)

// Table is a compiled configuration's routing: a Router per listener (HTTP gateway
// listeners that route included) and the backend groups they send to. It is immutable
// once compiled (member states change, the rules do not); a reload compiles a new Table
// and swaps it in.
type Table struct {
	routers map[string]*Router
	groups  []*Group
	byName  map[string]*Group

	mu     sync.Mutex
	cancel context.CancelFunc // stops the health checks
	wg     sync.WaitGroup
}

// Compile builds the routing of a validated configuration. Members that prev (the table
// in service, or nil) has in a group of the same name are carried over with their
// health, ejection and load, so a reload forgets nothing about them.
func Compile(cfg *config.Config, prev *Table, log *zap.Logger) (*Table, error) {
	if log == nil {
		log = zap.NewNop()
	}
	t := &Table{routers: map[string]*Router{}, byName: map[string]*Group{}}
	for _, b := range cfg.Backends {
		g, err := newGroup(b, prev, log)
		if err != nil {
			return nil, err
		}
		t.groups = append(t.groups, g)
		t.byName[g.Name] = g
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		r, err := newRouter(l, t.byName, learnedFor(l, prev))
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		t.routers[l.Name] = r
	}
	for i := range cfg.HTTP {
		if !cfg.HTTP[i].Routed() {
			continue
		}
		l := cfg.HTTP[i].RoutingListener()
		r, err := newRouter(&l, t.byName, nil)
		if err != nil {
			return nil, fmt.Errorf("http listener %s: %w", l.Name, err)
		}
		t.routers[l.Name] = r
	}
	// Only now that nothing can fail: members move to their new groups.
	for _, g := range t.groups {
		for _, m := range g.members {
			m.group.Store(g)
		}
		g.refresh()
	}
	return t, nil
}

func newGroup(b config.Backend, prev *Table, log *zap.Logger) (*Group, error) {
	g := &Group{Name: b.Name, cfg: b, bal: newBalancer(b), log: log}
	if id, ok := strings.CutPrefix(b.HashKey, "annotation:"); ok {
		cid, err := config.ParseChunkID(id)
		if err != nil {
			return nil, err
		}
		g.hashAnn = cid
	}
	var old *Group
	if prev != nil {
		old = prev.byName[b.Name]
	}
	for _, mc := range b.Members {
		network, address, err := config.ParseAddress(mc.Address)
		if err != nil {
			return nil, err
		}
		var m *Member
		if old != nil {
			for _, om := range old.members {
				if om.Addr == mc.Address {
					m = om
				}
			}
		}
		if m == nil {
			m = &Member{Addr: mc.Address, Network: network, Address: address, hash: fnv([]byte(mc.Address))}
			m.group.Store(g)
		}
		m.weight.Store(int64(mc.Weight))
		g.members = append(g.members, m)
	}
	return g, nil
}

// Router returns the router of a listener, nil when the table has none of that name.
func (t *Table) Router(listener string) *Router { return t.routers[listener] }

// Group returns a group by name, nil when there is none.
func (t *Table) Group(name string) *Group { return t.byName[name] }

// Retire stops the timers of the members that next (the table replacing t) no longer
// has, and t's health checks.
func (t *Table) Retire(next *Table) {
	t.StopHealth()
	kept := map[*Member]bool{}
	if next != nil {
		for _, g := range next.groups {
			for _, m := range g.members {
				kept[m] = true
			}
		}
	}
	for _, g := range t.groups {
		for _, m := range g.members {
			if !kept[m] {
				m.stop()
			}
		}
	}
	if next != nil {
		for _, r := range next.routers {
			if r.learned != nil {
				r.learned.forgetRetired()
			}
		}
	}
}

// Probe checks one member: a real Pyro4 handshake and PING (pool.Probe), within ctx.
type Probe func(ctx context.Context, m *Member) error

// StartHealth starts the active health checks of every group that has them: one
// goroutine per member, until StopHealth.
func (t *Table) StartHealth(probe Probe) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	for _, g := range t.groups {
		hc := g.cfg.Health
		if hc.Interval <= 0 {
			continue
		}
		for _, m := range g.members {
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				checkLoop(ctx, m, hc, probe)
			}()
		}
	}
}

// StopHealth stops the health checks and waits for them to end.
func (t *Table) StopHealth() {
	t.mu.Lock()
	cancel := t.cancel
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	t.wg.Wait()
}

// checkLoop probes m every interval until ctx ends.
func checkLoop(ctx context.Context, m *Member, hc config.Health, probe Probe) {
	tick := time.NewTicker(hc.Interval)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, hc.Timeout)
		err := probe(cctx, m)
		cancel()
		if ctx.Err() != nil {
			return
		}
		m.checked(err, hc)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Describe writes the compiled routes and groups for check: for each listener its rules
// in order with what each needs to match, and for each group its balance, members,
// health checks and ejection.
func (t *Table) Describe(w io.Writer, cfg *config.Config) {
	fmt.Fprintln(w, "# routes (first match wins)")
	for _, l := range cfg.Listeners {
		r := t.routers[l.Name]
		fmt.Fprintf(w, "listener %s (%s mode, routed per %s; serializers: %v):\n", l.Name, l.Mode,
			map[bool]string{true: "client connection, at its CONNECT", false: "call"}[l.Mode == config.ModeSession], r.policy)
		for i, ru := range r.rules {
			target := "-> " + ru.src.To
			if ru.group == nil {
				target = fmt.Sprintf("deny %q", ru.deny)
			}
			if ru.src.To == l.Name && len(l.Backend) > 0 && i == len(r.rules)-1 && ru.needs == 0 {
				target += " (the listener's backend)"
			}
			if ru.policy != 0 {
				target += fmt.Sprintf(" (serializers: %v)", ru.policy)
			}
			fmt.Fprintf(w, "  %d. %s %s\n     %s\n", i+1, describeMatch(&ru.src.Match), target, describeNeeds(ru.needs))
		}
		if last := r.rules[len(r.rules)-1]; last.needs != 0 {
			fmt.Fprintf(w, "  -  anything else: refused (no route)\n")
		}
		if l.NameServerView() {
			describeView(w, &l)
		}
	}
	for _, h := range cfg.HTTP {
		if r := t.routers[h.Name]; r != nil {
			fmt.Fprintf(w, "http listener %s (routed per call):\n", h.Name)
			for i, ru := range r.rules {
				target := "-> " + ru.src.To
				if ru.group == nil {
					target = fmt.Sprintf("deny %q", ru.deny)
				}
				fmt.Fprintf(w, "  %d. %s %s\n", i+1, describeMatch(&ru.src.Match), target)
			}
		}
	}
	fmt.Fprintln(w, "# backend groups")
	for _, g := range t.groups {
		c := g.cfg
		bal := c.Balance
		if c.Balance == config.BalanceHash {
			bal += " on " + c.HashKey
		}
		fmt.Fprintf(w, "group %s: balance %s, eject %v (doubling while it fails)", g.Name, bal, c.Eject)
		if c.Health.Interval > 0 {
			fmt.Fprintf(w, ", health check (Pyro4 handshake + PING) every %v, timeout %v, fall %d, rise %d\n",
				c.Health.Interval, c.Health.Timeout, c.Health.Fall, c.Health.Rise)
		} else {
			fmt.Fprintln(w, ", no active health check")
		}
		for _, m := range g.members {
			fmt.Fprintf(w, "  %s weight %d\n", m.Addr, m.Weight())
		}
	}
}

// describeMatch writes a rule's match as YAML-like text.
func describeMatch(m *config.Match) string {
	if m.Empty() {
		return "match {}"
	}
	var parts []string
	add := func(name string, list config.StringList) {
		switch len(list) {
		case 0:
		case 1:
			parts = append(parts, fmt.Sprintf("%s: %q", name, list[0]))
		default:
			q := make([]string, len(list))
			for i, s := range list {
				q[i] = fmt.Sprintf("%q", s)
			}
			parts = append(parts, fmt.Sprintf("%s: [%s]", name, strings.Join(q, ", ")))
		}
	}
	add("object", m.Object)
	add("method", m.Method)
	add("blob_info", m.BlobInfo)
	add("client", m.Client)
	add("serializer", m.Serializer)
	for _, id := range sortedKeys(m.Annotation) {
		add("annotation "+id, m.Annotation[id])
	}
	return "match {" + strings.Join(parts, ", ") + "}"
}

func sortedKeys(m map[string]config.StringList) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// RuleInfo is one compiled rule, as check prints it.
type RuleInfo struct {
	Match       string `json:"match"`
	To          string `json:"to,omitempty"`
	Deny        string `json:"deny,omitempty"`
	Serializers string `json:"serializers,omitempty"`
	Needs       string `json:"needs"`
}

// Rules returns the router's rules in order (the last one may be the listener's own
// backend, which takes what no route takes).
func (r *Router) Rules() []RuleInfo {
	out := make([]RuleInfo, 0, len(r.rules))
	for _, ru := range r.rules {
		in := RuleInfo{Match: describeMatch(&ru.src.Match), Needs: describeNeeds(ru.needs)}
		if ru.group != nil {
			in.To = ru.src.To
		} else {
			in.Deny = ru.deny
		}
		if ru.policy != 0 {
			in.Serializers = ru.policy.String()
		}
		out = append(out, in)
	}
	return out
}

// describeView writes what a listener's name-server view does.
func describeView(w io.Writer, l *config.Listener) {
	fmt.Fprintf(w, "  name-server view: replies of %s (group %s) carry URIs rewritten to %s for the members of every group;\n",
		config.NameServerObject, l.NameServer, l.Advertise)
	fmt.Fprintf(w, "     object ids learned from them take the calls that only a catch-all (a to: rule naming no object) would\n")
	if l.Learn != nil {
		fmt.Fprintf(w, "     learns from list(%q) every %v\n", l.Learn.Prefix, l.Learn.Interval)
	}
	if l.Broadcast {
		fmt.Fprintf(w, "     answers Pyro4's broadcast lookup on udp %s\n", l.BroadcastListen)
	}
	if p := l.Publish; p != nil {
		what := "the names " + strings.Join(p.Objects, ", ")
		if p.Group != "" {
			what = "every object on group " + p.Group
		}
		fmt.Fprintf(w, "     publishes %s in the name server at %s, every %v\n", what, p.NameServer, p.Interval)
	}
}
