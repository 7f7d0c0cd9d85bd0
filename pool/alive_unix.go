//go:build unix

package pool

import (
	"syscall"

	"github.com/pyro-dispatch/pyro-dispatch/internal/rawsock"
)

// alive reports whether an idle connection can still carry a call: a non-blocking peek
// that finds nothing to read. End of stream (the daemon closed it: its COMMTIMEOUT, a
// restart), a reset, or bytes nobody asked for all mean it cannot. One system call that
// never blocks, consumes nothing and allocates nothing (rawsock.Peek: a raw one on
// 64-bit Linux, so that it wakes no thread of the scheduler); the caller holds the
// connection (taken from the idle list), so its descriptor cannot be closed meanwhile.
func alive(c *Conn) bool {
	if c.fd < 0 {
		return true
	}
	_, e := rawsock.Peek(uintptr(c.fd))
	return e == syscall.EAGAIN
}
