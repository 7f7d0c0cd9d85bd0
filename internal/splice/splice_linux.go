//go:build linux

package splice

import (
	"io"
	"syscall"

	"github.com/pyro-dispatch/pyro-dispatch/internal/rawsock"
)

// chunk bounds one splice into the pipe: what a default pipe holds.
const chunk = 64 << 10

// Pipe copies between connections; one copy at a time. Its kernel pipe is made on the
// first Copy that can splice and kept until Close, or until a failure on the
// destination's side leaves bytes in it (then the next Copy makes another).
type Pipe struct {
	r, w int // the pipe's ends; -1 when there is none
	buf  []byte

	// The connections of the last Copy and their raw forms (SyscallConn allocates).
	src, dst   any
	sraw, draw syscall.RawConn

	// The state of the copy under way, for the callbacks, which are method values made
	// once (RawConn.Read and Write take functions that escape).
	fd          int // the pipe end the callback splices with
	want, moved int
	err         error
	fill, drain func(uintptr) bool
}

// New returns a Pipe; no file descriptor is opened until a Copy needs one.
func New() *Pipe {
	p := &Pipe{r: -1, w: -1}
	p.fill = p.fillFrom
	p.drain = p.drainTo
	return p
}

// Close releases the kernel pipe.
func (p *Pipe) Close() {
	if p.r >= 0 {
		syscall.Close(p.r)
		syscall.Close(p.w)
		p.r, p.w = -1, -1
	}
}

// Copy moves n bytes from src to dst: spliced when both are sockets (syscall.Conn), else
// through a user-space buffer. It returns what it took from src, and an *Error on
// failure; a read that ends before n bytes is io.ErrUnexpectedEOF. Deadlines set on the
// connections apply.
func (p *Pipe) Copy(dst io.Writer, src io.Reader, n int64) (int64, error) {
	sraw, draw := p.raw(src, dst)
	if sraw == nil || draw == nil {
		return copyBuffered(dst, src, n, &p.buf)
	}
	if p.r < 0 {
		var fds [2]int
		if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
			return copyBuffered(dst, src, n, &p.buf)
		}
		p.r, p.w = fds[0], fds[1]
	}
	var taken int64
	for taken < n {
		p.fd, p.want, p.moved, p.err = p.w, int(min(n-taken, chunk)), 0, nil
		if err := sraw.Read(p.fill); err != nil {
			return taken, &Error{Err: err}
		}
		if p.err != nil {
			return taken, &Error{Err: p.err}
		}
		if p.moved == 0 {
			return taken, &Error{Err: io.ErrUnexpectedEOF}
		}
		taken += int64(p.moved)
		for left := p.moved; left > 0; left -= p.moved {
			p.fd, p.want, p.moved, p.err = p.r, left, 0, nil
			err := draw.Write(p.drain)
			if err == nil {
				err = p.err
			}
			if err == nil && p.moved == 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				p.Close() // it holds bytes that will never be written
				return taken, &Error{Dst: true, Err: err}
			}
		}
	}
	return taken, nil
}

// raw returns the raw connections of src and dst, nil for one that has none.
func (p *Pipe) raw(src io.Reader, dst io.Writer) (sraw, draw syscall.RawConn) {
	if any(src) != p.src {
		p.src, p.sraw = src, rawsock.RawConn(src)
	}
	if any(dst) != p.dst {
		p.dst, p.draw = dst, rawsock.RawConn(dst)
	}
	return p.sraw, p.draw
}

const spliceFlags = 0x1 | 0x2 // SPLICE_F_MOVE | SPLICE_F_NONBLOCK

// fillFrom splices from the socket fd into the pipe (RawConn.Read's callback: false waits
// for the socket to be readable).
func (p *Pipe) fillFrom(fd uintptr) bool {
	p.moved, p.err = splice(int(fd), p.fd, p.want)
	return p.err != syscall.EAGAIN
}

// drainTo splices from the pipe into the socket fd (RawConn.Write's callback).
func (p *Pipe) drainTo(fd uintptr) bool {
	p.moved, p.err = splice(p.fd, int(fd), p.want)
	return p.err != syscall.EAGAIN
}

func splice(from, to, n int) (int, error) {
	for {
		k, err := syscall.Splice(from, nil, to, nil, n, spliceFlags)
		if err == syscall.EINTR {
			continue
		}
		if k < 0 {
			k = 0
		}
		return int(k), err
	}
}
