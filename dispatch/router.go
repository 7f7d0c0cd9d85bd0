package dispatch

import (
	"net"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// Target is a backend a client session is sent to.
type Target struct {
	Name    string // shown in logs and errors, usually the configured address
	Network string // "tcp" or "unix"
	Address string // for net.Dial
}

// ConnectInfo is what is known about a client when it asks to connect: everything a rule
// may match on. Connect and its slices are valid only during the Route call.
type ConnectInfo struct {
	Listener string
	Client   net.Addr
	Connect  *frame.Message // the client's CONNECT message, payload fully buffered
}

// Router decides which backend a new client session goes to. A Router must be safe for
// concurrent use. An error is sent to the client as the reason of a CONNECTFAIL.
type Router interface {
	Route(info *ConnectInfo) (Target, error)
}

// StaticRouter sends every client to one backend.
type StaticRouter Target

// Route returns the one backend.
func (r StaticRouter) Route(*ConnectInfo) (Target, error) { return Target(r), nil }

// NewStaticRouter returns a router to the backend at addr (see config.ParseAddress).
func NewStaticRouter(addr string) (StaticRouter, error) {
	network, address, err := config.ParseAddress(addr)
	if err != nil {
		return StaticRouter{}, err
	}
	return StaticRouter{Name: addr, Network: network, Address: address}, nil
}
