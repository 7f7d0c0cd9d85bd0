package dispatch

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// errPanicked is what a panic recovered in work for a shared upstream connection (or a
// pooled dial) fails it with: a bug of the dispatcher's, not the daemon's.
var errPanicked = errors.New("panic")

// recovered reports p, a panic that the caller's deferred function recovered in a
// goroutine serving one of listener's clients or working on its behalf (client: the
// session concerned, nil when none is): an error log line with the client and the stack,
// and pyro_dispatch_panics_total. It returns p as an error (errPanicked) for the caller
// to end what it was doing with. As net/http does for a handler: only the connection
// concerned closes, the process and the other clients carry on.
func (srv *Server) recovered(p any, msg, listener string, client *Session, fields ...zap.Field) error {
	who := zap.String("client", "-")
	if client != nil {
		who = zap.Stringer("client", remoteAddr{client.client})
	}
	srv.log.Error(msg, append([]zap.Field{zap.String("listener", listener), who, zap.Any("panic", p), zap.Stack("stack")}, fields...)...)
	if srv.metrics != nil {
		srv.metrics.Panicked(listener)
	}
	return fmt.Errorf("%w: %v", errPanicked, p)
}

// hookPoint is a point on a call's path where tests may make the dispatcher panic.
type hookPoint uint8

const (
	atReply     hookPoint = iota // a reply is about to be relayed to its client
	atWrite                      // a session writes queued requests on a shared (pipelined) connection
	atHandshake                  // a pooled upstream connection performs its handshake (no session)
)

// panicHook, set only by tests before they start a server, is called at each hookPoint
// with the session concerned (nil at atHandshake): a test makes it panic for one client,
// or pause there. Nil otherwise, which costs a call one nil check.
var panicHook func(s *Session, at hookPoint)
