// Package capture is test tooling: a TCP relay between a Pyro4 client and daemon that
// copies the bytes both ways and records every complete message it sees (see gen/).
// It never changes a byte and never looks inside a payload; it only splits the streams.
package capture

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// Directions of a recorded message.
const (
	ClientToServer = "c2s"
	ServerToClient = "s2c"
)

// Record is one complete Pyro4 message seen by a Relay, as written to a vectors file.
type Record struct {
	Scenario string `json:"scenario"` // the Relay's scenario name
	Conn     int    `json:"conn"`     // connection number within the Relay, from 0 in accept order
	Dir      string `json:"dir"`      // ClientToServer or ServerToClient
	Index    int    `json:"index"`    // message number within that connection and direction, from 0
	Hex      string `json:"hex"`      // the raw message: header, annotations and payload
}

// Conn describes one client connection a Relay accepted.
type Conn struct {
	Num    int    // connection number, as in Record.Conn
	Client string // the client's address (its ephemeral port identifies it to the client)
}

// Relay accepts clients on 127.0.0.1 and connects each to a target address. Create it with
// Listen; Close it to stop accepting and wait for the open connections to end.
type Relay struct {
	scenario string
	target   string
	ln       net.Listener
	wg       sync.WaitGroup

	mu      sync.Mutex
	conns   []Conn
	records []Record
	errs    []error
	open    map[net.Conn]struct{}
}

// Listen starts a Relay for the named scenario on 127.0.0.1:0 that forwards to target.
func Listen(scenario, target string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{scenario: scenario, target: target, ln: ln, open: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr returns the address clients connect to, as host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Scenario returns the scenario name given to Listen.
func (r *Relay) Scenario() string { return r.scenario }

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return // listener closed
		}
		r.mu.Lock()
		num := len(r.conns)
		r.conns = append(r.conns, Conn{Num: num, Client: c.RemoteAddr().String()})
		r.mu.Unlock()
		r.wg.Add(1)
		go r.serve(num, c)
	}
}

func (r *Relay) fail(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *Relay) track(c net.Conn, on bool) {
	r.mu.Lock()
	if on {
		r.open[c] = struct{}{}
	} else {
		delete(r.open, c)
	}
	r.mu.Unlock()
}

// serve relays one client connection. Each direction is copied until EOF, which is passed
// on as a half close, so either side may close first as it would without the relay.
func (r *Relay) serve(num int, client net.Conn) {
	defer r.wg.Done()
	r.track(client, true)
	defer r.track(client, false)
	defer client.Close()
	server, err := net.Dial("tcp", r.target)
	if err != nil {
		r.fail(fmt.Errorf("%s conn %d: dial %s: %w", r.scenario, num, r.target, err))
		return
	}
	r.track(server, true)
	defer r.track(server, false)
	defer server.Close()

	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn, dir string) {
		defer wg.Done()
		s := &splitter{relay: r, conn: num, dir: dir}
		// The splitter sees each chunk before dst does, so a message is recorded as sent
		// even when the peer has already gone. A copy error (a reset after a daemon drops
		// a client) only ends this direction: what was recorded stays valid.
		_, _ = io.Copy(io.MultiWriter(s, dst), src)
		if err := s.finish(); err != nil {
			r.fail(err)
		}
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	go pipe(server, client, ClientToServer)
	go pipe(client, server, ServerToClient)
	wg.Wait()
}

// Close stops accepting, waits for the open connections to end by themselves and returns
// any error seen: a failed dial, a stream that is not Pyro4 or ends inside a message.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(append([]error{ignoreClosed(err)}, r.errs...)...)
}

// Abort closes every open connection, for a caller that gives up waiting for Close.
func (r *Relay) Abort() {
	_ = r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.open {
		_ = c.Close()
	}
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Conns returns the accepted connections in accept order.
func (r *Relay) Conns() []Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Conn(nil), r.conns...)
}

// Records returns the recorded messages grouped by connection, in the order they were seen
// within each connection.
func (r *Relay) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Record, 0, len(r.records))
	for c := range r.conns {
		for _, rec := range r.records {
			if rec.Conn == c {
				out = append(out, rec)
			}
		}
	}
	return out
}

// splitter is the recording side of one direction: it buffers the copied bytes and cuts
// them into messages by their headers.
type splitter struct {
	relay *Relay
	conn  int
	dir   string
	buf   []byte
	index int
	err   error // the stream is not Pyro4 from here on; nothing more is recorded
}

func (s *splitter) Write(p []byte) (int, error) {
	if s.err != nil {
		return len(p), nil
	}
	s.buf = append(s.buf, p...)
	for len(s.buf) >= frame.HeaderSize {
		h, err := frame.ParseHeader(s.buf)
		if err != nil {
			s.err = fmt.Errorf("%s conn %d %s message %d: %w", s.relay.scenario, s.conn, s.dir, s.index, err)
			return len(p), nil
		}
		n := frame.HeaderSize + h.BodyLen()
		if len(s.buf) < n {
			break
		}
		rec := Record{Scenario: s.relay.scenario, Conn: s.conn, Dir: s.dir, Index: s.index, Hex: hex.EncodeToString(s.buf[:n])}
		s.index++
		s.buf = s.buf[n:]
		s.relay.mu.Lock()
		s.relay.records = append(s.relay.records, rec)
		s.relay.mu.Unlock()
	}
	return len(p), nil
}

// finish reports a stream that was not Pyro4 or that ended inside a message.
func (s *splitter) finish() error {
	if s.err != nil {
		return s.err
	}
	if len(s.buf) > 0 {
		return fmt.Errorf("%s conn %d %s: stream ended %d bytes into message %d", s.relay.scenario, s.conn, s.dir, len(s.buf), s.index)
	}
	return nil
}
