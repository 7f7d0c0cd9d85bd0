package dispatch

import (
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/pyro-dispatch/pyro-dispatch/internal/rawsock"
)

// armedConn is a connection whose small writes can wait for its next Read, which makes
// them only once that read is armed. Go's Read tries the socket before it waits for it
// (a readiness event that came before the read was armed would otherwise be lost), so
// a write followed by a Read for its answer costs a read that finds nothing; writing
// from inside the armed read lets it wait at once. The session uses it where a write is
// always followed by a read on the same socket: a request and its reply, a reply and
// the client's next request.
type armedConn struct {
	net.Conn
	rc   syscall.RawConn // nil: writes are never held
	out  []byte          // held bytes, written by the next Read or by flush
	iov  [3][]byte       // a message written at once
	bufs net.Buffers     // iov as handed to writev, which consumes it
	// early: the peer may send before it has what is held (a client that pipelines, or
	// shuts its side down in the middle of a call). Then its bytes or its end may have
	// come before the read was armed, a readiness that RawConn.Read forgets when it arms,
	// so the read is tried once what is held is written instead of waited for. A daemon
	// answers only once it has the request (and a daemon's close resets the write); so
	// does a Pyro4 client, which sends its next request only once it has its reply: a
	// client connection starts with early, the session turns it off after the client's
	// first calls and on again for good if the client turns out to send first (see
	// Session.waitRequest and Session.sweep).
	early bool
	// found: the first read of the last Read found data (or the end) without waiting:
	// it was there before the read was armed.
	found bool
	// owed: the peer is owed a reply that another goroutine writes (a pipelined call's)
	// and that has not begun: unless early, the peer cannot have sent, so a Read waits
	// without reading first. The writer clears it before it writes (replyBegins): a
	// Read that finds it set was armed before the reply, and so before the peer's answer.
	owed atomic.Bool

	// The Read in progress, for onReady (bound once to ready: no allocation per Read).
	p          []byte
	n          int
	rerr, werr syscall.Errno // 0: none (Errno, not error: an idle session's memory counts)
	ready      func(fd uintptr) bool
}

// heldWriteError is a Read's failure to write what was held: nothing was read then.
type heldWriteError struct{ err error }

func (e *heldWriteError) Error() string { return e.err.Error() }
func (e *heldWriteError) Unwrap() error { return e.err }

// heldWriteFailed reports whether err, from a Read of an armedConn, is the failure of
// the write of what was held.
func heldWriteFailed(err error) bool {
	var he *heldWriteError
	return errors.As(err, &he)
}

// armLimit is the largest write that is held: it is copied, so that the caller's
// buffers are free at once.
const armLimit = 4 << 10

// newArmedConn wraps c; early tells that its peer may send before it has what is held.
func newArmedConn(c net.Conn, early bool) *armedConn {
	a := &armedConn{Conn: c, early: early, rc: rawsock.RawConn(c)}
	if a.rc != nil {
		a.ready = a.onReady
	}
	return a
}

// write holds the three pieces of a message for the next Read when they are small (and
// the connection has a descriptor), and writes them at once otherwise. On a connection
// without one (TLS) a small message is joined and written at once: one TLS record.
func (a *armedConn) write(p1, p2, p3 []byte) error {
	small := len(a.out)+len(p1)+len(p2)+len(p3) <= armLimit
	if a.rc == nil && small {
		a.out = append(append(append(a.out, p1...), p2...), p3...)
		return a.flush()
	}
	if !small {
		if err := a.flush(); err != nil {
			return err
		}
		a.iov = [3][]byte{p1, p2, p3}
		a.bufs = a.iov[:]
		_, err := a.bufs.WriteTo(a.Conn)
		return err
	}
	a.out = append(append(append(a.out, p1...), p2...), p3...)
	return nil
}

// untried reports whether the next Read may wait for the socket without reading it
// first: it has a message to write, or one is owed (owed), and its peer answers only
// once it has it.
func (a *armedConn) untried() bool {
	return a.rc != nil && !a.early && (len(a.out) > 0 || a.owed.Load())
}

// replyBegins clears owed: the reply owed to the peer is written from now on, so the
// peer may answer it before the next Read is armed.
func (a *armedConn) replyBegins() { a.owed.Store(false) }

// Inner returns the connection (frame.Wrapper): payloads are spliced from it. Nothing is
// held then: a Read, which writes what is held, came before.
func (a *armedConn) Inner() io.Reader { return a.Conn }

// flush writes what is held.
func (a *armedConn) flush() error {
	if len(a.out) == 0 {
		return nil
	}
	_, err := a.Conn.Write(a.out)
	a.out = a.out[:0]
	return err
}

// Read writes what is held, then reads; the wait for data needs no read that finds
// nothing first. On a connection with a descriptor both are raw system calls
// (rawsock), held bytes or not.
func (a *armedConn) Read(p []byte) (int, error) {
	if a.rc == nil {
		return a.Conn.Read(p)
	}
	a.p, a.n, a.rerr, a.werr, a.found = p, -1, 0, 0, false
	err := rawsock.OpError(a.rc.Read(a.ready))
	a.n = max(a.n, 0)
	n, rerr, werr := a.n, a.rerr, a.werr
	a.p = nil
	switch {
	case werr != 0:
		a.out = a.out[:0]
		return 0, &heldWriteError{&net.OpError{Op: "write", Net: a.LocalAddr().Network(), Source: a.LocalAddr(), Addr: a.RemoteAddr(), Err: os.NewSyscallError("write", werr)}}
	case len(a.out) > 0: // the socket was full, or the read ended before the write (deadline)
		if ferr := a.flush(); ferr != nil {
			return 0, &heldWriteError{ferr}
		}
		if err != nil {
			return 0, err
		}
		return a.Conn.Read(p)
	case err != nil:
		return 0, err
	case rerr != 0:
		return 0, &net.OpError{Op: "read", Net: a.LocalAddr().Network(), Source: a.LocalAddr(), Addr: a.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// onReady is the Read's callback, called once its read is armed and again each time
// the socket is readable: it writes what is held (and then reports false, to wait for
// the answer, unless the peer may have sent first: see early), or reads; armed while a
// reply owed to the peer has not begun (owed), it waits at once, as after a write.
func (a *armedConn) onReady(fd uintptr) bool {
	if a.n < 0 && len(a.out) == 0 && !a.early && a.owed.Load() {
		a.n = 0 // a read after the wait is not the first
		return false
	}
	if len(a.out) > 0 {
		k, err := rawsock.Write(fd, a.out)
		if k > 0 {
			a.out = a.out[:copy(a.out, a.out[k:])]
		}
		if err != 0 && err != syscall.EAGAIN {
			a.werr = err
			return true
		}
		if len(a.out) > 0 || !a.early {
			a.n = 0               // a read after the wait is not the first
			return len(a.out) > 0 // all written: wait; the socket is full: finish outside
		}
	}
	n, err := rawsock.Read(fd, a.p)
	a.found = a.n < 0 && err != syscall.EAGAIN // a.n is -1 until the Read read or waited
	a.n, a.rerr = max(n, 0), err
	return err != syscall.EAGAIN
}
