package routing

import (
	"math"
	"math/rand/v2"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// picker is an immutable snapshot of a group for Pick: the members in service, and all
// members for when none of those can take a request.
type picker struct {
	up, all candidates
}

// candidates is a set of members and their smooth weighted round-robin order: each member
// appears weight times per cycle, spread out as evenly as the weights allow (nginx's
// smooth weighted round robin).
type candidates struct {
	members []*Member
	order   []int32 // positions in members, one cycle
}

func newCandidates(ms []*Member) candidates {
	c := candidates{members: ms}
	if len(ms) == 0 {
		return c
	}
	w := make([]int, len(ms))
	g := 0
	for i, m := range ms {
		w[i] = m.Weight()
		g = gcd(g, w[i])
	}
	total := 0
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	c.order = make([]int32, 0, total)
	cur := make([]int, len(ms))
	for range total {
		best := 0
		for i := range ms {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		c.order = append(c.order, int32(best))
	}
	return c
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// balancer chooses one of the candidates not tried yet, or nil when none is left.
type balancer interface {
	pick(g *Group, c *candidates, req *Request, tried Tried) *Member
}

func newBalancer(b config.Backend) balancer {
	switch b.Balance {
	case config.BalanceLeastInflight:
		return leastInflight{}
	case config.BalanceHash:
		return hashBalancer{}
	default:
		return roundRobin{}
	}
}

// roundRobin walks the smooth weighted order with the group's shared counter.
type roundRobin struct{}

func (roundRobin) pick(g *Group, c *candidates, _ *Request, tried Tried) *Member {
	n := len(c.order)
	if n == 0 {
		return nil
	}
	start := int(g.rr.Add(1) % uint64(n))
	for k := range n {
		i := c.order[(start+k)%n]
		if m := c.members[i]; !tried.has(m.index(g)) {
			return m
		}
	}
	return nil
}

// leastInflight takes two members at random, in proportion to their weights, and keeps the
// one with fewer calls in flight per unit of weight (the power of two choices).
type leastInflight struct{}

func (leastInflight) pick(g *Group, c *candidates, _ *Request, tried Tried) *Member {
	n := len(c.order)
	if n == 0 {
		return nil
	}
	var a, b *Member
	for k := 0; k < 4 && b == nil; k++ {
		m := c.members[c.order[rand.IntN(n)]]
		switch {
		case tried.has(m.index(g)):
		case a == nil:
			a = m
		case m != a:
			b = m
		}
	}
	if a == nil || b == nil { // few untried members left: look at all of them
		for _, m := range c.members {
			if !tried.has(m.index(g)) && (a == nil || less(m, a)) {
				a = m
			}
		}
		return a
	}
	if less(b, a) {
		return b
	}
	return a
}

// less compares load per unit of weight, inflight/weight, without division. On a tie the
// first of two random picks (drawn by weight) stays: with no load, shares follow weights.
func less(x, y *Member) bool {
	return x.inflight.Load()*y.weight.Load() < y.inflight.Load()*x.weight.Load()
}

// hashBalancer is weighted rendezvous hashing: each key goes to the member with the
// highest score for it, so a member leaving moves only the keys it had. A request
// without the key (no CORR, say) is balanced round robin.
type hashBalancer struct{}

func (hashBalancer) pick(g *Group, c *candidates, req *Request, tried Tried) *Member {
	key, ok := hashKey(g, req)
	if !ok {
		return roundRobin{}.pick(g, c, req, tried)
	}
	var best *Member
	bestScore := math.Inf(-1)
	for _, m := range c.members {
		if tried.has(m.index(g)) {
			continue
		}
		// -w/ln(u), u uniform in (0,1) from the key and the member: the weighted
		// rendezvous score.
		u := (float64(mix(key^m.hash)>>11) + 0.5) / (1 << 53)
		if s := -float64(m.weight.Load()) / math.Log(u); s > bestScore {
			best, bestScore = m, s
		}
	}
	return best
}

// hashKey returns the hash of what the group's hash_key names, and false when the
// request does not have it.
func hashKey(g *Group, req *Request) (uint64, bool) {
	if req == nil {
		return 0, false
	}
	switch g.cfg.HashKey {
	case config.HashClientIP:
		if !req.client.IsValid() {
			return 0, false
		}
		a := req.client.Unmap().As16()
		return fnv(a[:]), true
	case config.HashObject:
		obj, ok := req.object()
		return fnv(obj), ok
	case config.HashCorr:
		v, ok := req.Annotation(frame.CORR)
		return fnv(v), ok
	default:
		v, ok := req.Annotation(g.hashAnn)
		return fnv(v), ok
	}
}

// fnv is FNV-1a, 64 bit: stable across runs and instances, so several dispatchers hash
// a key to the same member.
func fnv(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// mix is splitmix64's finalizer: it spreads a combined hash over all bits.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// index returns the member's position in g (the bit of Tried), -1 when not in g.
func (m *Member) index(g *Group) int {
	for i, x := range g.members {
		if x == m {
			return i
		}
	}
	return -1
}
