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

// target is one Pyro object: a daemon address and an object id, with the pool of
// connections made with a CONNECT to that object.
type target struct {
	host   string
	port   int
	addr   string // host:port, or a member's address as configured
	object string
	pool   *pool.Pool
	// member is the backend group member the target is on, and backends dials it, when
	// calls are routed (nil: an address from the name server).
	member   *routing.Member
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

// corrKey carries a request's correlation id to the dials made for it.
type corrKey struct{}

func corrOf(ctx context.Context) uuid.UUID {
	if id, ok := ctx.Value(corrKey{}).(uuid.UUID); ok {
		return id
	}
	id, _ := uuid.NewRandom()
	return id
}

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

// guard applies ctx's deadline to c and aborts c's pending I/O when ctx is canceled. The
// returned function undoes it and reports whether ctx ended first.
func guard(ctx context.Context, c net.Conn) func() bool {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return func() bool {
		fired := !stop()
		c.SetDeadline(time.Time{})
		return fired
	}
}

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
	done := guard(ctx, c)
	m, err := t.handshake(ctx, c)
	if done() && err == nil {
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

// reply is a daemon's RESULT.
type reply struct {
	exception bool
	payload   []byte
}

// invoke calls method on t's object with params and kwargs (JSON texts) over a pooled
// connection. A oneway call returns a nil reply as soon as it is sent.
func (t *target) invoke(ctx context.Context, method string, params [][]byte, kwargs []kwarg, oneway bool) (*reply, error) {
	lease, err := t.pool.Acquire(ctx)
	if err != nil {
		var de *pool.DialError
		if errors.As(err, &de) {
			return nil, de.Err
		}
		if isTimeout(ctx, err) || errors.Is(err, pool.ErrWaitTimeout) {
			return nil, &timeoutError{err}
		}
		return nil, &protocolError{err}
	}
	p := []byte(`{"object": `)
	p = frame.AppendPyJSONString(p, t.object, false)
	p = append(p, `, "method": `...)
	p = frame.AppendPyJSONString(p, method, false)
	p = append(p, `, "params": [`...)
	for i, v := range params {
		if i > 0 {
			p = append(p, ", "...)
		}
		p = append(p, v...)
	}
	p = append(p, `], "kwargs": {`...)
	for i, kw := range kwargs {
		if i > 0 {
			p = append(p, ", "...)
		}
		p = frame.AppendPyJSONString(p, kw.name, false)
		p = append(p, ": "...)
		p = append(p, kw.value...)
	}
	p = append(p, "}}"...)
	seq := uint16(seqCounter.Add(1) % 0xFFFF) // 0xFFFF is the pool's health-check PING
	h := frame.Header{Type: frame.Invoke, Seq: seq, Serializer: frame.JSON}
	if oneway {
		h.Flags |= frame.FlagOneway
	}
	corr := corrOf(ctx)
	msg := frame.AppendMessage(nil, h, frame.AppendAnnotation(nil, frame.CORR, corr[:]), p)

	done := guard(ctx, lease.Conn)
	rep, err := exchange(lease.Conn, msg, seq, oneway)
	if done() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		lease.Destroy()
		if isTimeout(ctx, err) {
			return nil, &timeoutError{err}
		}
		return nil, &protocolError{fmt.Errorf("connection to %s failed: %w", t.addr, err)}
	}
	lease.Release()
	return rep, nil
}

func exchange(c *pool.Conn, msg []byte, seq uint16, oneway bool) (*reply, error) {
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	if oneway {
		return nil, nil
	}
	m, err := c.Reader.Next()
	if err == nil {
		err = c.Reader.ReadRest(&m)
	}
	if err != nil {
		return nil, err
	}
	if m.Header.Type != frame.Result || m.Header.Seq != seq {
		return nil, fmt.Errorf("answered with %v seq %d (want RESULT seq %d)", m.Header.Type, m.Header.Seq, seq)
	}
	data, err := payloadOf(m.Header, m.Payload)
	if err != nil {
		return nil, err
	}
	return &reply{exception: m.Header.Flags.Has(frame.FlagException), payload: bytes.Clone(data)}, nil
}
