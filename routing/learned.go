package routing

import (
	"sync"

	"github.com/pyro-dispatch/pyro-dispatch/config"
)

// Learned maps object ids to the members that serve them, as a listener with a
// name-server view learns them from the URIs the name server hands out. A call to a
// learned object id that only a catch-all rule would take goes to its member; rules that
// name the object, and deny rules, still come first. Safe for concurrent use; a reload
// keeps it (members it names that the reload removes are forgotten).
type Learned struct {
	mu  sync.RWMutex
	ids map[string]*Member
}

// Learn records that m serves object, or with m nil that the routes decide for it (its
// name server put it on two members). It returns the member that served it before, if
// another one did, and whether anything changed.
func (l *Learned) Learn(object string, m *Member) (prev *Member, changed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ids == nil {
		l.ids = map[string]*Member{}
	}
	prev, had := l.ids[object]
	if had && prev == m {
		return nil, false
	}
	l.ids[object] = m
	return prev, true
}

// Lookup returns the member that serves object, nil when none was learned.
func (l *Learned) Lookup(object []byte) *Member {
	l.mu.RLock()
	m := l.ids[string(object)]
	l.mu.RUnlock()
	if m != nil && m.Retired() {
		return nil
	}
	return m
}

// Len returns how many object ids are learned.
func (l *Learned) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.ids)
}

// Snapshot returns the learned object ids and their members' addresses ("" for an id
// left to the routes).
func (l *Learned) Snapshot() map[string]string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make(map[string]string, len(l.ids))
	for id, m := range l.ids {
		out[id] = ""
		if m != nil {
			out[id] = m.Addr
		}
	}
	return out
}

// forgetRetired drops the object ids of members no longer in the configuration.
func (l *Learned) forgetRetired() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, m := range l.ids {
		if m != nil && m.Retired() {
			delete(l.ids, id)
		}
	}
}

// MemberAt returns the member of any group at address (as configured, or as dialed:
// network and address), nil when the table has none there.
func (t *Table) MemberAt(network, address string) *Member {
	return t.MemberFunc(network, func(a string) bool { return a == address })
}

// MemberFunc returns the first member of any group on network whose address match
// accepts, nil when none does.
func (t *Table) MemberFunc(network string, match func(address string) bool) *Member {
	for _, g := range t.groups {
		for _, m := range g.members {
			if m.Network == network && match(m.Address) {
				return m
			}
		}
	}
	return nil
}

// Learned returns the learned object ids of a listener with a name-server view, nil for
// other listeners.
func (t *Table) Learned(listener string) *Learned {
	if r := t.routers[listener]; r != nil {
		return r.learned
	}
	return nil
}

// learnedFor returns the learned ids l's router uses: prev's for the same listener (a
// reload keeps them), a new set when l has a name-server view, else nil.
func learnedFor(l *config.Listener, prev *Table) *Learned {
	if !l.NameServerView() {
		return nil
	}
	if prev != nil {
		if old := prev.Learned(l.Name); old != nil {
			return old
		}
	}
	return &Learned{}
}
