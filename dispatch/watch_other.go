//go:build !linux

package dispatch

import "net"

// watcher needs epoll: elsewhere a daemon's close of an idle session-mode connection is
// seen at the client's next call, and idle pooled sessions keep their goroutine.
type watcher struct{}

func newWatcher() *watcher                               { return nil }
func (w *watcher) watchHangup(*Session, net.Conn) uint32 { return 0 }
func (w *watcher) watchParked(*Session) uint32           { return 0 }
func (w *watcher) forget(uint32) bool                    { return false }
func (w *watcher) stop()                                 {}
