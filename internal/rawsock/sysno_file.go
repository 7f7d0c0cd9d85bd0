//go:build linux && !(amd64 || arm64 || riscv64 || ppc64le || s390x || loong64)

package rawsock

import (
	"syscall"
	"unsafe"
)

// Read, Write and Writev are read(2), write(2) and writev(2) where the socket calls go
// through socketcall(2) or are missing (32-bit Linux); the flags argument is ignored.
const (
	sysRecv   = syscall.SYS_READ
	sysSend   = syscall.SYS_WRITE
	sendFlags = 0
)

// gather is one writev(2) of iov (not empty).
func gather(fd uintptr, iov []syscall.Iovec) (uintptr, syscall.Errno) {
	n, _, e := syscall.RawSyscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return n, e
}
