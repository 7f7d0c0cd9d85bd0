package routing

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// Group is a backend group: its members, how it balances between them, and which are in
// service. Members going out or back build a new picker snapshot; Pick reads it with one
// atomic load and allocates nothing.
type Group struct {
	Name    string
	members []*Member
	cfg     config.Backend
	bal     balancer
	hashAnn frame.ChunkID // hash_key annotation:XXXX
	rr      atomic.Uint64 // round-robin position, shared by its pickers
	picker  atomic.Pointer[picker]
	log     *zap.Logger
}

// Member is one daemon of a group, with its health and load. The same Member lives on
// across reloads as long as its group keeps it.
type Member struct {
	Addr     string       // as configured
	Network  string       // "tcp" or "unix", for net.Dial
	Address  string       // for net.Dial
	weight   atomic.Int64 // set again by a reload that keeps the member
	hash     uint64       // of Addr, for consistent hashing
	inflight atomic.Int64
	out      atomic.Bool // not in service: health check failing, ejected, or drained
	drained  atomic.Bool // taken out by an operator (Drain): never picked, even in panic mode
	retired  atomic.Bool // no longer in the configuration
	group    atomic.Pointer[Group]

	mu        sync.Mutex
	down      bool   // the active health check says so
	fails     int    // consecutive failed health checks
	rises     int    // consecutive good health checks while down
	checkErr  string // why the last health check failed
	ejectFor  time.Duration
	ejectEnd  time.Time // ejected until then (zero: not ejected)
	ejectErr  string    // why it was ejected
	ejectTime *time.Timer
	stopped   bool // the member left the configuration: no more timers
}

// Weight returns the member's configured weight.
func (m *Member) Weight() int { return int(m.weight.Load()) }

// GroupName names the group the member belongs to now.
func (m *Member) GroupName() string { return m.group.Load().Name }

// InFlight returns the calls (pooled mode) or connections (session mode) it has now.
func (m *Member) InFlight() int64 { return m.inflight.Load() }

// Begin counts a call or connection sent to the member; End ends it.
func (m *Member) Begin() { m.inflight.Add(1) }

// End ends what Begin counted.
func (m *Member) End() { m.inflight.Add(-1) }

// Out reports whether the member is out of service (failing health checks, or ejected).
func (m *Member) Out() bool { return m.out.Load() }

// Failed reports that a dial or handshake to the member failed, or that it was lost in the
// middle of a call: it is ejected for the group's eject time, doubled each time it fails
// again after coming back (up to 64 times), and the rest of the group takes its share.
func (m *Member) Failed(err error) {
	g := m.group.Load()
	m.mu.Lock()
	if m.stopped || !m.ejectEnd.IsZero() { // already out for this
		m.mu.Unlock()
		return
	}
	base := g.cfg.Eject
	if m.ejectFor == 0 {
		m.ejectFor = base
	} else {
		m.ejectFor = min(2*m.ejectFor, 64*base)
	}
	d := m.ejectFor
	m.ejectEnd = time.Now().Add(d)
	m.ejectErr = err.Error()
	m.ejectTime = time.AfterFunc(d, m.readmit)
	m.mu.Unlock()
	g.log.Warn("backend member ejected", zap.String("group", g.Name), zap.String("member", m.Addr),
		zap.Duration("for", d), zap.Error(err))
	g.refresh()
}

// Succeeded reports a good dial or call: the next ejection starts from the base time.
func (m *Member) Succeeded() {
	if m.out.Load() {
		return // still counting down, or down by its health check
	}
	m.mu.Lock()
	if m.ejectEnd.IsZero() {
		m.ejectFor = 0
	}
	m.mu.Unlock()
}

// readmit ends an ejection (its timer).
func (m *Member) readmit() {
	g := m.group.Load()
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return
	}
	m.ejectEnd, m.ejectTime = time.Time{}, nil
	m.mu.Unlock()
	g.log.Info("backend member back from ejection", zap.String("group", g.Name), zap.String("member", m.Addr))
	g.refresh()
}

// checked records the result of an active health check.
func (m *Member) checked(err error, hc config.Health) {
	g := m.group.Load()
	m.mu.Lock()
	changed := false
	if err != nil {
		m.rises = 0
		m.checkErr = err.Error()
		if m.fails++; !m.down && m.fails >= hc.Fall {
			m.down, changed = true, true
		}
	} else {
		m.fails = 0
		if m.down {
			if m.rises++; m.rises >= hc.Rise {
				m.down, m.rises, changed = false, 0, true
				m.checkErr = ""
			}
		}
	}
	down, why := m.down, m.checkErr
	m.mu.Unlock()
	if !changed {
		return
	}
	if down {
		g.log.Warn("backend member down: health check failing", zap.String("group", g.Name), zap.String("member", m.Addr),
			zap.Int("fall", hc.Fall), zap.String("error", why))
	} else {
		g.log.Info("backend member up: health check passing", zap.String("group", g.Name), zap.String("member", m.Addr),
			zap.Int("rise", hc.Rise))
	}
	g.refresh()
}

// Drain takes the member out of service until Enable: no new call or client goes to it,
// not even when every other member is out too; what is in flight on it finishes (and in
// session mode its connected clients stay). who says who asked, for the log.
func (m *Member) Drain(who string) {
	g := m.group.Load()
	if !m.drained.Swap(true) {
		g.log.Warn("backend member drained", zap.String("group", g.Name), zap.String("member", m.Addr), zap.String("by", who))
	}
	g.refresh()
}

// Enable puts a drained member back in service.
func (m *Member) Enable(who string) {
	g := m.group.Load()
	if m.drained.Swap(false) {
		g.log.Info("backend member enabled", zap.String("group", g.Name), zap.String("member", m.Addr), zap.String("by", who))
	}
	g.refresh()
}

// Drained reports whether the member was drained.
func (m *Member) Drained() bool { return m.drained.Load() }

// Retired reports whether the member left the configuration (a reload removed it).
func (m *Member) Retired() bool { return m.retired.Load() }

// stop ends the member's timers when it leaves the configuration.
func (m *Member) stop() {
	m.retired.Store(true)
	m.mu.Lock()
	m.stopped = true
	if m.ejectTime != nil {
		m.ejectTime.Stop()
	}
	m.mu.Unlock()
}

// Status says whether the member is in service, and if not, why.
func (m *Member) Status() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var why []string
	if m.drained.Load() {
		why = append(why, "drained")
	}
	if m.down {
		why = append(why, "health check failing: "+m.checkErr)
	}
	if !m.ejectEnd.IsZero() {
		why = append(why, fmt.Sprintf("ejected for %v more after: %s", time.Until(m.ejectEnd).Round(time.Millisecond), m.ejectErr))
	}
	if len(why) == 0 {
		return "up"
	}
	return strings.Join(why, "; ")
}

// Members returns the group's members, in configuration order.
func (g *Group) Members() []*Member { return g.members }

// refresh builds a new picker from the members' states.
func (g *Group) refresh() {
	var up, all []*Member
	for _, m := range g.members {
		m.mu.Lock()
		drained := m.drained.Load()
		out := m.down || !m.ejectEnd.IsZero() || drained
		m.mu.Unlock()
		m.out.Store(out)
		if !out {
			up = append(up, m)
		}
		if !drained {
			all = append(all, m)
		}
	}
	g.picker.Store(&picker{up: newCandidates(up), all: newCandidates(all)})
}

// Tried is the set of a group's members a request has tried already (by position).
// Groups of more than 64 members are tried at most 64 times.
type Tried uint64

func (t Tried) has(i int) bool { return i < 64 && t&(1<<uint(i)) != 0 }

// With adds member m of group g to the set.
func (t Tried) With(g *Group, m *Member) Tried {
	for i, x := range g.members {
		if x == m && i < 64 {
			return t | 1<<uint(i)
		}
	}
	return t
}

// ErrNoMember is wrapped by Pick's error when every member was tried already.
var ErrNoMember = errors.New("routing: every member tried")

// Pick chooses a member for req that is not in tried: among the members in service by
// the group's balance; when none of those is left, among all members (a group whose every
// member is out still gets its calls tried rather than refused). It fails only when every
// member was tried.
func (g *Group) Pick(req *Request, tried Tried) (*Member, error) {
	p := g.picker.Load()
	if m := g.bal.pick(g, &p.up, req, tried); m != nil {
		return m, nil
	}
	if m := g.bal.pick(g, &p.all, req, tried); m != nil {
		return m, nil
	}
	return nil, ErrNoMember
}

// NoHealthy explains why no member of the group could take a request: each member with
// the error of this request's attempt on it, else its state. For a group of one that was
// tried (a sidecar's backend), the attempt's error says it all and is returned as it is.
func (g *Group) NoHealthy(attempts map[*Member]error) error {
	if len(g.members) == 1 && attempts[g.members[0]] != nil {
		return &NoHealthyError{Group: g.Name, Only: attempts[g.members[0]]}
	}
	parts := make([]string, 0, len(g.members))
	for _, m := range g.members {
		why := m.Status()
		if err := attempts[m]; err != nil {
			why = err.Error()
		}
		parts = append(parts, m.Addr+": "+why)
	}
	return &NoHealthyError{Group: g.Name, Why: strings.Join(parts, "; ")}
}

// NoHealthyError is the refusal when no member of a group could take a request.
type NoHealthyError struct {
	Group string
	Why   string // each member and why
	Only  error  // a group of one: its member's error, which says it all
}

func (e *NoHealthyError) Error() string {
	if e.Only != nil {
		return e.Only.Error()
	}
	return "no healthy backend in group " + e.Group + " (" + e.Why + ")"
}
