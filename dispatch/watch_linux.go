//go:build linux

package dispatch

import (
	"net"
	"sync"
	"syscall"

	"github.com/pyro-dispatch/pyro-dispatch/internal/rawsock"
)

// watcher is the server's one epoll instance for sockets no goroutine is reading:
//   - session mode: backend connections of idle sessions, for the daemon's hang-up only
//     (EPOLLRDHUP, edge triggered, no EPOLLIN: replies never wake it and no call pays
//     for it), so that the client's connection closes too, as it would if it were
//     connected directly (its COMMTIMEOUT, a restart, its death);
//   - pooled mode: the client sockets of parked sessions (see Session.park), for their
//     next request or their end (EPOLLIN, one shot), which gives them a goroutine again.
//
// Its goroutine is owned by the Server and ends with stop.
type watcher struct {
	epfd int
	wake [2]int // a pipe: stop writes to it to end run

	mu       sync.Mutex
	stopOnce sync.Once
	next     uint32
	watched  map[uint32]watched
	done     chan struct{}
}

// watched is what a registration is for.
type watched struct {
	s    *Session
	fd   int  // the socket, open as long as it is registered
	park bool // a parked session's client socket (one shot); else a backend's hang-up
}

// Event masks (EPOLLET and EPOLLONESHOT are missing from package syscall).
const (
	epollET      = 1 << 31
	epollOneShot = 1 << 30
)

// newWatcher starts the watcher; nil when the system refuses (then idle hang-ups are
// seen at the next call, and no session parks).
func newWatcher() *watcher {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	w := &watcher{epfd: epfd, watched: map[uint32]watched{}, done: make(chan struct{})}
	if err := syscall.Pipe2(w.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // Fd 0: the wake-up pipe's token
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, w.wake[0], &ev); err != nil {
		w.closeFDs()
		return nil
	}
	go w.run()
	return w
}

func (w *watcher) closeFDs() {
	syscall.Close(w.wake[0])
	syscall.Close(w.wake[1])
	syscall.Close(w.epfd)
}

// watchHangup registers s's backend connection c for the daemon's hang-up; the token is
// for forget (0: not watched).
func (w *watcher) watchHangup(s *Session, c net.Conn) uint32 {
	return w.add(s, c, syscall.EPOLLRDHUP|epollET, false)
}

// watchParked registers the client socket of s, parked, for its next request or its
// end: Session.unpark is then called on the watcher's goroutine, once. 0: refused (a
// socket without a descriptor, or no watcher).
func (w *watcher) watchParked(s *Session) uint32 {
	return w.add(s, s.client, syscall.EPOLLIN|syscall.EPOLLRDHUP|epollOneShot, true)
}

func (w *watcher) add(s *Session, c net.Conn, events uint32, park bool) uint32 {
	if w == nil {
		return 0
	}
	fd := rawsock.FD(c) // under TLS, its socket
	if fd < 0 {
		return 0
	}
	w.mu.Lock()
	w.next++
	if w.next == 0 { // 0 is the pipe's
		w.next++
	}
	id := w.next
	w.watched[id] = watched{s: s, fd: fd, park: park}
	w.mu.Unlock()
	ev := syscall.EpollEvent{Events: events, Fd: int32(id)}
	if err := syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		w.forget(id)
		return 0
	}
	return id
}

// forget stops watching for token id (its socket still open). It reports whether the
// registration was still there: for a parked session, whoever takes it resumes it.
func (w *watcher) forget(id uint32) bool {
	if w == nil || id == 0 {
		return false
	}
	w.mu.Lock()
	t, ok := w.watched[id]
	delete(w.watched, id)
	w.mu.Unlock()
	if ok {
		syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, t.fd, nil)
	}
	return ok
}

func (w *watcher) run() {
	defer close(w.done)
	defer w.closeFDs()
	var evs [64]syscall.EpollEvent
	for {
		n, err := syscall.EpollWait(w.epfd, evs[:], -1)
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
			w.mu.Lock()
			t, ok := w.watched[id]
			w.mu.Unlock()
			switch {
			case !ok:
			case !t.park:
				t.s.backendHungUp()
			case w.forget(id): // taken here, not by a concurrent wake
				t.s.unpark()
			}
		}
	}
}

// stop ends the watcher and waits for it.
func (w *watcher) stop() {
	if w == nil {
		return
	}
	// Once: run closes the pipe on its way out, and Shutdown may be called again.
	w.stopOnce.Do(func() { syscall.Write(w.wake[1], []byte{0}) })
	<-w.done
}
