//go:build !linux

package rawsock

import (
	"syscall"
	"unsafe"
)

// Read reads from the non-blocking socket fd into p, retrying on EINTR. It returns the
// count (≥ 0) and the call's errno (0 on success; EAGAIN: nothing to read).
func Read(fd uintptr, p []byte) (int, syscall.Errno) {
	return result(retry(syscall.Read, fd, p))
}

// Write writes p to the non-blocking socket fd as Read reads: it returns what the socket
// took, which may be less than p (EAGAIN when it took nothing).
func Write(fd uintptr, p []byte) (int, syscall.Errno) {
	return result(retry(syscall.Write, fd, p))
}

// Writev writes the buffers of iov to the non-blocking socket fd, one write each, as
// Write writes one; it stops at the first that the socket does not take whole.
func Writev(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	total := 0
	for _, v := range iov {
		p := unsafe.Slice(v.Base, v.Len)
		n, e := Write(fd, p)
		total += n
		if e != 0 || n < len(p) {
			if total > 0 {
				return total, 0
			}
			return 0, e
		}
	}
	return total, 0
}

func retry(f func(int, []byte) (int, error), fd uintptr, p []byte) (int, error) {
	for {
		n, err := f(int(fd), p)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

func result(n int, err error) (int, syscall.Errno) {
	if err == nil {
		return n, 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return 0, e
	}
	return 0, syscall.EIO
}
