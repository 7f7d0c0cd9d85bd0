//go:build linux

package dispatch

import (
	"crypto/tls"
	"net"
	"sync"
	"syscall"
)

// hangups tells session-mode sessions when their daemon closed the backend connection
// while they were idle (its COMMTIMEOUT, a restart, its death), so that the client's
// connection closes too, as it would if it were connected directly. One epoll instance
// watches every such backend socket for the peer's hang-up only (EPOLLRDHUP, edge
// triggered, no EPOLLIN): replies never wake it and no call pays for it. Its goroutine
// is owned by the Server and ends with stop.
type hangups struct {
	epfd int
	wake [2]int // a pipe: stop writes to it to end run

	mu       sync.Mutex
	stopOnce sync.Once
	next     uint32
	sessions map[uint32]*Session
	done     chan struct{}
}

// newHangups starts the watcher; nil when the system refuses (then idle hang-ups are
// seen at the next call, as before).
func newHangups() *hangups {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	h := &hangups{epfd: epfd, sessions: map[uint32]*Session{}, done: make(chan struct{})}
	if err := syscall.Pipe2(h.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // Fd 0: the wake-up pipe's token
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, h.wake[0], &ev); err != nil {
		h.closeFDs()
		return nil
	}
	go h.run()
	return h
}

func (h *hangups) closeFDs() {
	syscall.Close(h.wake[0])
	syscall.Close(h.wake[1])
	syscall.Close(h.epfd)
}

// watch registers s's backend connection c; the token is for forget (0: not watched).
func (h *hangups) watch(s *Session, c net.Conn) uint32 {
	if h == nil {
		return 0
	}
	if tc, ok := c.(*tls.Conn); ok { // the socket under it
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	h.mu.Lock()
	h.next++
	if h.next == 0 { // 0 is the pipe's
		h.next++
	}
	id := h.next
	h.sessions[id] = s
	h.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | 1<<31, Fd: int32(id)} // 1<<31: EPOLLET
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cerr = syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); err != nil || cerr != nil {
		h.forget(id, nil)
		return 0
	}
	return id
}

// forget stops watching c (still open) for token id.
func (h *hangups) forget(id uint32, c net.Conn) {
	if h == nil || id == 0 {
		return
	}
	h.mu.Lock()
	delete(h.sessions, id)
	h.mu.Unlock()
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { syscall.EpollCtl(h.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil) })
		}
	}
}

func (h *hangups) run() {
	defer close(h.done)
	defer h.closeFDs()
	var evs [64]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(h.epfd, evs[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return
		}
		for _, ev := range evs[:n] {
			id := uint32(ev.Fd)
			if id == 0 {
				return // stop
			}
			h.mu.Lock()
			s := h.sessions[id]
			h.mu.Unlock()
			if s != nil {
				s.backendHungUp()
			}
		}
	}
}

// stop ends the watcher and waits for it.
func (h *hangups) stop() {
	if h == nil {
		return
	}
	// Once: run closes the pipe on its way out, and Shutdown may be called again.
	h.stopOnce.Do(func() { syscall.Write(h.wake[1], []byte{0}) })
	<-h.done
}

// clientLeft reports whether the client closed (or reset) its connection: a non-blocking
// peek finds end of stream or an error. Bytes waiting (its next request) or nothing to
// read mean it is still there. One system call; for a call that waited before it could
// be sent, so that a call nobody waits for any more never reaches a daemon.
func clientLeft(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok { // a close shows on its socket too
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	left := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		left = (n == 0 && err == nil) || (err != nil && err != syscall.EAGAIN && err != syscall.EINTR)
	})
	return left
}
