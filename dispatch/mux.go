package dispatch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/splice"
	"github.com/pyro-dispatch/pyro-dispatch/internal/timers"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
	"github.com/pyro-dispatch/pyro-dispatch/pool"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// mux pipelines the calls of many client sessions onto few upstream connections of one
// handshake's pool (pooled mode with pool.pipeline > 1). A Pyro4 daemon serves the
// messages of one connection strictly in order, so requests of different clients can be
// written back to back, several in one write, and each reply belongs to the oldest call
// not yet answered on its connection. The price is head-of-line blocking: a slow call
// delays the calls queued behind it on the same connection, so calls are queued behind
// others only when every connection is busy and no other may be opened (conn).
type mux struct {
	h        *handshake
	srv      *Server
	depth    int           // pool.pipeline: calls on one connection at most, with maxOpen open (slots)
	wait     time.Duration // for an in-flight slot when max_open × pipeline calls are in flight
	lifetime time.Duration // pool.max_lifetime: then a connection takes no new calls and closes
	maxIdle  time.Duration // pool.max_idle_time: a connection with no call this long is retired
	slots    chan struct{}
	maxOpen  int // pool.max_open

	mu      sync.Mutex
	freed   chan struct{} // closed when a reservation ends (reserve), nil when none is awaited
	conns   []*muxConn
	dialing int           // connections being opened
	dialed  chan struct{} // closed when no connection is being opened any more
	closed  bool
	readers sync.WaitGroup // the connections' reader goroutines
}

// muxConn is one upstream connection of a mux: the leased pool connection, the requests
// waiting to be written and the calls waiting for their replies. Writers combine: the
// session that finds no write in progress writes everything queued so far, including what
// other sessions add while it writes. One goroutine, owned by the muxConn, reads replies
// until the connection fails or the mux closes.
type muxConn struct {
	x     *mux
	lease pool.Lease

	wmu sync.Mutex // held while writing to the connection

	mu      sync.Mutex
	out     []byte     // requests not yet written
	spare   []byte     // the other write buffer
	writing bool       // a session is writing out
	calls   []*Session // calls written or queued, oldest first, awaiting replies
	head    int        // calls[head:] are pending
	err     error      // set once the connection failed
	retired bool       // past its lifetime: closes once calls[head:] is empty
	// coming counts the calls that chose the connection (mux.conn) and are not queued on
	// it yet: they count as on it, so that two calls never both take it for free.
	coming int
	// reserved: a large request has the connection to itself (reserve); no new calls.
	reserved  bool
	abandoned int           // pending calls whose client left: no new calls until they are answered
	drained   chan struct{} // closed once no call is on it (queued or being delivered) or it failed
	// delivering: the reader is relaying the reply of a call it popped. A reservation
	// waits for that too: a large request written meanwhile could fail the connection
	// (its client leaving halfway) under the reply being read.
	delivering bool
	expires    time.Time // when it retires; zero: never
	lastUsed   time.Time // when its last call was answered (with pool.max_idle_time)
	wbuf       writer    // the reader goroutine's scratch for replies
}

func newMux(h *handshake, srv *Server, cfg config.Pool) *mux {
	return &mux{h: h, srv: srv, depth: cfg.Pipeline, wait: cfg.WaitTimeout, lifetime: cfg.MaxLifetime, maxIdle: cfg.MaxIdleTime,
		slots: make(chan struct{}, cfg.MaxOpen*cfg.Pipeline), maxOpen: cfg.MaxOpen}
}

// acquireSlot takes one of the mux's in-flight slots (max_open × pipeline), waiting up to
// the pool's wait timeout.
func (x *mux) acquireSlot() error {
	select {
	case x.slots <- struct{}{}:
		return nil
	default:
	}
	t := timers.Start(x.wait)
	defer timers.Stop(t)
	select {
	case x.slots <- struct{}{}:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: %d calls in flight", pool.ErrWaitTimeout, cap(x.slots))
	}
}

func (x *mux) releaseSlot() { <-x.slots }

// conn returns a connection for a call, which counts as on it from then on (claim). A
// call is queued behind another only when it must: it takes a connection with no call
// on it if there is one; else it opens one while the mux has fewer than max_open (dials
// included) and the pool can give one at once (mayOpenLocked); only when neither is
// possible does it join the connection with the fewest calls, so pipelining deepens
// only under load. With none to join nor to open while one is being opened, callers
// wait for that one. A call that came with a correlation id may be nested in a call in
// flight (a Pyro4 daemon's method gives its calls the incoming call's id): it takes only
// a connection with no call on it, opening one, beyond max_open when the pool is full,
// rather than wait behind a call whose daemon thread may be waiting for it, directly or
// through a cycle of calls.
func (x *mux) conn(nested, lastResort bool) (*muxConn, error) {
	waited := false
	for {
		x.mu.Lock()
		if x.closed {
			x.mu.Unlock()
			return nil, pool.ErrClosed
		}
		var now time.Time // for retireLocked: read once per decision, only when needed
		if x.lifetime > 0 || x.maxIdle > 0 {
			now = time.Now()
		}
		var best *muxConn
		bestN, reserved, waits := 0, 0, false
		kept := x.conns[:0]
		for _, c := range x.conns {
			c.mu.Lock()
			if !now.IsZero() && c.retireLocked(now) {
				c.mu.Unlock()
				continue
			}
			kept = append(kept, c)
			n, failed := len(c.calls)-c.head+c.coming, c.err != nil
			// A nested call never waits behind another: the daemon thread of the call it is
			// nested in may be serving this connection, or waiting for a call that is.
			busy := !failed && nested && n > 0
			waits = waits || busy
			held := !failed && (c.reserved || c.abandoned > 0)
			if held {
				reserved++
			}
			usable := !failed && !held && !busy
			c.mu.Unlock()
			if usable && (best == nil || n < bestN) {
				best, bestN = c, n
			}
		}
		clear(x.conns[len(kept):])
		x.conns = kept
		mayOpen := (best == nil || bestN > 0) && x.mayOpenLocked()
		switch {
		case best != nil && !mayOpen: // free, or every one busy and no other to be had
			best.claim(1)
			x.mu.Unlock()
			return best, nil
		case best == nil && !mayOpen && reserved > 0 && x.dialing == 0 && len(x.conns) >= x.maxOpen:
			// Every connection is held (by a large call, or a call its client abandoned)
			// and no other may be opened: wait for one to be free.
			if x.freed == nil {
				x.freed = make(chan struct{})
			}
			freed := x.freed
			x.mu.Unlock()
			if err := x.await(freed); err != nil {
				return nil, err
			}
			continue
		case best == nil && !mayOpen && x.dialing > 0 && !waited:
			dialed := x.dialed
			x.mu.Unlock()
			<-dialed
			waited = true
			continue
		}
		var freed <-chan struct{}
		if best == nil && reserved > 0 {
			// The pool's other connections may be pinned by sessions: while this call
			// waits for one of them, a held connection of the mux may be freed first.
			if x.freed == nil {
				x.freed = make(chan struct{})
			}
			freed = x.freed
		}
		x.dialing++
		if x.dialed == nil {
			x.dialed = make(chan struct{})
		}
		x.mu.Unlock()
		// With a connection to join, the call is not one with nowhere else to go.
		c, err := x.open(best, freed, waits && best == nil, lastResort && best == nil)
		if errors.Is(err, context.Canceled) {
			continue // a held connection was freed while the pool had none: decide again
		}
		return c, err
	}
}

// freedContext is done once a held connection of the mux is freed (signalFreed): a call
// waiting for the pool stops waiting, to take that one.
type freedContext struct {
	context.Context // Background: no deadline, no values
	freed           <-chan struct{}
}

func (c freedContext) Done() <-chan struct{} { return c.freed }

func (c freedContext) Err() error {
	select {
	case <-c.freed:
		return context.Canceled
	default:
		return nil
	}
}

// mayOpenLocked (x.mu held) reports whether the mux may open another connection now:
// fewer than max_open are open or being opened, and the pool would give one without
// waiting (its connections also serve pinned sessions).
func (x *mux) mayOpenLocked() bool {
	return len(x.conns)+x.dialing < x.maxOpen && !x.h.pool.Full()
}

// claim adds n to the calls coming to c: 1 for a call that chose it, counted as on it
// until send or sendLarge queues it; -1 for such a call that is not sent after all.
func (c *muxConn) claim(n int) {
	c.mu.Lock()
	c.coming += n
	c.mu.Unlock()
}

// await waits for ch to close, up to the pool's wait timeout.
func (x *mux) await(ch <-chan struct{}) error {
	t := timers.Start(x.wait)
	defer timers.Stop(t)
	select {
	case <-ch:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: every connection taken by a large request", pool.ErrWaitTimeout)
	}
}

// open leases a new connection for the mux and starts its reader; when the pool has none
// to give, best (if any) is shared instead. The call counts as on the connection
// returned (claim). A nested call that no connection may take (each carries the call it
// is nested in) gets one beyond max_open when it must; a call with no other member to go
// to dials even while the pool backs off (lastResort). A wait for the pool ends with
// context.Canceled when freed (if not nil) closes.
func (x *mux) open(best *muxConn, freed <-chan struct{}, nested, lastResort bool) (*muxConn, error) {
	var lease pool.Lease
	var err error
	full := x.h.pool.Full()
	ctx := context.Background()
	if freed != nil && full { // only a wait: a dial under way is not cut short
		ctx = freedContext{ctx, freed}
	}
	if best != nil && full && !nested { // share rather than wait for the pool
		x.mu.Lock()
		defer x.mu.Unlock()
		x.openDone()
		best.claim(1)
		return best, nil
	}
	if nested && full {
		lease, err = x.h.pool.AcquireBeyond(context.Background())
		x.srv.log.Info("opened a backend connection beyond pool.max_open for a nested call (a call cycle through the dispatcher)",
			zap.String("backend", x.h.key.member.Addr), zap.Error(err))
	} else if lastResort {
		lease, err = x.h.pool.AcquireLastResort(ctx)
	} else {
		lease, err = x.h.pool.Acquire(ctx)
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.openDone()
	if err != nil {
		if best != nil && !errors.Is(err, pool.ErrClosed) {
			best.claim(1)
			return best, nil // the pool is full (pinned sessions) or backing off: share
		}
		return nil, err
	}
	if x.closed {
		lease.Destroy()
		return nil, pool.ErrClosed
	}
	c := &muxConn{x: x, lease: lease, calls: make([]*Session, 0, x.depth), coming: 1, lastUsed: time.Now()}
	c.wbuf.pipe = splice.New() // closed by readLoop
	if x.lifetime > 0 {
		c.expires = time.Now().Add(x.lifetime)
	}
	x.conns = append(x.conns, c)
	x.readers.Add(1)
	go c.readLoop()
	return c, nil
}

// openDone (x.mu held) ends an open's count, waking the calls that wait for it.
func (x *mux) openDone() {
	if x.dialing--; x.dialing == 0 {
		close(x.dialed)
		x.dialed = nil
	}
}

// errClientLeft fails a connection reserved for a large request whose client left in
// the middle of sending it: no other call is on it, and the daemon is not to blame.
var errClientLeft = errors.New("the client left in the middle of its large request")

// errReserved refuses a small call on a connection a large request reserved meanwhile.
var errReserved = errors.New("connection reserved by a large request")

// errRetired ends a connection retired (retireLocked) once its calls are answered.
var errRetired = errors.New("pipelined connection retired (max_lifetime or max_idle_time)")

// retireLocked (c.mu held) takes c out of use when it is past its lifetime, or unused
// past max_idle_time (before the daemon's own idle timeout closes it under a call): it
// takes no new calls and closes once the calls it carries are answered. It reports
// whether it did; the caller (conn, under x.mu) then drops c from x.conns.
func (c *muxConn) retireLocked(now time.Time) bool {
	x := c.x
	quiet := c.head == len(c.calls) && !c.delivering // no call on it, none being answered
	idle := x.maxIdle > 0 && quiet && !c.reserved && now.Sub(c.lastUsed) >= x.maxIdle
	if !idle && (c.expires.IsZero() || now.Before(c.expires)) {
		return false
	}
	c.retired = true
	if quiet { // else the reader fails it once the last reply is through
		c.failLocked(errRetired)
	}
	return true
}

// close fails every connection of the mux, whose calls get a pyro-dispatch error, and
// waits for their reader goroutines to end.
func (x *mux) close() {
	x.mu.Lock()
	x.closed = true
	for _, c := range x.conns {
		c.mu.Lock()
		c.failLocked(pool.ErrClosed) // the reader fails the pending calls and destroys the lease
		c.mu.Unlock()
	}
	x.mu.Unlock()
	x.readers.Wait()
}

// drain stops the mux taking calls: each connection closes once the calls it carries are
// answered and their replies relayed (a reload removed its member, or its handshake left
// the cache).
func (x *mux) drain() {
	x.mu.Lock()
	x.closed = true
	for _, c := range x.conns {
		c.mu.Lock()
		c.retired = true
		if c.head == len(c.calls) && !c.delivering { // else delivered fails it
			c.failLocked(errRetired)
		}
		c.mu.Unlock()
	}
	x.mu.Unlock()
}

func (x *mux) remove(c *muxConn) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for i, o := range x.conns {
		if o == c {
			x.conns = append(x.conns[:i], x.conns[i+1:]...)
			return
		}
	}
}

// send queues one whole request (head and payload) and, unless oneway, the session as
// the owner of the next reply; the first sender writes for all. An error means the
// connection had failed before: nothing was queued. A write that fails later fails the
// connection, whose reader then answers every call queued on it.
func (c *muxConn) send(s *Session, head, payload []byte, oneway bool) error {
	c.mu.Lock()
	c.coming--
	if c.err != nil || c.reserved {
		err := c.err
		if err == nil {
			err = errReserved // reserved since it was picked: the caller takes another
		}
		c.mu.Unlock()
		return err
	}
	c.out = append(append(c.out, head...), payload...)
	c.enqueueLocked(s, oneway)
	if c.writing {
		c.mu.Unlock()
		return nil
	}
	c.writing = true
	// Under load (other calls in flight on the connection, or coming to it), let the
	// sessions that are ready now add their requests to this write. Without, yielding
	// would only wake an idle thread of the scheduler to find nothing: a futex call and
	// two context switches per call, about a quarter of a lone client's added latency.
	busy := len(c.calls)-c.head > 1 || c.coming > 0
	c.mu.Unlock()
	if busy {
		runtime.Gosched()
	}
	c.wmu.Lock()
	c.flushLocked(s)
	c.wmu.Unlock()
	return nil
}

// enqueueLocked makes s the owner of the reply after those already awaited.
func (c *muxConn) enqueueLocked(s *Session, oneway bool) {
	if oneway {
		return
	}
	if c.head == len(c.calls) {
		c.calls, c.head = c.calls[:0], 0
		if d := c.x.srv.cfg.Timeouts.Call; d > 0 {
			c.lease.Conn.SetReadDeadline(time.Now().Add(d))
		}
	}
	c.calls = append(c.calls, s)
}

// flushLocked (c.wmu held) writes out what is queued until nothing is, then ends the
// turn of session s as the writer.
func (c *muxConn) flushLocked(s *Session) {
	c.mu.Lock()
	for len(c.out) > 0 && c.err == nil {
		buf := c.out
		c.out = c.spare[:0]
		c.mu.Unlock()
		err := c.guard(s, func() error {
			_, err := c.lease.Conn.Write(buf)
			return err
		})
		c.mu.Lock()
		c.spare = buf[:0]
		if err != nil {
			c.failLocked(fmt.Errorf("writing requests: %w", err))
		}
	}
	c.writing = false
	c.mu.Unlock()
}

// guard runs f, in which session s writes requests on c for the calls queued on it, and
// returns f's error. A panic in f is recovered and returned as an error (errPanicked) for
// the caller to fail c with: the calls on c then end as on the daemon's loss, their
// clients closed, and c's locks and writer's turn are given up as after any failed write.
func (c *muxConn) guard(s *Session, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = c.x.srv.recovered(p, "panic writing requests on a shared upstream connection: failing it, and the calls on it as on the daemon's loss",
				c.x.h.lname, s, zap.String("backend", c.x.h.key.member.Addr))
		}
	}()
	if panicHook != nil {
		panicHook(s, atWrite)
	}
	return f()
}

// failLocked marks the connection failed and wakes its reader by closing the socket.
func (c *muxConn) failLocked(err error) {
	if c.err == nil {
		c.err = err
		c.lease.Conn.Conn.Close()
	}
	if c.drained != nil {
		close(c.drained)
		c.drained = nil
	}
}

// reserve takes c out of use for new calls and returns a channel closed once the calls
// already on it are answered (or it failed): then a large request may have it to itself.
func (c *muxConn) reserve() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserved = true
	if (c.head == len(c.calls) && !c.delivering) || c.err != nil {
		done := make(chan struct{})
		close(done)
		return done
	}
	if c.drained == nil {
		c.drained = make(chan struct{})
	}
	return c.drained
}

// unreserve puts c back in use once the large request's call ended.
func (c *muxConn) unreserve() {
	c.mu.Lock()
	c.reserved = false
	c.mu.Unlock()
	c.x.signalFreed()
}

// signalFreed wakes the calls waiting for a held connection to be free (conn).
func (x *mux) signalFreed() {
	x.mu.Lock()
	if x.freed != nil {
		close(x.freed)
		x.freed = nil
	}
	x.mu.Unlock()
}

// abandon marks session s's call on c as abandoned by its client (gone before its
// reply): c takes no new call until that reply has been read and dropped, so that no
// later call waits behind a call nobody wants.
func (c *muxConn) abandon(s *Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.calls[c.head:] {
		if p == s && !s.call.abandoned {
			s.call.abandoned = true
			c.abandoned++
			return
		}
	}
}

// sendLarge sends a request whose payload is too large to buffer on a connection reserved
// for it: what oneway requests are queued first, then its head and the buffered part of
// its payload, then the rest spliced from the client. Not queued means the connection had
// failed before. A failure once queued fails the connection, on which no other call is
// (its stream holds part of a request), and the error (a copyError) tells which side
// failed.
func (c *muxConn) sendLarge(s *Session, head []byte, m *frame.Message, oneway bool) (queued bool, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	c.coming--
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return false, err
	}
	before := c.out
	c.out = c.spare[:0]
	c.enqueueLocked(s, oneway)
	c.writing = true
	c.mu.Unlock()
	err = c.guard(s, func() error {
		if _, err := c.lease.Conn.Write(before); err != nil {
			return &copyError{err: err}
		}
		return s.w.send(c.lease.Conn, s.cr, m, head, 0, true)
	})
	c.mu.Lock()
	c.spare = before[:0]
	if err != nil {
		if fromClient(err) {
			// Still fromClient: the session ends on it rather than wait for a next request.
			err = fmt.Errorf("%w: %w", errClientLeft, err)
		} else {
			err = fmt.Errorf("writing a large request: %w", err)
		}
		c.failLocked(err)
	}
	c.mu.Unlock()
	c.flushLocked(s)
	return true, err
}

// pop returns the session owning the next reply, or nil.
func (c *muxConn) pop() *Session {
	s, freed := c.popLocked()
	if freed {
		c.x.signalFreed() // after c.mu is released: x.mu comes first
	}
	return s
}

// popLocked is pop under c.mu; freed reports that the last abandoned call on c ended.
func (c *muxConn) popLocked() (s *Session, freed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head == len(c.calls) {
		return nil, false
	}
	s = c.calls[c.head]
	c.calls[c.head] = nil
	c.head++
	c.delivering = true
	if s.call.abandoned {
		c.abandoned--
		freed = c.abandoned == 0
	}
	if c.head == len(c.calls) {
		if c.x.maxIdle > 0 {
			c.lastUsed = time.Now() // idle from now on
		}
	}
	if d := c.x.srv.cfg.Timeouts.Call; d > 0 {
		if c.head == len(c.calls) {
			c.lease.Conn.SetReadDeadline(time.Time{})
		} else {
			c.lease.Conn.SetReadDeadline(time.Now().Add(d))
		}
	}
	return s, freed
}

// readLoop relays replies, each to the session whose call is oldest, until the
// connection fails; then the clients of its pending calls are closed, as the daemon's
// loss would close them.
func (c *muxConn) readLoop() {
	defer c.x.readers.Done()
	defer c.wbuf.pipe.Close()
	var err error
	var unfinished *Session // the call whose reply failed, ended with the others below
	for err == nil {
		unfinished, err = c.relayReply()
	}
	c.mu.Lock()
	c.failLocked(err)
	err = c.err // the first failure, when the reader saw only its consequence
	// The connection is failed before any client of its calls is closed: a client that
	// reconnects at once gets another connection.
	pending := c.calls[c.head:]
	if unfinished != nil {
		pending = append([]*Session{unfinished}, pending...)
	}
	c.calls, c.head = nil, 0
	c.mu.Unlock()
	c.x.remove(c)
	c.lease.Destroy()
	for _, s := range pending {
		c.lost(s, err)
	}
	switch {
	case errors.Is(err, errClientLeft): // only that client's call was on it; lost said why
	case len(pending) > 0:
		if !errors.Is(err, pool.ErrClosed) && !errors.Is(err, errPanicked) { // the daemon is not to blame for those
			c.x.h.key.member.Failed(err)
		}
		c.x.srv.log.Warn("pipelined upstream connection lost", zap.String("backend", c.x.h.key.member.Addr),
			zap.Int("calls_failed", len(pending)), zap.Error(err))
	case !errors.Is(err, pool.ErrClosed) && !errors.Is(err, errRetired):
		c.x.srv.log.Info("pipelined upstream connection closed", zap.String("backend", c.x.h.key.member.Addr), zap.Error(err))
	}
}

// relayReply reads the next reply and relays it to the session whose call is oldest. An
// error fails the connection; unfinished is then the session whose call was taken off
// the connection but not ended. A panic is recovered as such an error (errPanicked):
// the position in the stream is lost, so the connection fails and the calls on it end
// as on the daemon's loss, their clients closed; the process and the other clients
// carry on.
func (c *muxConn) relayReply() (unfinished *Session, err error) {
	var s *Session // taken off the connection, its call not ended yet
	defer func() {
		if p := recover(); p != nil {
			unfinished = s
			err = c.x.srv.recovered(p, "panic relaying a reply on a shared upstream connection: failing it, and the calls on it as on the daemon's loss",
				c.x.h.lname, s, zap.String("backend", c.x.h.key.member.Addr))
		}
	}()
	r := c.lease.Reader
	m, err := r.Next()
	if err != nil {
		return nil, err
	}
	s = c.pop()
	switch {
	case s == nil:
		return nil, fmt.Errorf("unexpected %v message (seq %d) with no call pending", m.Header.Type, m.Header.Seq)
	case m.Header.Seq != s.call.h.Seq:
		return s, fmt.Errorf("backend answered seq %d with seq %d: stream out of step", s.call.h.Seq, m.Header.Seq)
	}
	finished, err := c.deliver(s, r, &m)
	if !finished {
		return s, err
	}
	s = nil // its call ended
	if err == nil {
		c.delivered()
	}
	return nil, err
}

// delivered ends the delivery of a reply: a large request waiting for the connection to
// be free gets it, and a retired connection with no call left closes.
func (c *muxConn) delivered() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delivering = false
	if c.head == len(c.calls) {
		if c.drained != nil { // a large request waits for the connection
			close(c.drained)
			c.drained = nil
		}
		if c.retired {
			c.failLocked(errRetired)
		}
	}
}

// deliver relays reply m to session s's client and completes the call, unless the reply
// could not be read or the backend failed in the middle of it (finished false: the
// caller ends the call). Only an upstream failure is returned. A client that cannot
// take its reply (gone, or not reading within the header timeout) is closed; the rest
// of its reply is read past so that the connection stays in step and the calls queued
// behind it carry on: the connection's pipe (splice.Pipe) knows how much of a spliced
// reply it took from the backend when the client's side failed.
func (c *muxConn) deliver(s *Session, r *frame.Reader, m *frame.Message) (finished bool, err error) {
	s.cl.replyBegins() // the client may answer the reply before its session's next read
	if panicHook != nil {
		panicHook(s, atReply)
	}
	limit := s.srv.bufferedLimit
	var head []byte
	if s.hm != nil {
		if head, err = s.hm.signReply(r, m); err != nil {
			return false, err
		}
	}
	if m.Header.DataLen <= limit {
		if err := r.ReadRest(m); err != nil {
			return false, err
		}
	}
	outcome := metrics.OK
	if m.Header.Flags.Has(frame.FlagException) {
		outcome = metrics.Exception
	}
	size := m.Header.DataLen
	var within time.Duration
	if d := s.srv.cfg.Timeouts.Header; d > 0 {
		// A client that does not read its replies must not stall the calls behind it on
		// this connection: it gets the header timeout, plus a second per MiB of reply.
		within = d + time.Duration(size>>20)*time.Second
	}
	err = c.wbuf.sendWithin(s.cl, r, m, head, limit, within) // s.cl: its socket only (the session reads it)
	if err != nil && !fromClient(err) {
		// The backend failed mid-reply: the call is lost with the connection, whose
		// reader ends it as on the daemon's loss (lost closes the client).
		return false, err
	}
	if err != nil {
		s.client.Close() // gone, or too slow: the session ends
		s.debug("reply not delivered", zap.Error(err), zap.Stringer("corr", corrID(s.call.corr)))
		outcome = metrics.ClientGone
		// The reader's position is known: the rest is skipped, and the calls behind
		// carry on. If the backend fails meanwhile, the connection is failed before the
		// call ends, so that no call is queued on it any more.
		if err = r.Discard(m); err != nil {
			outcome = metrics.BackendLost
			c.mu.Lock()
			c.failLocked(err)
			c.mu.Unlock()
		}
	}
	s.logCall(s.call.member, s.call.h, s.call.corr, s.call.object, s.call.method, s.call.start, outcome, size)
	s.finishCall()
	return true, err
}

// lost ends session s's call after its connection failed with the call written (or
// queued behind calls that were): the client's connection is closed, as the daemon's
// loss would close it, so its Pyro4 proxy raises ConnectionClosedError and may retry or
// reconnect. The call is never sent again.
func (c *muxConn) lost(s *Session, err error) {
	s.cl.replyBegins() // none will come: the session's read ends with the close
	s.client.Close()
	if errors.Is(err, errClientLeft) {
		s.logger().Info("client left in the middle of its large request: its upstream connection is closed",
			zap.String("backend", s.call.member.Addr), zap.Error(err), zap.Stringer("corr", corrID(s.call.corr)))
		s.logCall(s.call.member, s.call.h, s.call.corr, s.call.object, s.call.method, s.call.start, metrics.ClientGone, 0)
		s.finishCall()
		return
	}
	s.logger().Warn(msgBackendLost, zap.String("backend", s.call.member.Addr), zap.Error(err), zap.Stringer("corr", corrID(s.call.corr)))
	s.logCall(s.call.member, s.call.h, s.call.corr, s.call.object, s.call.method, s.call.start, lostOutcome(err), 0)
	s.finishCall()
}

// pipelinedCall is what a mux connection needs of a session's call to deliver its reply
// and log it.
type pipelinedCall struct {
	x              *mux
	member         *routing.Member
	on             *muxConn // the connection it was sent on
	reserved       bool     // a large call: on is reserved for it until it ends
	abandoned      bool     // its client left before the reply (on's mu)
	h              frame.Header
	corr           []byte
	object, method string
	start          time.Time
	done           chan struct{} // signaled when the call ends
}

// relayPipelined sends request m on a shared connection of a member of the call's group
// and returns without waiting for the reply, which the connection's reader delivers. A
// request goes onto a shared connection only once it is complete, so that a client that
// leaves halfway costs no one else: a small one is read whole first; a large one (over
// buffered_payload) gets a connection reserved for it, where it is spliced from the
// client once the calls already on it are answered, and no other call is queued behind
// it until its reply came.
func (s *Session) relayPipelined(m *frame.Message, start time.Time, object, method string) error {
	large := m.Header.DataLen > s.srv.bufferedLimit
	if !large {
		if err := s.cr.ReadRest(m); err != nil {
			return fmt.Errorf("reading request: %w", err)
		}
		s.setClientDeadline(0)
	}
	h := m.Header
	oneway := h.Type == frame.Invoke && h.Flags.Has(frame.FlagOneway)
	_, nested := m.Annotations.Lookup(frame.CORR) // from the client: maybe nested in a call
	corr := s.rewriteRequest(m)
	s.logger() // built now: the connection's reader logs for this session
	if s.call == nil {
		s.call = &pipelinedCall{done: make(chan struct{}, 1)}
	}
	var err error
	for try := 0; try < 2; try++ { // a connection that failed just before: take another
		var x *mux
		var c *muxConn
		if x, c, err = s.pipeConn(nested); err != nil {
			break
		}
		if large {
			<-c.reserve()
		}
		if s.leftWhileWaiting(start, h, corr, object, method) {
			c.claim(-1)
			s.endPipelined(x, c, large)
			return errLogged
		}
		*s.call = pipelinedCall{x: x, member: s.member, on: c, reserved: large, h: h, corr: corr, object: object, method: method, start: start, done: s.call.done}
		s.pending = !oneway
		s.cl.owed.Store(s.pending) // before the reply can begin (deliver)
		s.member.Begin()
		queued := false
		if large {
			queued, err = c.sendLarge(s, s.head, m, oneway)
		} else if err = c.send(s, s.head, m.Payload, oneway); err == nil {
			queued = true
		}
		if queued {
			if oneway {
				s.endPipelined(x, c, large)
				if err == nil {
					s.logCall(s.member, h, corr, object, method, start, metrics.Oneway, 0)
				}
			}
			if fromClient(err) {
				return err // the session ends; its call is ended by the reader
			}
			return nil // a failed write failed the connection: its reader ends the call
		}
		s.pending = false
		s.cl.replyBegins() // none is owed
		s.endPipelined(x, c, large)
	}
	// No connection took it: nothing was sent.
	return s.refuseCall(m, errors.New("pyro-dispatch: "+poolReason(err, s.member, s.hs.pool)))
}

// endPipelined ends a call that expects no reply, or that no connection took: its slot,
// its member's count, its reservation.
func (s *Session) endPipelined(x *mux, c *muxConn, reserved bool) {
	if reserved {
		c.unreserve()
	}
	x.releaseSlot()
	s.member.End()
}

// pipeConn takes an in-flight slot and a connection of a mux of the call's group: a
// member by the group's balance, the next one while members cannot be reached. A nested
// call (see conn) takes only a connection with no call on it.
func (s *Session) pipeConn(nested bool) (*mux, *muxConn, error) {
	a := attempt{g: s.group, pin: s.pin}
	for {
		member, err := a.next(&s.req)
		if err != nil {
			return nil, nil, err
		}
		x, c, err := s.pipeConnTo(member, nested, a.lastResort)
		switch {
		case err == nil:
			return x, c, nil
		case a.retry(member, err):
			continue
		}
		if rerr := s.reroute(&a, member); rerr != nil {
			return nil, nil, rerr
		} else if a.g != nil {
			continue
		}
		return nil, nil, err
	}
}

// pipeConnTo takes an in-flight slot and a connection of member's mux for the session's
// handshake, renewing the handshake once when it was evicted from the cache.
func (s *Session) pipeConnTo(member *routing.Member, nested, lastResort bool) (*mux, *muxConn, error) {
	h, err := s.handshakeWith(member)
	if err != nil {
		return nil, nil, err
	}
	s.hs, s.member = h, member
	for try := 0; ; try++ {
		x := s.hs.mux
		if err := x.acquireSlot(); err != nil {
			return nil, nil, err
		}
		c, err := x.conn(nested, lastResort)
		if err == nil {
			return x, c, nil
		}
		x.releaseSlot()
		if try > 0 || !errors.Is(err, pool.ErrClosed) {
			return nil, nil, err
		}
		// Not renewed (its member left the configuration): the session keeps it, for the
		// call routed again and the next member's handshake, made like it (handshakeWith).
		h, err := s.st.handshakes.renew(s.hs)
		if err != nil {
			return nil, nil, err
		}
		s.hs = h
	}
}

// finishCall ends the session's pipelined call (reader goroutine).
func (s *Session) finishCall() {
	if s.call.reserved {
		s.call.on.unreserve()
	}
	s.call.member.End()
	s.call.x.releaseSlot()
	s.call.done <- struct{}{}
}

// awaitCall waits until the session's pipelined call, if any, has been answered.
func (s *Session) awaitCall() {
	if s.pending {
		<-s.call.done
		s.pending = false
	}
}
