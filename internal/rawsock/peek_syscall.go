//go:build !(linux && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64))

package rawsock

import "syscall"

// peek is recvfrom(2) of p with MSG_PEEK|MSG_DONTWAIT through syscall.Recvfrom (where
// sysno_socket.go's raw calls are not used: socketcall(2) on 32-bit Linux).
func peek(fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		n, _, err := syscall.Recvfrom(int(fd), p, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch e, _ := err.(syscall.Errno); {
		case err == nil:
			return n, 0
		case e != syscall.EINTR:
			return 0, e
		}
	}
}
