//go:build unix

package bench

import (
	"syscall"
	"time"
)

// nanosleep blocks the calling thread for d with the kernel's timer (about 60µs late on
// Linux with the default timer slack), where the Go runtime's timers wake sleepers that
// have nothing else to do up to a millisecond late (its poller waits in whole
// milliseconds). The goroutine keeps its thread meanwhile, as in any blocking syscall.
func nanosleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
