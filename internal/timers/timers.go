// Package timers reuses stopped timers, so that a wait with a timeout on a hot path (a
// call waiting for a pooled connection or an in-flight slot) allocates nothing in
// steady state. Start takes one and Stop gives it back.
package timers

import (
	"sync"
	"time"
)

// free holds stopped timers. As of Go 1.23 a stopped or reset timer delivers nothing of
// an earlier run on its channel, so a reused timer never fires early.
var free sync.Pool

// Start returns a timer that fires after d: a stopped one reused, or a new one.
func Start(d time.Duration) *time.Timer {
	if t, ok := free.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

// Stop stops t, which Start returned, and keeps it for a later Start. t must not be used
// after.
func Stop(t *time.Timer) {
	t.Stop()
	free.Put(t)
}
