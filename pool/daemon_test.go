package pool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// daemon is a minimal Pyro4 daemon for tests on a real TCP socket on 127.0.0.1: it
// answers CONNECT with CONNECTOK, PING with PING and INVOKE with a RESULT carrying the
// request's payload, all with the request's seq, and counts what it sees.
type daemon struct {
	t    testing.TB
	addr string

	accepted atomic.Int64 // connections accepted
	open     atomic.Int64 // connections open now (as the daemon sees them)
	maxOpen  atomic.Int64 // high-water mark of open
	pings    atomic.Int64 // PINGs received
	invokes  atomic.Int64 // INVOKEs received

	// Knobs.
	refusePing atomic.Bool  // close the connection when a PING arrives
	mute       atomic.Bool  // never answer anything (a handshake that hangs)
	delay      atomic.Int64 // nanoseconds to wait before each reply

	mu    sync.Mutex
	ln    net.Listener // nil while not accepting
	conns map[net.Conn]struct{}
	quit  chan struct{}
	wg    sync.WaitGroup
}

func newDaemon(t testing.TB) *daemon {
	t.Helper()
	d := &daemon{t: t, conns: map[net.Conn]struct{}{}, quit: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.addr = ln.Addr().String()
	d.serve(ln)
	t.Cleanup(d.close)
	return d
}

func (d *daemon) serve(ln net.Listener) {
	d.mu.Lock()
	d.ln = ln
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.mu.Lock()
			if d.conns == nil { // closed
				d.mu.Unlock()
				c.Close()
				return
			}
			d.conns[c] = struct{}{}
			d.wg.Add(1)
			d.mu.Unlock()
			d.accepted.Add(1)
			n := d.open.Add(1)
			for m := d.maxOpen.Load(); n > m && !d.maxOpen.CompareAndSwap(m, n); m = d.maxOpen.Load() {
			}
			go d.handle(c)
		}
	}()
}

// stopAccepting closes the listener: dials to the address are refused from now on.
// Open connections are not touched.
func (d *daemon) stopAccepting() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ln != nil {
		d.ln.Close()
		d.ln = nil
	}
}

// startAccepting listens on the same address again.
func (d *daemon) startAccepting() {
	d.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port is ours, but give the kernel a moment if it disagrees
		if ln, err = net.Listen("tcp", d.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		d.t.Fatal(err)
	}
	d.serve(ln)
}

// killAll closes every open connection from the daemon's side.
func (d *daemon) killAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for c := range d.conns {
		c.Close()
	}
}

func (d *daemon) close() {
	d.stopAccepting()
	d.mu.Lock()
	for c := range d.conns {
		c.Close()
	}
	d.conns = nil
	d.mu.Unlock()
	close(d.quit)
	d.wg.Wait()
}

func (d *daemon) handle(c net.Conn) {
	defer d.wg.Done()
	defer func() {
		c.Close()
		d.mu.Lock()
		delete(d.conns, c)
		d.mu.Unlock()
		d.open.Add(-1)
	}()
	r := frame.NewReader(c, 0, frame.Limits{})
	var out []byte
	for {
		m, err := r.Next()
		if err != nil {
			return
		}
		if err := r.ReadRest(&m); err != nil {
			return
		}
		h := frame.Header{Seq: m.Header.Seq, Serializer: m.Header.Serializer}
		var payload []byte
		switch m.Header.Type {
		case frame.Connect:
			h.Type, payload = frame.ConnectOK, []byte("ok")
		case frame.Ping:
			d.pings.Add(1)
			if d.refusePing.Load() {
				return
			}
			h.Type, payload = frame.Ping, []byte("pong")
		case frame.Invoke:
			d.invokes.Add(1)
			h.Type, payload = frame.Result, m.Payload
		default:
			return
		}
		if d.mute.Load() {
			continue
		}
		if ns := d.delay.Load(); ns > 0 {
			select {
			case <-time.After(time.Duration(ns)):
			case <-d.quit:
				return
			}
		}
		out = frame.AppendMessage(out[:0], h, nil, payload)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// dialer returns a Config.Dial for addr: a TCP dial and a real CONNECT/CONNECTOK
// handshake, bounded by ctx. Every attempt is counted in attempts (if not nil).
func dialer(addr string, attempts *atomic.Int64) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		if attempts != nil {
			attempts.Add(1)
		}
		var nd net.Dialer
		c, err := nd.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		}
		stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
		err = handshake(c)
		if !stop() && err == nil {
			err = ctx.Err() // the deadline may have been cut short after the reply
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		c.SetDeadline(time.Time{})
		return c, nil
	}
}

func handshake(c net.Conn) error {
	const seq = 0
	msg := frame.AppendMessage(nil, frame.Header{Type: frame.Connect, Seq: seq, Serializer: frame.Marshal}, nil,
		[]byte("\xfb\xda\x09handshake\xda\x05hello0"))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	r := frame.NewReader(c, 0, frame.Limits{})
	m, err := r.Next()
	if err != nil {
		return err
	}
	if err := r.Discard(&m); err != nil {
		return err
	}
	if m.Header.Type != frame.ConnectOK || m.Header.Seq != seq {
		return fmt.Errorf("handshake answered with %v seq %d", m.Header.Type, m.Header.Seq)
	}
	if r.Buffered() != 0 {
		return errors.New("handshake: bytes after CONNECTOK")
	}
	return nil
}

// invoke makes one INVOKE call on a leased connection and checks the echoed payload.
func invoke(l Lease, seq uint16, payload string) error {
	msg := frameInvoke(seq, payload)
	l.SetDeadline(time.Now().Add(30 * time.Second)) // only a hang should fail it
	defer l.SetDeadline(time.Time{})
	if _, err := l.Write(msg); err != nil {
		return err
	}
	m, err := l.Reader.Next()
	if err != nil {
		return err
	}
	if err := l.Reader.ReadRest(&m); err != nil {
		return err
	}
	if m.Header.Type != frame.Result || m.Header.Seq != seq || string(m.Payload) != payload {
		return fmt.Errorf("got %v seq %d payload %q, want RESULT seq %d payload %q",
			m.Header.Type, m.Header.Seq, m.Payload, seq, payload)
	}
	return nil
}

func frameInvoke(seq uint16, payload string) []byte {
	return frame.AppendMessage(nil, frame.Header{Type: frame.Invoke, Seq: seq, Serializer: frame.Marshal}, nil, []byte(payload))
}
