//go:build !linux

package dispatch

import "net"

// hangups needs epoll: elsewhere a daemon's close of an idle session-mode connection is
// seen at the client's next call.
type hangups struct{}

func newHangups() *hangups                         { return nil }
func (h *hangups) watch(*Session, net.Conn) uint32 { return 0 }
func (h *hangups) forget(uint32, net.Conn)         {}
func (h *hangups) stop()                           {}

// clientLeft cannot look at a socket without blocking here: a client counts as present.
func clientLeft(net.Conn) bool { return false }
