package dispatch

import (
	"context"
	"net"

	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// RoutedCalls is where the calls of an HTTP gateway listener that routes (http[].backend
// or routes) go: its router in the routing table in service, reloads included, and the
// dials of the members (with their groups' TLS). It is an httpgw.Backends.
type RoutedCalls struct {
	s        *Server
	listener string
}

// RoutedCalls returns the routing of the HTTP gateway listener of that name.
func (s *Server) RoutedCalls(listener string) RoutedCalls {
	return RoutedCalls{s: s, listener: listener}
}

// Decide routes one call by the listener's rules.
func (rc RoutedCalls) Decide(req *routing.Request) routing.Decision {
	r := rc.s.table.Load().Router(rc.listener)
	if r == nil { // a reload that dropped the listener: it serves until restarted
		return routing.Decision{Deny: "listener " + rc.listener + " has no routes since the last reload", Rule: -1}
	}
	return r.Decide(req)
}

// Dial connects to a member of a backend group.
func (rc RoutedCalls) Dial(ctx context.Context, m *routing.Member) (net.Conn, error) {
	return rc.s.dialMember(ctx, m)
}
