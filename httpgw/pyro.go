package httpgw

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/pool"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// maxMessage bounds a reply from a daemon or the name server.
const maxMessage = 64 << 20

// meta is the metadata a daemon sends in its CONNECTOK (META_ON_CONNECT).
type meta struct {
	Methods []string `json:"methods"`
	Oneway  []string `json:"oneway"`
	Attrs   []string `json:"attrs"`
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// where is where a call goes: an object at a daemon address from the name server (host,
// port and addr, their host:port), or an object on a member of a backend group (member,
// and addr its configured address).
type where struct {
	host   string
	port   int
	addr   string
	object string
	member *routing.Member
}

// target is one Pyro object: a daemon address and an object id, with the pool of
// connections made with a CONNECT to that object.
type target struct {
	// where is the object; for a member, host and port are those of its address when it
	// is host:port (for Pyro4's error messages).
	where
	pool *pool.Pool
	// backends dials the member when calls are routed.
	backends Backends

	mu   sync.Mutex
	meta *meta // from the first successful CONNECT
}

// uri is the object's URI as Pyro4 prints it.
func (t *target) uri() string { return "PYRO:" + t.object + "@" + t.addr }

func (t *target) metadata() *meta {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.meta
}

// corrKey carries a request's correlation id (its *callCtx) to the dials made for it.
type corrKey struct{}

// callCtx is the context of one call: the request's, with its correlation id for the
// dials made for it (Value(corrKey{})) and that id's X-Pyro-Correlation-Id header value.
// A fresh one per request, never pooled: a context and a header value may outlive the
// handler.
type callCtx struct {
	context.Context
	corr   uuid.UUID
	header [1]string
}

// withCorr returns the context of a call with correlation id corr made under ctx.
func withCorr(ctx context.Context, corr uuid.UUID) *callCtx {
	cc := &callCtx{Context: ctx, corr: corr}
	cc.header[0] = corr.String()
	return cc
}

// Value returns the call's *callCtx for corrKey{}, else what the parent has for key.
func (cc *callCtx) Value(key any) any {
	if key == (corrKey{}) {
		return cc
	}
	return cc.Context.Value(key)
}

// corrOf returns the correlation id of the call ctx is for, or a new one.
func corrOf(ctx context.Context) uuid.UUID {
	if cc, ok := ctx.Value(corrKey{}).(*callCtx); ok {
		return cc.corr
	}
	return newCorr()
}

// newCorr returns a random (version 4) uuid, as uuid.NewRandom does, without allocating.
func newCorr() uuid.UUID { return uuid.UUID(frame.NewCorr()) }

// connectError is a daemon that could not be reached: Pyro4's CommunicationError
// "cannot connect to ...".
type connectError struct {
	t   *target
	err error
}

func (e *connectError) Error() string {
	if e.t.member != nil {
		return "pyro-dispatch: " + e.err.Error()
	}
	return "cannot connect to " + pyAddr(e.t.host, e.t.port) + ": " + pyErrno(e.err)
}

func (e *connectError) Unwrap() error { return e.err }

// rejectedError is a CONNECTFAIL: Pyro4's CommunicationError "connection to ... rejected".
type rejectedError struct {
	t   *target
	msg string
}

func (e *rejectedError) Error() string {
	return "connection to " + pyAddr(e.t.host, e.t.port) + " rejected: " + e.msg
}

// timeoutError is a call or dial that ran out of time: Pyro4's TimeoutError.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string { return "receiving: timeout" }
func (e *timeoutError) Unwrap() error { return e.err }

// protocolError is anything else that went wrong on an established connection.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

// pyErrno formats a dial error as Python shows an OSError: "[Errno 111] Connection refused".
func pyErrno(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		if msg != "" && 'a' <= msg[0] && msg[0] <= 'z' {
			msg = string(msg[0]-'a'+'A') + msg[1:]
		}
		return fmt.Sprintf("[Errno %d] %s", int(errno), msg)
	}
	return err.Error()
}

func isTimeout(ctx context.Context, err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded)
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// guard is a deadline and an abort armed on a connection for the time of one exchange.
type guard struct {
	c    net.Conn
	stop func() bool // from context.AfterFunc; nil when the context cannot be canceled
}

// arm applies ctx's deadline to c and, when until can be canceled, makes abort (which
// must make c's pending I/O fail) run when it is: a client gone or the timeout ends the
// call.
func arm(ctx, until context.Context, c net.Conn, abort func()) guard {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Time{})
	}
	g := guard{c: c}
	if until.Done() != nil {
		g.stop = context.AfterFunc(until, abort)
	}
	return g
}

// done disarms g and reports whether until ended first (abort then ran or is running).
func (g guard) done() bool {
	fired := g.stop != nil && !g.stop()
	g.c.SetDeadline(time.Time{})
	return fired
}

// abortIO makes c's pending and future I/O fail at once.
func abortIO(c net.Conn) { c.SetDeadline(time.Unix(1, 0)) }

// dial opens a connection to t's daemon and performs the CONNECT handshake for t's object
// (pool.Config.Dial).
func (t *target) dial(ctx context.Context) (net.Conn, error) {
	var c net.Conn
	var err error
	if t.member != nil {
		c, err = t.backends.Dial(ctx, t.member)
	} else {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", t.addr)
	}
	if err != nil {
		if isTimeout(ctx, err) {
			return nil, &timeoutError{err}
		}
		return nil, &connectError{t: t, err: err}
	}
	g := arm(ctx, ctx, c, func() { abortIO(c) })
	m, err := t.handshake(ctx, c)
	if g.done() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		if isTimeout(ctx, err) {
			return nil, &timeoutError{err}
		}
		return nil, err
	}
	t.mu.Lock()
	if t.meta == nil {
		t.meta = m
	}
	t.mu.Unlock()
	return c, nil
}

func (t *target) handshake(ctx context.Context, c net.Conn) (*meta, error) {
	payload := []byte(`{"handshake": "hello", "object": `)
	payload = frame.AppendPyJSONString(payload, t.object, false)
	payload = append(payload, '}')
	corr := corrOf(ctx)
	h := frame.Header{Type: frame.Connect, Flags: frame.FlagMetaOnConnect, Serializer: frame.JSON}
	msg := frame.AppendMessage(nil, h, frame.AppendAnnotation(nil, frame.CORR, corr[:]), payload)
	if _, err := c.Write(msg); err != nil {
		return nil, &connectError{t: t, err: err}
	}
	r := frame.NewReader(c, 0, frame.Limits{MaxMessageSize: maxMessage})
	m, err := r.Next()
	if err == nil {
		err = r.ReadRest(&m)
	}
	if err != nil {
		if isTimeout(ctx, err) {
			return nil, err
		}
		return nil, &connectError{t: t, err: err}
	}
	data, err := payloadOf(m.Header, m.Payload)
	if err != nil {
		return nil, &protocolError{err}
	}
	switch m.Header.Type {
	case frame.ConnectOK:
		var ok struct {
			Meta meta `json:"meta"`
		}
		if err := json.Unmarshal(data, &ok); err != nil {
			return nil, &protocolError{fmt.Errorf("bad CONNECTOK from %s: %v", t.addr, err)}
		}
		return &ok.Meta, nil
	case frame.ConnectFail:
		var reason string
		if json.Unmarshal(data, &reason) != nil {
			reason = string(data)
		}
		return nil, &rejectedError{t: t, msg: reason}
	default:
		return nil, &protocolError{fmt.Errorf("CONNECT to %s answered with %v", t.addr, m.Header.Type)}
	}
}

// payloadOf returns the payload, decompressed when the header says so.
func payloadOf(h frame.Header, p []byte) ([]byte, error) {
	if !h.Flags.Has(frame.FlagCompressed) {
		return p, nil
	}
	zr, err := zlib.NewReader(bytes.NewReader(p))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	return io.ReadAll(io.LimitReader(zr, maxMessage))
}

var seqCounter atomic.Uint32

// pyroCall is a call to make: method with params and kwargs (JSON texts), oneway or not,
// under correlation id corr.
type pyroCall struct {
	corr   uuid.UUID
	method string
	params [][]byte
	kwargs []kwarg
	oneway bool
	// until aborts the call when it ends (nil: the call's context does): the client's
	// request, when the call's context adds a timeout to it, which the connection's
	// deadline enforces already; then the abort needs no hook in a context of its own.
	until context.Context
}

// maxScratch is the most buffer capacity a pooled scratch (or request) keeps for the next
// one: a large call's buffers go to the garbage collector.
const maxScratch = 64 << 10

// scratch is the memory of one INVOKE, pooled: its payload, annotations and message, and
// the abort of its guard (made once, so that arming it allocates nothing of ours).
type scratch struct {
	payload, ann, msg []byte
	conn              net.Conn // the connection abort aborts
	abort             func()   // s.abortConn
}

var scratches = sync.Pool{New: func() any {
	s := new(scratch)
	s.abort = s.abortConn
	return s
}}

func (s *scratch) abortConn() { abortIO(s.conn) }

// put returns s to the pool, without the buffers of a large call.
func (s *scratch) put() {
	s.conn = nil
	if cap(s.payload)+cap(s.msg) > maxScratch {
		s.payload, s.msg = nil, nil
	}
	scratches.Put(s)
}

// message builds the INVOKE of c on object in s and returns it with its seq.
func (s *scratch) message(object string, c *pyroCall) ([]byte, uint16) {
	p := append(s.payload[:0], `{"object": `...)
	p = frame.AppendPyJSONString(p, object, false)
	p = append(p, `, "method": `...)
	p = frame.AppendPyJSONString(p, c.method, false)
	p = append(p, `, "params": [`...)
	for i, v := range c.params {
		if i > 0 {
			p = append(p, ", "...)
		}
		p = append(p, v...)
	}
	p = append(p, `], "kwargs": {`...)
	for i, kw := range c.kwargs {
		if i > 0 {
			p = append(p, ", "...)
		}
		p = frame.AppendPyJSONString(p, kw.name, false)
		p = append(p, ": "...)
		p = append(p, kw.value...)
	}
	s.payload = append(p, "}}"...)
	seq := uint16(seqCounter.Add(1) % 0xFFFF) // 0xFFFF is the pool's health-check PING
	h := frame.Header{Type: frame.Invoke, Seq: seq, Serializer: frame.JSON}
	if c.oneway {
		h.Flags |= frame.FlagOneway
	}
	s.ann = frame.AppendAnnotation(s.ann[:0], frame.CORR, c.corr[:])
	s.msg = frame.AppendMessage(s.msg[:0], h, s.ann, s.payload)
	return s.msg, seq
}

// acquire leases a connection to t's object, dialing it if need be.
func (t *target) acquire(ctx context.Context) (pool.Lease, error) {
	lease, err := t.pool.Acquire(ctx)
	if err != nil {
		var de *pool.DialError
		if errors.As(err, &de) {
			return lease, de.Err
		}
		if isTimeout(ctx, err) || errors.Is(err, pool.ErrWaitTimeout) {
			return lease, &timeoutError{err}
		}
	}
	return lease, err
}

// invoke makes call c on t's object over lease, which it ends. Unless the call is
// oneway, it hands the reply to result before it releases the connection: the payload is
// the connection's read buffer, valid only until result returns.
func (t *target) invoke(ctx context.Context, lease pool.Lease, c *pyroCall, result func(exception bool, payload []byte)) error {
	s := scratches.Get().(*scratch)
	msg, seq := s.message(t.object, c)
	until := c.until
	if until == nil {
		until = ctx
	}
	s.conn = lease.Conn
	g := arm(ctx, until, lease.Conn, s.abort)
	exception, payload, err := exchange(lease.Conn, msg, seq, c.oneway)
	if g.done() {
		if err == nil {
			err = until.Err()
		}
	} else {
		s.put() // not when abort ran: it may still be using s
	}
	if err != nil {
		lease.Destroy()
		if isTimeout(ctx, err) {
			return &timeoutError{err}
		}
		return &protocolError{fmt.Errorf("connection to %s failed: %w", t.addr, err)}
	}
	if !c.oneway {
		result(exception, payload)
	}
	lease.Release()
	return nil
}

// exchange writes msg on c and, unless it is oneway, reads the RESULT of seq.
func exchange(c *pool.Conn, msg []byte, seq uint16, oneway bool) (exception bool, payload []byte, err error) {
	if _, err := c.Write(msg); err != nil {
		return false, nil, err
	}
	if oneway {
		return false, nil, nil
	}
	m, err := c.Reader.Next()
	if err == nil {
		err = c.Reader.ReadRest(&m)
	}
	if err != nil {
		return false, nil, err
	}
	if m.Header.Type != frame.Result || m.Header.Seq != seq {
		return false, nil, fmt.Errorf("answered with %v seq %d (want RESULT seq %d)", m.Header.Type, m.Header.Seq, seq)
	}
	payload, err = payloadOf(m.Header, m.Payload)
	return m.Header.Flags.Has(frame.FlagException), payload, err
}
