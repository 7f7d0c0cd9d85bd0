package rawsock

import (
	"syscall"
	"unsafe"
)

// Read reads from the non-blocking socket fd into p, retrying on EINTR. It returns the
// count (≥ 0) and the call's errno (0 on success; EAGAIN: nothing to read).
func Read(fd uintptr, p []byte) (int, syscall.Errno) {
	return rw(syscall.SYS_READ, fd, p)
}

// Write writes p to the non-blocking socket fd as Read reads: it returns what the socket
// took, which may be less than p (EAGAIN when it took nothing).
func Write(fd uintptr, p []byte) (int, syscall.Errno) {
	return rw(syscall.SYS_WRITE, fd, p)
}

// Writev writes the buffers of iov to the non-blocking socket fd in one writev(2), as
// Write writes one.
func Writev(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	if len(iov) == 0 {
		return 0, 0
	}
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		if e != syscall.EINTR {
			return count(n, e)
		}
	}
}

func rw(trap, fd uintptr, p []byte) (int, syscall.Errno) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(ptr), uintptr(len(p)))
		if e != syscall.EINTR {
			return count(n, e)
		}
	}
}

// count is a system call's result as a count: 0 when it failed (the kernel's -1).
func count(n uintptr, e syscall.Errno) (int, syscall.Errno) {
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}
