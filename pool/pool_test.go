package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pyro-dispatch/pyro-dispatch/internal/raceflag"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Timings: intervals are tens of milliseconds and conditions are polled with a deadline
// of seconds; only lower bounds of durations are asserted.

const patience = 10 * time.Second

// newPool starts a pool closed at the end of the test (before the daemon it talks to).
// Health checks are off unless cfg asks for them.
func newPool(t testing.TB, cfg Config) *Pool {
	t.Helper()
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = -1
	}
	p := New(cfg)
	t.Cleanup(p.Close)
	return p
}

func waitFor(t testing.TB, p *Pool, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			if p != nil {
				t.Fatalf("timed out waiting for %s; stats %+v", what, p.Stats())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustAcquire(t testing.TB, p *Pool) Lease {
	t.Helper()
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire: %v; stats %+v", err, p.Stats())
	}
	return l
}

type result struct {
	l   Lease
	err error
}

func acquireAsync(ctx context.Context, p *Pool) <-chan result {
	ch := make(chan result, 1)
	go func() {
		l, err := p.Acquire(ctx)
		ch <- result{l, err}
	}()
	return ch
}

func recv(t testing.TB, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(patience):
		t.Fatal("Acquire did not return")
		return result{}
	}
}

// checkStats compares the gauges of a snapshot.
func checkStats(t testing.TB, p *Pool, open, idle, inUse int) Stats {
	t.Helper()
	st := p.Stats()
	if st.Open != open || st.Idle != idle || st.InUse != inUse || st.Dialing != 0 || st.Waiting != 0 {
		t.Fatalf("stats %+v, want Open %d Idle %d InUse %d Dialing 0 Waiting 0", st, open, idle, inUse)
	}
	return st
}

func TestLIFOReuse(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 4})
	a, b, c := mustAcquire(t, p), mustAcquire(t, p), mustAcquire(t, p)
	if a.Conn == b.Conn || b.Conn == c.Conn || a.Conn == c.Conn {
		t.Fatal("one connection leased twice")
	}
	checkStats(t, p, 3, 0, 3)
	a.Release()
	b.Release()
	c.Release()
	checkStats(t, p, 3, 3, 0)

	x := mustAcquire(t, p)
	y := mustAcquire(t, p)
	if x.Conn != c.Conn || y.Conn != b.Conn {
		t.Fatal("idle connections not reused most recently released first")
	}
	if err := invoke(x, 1, "x"); err != nil {
		t.Fatal(err)
	}
	if err := invoke(y, 2, "y"); err != nil {
		t.Fatal(err)
	}
	x.Release()
	y.Release()
	z := mustAcquire(t, p)
	if z.Conn != y.Conn {
		t.Fatal("not LIFO after reuse")
	}
	z.Release()
	st := checkStats(t, p, 3, 3, 0)
	if st.Dials != 3 || d.accepted.Load() != 3 {
		t.Fatalf("dials %d, daemon accepted %d, want 3", st.Dials, d.accepted.Load())
	}
}

// countingDialer wraps a dialer so that the test sees how many sockets the pool holds
// open (not yet closed by it) at any instant, and the most ever.
type countingDialer struct {
	dial      func(context.Context) (net.Conn, error)
	live, max atomic.Int64
}

type countedConn struct {
	net.Conn
	d    *countingDialer
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.d.live.Add(-1) })
	return err
}

func (cd *countingDialer) Dial(ctx context.Context) (net.Conn, error) {
	c, err := cd.dial(ctx)
	if err != nil {
		return nil, err
	}
	n := cd.live.Add(1)
	for m := cd.max.Load(); n > m && !cd.max.CompareAndSwap(m, n); m = cd.max.Load() {
	}
	return &countedConn{Conn: c, d: cd}, nil
}

func testMaxOpenConcurrent(t *testing.T, destroyEvery int) {
	const maxOpen, workers, iters = 4, 50, 100
	d := newDaemon(t)
	cd := &countingDialer{dial: dialer(d.addr, nil)}
	p := newPool(t, Config{Dial: cd.Dial, MaxOpen: maxOpen, WaitTimeout: time.Minute, DialTimeout: time.Minute})

	stop := make(chan struct{})
	sampled := make(chan error, 1)
	go func() { // the gauges stay within bounds at every instant
		var err error
		for err == nil {
			select {
			case <-stop:
				sampled <- nil
				return
			default:
			}
			st := p.Stats()
			if st.Open > maxOpen || st.Idle+st.InUse+st.Dialing > st.Open || st.Waiting > workers {
				err = fmt.Errorf("inconsistent stats %+v", st)
			}
			time.Sleep(50 * time.Microsecond) // spinning would starve the netpoller at GOMAXPROCS=1
		}
		sampled <- err
	}()

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var calls atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range iters {
				l, err := p.Acquire(context.Background())
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				if i%5 == 0 {
					calls.Add(1)
					if err := invoke(l, uint16(i), fmt.Sprintf("w%d-%d", w, i)); err != nil {
						l.Destroy()
						errs <- err
						return
					}
				}
				if destroyEvery > 0 && (w+i)%destroyEvery == 0 {
					l.Destroy()
				} else {
					l.Release()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-sampled; err != nil {
		t.Error(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A dial started for a waiter that a release served instead may still be running.
	waitFor(t, p, "dials to end", func() bool { return p.Stats().Dialing == 0 })
	st := p.Stats()
	if st.Open != st.Idle || st.InUse != 0 || st.Waiting != 0 || st.Dialing != 0 || st.Open > maxOpen || st.Open == 0 {
		t.Errorf("stats at rest %+v, want Open == Idle <= %d, nothing in use or waiting", st, maxOpen)
	}
	if st.Closed != st.Dials-uint64(st.Open) {
		t.Errorf("stats %+v: Closed != Dials - Open", st)
	}
	if st.WaitCount == 0 {
		t.Errorf("stats %+v: 50 workers on 4 connections never waited", st)
	}
	if got := cd.max.Load(); got > maxOpen {
		t.Errorf("the pool held %d sockets open at once, MaxOpen %d", got, maxOpen)
	}
	if got := d.invokes.Load(); got != calls.Load() {
		t.Errorf("daemon saw %d INVOKEs, %d made", got, calls.Load())
	}
	if destroyEvery == 0 {
		// No connection is ever closed, so the daemon's own count is exact.
		if got := d.maxOpen.Load(); got > maxOpen {
			t.Errorf("daemon saw %d connections open at once, MaxOpen %d", got, maxOpen)
		}
		if got := d.accepted.Load(); got > maxOpen || st.Dials != uint64(got) {
			t.Errorf("daemon accepted %d connections, pool dialed %d, MaxOpen %d", got, st.Dials, maxOpen)
		}
	} else if d.accepted.Load() <= maxOpen {
		t.Errorf("daemon accepted only %d connections despite Destroy", d.accepted.Load())
	}
}

func TestMaxOpenConcurrent(t *testing.T)        { testMaxOpenConcurrent(t, 0) }
func TestMaxOpenConcurrentDestroy(t *testing.T) { testMaxOpenConcurrent(t, 7) }

func TestMaxIdle(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 4, MaxIdle: 2})
	var ls []Lease
	for range 4 {
		ls = append(ls, mustAcquire(t, p))
	}
	for _, l := range ls {
		l.Release()
	}
	st := checkStats(t, p, 2, 2, 0)
	if st.Closed != 2 {
		t.Fatalf("closed %d, want 2", st.Closed)
	}
	waitFor(t, p, "the daemon to see 2 connections", func() bool { return d.open.Load() == 2 })
	// The two kept are the two released last.
	if l := mustAcquire(t, p); l.Conn != ls[1].Conn {
		t.Fatal("kept the wrong idle connections")
	}
}

func TestWaitQueue(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 1, MaxWaiters: 2, WaitTimeout: time.Minute})
	held := mustAcquire(t, p)
	ctx := context.Background()
	first := acquireAsync(ctx, p)
	waitFor(t, p, "one waiter", func() bool { return p.Stats().Waiting == 1 })
	second := acquireAsync(ctx, p)
	waitFor(t, p, "two waiters", func() bool { return p.Stats().Waiting == 2 })

	if _, err := p.Acquire(ctx); err != ErrTooManyWait {
		t.Fatalf("third waiter: %v, want ErrTooManyWait", err)
	}

	held.Release()
	r := recv(t, first)
	if r.err != nil || r.l.Conn != held.Conn {
		t.Fatalf("first waiter: %v, same connection %v", r.err, r.l.Conn == held.Conn)
	}
	if st := p.Stats(); st.Waiting != 1 || st.InUse != 1 || st.Idle != 0 {
		t.Fatalf("stats %+v after the first hand-off", st)
	}
	if err := invoke(r.l, 7, "handed"); err != nil {
		t.Fatal(err)
	}
	r.l.Release()
	r = recv(t, second)
	if r.err != nil || r.l.Conn != held.Conn {
		t.Fatalf("second waiter: %v, same connection %v", r.err, r.l.Conn == held.Conn)
	}
	r.l.Release()
	st := checkStats(t, p, 1, 1, 0)
	if st.WaitCount != 2 || st.Timeouts != 0 || st.Dials != 1 {
		t.Fatalf("stats %+v, want 2 waits, no timeout, 1 dial", st)
	}
}

func TestWaitTimeout(t *testing.T) {
	const wait = 50 * time.Millisecond
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 1, WaitTimeout: wait})
	held := mustAcquire(t, p)
	var prev time.Duration
	for i := 1; i <= 2; i++ {
		start := time.Now()
		if _, err := p.Acquire(context.Background()); err != ErrWaitTimeout {
			t.Fatalf("Acquire: %v, want ErrWaitTimeout", err)
		}
		if el := time.Since(start); el < wait {
			t.Fatalf("gave up after %v, WaitTimeout %v", el, wait)
		}
		st := p.Stats()
		if st.Timeouts != uint64(i) || st.WaitCount != uint64(i) || st.Waiting != 0 {
			t.Fatalf("stats %+v after %d timeouts", st, i)
		}
		if st.WaitTime < time.Duration(i)*wait || st.WaitTime <= prev {
			t.Fatalf("WaitTime %v after %d waits of %v (before: %v)", st.WaitTime, i, wait, prev)
		}
		prev = st.WaitTime
	}
	held.Release()
	mustAcquire(t, p).Release() // nobody left in the queue
	checkStats(t, p, 1, 1, 0)
}

func TestWaitContext(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 1, WaitTimeout: time.Minute})
	held := mustAcquire(t, p)

	ctx, cancel := context.WithCancel(context.Background())
	ch := acquireAsync(ctx, p)
	waitFor(t, p, "a waiter", func() bool { return p.Stats().Waiting == 1 })
	cancel()
	if r := recv(t, ch); r.err != context.Canceled {
		t.Fatalf("canceled waiter: %v", r.err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := p.Acquire(ctx); err != context.DeadlineExceeded {
		t.Fatalf("waiter past its deadline: %v", err)
	}
	st := p.Stats()
	if st.Waiting != 0 || st.Timeouts != 0 || st.WaitCount != 2 || st.InUse != 1 {
		t.Fatalf("stats %+v", st)
	}

	// An ended context is refused even when a connection is idle.
	held.Release()
	if _, err := p.Acquire(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Acquire with an ended context: %v", err)
	}
	checkStats(t, p, 1, 1, 0)
}

func TestWaiterServedByFreshDial(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 1, WaitTimeout: time.Minute})
	held := mustAcquire(t, p)
	ch := acquireAsync(context.Background(), p)
	waitFor(t, p, "a waiter", func() bool { return p.Stats().Waiting == 1 })
	held.Destroy()
	r := recv(t, ch)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.l.Conn == held.Conn {
		t.Fatal("waiter got the destroyed connection")
	}
	if err := invoke(r.l, 1, "fresh"); err != nil {
		t.Fatal(err)
	}
	r.l.Release()
	st := checkStats(t, p, 1, 1, 0)
	if st.Dials != 2 || st.Closed != 1 || d.accepted.Load() != 2 {
		t.Fatalf("stats %+v, daemon accepted %d: want 2 dials, 1 closed", st, d.accepted.Load())
	}
	waitFor(t, p, "the daemon to see the destroyed connection close", func() bool { return d.open.Load() == 1 })
}

func TestWaiterGetsDialError(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 1, WaitTimeout: time.Minute})
	held := mustAcquire(t, p)
	ch := acquireAsync(context.Background(), p)
	waitFor(t, p, "a waiter", func() bool { return p.Stats().Waiting == 1 })
	d.stopAccepting()
	held.Destroy()
	// The dial made for the waiter fails: the waiter hears of it, long before WaitTimeout.
	r := recv(t, ch)
	var de *DialError
	if !errors.As(r.err, &de) {
		t.Fatalf("waiter: %v, want a *DialError", r.err)
	}
	st := checkStats(t, p, 0, 0, 0)
	if st.DialFailures != 1 {
		t.Fatalf("stats %+v, want 1 dial failure", st)
	}
}

func TestIdleTimeout(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 4, IdleTimeout: 100 * time.Millisecond})
	a, b := mustAcquire(t, p), mustAcquire(t, p)
	a.Release()
	b.Release()
	waitFor(t, p, "idle connections to time out", func() bool { return p.Stats().Open == 0 })
	waitFor(t, p, "the daemon to see them close", func() bool { return d.open.Load() == 0 })
	if st := checkStats(t, p, 0, 0, 0); st.Closed != 2 {
		t.Fatalf("stats %+v, want 2 closed", st)
	}
}

func TestIdleTimeoutKeepsWarm(t *testing.T) {
	const idle = 50 * time.Millisecond
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 4, Warm: 1, IdleTimeout: idle})
	waitFor(t, p, "the warm connection", func() bool { return p.Stats().Idle == 1 })
	ls := []Lease{mustAcquire(t, p), mustAcquire(t, p), mustAcquire(t, p)}
	for _, l := range ls {
		l.Release()
	}
	waitFor(t, p, "idle connections to time out down to Warm", func() bool { return p.Stats().Open == 1 })
	waitFor(t, p, "the daemon to see them close", func() bool { return d.open.Load() == 1 })
	time.Sleep(5 * idle)
	st := checkStats(t, p, 1, 1, 0)
	if st.Closed != 2 || st.Dials != 3 || d.accepted.Load() != 3 {
		t.Fatalf("stats %+v, daemon accepted %d: the warm connection was not kept", st, d.accepted.Load())
	}
	// The one kept is the one used last.
	if l := mustAcquire(t, p); l.Conn != ls[2].Conn {
		t.Fatal("kept an older connection")
	}
}

func TestMaxLifetime(t *testing.T) {
	const life = 100 * time.Millisecond
	t.Run("idle and leased", func(t *testing.T) {
		d := newDaemon(t)
		p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 4, MaxLifetime: life})
		a, b := mustAcquire(t, p), mustAcquire(t, p)
		a.Release()
		waitFor(t, p, "the idle connection to reach its lifetime", func() bool { return p.Stats().Open == 1 })
		waitFor(t, p, "the daemon to see it close", func() bool { return d.open.Load() == 1 })
		time.Sleep(life) // b is older than its lifetime now
		if err := invoke(b, 1, "old"); err != nil {
			t.Fatal(err) // a lease is never cut short
		}
		b.Release()
		if st := checkStats(t, p, 0, 0, 0); st.Closed != 2 {
			t.Fatalf("stats %+v, want 2 closed", st)
		}
		waitFor(t, p, "the daemon to see it close", func() bool { return d.open.Load() == 0 })
	})
	t.Run("warm replaced", func(t *testing.T) {
		d := newDaemon(t)
		p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 4, Warm: 1, MaxLifetime: life})
		waitFor(t, p, "the warm connection to be replaced twice", func() bool { return p.Stats().Dials >= 3 })
		st := p.Stats()
		if st.Open > 1 || st.Closed < 2 || d.accepted.Load() < 3 {
			t.Fatalf("stats %+v, daemon accepted %d", st, d.accepted.Load())
		}
	})
}

func TestHealthCheckKeepsHealthyConn(t *testing.T) {
	const interval = 30 * time.Millisecond
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 4, HealthInterval: interval})
	l := mustAcquire(t, p)
	if err := invoke(l, 1, "before"); err != nil {
		t.Fatal(err)
	}
	l.Release()
	waitFor(t, p, "several PINGs", func() bool { return d.pings.Load() >= 4 })
	st := p.Stats()
	if st.HealthFailures != 0 || st.Open != 1 || st.Closed != 0 || d.accepted.Load() != 1 || d.open.Load() != 1 {
		t.Fatalf("stats %+v, daemon accepted %d, open %d: the healthy connection was not kept",
			st, d.accepted.Load(), d.open.Load())
	}
	l = mustAcquire(t, p) // the PINGed one, unless a check has it out right now
	if err := invoke(l, 2, "after"); err != nil {
		t.Fatal(err)
	}
	l.Release()
}

func TestHealthCheckDetectsDeadConn(t *testing.T) {
	const interval = 30 * time.Millisecond
	for _, how := range []string{"killed", "PING refused"} {
		t.Run(how, func(t *testing.T) {
			d := newDaemon(t)
			p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 4, HealthInterval: interval})
			mustAcquire(t, p).Release()
			waitFor(t, p, "a PING", func() bool { return d.pings.Load() >= 1 })
			if how == "killed" {
				d.killAll()
			} else {
				d.refusePing.Store(true)
			}
			waitFor(t, p, "the dead connection to be closed", func() bool { return p.Stats().Open == 0 })
			st := checkStats(t, p, 0, 0, 0)
			if st.HealthFailures != 1 || st.Closed != 1 {
				t.Fatalf("stats %+v, want 1 health failure, 1 closed", st)
			}
			d.refusePing.Store(false)
			l := mustAcquire(t, p) // a new one
			if err := invoke(l, 1, "new"); err != nil {
				t.Fatal(err)
			}
			l.Release()
		})
	}
}

func TestWarm(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 4, Warm: 3, HealthInterval: 30 * time.Millisecond})
	waitFor(t, p, "3 warm connections", func() bool { return p.Stats().Idle == 3 && d.open.Load() == 3 })
	time.Sleep(150 * time.Millisecond) // several health intervals, no demand
	st := checkStats(t, p, 3, 3, 0)
	if st.Dials != 3 || d.accepted.Load() != 3 || d.pings.Load() == 0 {
		t.Fatalf("stats %+v, daemon accepted %d, pinged %d", st, d.accepted.Load(), d.pings.Load())
	}

	d.killAll()
	waitFor(t, p, "3 new warm connections", func() bool {
		st := p.Stats()
		return d.accepted.Load() >= 6 && st.Idle == 3 && st.Open == 3 && d.open.Load() == 3
	})
	if st := p.Stats(); st.HealthFailures < 3 || st.Closed < 3 {
		t.Fatalf("stats %+v, want the 3 killed connections counted", st)
	}
	for i := range 3 {
		l := mustAcquire(t, p)
		defer l.Release()
		if err := invoke(l, uint16(i), "warm"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDialTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	d := newDaemon(t)
	d.mute.Store(true) // accepts, never answers the handshake
	p := newPool(t, Config{Dial: dialer(d.addr, nil), DialTimeout: timeout})
	start := time.Now()
	_, err := p.Acquire(context.Background())
	el := time.Since(start)
	var de *DialError
	if !errors.As(err, &de) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Acquire: %v, want a *DialError for a timeout", err)
	}
	if el < timeout {
		t.Fatalf("gave up after %v, DialTimeout %v", el, timeout)
	}
	if st := checkStats(t, p, 0, 0, 0); st.DialFailures != 1 || d.accepted.Load() != 1 {
		t.Fatalf("stats %+v, daemon accepted %d", st, d.accepted.Load())
	}
}

func TestCanceledDialIsNoFailure(t *testing.T) {
	d := newDaemon(t)
	d.mute.Store(true)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), DialTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Acquire(ctx)
	var de *DialError
	if err != context.DeadlineExceeded || errors.As(err, &de) {
		t.Fatalf("Acquire: %v, want the context's error", err)
	}
	if st := checkStats(t, p, 0, 0, 0); st.DialFailures != 0 {
		t.Fatalf("stats %+v: a caller giving up counted as a dial failure", st)
	}
	d.mute.Store(false)
	mustAcquire(t, p).Release() // no backoff
}

func TestBackoff(t *testing.T) {
	d := newDaemon(t)
	d.stopAccepting() // a closed port
	var (
		mu       sync.Mutex
		attempts []time.Time
	)
	dial := dialer(d.addr, nil)
	p := newPool(t, Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			mu.Lock()
			attempts = append(attempts, time.Now())
			mu.Unlock()
			return dial(ctx)
		},
		BackoffMax: 200 * time.Millisecond,
	})
	nAttempts := func() int { mu.Lock(); defer mu.Unlock(); return len(attempts) }

	// failures holds the DialErrors of failed attempts in order; during a backoff,
	// Acquire returns the last one's error without dialing (Backoff set).
	var failures []*DialError
	note := func(err error) *DialError {
		t.Helper()
		var de *DialError
		if !errors.As(err, &de) {
			t.Fatalf("Acquire: %v, want a *DialError", err)
		}
		if !de.Backoff {
			failures = append(failures, de)
		}
		return de
	}
	immediate := 0
	acquireFails := func() {
		t.Helper()
		_, err := p.Acquire(context.Background())
		de := note(err)
		// While backing off, Acquire returns the same error without dialing: checked
		// for the calls that returned before the retry time.
		for range 5 {
			n := nAttempts()
			_, err := p.Acquire(context.Background())
			got := note(err)
			if time.Now().Before(de.Retry) {
				immediate++
				if !got.Backoff || got.Err != de.Err || !got.Retry.Equal(de.Retry) || nAttempts() != n {
					t.Fatalf("during the backoff: %+v (dialed: %v)", got, nAttempts() != n)
				}
			}
		}
		if len(failures) != nAttempts() {
			t.Fatalf("%d dial attempts, %d DialErrors", nAttempts(), len(failures))
		}
	}
	acquireFails()
	time.Sleep(time.Until(failures[len(failures)-1].Retry))
	acquireFails()
	if len(failures) < 2 {
		t.Fatal("no dial attempted after the backoff")
	}
	if immediate == 0 {
		t.Fatal("never called Acquire during a backoff: machine too slow?")
	}

	d.startAccepting()
	var l Lease
	waitFor(t, p, "a dial to succeed", func() bool {
		var err error
		if l, err = p.Acquire(context.Background()); err != nil {
			note(err)
		}
		return err == nil
	})
	if err := invoke(l, 1, "back"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(attempts)
	if len(failures) != n-1 {
		t.Errorf("%d attempts, %d failures before the success", n, len(failures))
	}
	for k := 1; k < n; k++ {
		if attempts[k].Before(failures[k-1].Retry) {
			t.Errorf("dial attempt %d at %v, before the retry time %v", k+1, attempts[k], failures[k-1].Retry)
		}
	}
	// The backoff doubles from 50ms: at least 50ms, then 100ms before the next attempt.
	if b0, b1 := failures[0].Retry.Sub(attempts[0]), failures[1].Retry.Sub(attempts[1]); b0 < 50*time.Millisecond || b1 < 100*time.Millisecond {
		t.Errorf("backoffs %v, %v: want at least 50ms, 100ms", b0, b1)
	}
	mu.Unlock()
	st := p.Stats()
	if st.Dials != 1 || st.DialFailures != uint64(n-1) {
		t.Fatalf("stats %+v after %d attempts", st, n)
	}
	// Success ends the backoff: the next dial happens at once.
	l2 := mustAcquire(t, p)
	l2.Release()
	l.Release()
}

func TestCloseFailsWaiters(t *testing.T) {
	d := newDaemon(t)
	p := New(Config{Dial: dialer(d.addr, nil), MaxOpen: 1, WaitTimeout: time.Minute, HealthInterval: -1})
	held := mustAcquire(t, p)
	var chs []<-chan result
	for range 3 {
		chs = append(chs, acquireAsync(context.Background(), p))
	}
	waitFor(t, p, "3 waiters", func() bool { return p.Stats().Waiting == 3 })
	p.Close()
	for _, ch := range chs {
		if r := recv(t, ch); r.err != ErrClosed {
			t.Fatalf("waiter: %v, want ErrClosed", r.err)
		}
	}
	if err := invoke(held, 1, "still mine"); err != nil {
		t.Fatal(err)
	}
	held.Destroy()
	checkStats(t, p, 0, 0, 0)
	waitFor(t, p, "the daemon to see the connection close", func() bool { return d.open.Load() == 0 })
}

func TestCloseClosesIdleAndReleased(t *testing.T) {
	d := newDaemon(t)
	p := New(Config{Dial: dialer(d.addr, nil), MaxOpen: 3, HealthInterval: -1})
	a, b := mustAcquire(t, p), mustAcquire(t, p)
	b.Release()
	p.Close()
	waitFor(t, p, "the daemon to see the idle connection close", func() bool { return d.open.Load() == 1 })
	if _, err := p.Acquire(context.Background()); err != ErrClosed {
		t.Fatalf("Acquire after Close: %v", err)
	}
	checkStats(t, p, 1, 0, 1)
	if err := invoke(a, 1, "leased"); err != nil {
		t.Fatal(err)
	}
	a.Release() // closed, not kept
	if st := checkStats(t, p, 0, 0, 0); st.Closed != 2 {
		t.Fatalf("stats %+v, want 2 closed", st)
	}
	waitFor(t, p, "the daemon to see the released connection close", func() bool { return d.open.Load() == 0 })
	p.Close() // again: nothing happens
}

func TestCloseEndsDialsAndChecks(t *testing.T) {
	t.Run("warm dial", func(t *testing.T) {
		d := newDaemon(t)
		d.mute.Store(true)
		p := New(Config{Dial: dialer(d.addr, nil), Warm: 1, DialTimeout: time.Minute, HealthInterval: -1})
		waitFor(t, p, "the warm dial to reach the daemon", func() bool { return d.accepted.Load() == 1 })
		start := time.Now()
		p.Close()
		if el := time.Since(start); el > patience/2 {
			t.Fatalf("Close waited %v for a dial", el)
		}
		if st := checkStats(t, p, 0, 0, 0); st.DialFailures != 0 {
			t.Fatalf("stats %+v: Close counted as a dial failure", st)
		}
	})
	t.Run("health check", func(t *testing.T) {
		d := newDaemon(t)
		p := New(Config{Dial: dialer(d.addr, nil), DialTimeout: time.Minute, HealthInterval: 20 * time.Millisecond})
		mustAcquire(t, p).Release()
		d.delay.Store(int64(time.Hour))
		waitFor(t, p, "a PING left unanswered", func() bool { return d.pings.Load() >= 1 })
		start := time.Now()
		p.Close()
		if el := time.Since(start); el > patience/2 {
			t.Fatalf("Close waited %v for a health check", el)
		}
		if st := checkStats(t, p, 0, 0, 0); st.HealthFailures != 0 || st.Closed != 1 {
			t.Fatalf("stats %+v: want 1 closed, no health failure", st)
		}
	})
}

func TestLeaseEndsOnce(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 2})
	l1 := mustAcquire(t, p)
	l1.Release()
	l1.Release()
	l1.Destroy()
	st := checkStats(t, p, 1, 1, 0)
	if st.Closed != 0 {
		t.Fatalf("stats %+v: a second end of a lease counted", st)
	}

	// The connection, leased again: the old lease cannot touch the new one.
	l2 := mustAcquire(t, p)
	if l2.Conn != l1.Conn {
		t.Fatal("idle connection not reused")
	}
	l1.Release()
	l1.Destroy()
	checkStats(t, p, 1, 0, 1)
	if err := invoke(l2, 1, "mine"); err != nil {
		t.Fatal(err)
	}
	cp := l2 // a copy is the same lease
	cp.Release()
	l2.Release()
	l2.Destroy()
	checkStats(t, p, 1, 1, 0)

	l3 := mustAcquire(t, p)
	l3.Destroy()
	l3.Destroy()
	l3.Release()
	if st := checkStats(t, p, 0, 0, 0); st.Closed != 1 {
		t.Fatalf("stats %+v, want 1 closed", st)
	}

	// Closing the lease as a net.Conn destroys it.
	var nc net.Conn = mustAcquire(t, p)
	nc.Close()
	nc.Close()
	if st := checkStats(t, p, 0, 0, 0); st.Closed != 2 {
		t.Fatalf("stats %+v, want 2 closed", st)
	}

	var zero Lease
	zero.Release()
	zero.Destroy()
}

func TestReleaseWithUnreadBytesCloses(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil)})
	l := mustAcquire(t, p)
	if _, err := l.Write(frameInvoke(3, "unread")); err != nil {
		t.Fatal(err)
	}
	if err := l.Reader.Wait(); err != nil { // the reply is buffered, not consumed
		t.Fatal(err)
	}
	l.Release()
	if st := checkStats(t, p, 0, 0, 0); st.Closed != 1 {
		t.Fatalf("stats %+v: a connection with an unread reply was kept", st)
	}
}

func TestAcquireReleaseAllocs(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxLifetime: time.Hour})
	mustAcquire(t, p).Release()
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		l, err := p.Acquire(ctx)
		if err != nil {
			panic(err)
		}
		l.Release()
	}); n != 0 {
		t.Fatalf("Acquire+Release of an idle connection: %v allocations", n)
	}
}

// An Acquire that waits for a connection another caller releases (more callers than
// MaxOpen, the steady state of a busy pool) allocates nothing either: its channel and
// timer are reused.
func TestWaitingAcquireAllocs(t *testing.T) {
	if raceflag.Enabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 1})
	mustAcquire(t, p).Release()
	ctx := context.Background()
	hold, held := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() { // holds the only connection until the measured Acquire waits for it
		defer close(done)
		for range hold {
			l, err := p.Acquire(ctx)
			if err != nil {
				t.Error(err)
			}
			held <- struct{}{}
			for p.Stats().Waiting == 0 {
				runtime.Gosched()
			}
			l.Release()
		}
	}()
	n := testing.AllocsPerRun(200, func() {
		hold <- struct{}{}
		<-held
		l, err := p.Acquire(ctx)
		if err != nil {
			panic(err)
		}
		l.Release()
	})
	close(hold)
	<-done
	if st := p.Stats(); st.WaitCount < 200 {
		t.Fatalf("stats %+v: the Acquire calls did not wait", st)
	}
	if n != 0 {
		t.Fatalf("an Acquire that waited for a released connection: %v allocations", n)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	d := newDaemon(b)
	p := newPool(b, Config{Dial: dialer(d.addr, nil)})
	mustAcquire(b, p).Release()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		l, err := p.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		l.Release()
	}
}

func BenchmarkAcquireReleaseParallel(b *testing.B) {
	benchmarkAcquireReleaseParallel(b, runtime.GOMAXPROCS(0), 1, func() {})
}

// A connection the daemon closed while idle (its COMMTIMEOUT, a restart) is found out when
// taken and replaced: the call gets a working one.
// So it is with Config.Wrap, whose wrapper hides the socket: the check peeks at the
// socket under it.
func TestStaleIdleConnNeverReachesACall(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testStaleIdleConn(t, nil) })
	t.Run("wrapped", func(t *testing.T) {
		testStaleIdleConn(t, func(c net.Conn) net.Conn { return wrapped{c} })
	})
}

// wrapped is a connection as a Config.Wrap gives it: no syscall.Conn.
type wrapped struct{ net.Conn }

func testStaleIdleConn(t *testing.T, wrap func(net.Conn) net.Conn) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 2, HealthInterval: -1, Wrap: wrap})
	first := mustAcquire(t, p)
	if _, ok := first.Conn.Conn.(wrapped); ok != (wrap != nil) {
		t.Fatalf("leased %T", first.Conn.Conn)
	}
	first.Release()
	d.killAll() // the daemon closes its side of the idle connection
	waitFor(t, p, "the daemon to close it", func() bool { return d.open.Load() == 0 })
	time.Sleep(10 * time.Millisecond) // the FIN reaches our socket
	l := mustAcquire(t, p)
	if l.Conn == first.Conn {
		t.Fatal("the closed idle connection was leased")
	}
	if err := invoke(l, 1, "fresh"); err != nil {
		t.Fatalf("call on the replacement: %v", err)
	}
	l.Release()
	if st := p.Stats(); st.Stale != 1 || st.Dials != 2 {
		t.Fatalf("stats %+v: want 1 stale connection closed, 2 dials", st)
	}
}

// While the daemon is down, every waiter of a pool with nothing left to give back hears of
// the failed dial at once, not after WaitTimeout.
func TestAllWaitersGetDialErrorWhenNothingIsLeft(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 1, WaitTimeout: time.Minute})
	held := mustAcquire(t, p)
	var chs []<-chan result
	for range 5 {
		chs = append(chs, acquireAsync(context.Background(), p))
	}
	waitFor(t, p, "5 waiters", func() bool { return p.Stats().Waiting == 5 })
	d.stopAccepting()
	held.Destroy()
	for i, ch := range chs {
		r := recv(t, ch)
		var de *DialError
		if !errors.As(r.err, &de) {
			t.Fatalf("waiter %d: %v, want a *DialError", i, r.err)
		}
	}
}

// Waiters queued while connections were in use are not left waiting when those die
// during the backoff after a failed dial: nothing could serve them.
func TestWaitersFailWhenTheLastConnDiesDuringBackoff(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 2, WaitTimeout: time.Minute, BackoffMax: time.Minute})
	a, b := mustAcquire(t, p), mustAcquire(t, p)
	var chs []<-chan result
	for range 3 {
		chs = append(chs, acquireAsync(context.Background(), p))
	}
	waitFor(t, p, "3 waiters", func() bool { return p.Stats().Waiting == 3 })
	d.stopAccepting()
	a.Destroy() // the dial for the first waiter fails: it hears of it; b may still come back
	if r := recv(t, chs[0]); r.err == nil {
		t.Fatal("first waiter got a connection from a daemon that is down")
	}
	b.Destroy() // nothing left, and backing off: the others hear of it at once
	for i, ch := range chs[1:] {
		var de *DialError
		if r := recv(t, ch); !errors.As(r.err, &de) {
			t.Fatalf("waiter %d: %v, want a *DialError", i+1, r.err)
		}
	}
}

// Dials that were under way together and fail for the same outage back off once: the
// backoff does not double per failed dial.
func TestConcurrentFailedDialsBackOffOnce(t *testing.T) {
	var started sync.WaitGroup
	started.Add(8)
	dial := func(ctx context.Context) (net.Conn, error) {
		started.Done()
		started.Wait() // all 8 are under way before any fails
		return nil, errors.New("connection refused")
	}
	p := newPool(t, Config{Dial: dial, MaxOpen: 8, BackoffMax: time.Minute})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.Acquire(context.Background()); err == nil {
				t.Error("dial succeeded")
			}
		}()
	}
	wg.Wait()
	p.mu.Lock()
	b := p.backoff
	p.mu.Unlock()
	if b != minBackoff {
		t.Errorf("backoff %v after one outage's 8 concurrent failed dials, want %v", b, minBackoff)
	}
}

// While the pool backs off, AcquireLastResort dials anyway, one such dial at a time: a
// daemon that is back serves at once, and the success ends the backoff.
func TestAcquireLastResortDuringBackoff(t *testing.T) {
	d := newDaemon(t)
	d.stopAccepting()
	release := make(chan struct{})
	var dials atomic.Int32
	dial := dialer(d.addr, nil)
	p := newPool(t, Config{
		Dial: func(ctx context.Context) (net.Conn, error) {
			if dials.Add(1) == 3 {
				<-release // the third dial (the first last resort) is slow
			}
			return dial(ctx)
		},
		BackoffMax: time.Minute, MaxOpen: 4,
	})
	if _, err := p.Acquire(context.Background()); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	// Backing off: Acquire does not dial; AcquireLastResort does (and fails: still down).
	_, err := p.Acquire(context.Background())
	var de *DialError
	if !errors.As(err, &de) || !de.Backoff || dials.Load() != 1 {
		t.Fatalf("Acquire during the backoff: %v after %d dials", err, dials.Load())
	}
	if _, err := p.AcquireLastResort(context.Background()); !errors.As(err, &de) || de.Backoff || dials.Load() != 2 {
		t.Fatalf("AcquireLastResort: %v after %d dials, want a fresh dial's error", err, dials.Load())
	}
	d.startAccepting()
	// One last-resort dial at a time: while the slow one is under way, another caller
	// gets the backoff's error without dialing.
	first := make(chan result, 1)
	go func() {
		l, err := p.AcquireLastResort(context.Background())
		first <- result{l, err}
	}()
	waitFor(t, p, "the last-resort dial", func() bool { return dials.Load() == 3 })
	if _, err := p.AcquireLastResort(context.Background()); !errors.As(err, &de) || !de.Backoff || dials.Load() != 3 {
		t.Fatalf("second AcquireLastResort: %v after %d dials, want the backoff's error", err, dials.Load())
	}
	close(release)
	r := recv(t, first)
	if r.err != nil {
		t.Fatalf("last-resort dial to a daemon that is back: %v", r.err)
	}
	if err := invoke(r.l, 1, "back"); err != nil {
		t.Fatal(err)
	}
	r.l.Release()
	// The success ended the backoff: a plain Acquire works at once.
	l := mustAcquire(t, p)
	l.Release()
	if st := p.Stats(); st.LastResort != 2 {
		t.Errorf("LastResort = %d, want 2 (dials made)", st.LastResort)
	}
}

// MaxIdleTime retires an idle connection, a warm one too, before a daemon's own idle
// timeout can close it under a call; the warm one is dialed again.
func TestMaxIdleTime(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 2, Warm: 1, MaxIdleTime: 50 * time.Millisecond, HealthInterval: -1})
	waitFor(t, p, "the warm connection", func() bool { return p.Stats().Dials >= 1 })
	waitFor(t, p, "the warm connection retired and dialed again", func() bool { st := p.Stats(); return st.Dials >= 3 && st.Open == 1 })
	l := mustAcquire(t, p)
	time.Sleep(80 * time.Millisecond) // in use: never retired for idleness
	if err := invoke(l, 1, "busy"); err != nil {
		t.Fatal(err)
	}
	l.Release()
}

// AcquireNew dials even with an idle connection in the pool, and past MaxOpen counts in
// Stats.Beyond.
func TestAcquireNew(t *testing.T) {
	d := newDaemon(t)
	p := newPool(t, Config{Dial: dialer(d.addr, nil), MaxOpen: 2})
	idle := mustAcquire(t, p)
	idle.Release()
	l, err := p.AcquireNew(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l.Conn == idle.Conn {
		t.Fatal("AcquireNew returned the idle connection")
	}
	if err := invoke(l, 1, "new"); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Dials != 2 || st.Beyond != 0 || st.Idle != 1 {
		t.Fatalf("stats %+v, want 2 dials, 1 idle, none beyond", st)
	}
	l2, err := p.AcquireNew(context.Background()) // the idle one and l make 2: past MaxOpen
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Beyond != 1 {
		t.Fatalf("stats %+v, want 1 beyond", st)
	}
	l.Release()
	l2.Release()
}

// BenchmarkAcquireReleaseContended: 4 goroutines per CPU on one connection, each
// yielding while it holds it, so that most Acquire calls wait.
func BenchmarkAcquireReleaseContended(b *testing.B) {
	benchmarkAcquireReleaseParallel(b, 1, 4, runtime.Gosched)
}

// benchmarkAcquireReleaseParallel runs parallelism goroutines per CPU leasing the
// connections of a pool of maxOpen warm ones, calling hold with each lease.
func benchmarkAcquireReleaseParallel(b *testing.B, maxOpen, parallelism int, hold func()) {
	d := newDaemon(b)
	p := newPool(b, Config{Dial: dialer(d.addr, nil), MaxOpen: maxOpen, Warm: maxOpen})
	waitFor(b, p, "warm connections", func() bool { return p.Stats().Idle == maxOpen })
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l, err := p.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			hold()
			l.Release()
		}
	})
}
