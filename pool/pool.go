package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/rawsock"
	"github.com/pyro-dispatch/pyro-dispatch/internal/timers"
)

// Config describes one pool. Dial is required; zero values elsewhere mean the default
// (or "no limit" where a default makes no sense).
type Config struct {
	// Dial opens a connection and performs the Pyro4 handshake on it; the connection it
	// returns is ready for INVOKE and PING messages. It must return soon after ctx ends,
	// handshake included (set the connection's deadline from ctx and abort it when ctx is
	// canceled): ctx carries DialTimeout, and Close cancels the dials the pool makes itself.
	Dial func(ctx context.Context) (net.Conn, error)
	// Serializer is used for health-check PING messages (default marshal).
	Serializer frame.Serializer
	// HealthCheck, when set, replaces the check of an idle connection (default: Ping with
	// Serializer). A backend with an HMAC key, for one, refuses unsigned PINGs. It must
	// leave the connection clean and give up after timeout.
	HealthCheck func(c *Conn, timeout time.Duration) error

	MaxOpen        int           // connections open at once, dialing included (default 16)
	MaxIdle        int           // idle connections kept (default MaxOpen)
	Warm           int           // connections kept open even with no demand (default 0; at most MaxIdle)
	MaxWaiters     int           // Acquire calls waiting at once before failing fast (default 1024)
	WaitTimeout    time.Duration // Acquire gives up waiting after this (default 5s; the context may end it sooner)
	DialTimeout    time.Duration // one dial plus handshake, and one health check (default 5s)
	IdleTimeout    time.Duration // connections unused this long are closed, down to Warm (default 5m)
	MaxIdleTime    time.Duration // connections unused this long are closed, Warm ones too (and redialed), before a daemon's own idle timeout can (0: none)
	MaxLifetime    time.Duration // connections are closed after this age (0: no limit)
	HealthInterval time.Duration // idle connections neither used nor checked this long are PINGed (default 30s; <0: never)
	BackoffMax     time.Duration // longest wait between failed dials (default 5s)
	ReadBufferSize int           // initial frame.Reader buffer per connection (default frame default)
	// Wrap, when set, wraps each dialed connection (with raw reads and writes already,
	// rawsock.New) before it is pooled: Conn.Conn and Conn.Reader go through what it
	// returns. The idle check (alive) still peeks at the socket under it.
	Wrap func(net.Conn) net.Conn
}

// minBackoff is the wait after the first failed dial; it doubles with each failure up to
// Config.BackoffMax.
const minBackoff = 50 * time.Millisecond

func (c *Config) defaults() {
	if c.MaxOpen <= 0 {
		c.MaxOpen = 16
	}
	if c.MaxIdle <= 0 || c.MaxIdle > c.MaxOpen {
		c.MaxIdle = c.MaxOpen
	}
	c.Warm = min(max(c.Warm, 0), c.MaxIdle)
	if c.MaxWaiters <= 0 {
		c.MaxWaiters = 1024
	}
	if c.WaitTimeout <= 0 {
		c.WaitTimeout = 5 * time.Second
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 30 * time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 5 * time.Second
	}
	if c.Serializer == 0 {
		c.Serializer = frame.Marshal
	}
	if c.HealthCheck == nil {
		ser := c.Serializer
		c.HealthCheck = func(cn *Conn, timeout time.Duration) error { return Ping(cn, ser, timeout) }
	}
}

// tick is the period of the upkeep goroutine: half the shortest interval it enforces,
// between 5ms and 1s.
func (c *Config) tick() time.Duration {
	d := min(c.IdleTimeout, c.BackoffMax)
	if c.MaxIdleTime > 0 {
		d = min(d, c.MaxIdleTime)
	}
	if c.HealthInterval > 0 {
		d = min(d, c.HealthInterval)
	}
	if c.MaxLifetime > 0 {
		d = min(d, c.MaxLifetime)
	}
	return min(max(d/2, 5*time.Millisecond), time.Second)
}

// Errors returned by Acquire.
var (
	ErrClosed      = errors.New("pool: closed")
	ErrWaitTimeout = errors.New("pool: no connection free in time")
	ErrTooManyWait = errors.New("pool: too many callers waiting")
)

// DialError is a failed dial or handshake; while the pool backs off, Acquire returns the
// last one without dialing again (with Backoff set). A caller waiting for a connection
// gets it when a dial the pool made on its behalf failed.
type DialError struct {
	Err     error
	Retry   time.Time // no new dial before this
	Backoff bool      // no dial was made for this caller: the pool is backing off
}

func (e *DialError) Error() string { return "pool: " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// Conn is a pooled upstream connection and the frame.Reader that owns its read side.
// Never close it yourself (c.Conn.Close): end its Lease with Destroy.
type Conn struct {
	net.Conn
	Reader *frame.Reader

	p   *Pool
	fd  int           // the socket's descriptor for the idle check (alive), -1 if none
	gen atomic.Uint64 // incremented when a lease ends; a Lease holds the value it began with

	// Guarded by p.mu while the connection is in the pool.
	created     time.Time
	lastUsed    time.Time // last release
	lastChecked time.Time // last passed health check
}

func (c *Conn) lease() Lease { return Lease{Conn: c, gen: c.gen.Load()} }

// Lease is one caller's exclusive use of a Conn. End it with Release (the connection is
// clean: every request answered, nothing left unread) or Destroy. It is a small value:
// copies are the same lease, only the first Release or Destroy of any copy counts, and
// after it the Conn belongs to the pool again. The zero Lease does nothing.
type Lease struct {
	*Conn
	gen uint64
}

// Release returns a clean connection to the pool. A connection with bytes read but not
// consumed is closed instead: its stream is not where a new request can start.
func (l Lease) Release() {
	c := l.Conn
	if c == nil || !c.gen.CompareAndSwap(l.gen, l.gen+1) {
		return
	}
	if c.Reader.Buffered() != 0 {
		c.p.destroy(c)
		return
	}
	c.p.release(c)
}

// Destroy closes the connection: use it after any error or an unfinished call.
func (l Lease) Destroy() {
	c := l.Conn
	if c == nil || !c.gen.CompareAndSwap(l.gen, l.gen+1) {
		return
	}
	c.p.destroy(c)
}

// Close is Destroy, so that code holding the lease as a net.Conn cannot close the
// socket behind the pool's back. It returns nil.
func (l Lease) Close() error {
	l.Destroy()
	return nil
}

// Stats is a snapshot of a pool's counters. Open = Idle + InUse + Dialing, except for
// connections being closed at the instant of the snapshot.
type Stats struct {
	Open           int           // connections open (idle + in use + being dialed)
	Idle           int           // connections waiting in the pool (or being health-checked)
	InUse          int           // connections leased out
	Dialing        int           // dials in progress
	Waiting        int           // Acquire calls waiting now
	Dials          uint64        // successful dials (with handshake)
	DialFailures   uint64        // failed dials or handshakes (a caller giving up is not one)
	HealthFailures uint64        // idle connections closed because a health check failed
	Closed         uint64        // connections closed for any reason
	WaitCount      uint64        // Acquire calls that had to wait
	WaitTime       time.Duration // total time Acquire calls waited
	Timeouts       uint64        // Acquire calls that gave up after WaitTimeout
	Stale          uint64        // idle connections found closed by the daemon when taken, and closed
	Beyond         uint64        // connections opened past MaxOpen (AcquireBeyond)
	LastResort     uint64        // dials made during a backoff for AcquireLastResort
}

// grant is what a waiting Acquire call receives: a connection (counted in use) or an error.
type grant struct {
	c   *Conn
	err error
}

// grants keeps the channels of Acquire calls that are done, for the next to wait with:
// an Acquire returns with its channel empty (a grant that came as it gave up is taken).
var grants = sync.Pool{New: func() any { return make(chan grant, 1) }}

// Pool is a set of connections to one endpoint, all made with the same handshake.
// It is safe for concurrent use. A goroutine owned by the pool does the upkeep (idle
// timeout, lifetime, health checks, warm connections) until Close.
type Pool struct {
	cfg Config

	mu        sync.Mutex
	idle      []*Conn      // by last use, oldest first; Acquire takes the last (LIFO)
	checking  []*Conn      // idle connections out for a health check
	waiters   []chan grant // FIFO of Acquire calls waiting; each channel has room for one grant
	open      int          // idle + checking + leased + dialing + being closed
	inUse     int
	dialing   int
	bgDialing int // dials the pool started itself, for waiters and Warm
	closed    bool
	backoff   time.Duration
	dialErr   *DialError
	failedAt  time.Time // when the last dial failed
	trying    bool      // an AcquireLastResort dial is under way during a backoff
	stats     Stats     // counters; the gauges are filled in by Stats

	drop   []*Conn       // upkeep's scratch list
	done   chan struct{} // closed by Close
	ctx    context.Context
	cancel context.CancelFunc // ends dials made by the pool itself
	wg     sync.WaitGroup     // the upkeep goroutine, background dials and health checks
}

// New starts a pool. Call Close to stop its upkeep goroutine and close its connections.
func New(cfg Config) *Pool {
	cfg.defaults()
	p := &Pool{
		cfg:  cfg,
		idle: make([]*Conn, 0, cfg.MaxIdle),
		done: make(chan struct{}),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.upkeep()
	if cfg.Warm > 0 {
		p.mu.Lock()
		p.maybeDialLocked(time.Now())
		p.mu.Unlock()
	}
	return p
}

// Acquire leases a connection: the most recently used idle one, else a new one if the
// pool is below MaxOpen (unless it is backing off after a failed dial: then the
// *DialError), else it waits (FIFO) up to WaitTimeout or until ctx ends.
func (p *Pool) Acquire(ctx context.Context) (Lease, error) {
	return p.acquire(ctx, false)
}

// AcquireLastResort is Acquire for a caller with nowhere else to go (no other member of
// its group can take the call): while the pool backs off after a failed dial, it dials
// anyway, one such dial at a time (the others get the *DialError), so that a daemon that
// is back serves at once rather than after the backoff, as Envoy's panic threshold
// balances over unhealthy hosts rather than refuse everything.
func (p *Pool) AcquireLastResort(ctx context.Context) (Lease, error) {
	return p.acquire(ctx, true)
}

func (p *Pool) acquire(ctx context.Context, lastResort bool) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return Lease{}, err
	}
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return Lease{}, ErrClosed
		}
		n := len(p.idle)
		if n == 0 {
			break
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now := time.Now(); (p.cfg.MaxLifetime <= 0 || !p.expired(c, now)) && !p.idleTooLong(c, now) {
			p.inUse++
			p.mu.Unlock()
			// A connection the daemon closed while it was idle never reaches a call.
			if alive(c) {
				return c.lease(), nil
			}
			p.mu.Lock()
			p.inUse--
			p.stats.Stale++
		}
		p.mu.Unlock()
		p.closeConns(c)
		p.mu.Lock()
	}
	now := time.Now()
	if p.open < p.cfg.MaxOpen {
		if de := p.dialErr; de != nil && now.Before(de.Retry) {
			if !lastResort || p.trying {
				p.mu.Unlock()
				return Lease{}, &DialError{Err: de.Err, Retry: de.Retry, Backoff: true}
			}
			p.trying = true
			p.stats.LastResort++
			lease, err := p.dialLeaseLocked(ctx)
			p.mu.Lock()
			p.trying = false
			p.mu.Unlock()
			return lease, err
		}
		return p.dialLeaseLocked(ctx)
	}
	if len(p.waiters) >= p.cfg.MaxWaiters {
		p.mu.Unlock()
		return Lease{}, ErrTooManyWait
	}
	w := grants.Get().(chan grant)
	defer grants.Put(w)
	p.waiters = append(p.waiters, w)
	p.stats.WaitCount++
	p.maybeDialLocked(now)
	p.mu.Unlock()

	timer := timers.Start(p.cfg.WaitTimeout)
	defer timers.Stop(timer)
	var err error
	select {
	case g := <-w:
		p.mu.Lock()
		p.stats.WaitTime += time.Since(now)
		p.mu.Unlock()
		if g.err != nil {
			return Lease{}, g.err
		}
		return g.c.lease(), nil
	case <-timer.C:
		err = ErrWaitTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	var drop *Conn
	p.mu.Lock()
	p.stats.WaitTime += time.Since(now)
	if !p.removeWaiterLocked(w) {
		// Granted just as we gave up (grants are sent under p.mu, so it is in w now).
		if g := <-w; g.c != nil {
			drop = p.putLocked(g.c)
		} else {
			err = g.err
		}
	}
	if err == ErrWaitTimeout {
		p.stats.Timeouts++
	}
	p.mu.Unlock()
	if drop != nil {
		p.closeConns(drop)
	}
	return Lease{}, err
}

// Full reports whether an Acquire now would have to wait: no idle connection, and
// MaxOpen open.
func (p *Pool) Full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) == 0 && p.open >= p.cfg.MaxOpen
}

// AcquireBeyond leases a new connection at once, even when MaxOpen are open: for a call
// that must not wait for one, such as a call nested in a call in flight (its daemon thread
// waits for it). It is counted in Stats.Beyond; once released it is kept only within
// MaxIdle, like any other.
func (p *Pool) AcquireBeyond(ctx context.Context) (Lease, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return Lease{}, ErrClosed
	}
	p.stats.Beyond++
	return p.dialLeaseLocked(ctx)
}

// AcquireNew leases a connection dialed for the caller, never an idle one: for a request
// whose write failed on a connection the daemon had closed, so that it does not meet
// another one. Past MaxOpen it counts in Stats.Beyond, like AcquireBeyond.
func (p *Pool) AcquireNew(ctx context.Context) (Lease, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return Lease{}, ErrClosed
	}
	if p.open >= p.cfg.MaxOpen {
		p.stats.Beyond++
	}
	return p.dialLeaseLocked(ctx)
}

// dialLeaseLocked (p.mu held, and released) dials a connection for the caller and leases
// it to it.
func (p *Pool) dialLeaseLocked(ctx context.Context) (Lease, error) {
	p.open++
	p.dialing++
	p.mu.Unlock()
	started := time.Now()
	nc, err := p.dial(ctx)
	p.mu.Lock()
	c, err := p.dialedLocked(ctx, started, nc, err)
	if err == nil {
		p.inUse++
	}
	p.mu.Unlock()
	if err != nil {
		return Lease{}, err
	}
	return c.lease(), nil
}

func (p *Pool) removeWaiterLocked(w chan grant) bool {
	for i, x := range p.waiters {
		if x == w {
			n := copy(p.waiters[i:], p.waiters[i+1:])
			p.waiters[i+n] = nil
			p.waiters = p.waiters[:i+n]
			return true
		}
	}
	return false
}

// grantLocked hands g to the first waiter; there must be one.
func (p *Pool) grantLocked(g grant) {
	w := p.waiters[0]
	n := copy(p.waiters, p.waiters[1:])
	p.waiters[n] = nil
	p.waiters = p.waiters[:n]
	w <- g // room for one: never blocks
}

// dial runs Config.Dial under DialTimeout. Its slot was counted in p.open and p.dialing.
func (p *Pool) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	nc, err := p.cfg.Dial(ctx)
	if err == nil && nc == nil {
		err = errors.New("Config.Dial returned neither a connection nor an error")
	}
	return nc, err
}

// dialedLocked accounts for a finished dial made under ctx and wraps its connection. A
// failure the backend caused starts or extends the backoff; one caused by ctx ending does
// not, and returns ctx's error.
func (p *Pool) dialedLocked(ctx context.Context, started time.Time, nc net.Conn, err error) (*Conn, error) {
	p.dialing--
	now := time.Now()
	switch {
	case err == nil:
		p.stats.Dials++
		p.backoff, p.dialErr = 0, nil
		if !p.closed {
			fd := rawsock.FD(nc)
			nc = rawsock.New(nc)
			if p.cfg.Wrap != nil {
				nc = p.cfg.Wrap(nc)
			}
			c := &Conn{
				Conn:        nc,
				fd:          fd,
				Reader:      frame.NewReader(nc, p.cfg.ReadBufferSize, frame.Limits{}),
				p:           p,
				created:     now,
				lastUsed:    now,
				lastChecked: now,
			}
			return c, nil
		}
		nc.Close() // only at shutdown: no dial waits for this slot
		p.stats.Closed++
		err = ErrClosed
	case p.closed:
		err = ErrClosed
	case ctxErr(ctx, now) != nil:
		err = ctxErr(ctx, now)
	default:
		p.stats.DialFailures++
		if p.dialErr == nil || started.After(p.failedAt) {
			// One outage is one backoff: dials that were under way when the last one
			// failed fail for the same reason, and do not lengthen it.
			p.backoff = min(max(2*p.backoff, minBackoff), p.cfg.BackoffMax)
		}
		p.failedAt = now
		p.dialErr = &DialError{Err: err, Retry: now.Add(p.backoff)}
		err = p.dialErr
	}
	p.open--
	p.maybeDialLocked(now)
	p.failHopelessLocked(now)
	return nil, err
}

// ctxErr returns ctx's error, also when its deadline has passed but its timer has not
// fired yet (a socket deadline set from it may expire first).
func ctxErr(ctx context.Context, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !now.Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// maybeDialLocked starts background dials for waiters not yet served by one and up to
// Warm open connections, within MaxOpen and unless the pool is backing off.
func (p *Pool) maybeDialLocked(now time.Time) {
	if p.closed || (p.dialErr != nil && now.Before(p.dialErr.Retry)) {
		return
	}
	for p.open < p.cfg.MaxOpen && (len(p.waiters) > p.bgDialing || p.open < p.cfg.Warm) {
		p.open++
		p.dialing++
		p.bgDialing++
		p.wg.Add(1)
		go p.dialInBackground()
	}
}

// dialInBackground makes a connection for the first waiter, else for the idle list. If
// the dial fails, the first waiter gets the *DialError, and so does every other one when
// nothing is left that could serve them (failHopelessLocked).
func (p *Pool) dialInBackground() {
	defer p.wg.Done()
	started := time.Now()
	nc, err := p.dial(p.ctx)
	var drop *Conn
	p.mu.Lock()
	p.bgDialing--
	c, err := p.dialedLocked(p.ctx, started, nc, err)
	switch {
	case err == nil:
		p.inUse++
		drop = p.putLocked(c)
	case len(p.waiters) > 0:
		p.grantLocked(grant{err: err})
	}
	p.mu.Unlock()
	if drop != nil {
		p.closeConns(drop)
	}
}

// release takes back a connection a lease ended cleanly.
func (p *Pool) release(c *Conn) {
	now := time.Now()
	p.mu.Lock()
	c.lastUsed = now
	drop := p.putLocked(c)
	p.mu.Unlock()
	if drop != nil {
		p.closeConns(drop)
	}
}

// putLocked passes c, counted in use, to the first waiter, else to the idle list. It
// returns c when c must be closed instead (pool closed, lifetime over, enough idle); c
// still counts in p.open until closeConns.
func (p *Pool) putLocked(c *Conn) *Conn {
	if !p.closed && (p.cfg.MaxLifetime <= 0 || !p.expired(c, time.Now())) {
		if len(p.waiters) > 0 {
			p.grantLocked(grant{c: c})
			return nil
		}
		if len(p.idle)+len(p.checking) < p.cfg.MaxIdle {
			p.inUse--
			p.idle = append(p.idle, c)
			return nil
		}
	}
	p.inUse--
	return c
}

// destroy closes a leased connection and frees its slot.
func (p *Pool) destroy(c *Conn) {
	p.mu.Lock()
	p.inUse--
	p.mu.Unlock()
	p.closeConns(c)
}

// closeConns closes connections that are no longer idle, leased or checked, then frees
// their slots (in that order, so that the sockets open never exceed MaxOpen) and starts
// dials for waiters.
func (p *Pool) closeConns(cs ...*Conn) {
	for _, c := range cs {
		c.Conn.Close()
	}
	p.mu.Lock()
	p.open -= len(cs)
	p.stats.Closed += uint64(len(cs))
	now := time.Now()
	p.maybeDialLocked(now)
	p.failHopelessLocked(now)
	p.mu.Unlock()
}

// failHopelessLocked gives the last dial error to every waiter when none can be served
// before the backoff ends: no connection in use that could come back, none being dialed.
// They would only wait out their WaitTimeout; the caller may try another backend.
func (p *Pool) failHopelessLocked(now time.Time) {
	de := p.dialErr
	if de == nil || !now.Before(de.Retry) || p.inUse > 0 || p.dialing > 0 {
		return
	}
	for len(p.waiters) > 0 {
		p.grantLocked(grant{err: de})
	}
}

// idleTooLong reports whether an idle connection is past MaxIdleTime.
func (p *Pool) idleTooLong(c *Conn, now time.Time) bool {
	return p.cfg.MaxIdleTime > 0 && now.Sub(c.lastUsed) >= p.cfg.MaxIdleTime
}

func (p *Pool) expired(c *Conn, now time.Time) bool {
	return p.cfg.MaxLifetime > 0 && now.Sub(c.created) >= p.cfg.MaxLifetime
}

// Stats returns a snapshot of the counters.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Open, s.Idle, s.InUse = p.open, len(p.idle)+len(p.checking), p.inUse
	s.Dialing, s.Waiting = p.dialing, len(p.waiters)
	return s
}

// Close closes idle connections, fails waiting and future Acquire calls with ErrClosed,
// cancels the pool's own dials and health checks and waits for them and the upkeep
// goroutine to end. Leased connections are closed when released or destroyed.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	for _, w := range p.waiters {
		w <- grant{err: ErrClosed} // room for one: never blocks
	}
	p.waiters = nil
	for _, c := range p.checking {
		c.Conn.Close() // ends the check; its goroutine frees the slot
	}
	p.mu.Unlock()
	close(p.done)
	p.cancel()
	p.closeConns(idle...)
	p.wg.Wait()
}

// upkeep runs until Close: every tick it closes idle connections past their idle timeout
// or lifetime, starts health checks of idle ones, and dials for waiters and Warm when a
// backoff has ended.
func (p *Pool) upkeep() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.tick())
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		p.tidy(time.Now())
	}
}

func (p *Pool) tidy(now time.Time) {
	drop := p.drop[:0]
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	open := p.open
	keep := p.idle[:0]
	for _, c := range p.idle {
		if p.expired(c, now) || p.idleTooLong(c, now) || (now.Sub(c.lastUsed) >= p.cfg.IdleTimeout && open > p.cfg.Warm) {
			drop = append(drop, c)
			open--
			continue
		}
		if p.cfg.HealthInterval > 0 && now.Sub(c.lastUsed) >= p.cfg.HealthInterval &&
			now.Sub(c.lastChecked) >= p.cfg.HealthInterval {
			p.checking = append(p.checking, c)
			p.wg.Add(1)
			go p.check(c)
			continue
		}
		keep = append(keep, c)
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	if len(drop) == 0 {
		p.maybeDialLocked(now) // a backoff may have ended
	}
	p.mu.Unlock()
	if len(drop) > 0 {
		p.closeConns(drop...)
		clear(drop)
	}
	p.drop = drop[:0]
}

// check runs the health check of an idle connection taken out to p.checking, and puts it
// back (to a waiter, or the idle list in its place by last use) or closes it.
func (p *Pool) check(c *Conn) {
	defer p.wg.Done()
	err := p.cfg.HealthCheck(c, p.cfg.DialTimeout)
	now := time.Now()
	p.mu.Lock()
	for i, x := range p.checking {
		if x == c {
			n := copy(p.checking[i:], p.checking[i+1:])
			p.checking[i+n] = nil
			p.checking = p.checking[:i+n]
			break
		}
	}
	if err == nil && !p.closed && !p.expired(c, now) {
		c.lastChecked = now
		if len(p.waiters) > 0 {
			p.inUse++
			p.grantLocked(grant{c: c})
		} else {
			i := len(p.idle)
			for i > 0 && p.idle[i-1].lastUsed.After(c.lastUsed) {
				i--
			}
			p.idle = append(p.idle, nil)
			copy(p.idle[i+1:], p.idle[i:])
			p.idle[i] = c
		}
		p.mu.Unlock()
		return
	}
	if err != nil && !p.closed {
		p.stats.HealthFailures++
	}
	p.mu.Unlock()
	p.closeConns(c)
}

// Ping sends a Pyro4 PING on c and waits up to timeout for the matching PING reply.
func Ping(c *Conn, ser frame.Serializer, timeout time.Duration) error {
	return PingSigned(c, ser, nil, timeout)
}

// PingSigned is Ping for a daemon that wants every message HMAC-signed: the PING is
// signed with sg, and the reply must carry sg's signature (nil sg: Ping).
func PingSigned(c *Conn, ser frame.Serializer, sg *frame.Signer, timeout time.Duration) error {
	const seq = 0xFFFF
	h := frame.Header{Type: frame.Ping, Seq: seq, Serializer: ser}
	msg := frame.AppendMessage(make([]byte, 0, frame.HeaderSize+4), h, nil, []byte("ping"))
	if sg != nil {
		head, _, err := sg.AppendSignedHead(nil, h, []byte("ping"), nil, nil)
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		msg = append(head, "ping"...)
	}
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	m, err := c.Reader.Next()
	if err == nil {
		err = c.Reader.ReadRest(&m) // a PING's payload is a few bytes
	}
	if err == nil && sg != nil {
		err = sg.Verify(m.Payload, m.Annotations)
	}
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if m.Header.Type != frame.Ping || m.Header.Seq != seq {
		return fmt.Errorf("ping: answered with %v seq %d", m.Header.Type, m.Header.Seq)
	}
	if c.Reader.Buffered() != 0 {
		return errors.New("ping: unexpected bytes after the reply")
	}
	return nil
}
