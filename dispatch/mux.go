package dispatch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/pool"
)

// mux pipelines the calls of many client sessions onto few upstream connections of one
// handshake's pool (pooled mode with pool.pipeline > 1). A Pyro4 daemon serves the
// messages of one connection strictly in order, so requests of different clients can be
// written back to back, several in one writev, and each reply belongs to the oldest call
// not yet answered on its connection. The price is head-of-line blocking: a slow call
// delays the calls queued behind it on the same connection.
type mux struct {
	h     *handshake
	srv   *Server
	depth int           // calls in flight per connection before another connection is opened
	wait  time.Duration // for an in-flight slot when max_open × pipeline calls are in flight
	slots chan struct{}

	mu      sync.Mutex
	conns   []*muxConn
	dialing int
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
	wbuf    writer     // the reader goroutine's scratch for replies
}

func newMux(h *handshake, srv *Server, cfg PoolConfig) *mux {
	return &mux{h: h, srv: srv, depth: cfg.Pipeline, wait: cfg.WaitTimeout, slots: make(chan struct{}, cfg.MaxOpen*cfg.Pipeline)}
}

// acquireSlot takes one of the mux's in-flight slots (max_open × pipeline), waiting up to
// the pool's wait timeout.
func (x *mux) acquireSlot() error {
	select {
	case x.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(x.wait)
	defer t.Stop()
	select {
	case x.slots <- struct{}{}:
		return nil
	case <-t.C:
		return fmt.Errorf("%w: %d calls in flight", pool.ErrWaitTimeout, cap(x.slots))
	}
}

func (x *mux) releaseSlot() { <-x.slots }

// conn returns the connection with the fewest calls in flight, opening a new one when all
// have depth calls or more and the pool may open more.
func (x *mux) conn() (*muxConn, error) {
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil, pool.ErrClosed
	}
	var best *muxConn
	bestN := 0
	for _, c := range x.conns {
		c.mu.Lock()
		n := len(c.calls) - c.head
		c.mu.Unlock()
		if best == nil || n < bestN {
			best, bestN = c, n
		}
	}
	if best != nil && (bestN < x.depth || x.dialing > 0) {
		x.mu.Unlock()
		return best, nil
	}
	x.dialing++
	x.mu.Unlock()

	lease, err := x.h.pool.Acquire(context.Background())
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dialing--
	if err != nil {
		if best != nil && !errors.Is(err, pool.ErrClosed) {
			return best, nil // the pool is full (pinned sessions) or backing off: share
		}
		return nil, err
	}
	if x.closed {
		lease.Destroy()
		return nil, pool.ErrClosed
	}
	c := &muxConn{x: x, lease: lease, calls: make([]*Session, 0, x.depth)}
	x.conns = append(x.conns, c)
	x.readers.Add(1)
	go c.readLoop()
	return c, nil
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
	if c.err != nil {
		err := c.err
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
	c.mu.Unlock()
	// Let the other sessions that are ready now add their requests to this write.
	runtime.Gosched()
	c.wmu.Lock()
	c.flushLocked()
	c.wmu.Unlock()
	return nil
}

// sendLarge sends a request whose payload is too large to buffer: what is queued before
// it, then its head and the buffered part of its payload, then the rest spliced from the
// client, while the others queue behind it. Not queued means the connection had failed
// before. A failure once queued fails the connection (its stream holds part of a
// request), and the error (a copyError) tells which side failed.
func (c *muxConn) sendLarge(s *Session, head []byte, m *frame.Message, oneway bool) (queued bool, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return false, err
	}
	before := c.out
	c.out = c.spare[:0]
	c.enqueueLocked(s, oneway)
	c.writing = true // whoever queues meanwhile leaves the write to this session
	c.mu.Unlock()
	if _, err = c.lease.Conn.Write(before); err != nil {
		err = &copyError{err: err}
	} else {
		err = s.w.send(c.lease.Conn, s.cr, m, head, 0, true)
	}
	c.mu.Lock()
	c.spare = before[:0]
	if err != nil {
		c.failLocked(fmt.Errorf("writing a large request: %w", err))
	}
	c.mu.Unlock()
	c.flushLocked()
	return true, err
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

// flushLocked (c.wmu held) writes out what is queued until nothing is, then ends this
// session's turn as the writer.
func (c *muxConn) flushLocked() {
	c.mu.Lock()
	for len(c.out) > 0 && c.err == nil {
		buf := c.out
		c.out = c.spare[:0]
		c.mu.Unlock()
		_, err := c.lease.Conn.Write(buf)
		c.mu.Lock()
		c.spare = buf[:0]
		if err != nil {
			c.failLocked(fmt.Errorf("writing requests: %w", err))
		}
	}
	c.writing = false
	c.mu.Unlock()
}

// failLocked marks the connection failed and wakes its reader by closing the socket.
func (c *muxConn) failLocked(err error) {
	if c.err == nil {
		c.err = err
		c.lease.Conn.Conn.Close()
	}
}

// pop returns the session owning the next reply, or nil.
func (c *muxConn) pop() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.head == len(c.calls) {
		return nil
	}
	s := c.calls[c.head]
	c.calls[c.head] = nil
	c.head++
	if d := c.x.srv.cfg.Timeouts.Call; d > 0 {
		if c.head == len(c.calls) {
			c.lease.Conn.SetReadDeadline(time.Time{})
		} else {
			c.lease.Conn.SetReadDeadline(time.Now().Add(d))
		}
	}
	return s
}

// readLoop reads replies and hands each to the session whose call is oldest, until the
// connection fails; then every pending call gets a pyro-dispatch CommunicationError.
func (c *muxConn) readLoop() {
	defer c.x.readers.Done()
	r := c.lease.Reader
	var err error
	for err == nil {
		var m frame.Message
		if m, err = r.Next(); err != nil {
			break
		}
		s := c.pop()
		switch {
		case s == nil:
			err = fmt.Errorf("unexpected %v message (seq %d) with no call pending", m.Header.Type, m.Header.Seq)
		case m.Header.Seq != s.call.h.Seq:
			err = fmt.Errorf("backend answered seq %d with seq %d: stream out of step", s.call.h.Seq, m.Header.Seq)
			c.answer(s, err)
		default:
			err = c.deliver(s, r, &m)
		}
	}
	c.mu.Lock()
	c.failLocked(err)
	err = c.err // the first failure, when the reader saw only its consequence
	pending := c.calls[c.head:]
	c.calls, c.head = nil, 0
	c.mu.Unlock()
	c.x.remove(c)
	c.lease.Destroy()
	for _, s := range pending {
		c.answer(s, err)
	}
	if len(pending) > 0 || !errors.Is(err, pool.ErrClosed) {
		c.x.srv.log.Warn("pipelined upstream connection lost", zap.String("backend", c.x.h.key.target.Name),
			zap.Int("calls_failed", len(pending)), zap.Error(err))
	}
}

// deliver relays reply m to session s's client and completes the call. Only an upstream
// failure is returned. A client that went away before its reply loses it, and the reply
// is read to its end so that the connection stays in step; a failure in the middle of a
// spliced reply may be on either side and leaves the stream's position unknown, so it
// closes the client and fails the connection.
func (c *muxConn) deliver(s *Session, r *frame.Reader, m *frame.Message) error {
	limit := s.srv.bufferedLimit
	if m.Header.DataLen <= limit {
		if err := r.ReadRest(m); err != nil {
			c.answer(s, err)
			return err
		}
	}
	outcome := "ok"
	if m.Header.Flags.Has(frame.FlagException) {
		outcome = "exception"
	}
	size := m.Header.DataLen
	err := c.wbuf.send(s.client, r, m, nil, limit, false)
	if err != nil && fromClient(err) { // the writev failed: nothing was spliced yet
		s.debug("client gone before its reply", zap.Error(err), zap.Stringer("corr", corrID(s.call.corr)))
		if err = r.Discard(m); err == nil {
			outcome = "client gone"
		}
	}
	if err != nil {
		s.client.Close() // its reply is cut short: the session ends
		outcome = "error"
	}
	s.logCall(s.call.h, s.call.corr, s.call.object, s.call.method, s.call.start, outcome, size)
	s.finishCall()
	return err
}

// answer ends session s's call with a pyro-dispatch CommunicationError for the client.
func (c *muxConn) answer(s *Session, err error) {
	reason := fmt.Sprintf("pyro-dispatch: backend %s lost during the call: %v", s.target.Name, err)
	s.sendException(s.call.h, s.call.corr, frame.ExcCommunicationError, reason)
	s.logCall(s.call.h, s.call.corr, s.call.object, s.call.method, s.call.start, "error", 0)
	s.finishCall()
}

// pipelinedCall is what a mux connection needs of a session's call to deliver its reply
// and log it.
type pipelinedCall struct {
	x              *mux
	h              frame.Header
	corr           []byte
	object, method string
	start          time.Time
}

// relayPipelined sends request m on a shared connection of the session's mux and returns
// without waiting for the reply, which the connection's reader delivers.
func (s *Session) relayPipelined(m *frame.Message, start time.Time, object, method string) error {
	large := m.Header.DataLen > s.srv.bufferedLimit
	if !large {
		if err := s.cr.ReadRest(m); err != nil {
			return fmt.Errorf("reading request: %w", err)
		}
		s.setClientDeadline(0)
	}
	x := s.hs.mux
	if err := x.acquireSlot(); err != nil {
		return s.refuseCall(m, errors.New("pyro-dispatch: "+poolReason(err, s.target, s.hs.pool)))
	}
	c, err := x.conn()
	if errors.Is(err, pool.ErrClosed) { // the handshake was evicted from the cache
		x.releaseSlot()
		s.hs = s.ln.handshakes.renew(s.hs)
		x = s.hs.mux
		if err = x.acquireSlot(); err == nil {
			if c, err = x.conn(); err != nil {
				x.releaseSlot()
			}
		}
	} else if err != nil {
		x.releaseSlot()
	}
	if err != nil {
		return s.refuseCall(m, errors.New("pyro-dispatch: "+poolReason(err, s.target, s.hs.pool)))
	}
	h := m.Header
	oneway := h.Type == frame.Invoke && h.Flags.Has(frame.FlagOneway)
	corr := s.rewriteRequest(m)
	s.logger() // built now: the connection's reader logs for this session
	s.call = pipelinedCall{x: x, h: h, corr: corr, object: object, method: method, start: start}
	if s.done == nil {
		s.done = make(chan struct{}, 1)
	}
	s.pending = !oneway
	queued := true
	if large {
		queued, err = c.sendLarge(s, s.head, m, oneway)
	} else if err = c.send(s, s.head, m.Payload, oneway); err != nil {
		queued = false
	}
	if !queued { // the connection had failed: nothing was sent
		s.pending = false
		x.releaseSlot()
		return s.refuseCall(m, fmt.Errorf("pyro-dispatch: backend %s lost: %w", s.target.Name, err))
	}
	if oneway {
		x.releaseSlot()
		if err == nil {
			s.logCall(h, corr, object, method, start, "oneway", 0)
		}
	}
	if err == nil {
		return nil
	}
	if fromClient(err) {
		return err // the session ends; a call is answered by the reader, to a closed client
	}
	s.logger().Warn("pipelined upstream connection lost while sending", zap.Error(err), zap.Stringer("corr", corrID(corr)))
	return nil // the reader answers the call with the connection's failure
}

// finishCall ends the session's pipelined call (reader goroutine).
func (s *Session) finishCall() {
	s.call.x.releaseSlot()
	s.done <- struct{}{}
}

// awaitCall waits until the session's pipelined call, if any, has been answered.
func (s *Session) awaitCall() {
	if s.pending {
		<-s.done
		s.pending = false
	}
}
