//go:build unix

package pool

import "syscall"

// alive reports whether an idle connection can still carry a call: a non-blocking peek
// that finds nothing to read. End of stream (the daemon closed it: its COMMTIMEOUT, a
// restart), a reset, or bytes nobody asked for all mean it cannot. One system call that
// never blocks, consumes nothing and allocates nothing; the caller holds the connection
// (taken from the idle list), so its descriptor cannot be closed meanwhile.
func alive(c *Conn) bool {
	if c.fd < 0 {
		return true
	}
	var buf [1]byte
	n, _, err := syscall.Recvfrom(c.fd, buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
}
