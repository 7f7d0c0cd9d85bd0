// Package splice moves a counted number of bytes from one connection to another, the way
// io.CopyN does (between sockets on Linux, through a kernel pipe with splice(2)), but
// reports how many bytes it took from the source apart from which side failed: after a
// failure on the destination's side the source's position is known and its stream usable.
package splice

import (
	"errors"
	"io"
)

// Error is a failure of Copy, with the side it happened on.
type Error struct {
	Dst bool // writing to the destination failed; else reading the source did
	Err error
}

func (e *Error) Error() string {
	if e.Dst {
		return "writing: " + e.Err.Error()
	}
	return "reading: " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// IsDst reports whether err is a Copy failure on the destination's side.
func IsDst(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Dst
}

// bufSize is the user-space copy's buffer, used where the kernel cannot splice.
const bufSize = 64 << 10

// copyBuffered moves n bytes from src to dst through buf (allocated on first use),
// counting what it read.
func copyBuffered(dst io.Writer, src io.Reader, n int64, buf *[]byte) (taken int64, err error) {
	if *buf == nil {
		*buf = make([]byte, bufSize)
	}
	b := *buf
	for taken < n {
		k, rerr := src.Read(b[:min(int64(len(b)), n-taken)])
		taken += int64(k)
		if k > 0 {
			if _, werr := dst.Write(b[:k]); werr != nil {
				return taken, &Error{Dst: true, Err: werr}
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				if taken == n {
					return taken, nil
				}
				rerr = io.ErrUnexpectedEOF
			}
			return taken, &Error{Err: rerr}
		}
	}
	return taken, nil
}
