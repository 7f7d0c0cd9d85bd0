package rawsock

import (
	"syscall"
	"unsafe"
)

// Read reads from the non-blocking socket fd into p, retrying on EINTR. It returns the
// count (≥ 0) and the call's errno (0 on success; EAGAIN: nothing to read).
func Read(fd uintptr, p []byte) (int, syscall.Errno) {
	return transfer(sysRecv, fd, p, 0)
}

// Write writes p to the non-blocking socket fd as Read reads: it returns what the socket
// took, which may be less than p (EAGAIN when it took nothing).
func Write(fd uintptr, p []byte) (int, syscall.Errno) {
	return transfer(sysSend, fd, p, sendFlags)
}

// Writev writes the buffers of iov to the non-blocking socket fd in one system call
// (sendmsg(2) or writev(2): gather), as Write writes one.
func Writev(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
	if len(iov) == 0 {
		return 0, 0
	}
	for {
		n, e := gather(fd, iov)
		if e != syscall.EINTR {
			return count(n, e)
		}
	}
}

// transfer is the system call trap (sysRecv or sysSend) of p, with flags where the call
// takes them.
func transfer(trap, fd uintptr, p []byte, flags uintptr) (int, syscall.Errno) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	for {
		n, _, e := syscall.RawSyscall6(trap, fd, uintptr(ptr), uintptr(len(p)), flags, 0, 0)
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
