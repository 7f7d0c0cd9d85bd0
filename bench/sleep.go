package bench

import (
	"context"
	"runtime"
	"time"
)

// Waiting precisely. Go's timers wake an idle program up to ~1ms late on Linux, which
// would count as latency in an open loop (every call is measured from when it was due)
// and would round every --delay up to a millisecond. Short waits therefore sleep in the
// kernel, stop a little early, and spin the rest of the way.

const (
	// sleepSlack is how early the kernel sleep stops: about its usual lateness.
	sleepSlack = 60 * time.Microsecond
	// coarseAbove is the wait from which a Go timer (cancellable) does the bulk.
	coarseAbove = 20 * time.Millisecond
)

// sleepUntil waits until t, or until ctx is done (then it returns false). A nil timer
// is allowed when waits are known to be short.
func sleepUntil(ctx context.Context, t time.Time, timer *time.Timer) bool {
	d := time.Until(t)
	if d > coarseAbove && timer != nil {
		timer.Reset(d - 2*time.Millisecond)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return false
		}
		d = time.Until(t)
	}
	if d > sleepSlack {
		nanosleep(d - sleepSlack)
	}
	for time.Now().Before(t) {
		runtime.Gosched()
	}
	return ctx.Err() == nil
}

// sleepFor waits for d, precisely for short waits (see sleepUntil).
func sleepFor(d time.Duration) {
	if d >= 2*time.Millisecond {
		time.Sleep(d) // a millisecond late at most: within the precision asked for
		return
	}
	sleepUntil(context.Background(), time.Now().Add(d), nil)
}
