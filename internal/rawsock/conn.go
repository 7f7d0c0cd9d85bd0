package rawsock

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// Writer writes a message of a few pieces to a socket: one gathering write (Writev:
// sendmsg(2), or writev(2) on 32-bit Linux) each time the socket can take more, until
// all is written, waiting for it in the netpoller between. Its state is kept from write
// to write, so a write allocates nothing; one goroutine at a time.
type Writer struct {
	iov  [MaxBuffers]syscall.Iovec
	next []syscall.Iovec // what is left to write
	err  syscall.Errno
	fn   func(fd uintptr) bool // onWritable, bound once

	// The deadline of the write in progress (WritevWithin): set on conn once it waits.
	conn    net.Conn
	timeout time.Duration
	waited  bool
}

// MaxBuffers is the most pieces one gathering write of a Writer takes.
const MaxBuffers = 4

// Writev writes the buffers to the socket behind rc (empty ones are skipped), all of
// them, MaxBuffers to a gathering write, and returns the count written. An error is the net
// package's kind (*net.OpError) for conn, which is rc's connection.
func (w *Writer) Writev(conn net.Conn, rc syscall.RawConn, bufs ...[]byte) (int64, error) {
	return w.WritevWithin(conn, rc, 0, bufs...)
}

// WritevWithin is Writev that waits for the socket for at most timeout (> 0; 0: as long
// as it takes): the first time the socket cannot take more, conn's write deadline is set
// timeout from then, and it is cleared when the write is over. A write the socket takes
// at once, the usual case, costs no deadline (no timer to set and stop per write).
func (w *Writer) WritevWithin(conn net.Conn, rc syscall.RawConn, timeout time.Duration, bufs ...[]byte) (int64, error) {
	w.conn, w.timeout = conn, timeout
	defer w.endWait()
	var written int64
	for len(bufs) > 0 {
		var total int64
		w.next, w.err = w.iov[:0], 0
		for len(bufs) > 0 && len(w.next) < MaxBuffers {
			if b := bufs[0]; len(b) > 0 {
				w.next = append(w.next, syscall.Iovec{Base: &b[0]})
				w.next[len(w.next)-1].SetLen(len(b))
				total += int64(len(b))
			}
			bufs = bufs[1:]
		}
		if total == 0 {
			continue
		}
		if w.fn == nil {
			w.fn = w.onWritable
		}
		err := OpError(rc.Write(w.fn))
		written += total - w.left()
		w.next, w.iov = nil, [MaxBuffers]syscall.Iovec{} // the buffers are the caller's again
		if err == nil && w.err != 0 {
			err = opError("writev", conn, w.err)
		}
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// endWait clears the deadline the write in progress set, if it set one.
func (w *Writer) endWait() {
	if w.waited {
		w.conn.SetWriteDeadline(time.Time{})
	}
	w.conn, w.timeout, w.waited = nil, 0, false
}

// left is the count not written yet.
func (w *Writer) left() int64 {
	var n int64
	for _, v := range w.next {
		n += int64(v.Len)
	}
	return n
}

// onWritable is the callback of rc.Write: it writes what is left, and reports whether
// the write is over (all written, or failed).
func (w *Writer) onWritable(fd uintptr) bool {
	for len(w.next) > 0 {
		n, e := Writev(fd, w.next)
		if e == syscall.EAGAIN {
			if w.timeout > 0 && !w.waited { // rc.Write waits next: within the timeout
				w.waited = true
				w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
			}
			return false
		}
		if e == 0 && n == 0 { // took nothing, yet no EAGAIN: never spin on it
			e = syscall.EIO
		}
		if e != 0 {
			w.err = e
			return true
		}
		for n > 0 {
			l := int(w.next[0].Len)
			if n < l {
				w.next[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(w.next[0].Base), n))
				w.next[0].SetLen(l - n)
				break
			}
			n -= l
			w.next = w.next[1:]
		}
	}
	return true
}

// Conn is a socket connection whose Read and Write are raw system calls (and Writev,
// through its Writer); the rest is the net.Conn's. One Read and one Write may run at once.
// Large moves are the inner connection's: Inner names it as the source (for the frame
// package), ReadFrom hands a copy into it to its own ReadFrom (splice).
type Conn struct {
	net.Conn
	rc syscall.RawConn

	// The Read in progress, for onReadable (bound once: no allocation per Read).
	p    []byte
	n    int
	rerr syscall.Errno
	rfn  func(fd uintptr) bool

	w Writer
}

// New returns c with raw reads and writes when it is a socket of the net package (it
// has a descriptor), and c itself otherwise (TLS, a pipe).
func New(c net.Conn) net.Conn {
	rc := RawConn(c)
	if rc == nil {
		return c
	}
	r := &Conn{Conn: c, rc: rc}
	r.rfn = r.onReadable
	return r
}

// Read reads into p as net.Conn's Read does: it waits for data, returns io.EOF at the
// peer's end, and honours the read deadline.
func (c *Conn) Read(p []byte) (int, error) {
	c.p, c.n, c.rerr = p, 0, 0
	err := OpError(c.rc.Read(c.rfn))
	n, rerr := c.n, c.rerr
	c.p = nil
	switch {
	case err != nil:
		return 0, err
	case rerr != 0:
		return 0, opError("read", c.Conn, rerr)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *Conn) onReadable(fd uintptr) bool {
	n, e := Read(fd, c.p)
	c.n, c.rerr = n, e
	return e != syscall.EAGAIN
}

// Write writes all of p, as net.Conn's Write does.
func (c *Conn) Write(p []byte) (int, error) {
	n, err := c.w.Writev(c.Conn, c.rc, p)
	return int(n), err
}

// Writev writes the buffers, in one gathering write when they are at most MaxBuffers and the
// socket takes them at once.
func (c *Conn) Writev(bufs ...[]byte) (int64, error) {
	return c.w.Writev(c.Conn, c.rc, bufs...)
}

// Inner returns the connection under the raw calls: the source large payloads are
// spliced from.
func (c *Conn) Inner() io.Reader { return c.Conn }

// ReadFrom copies r into the connection with the inner connection's ReadFrom, which
// splices from a socket.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}

// SyscallConn returns the inner connection's raw connection.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return c.rc, nil }

// RawConn returns the raw connection of x's descriptor (syscall.Conn), or nil when x has
// none (TLS, a pipe) or it is closed.
func RawConn(x any) syscall.RawConn {
	sc, ok := x.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// FD returns the descriptor of c's socket (the one under TLS for a *tls.Conn), or -1
// when it has none (a test's net.Pipe). It is valid as long as c is open.
func FD(c net.Conn) int {
	rc := socketRawConn(c)
	if rc == nil {
		return -1
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1
	}
	return fd
}

// socketRawConn returns the raw connection of c's socket (the one under TLS for a
// *tls.Conn), or nil when it has none.
func socketRawConn(c net.Conn) syscall.RawConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	return RawConn(c)
}

// PeerGone reports whether c's peer closed or reset the connection: a peek at its
// socket that neither blocks nor consumes data finds the end of the stream or an error
// (a reset's, which it takes: a later read finds the end). Bytes waiting or nothing to
// read mean the peer is still there; a connection without a socket counts as there.
// One system call.
func PeerGone(c net.Conn) bool {
	rc := socketRawConn(c)
	if rc == nil {
		return false
	}
	gone := false
	rc.Control(func(fd uintptr) {
		n, e := Peek(fd)
		gone = n == 0 && e != syscall.EAGAIN
	})
	return gone
}

// Peek looks at the non-blocking socket fd without taking anything or waiting
// (recvfrom(2) with MSG_PEEK|MSG_DONTWAIT, retried on EINTR): 1 when bytes wait, 0 at
// the end of the stream, else 0 and the call's errno (EAGAIN: nothing to read, the
// peer still there). A raw system call where Read is one (64-bit Linux): unlike
// syscall.Recvfrom it does not wake the scheduler's sleeping sysmon thread, a futex
// call and a context switch each time.
func Peek(fd uintptr) (int, syscall.Errno) {
	var b [1]byte
	return peek(fd, b[:])
}

// opError is errno e of operation op on conn as the net package reports it.
func opError(op string, conn net.Conn, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: conn.LocalAddr().Network(), Source: conn.LocalAddr(), Addr: conn.RemoteAddr(), Err: os.NewSyscallError(op, e)}
}

// OpError gives an error of a syscall.RawConn's Read or Write (a *net.OpError of
// "raw-read" or "raw-write": a deadline, a closed connection) the operation name of
// net.Conn's, so that logs read the same as for Go's own Read and Write.
func OpError(err error) error {
	if oe, ok := err.(*net.OpError); ok {
		switch oe.Op {
		case "raw-read":
			oe.Op = "read"
		case "raw-write":
			oe.Op = "write"
		}
	}
	return err
}
