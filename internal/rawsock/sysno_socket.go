//go:build linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64)

package rawsock

import (
	"syscall"
	"unsafe"
)

// Read, Write and Writev are recvfrom(2), sendto(2) and sendmsg(2) with no address, not
// read(2), write(2) and writev(2): the socket calls skip the VFS layer, 100–150 ns a
// call on loopback TCP (bench/README.md, "Socket calls instead of file calls").
// MSG_NOSIGNAL: a peer that is gone is EPIPE, never a SIGPIPE for the runtime to field.
const (
	sysRecv   = syscall.SYS_RECVFROM
	sysSend   = syscall.SYS_SENDTO
	sendFlags = syscall.MSG_NOSIGNAL
)

// gather is one sendmsg(2) of iov (not empty).
func gather(fd uintptr, iov []syscall.Iovec) (uintptr, syscall.Errno) {
	msg := syscall.Msghdr{Iov: &iov[0], Iovlen: uint64(len(iov))}
	n, _, e := syscall.RawSyscall(syscall.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&msg)), sendFlags)
	return n, e
}

// peek is one raw recvfrom(2) of p with MSG_PEEK|MSG_DONTWAIT.
func peek(fd uintptr, p []byte) (int, syscall.Errno) {
	return transfer(syscall.SYS_RECVFROM, fd, p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
}
