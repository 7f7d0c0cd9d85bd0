package dispatch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// answerWithin bounds every wait of TestEveryRequestGetsReplyOrEOF for an answer: the
// sum of the timeouts it configures (header, dial and call, 1 s each).
const answerWithin = 3 * time.Second

// fault is what a backend does wrong once a faultyBackend is armed.
type fault int

const (
	faultNone      fault = iota
	faultRefused         // its address and connections closed: dials are refused
	faultHandshake       // its connections closed; a new one is closed on its CONNECT
	faultWrite           // its connections reset; a new one is reset right after its CONNECTOK
	faultRead            // it reads a request, then hangs up
	faultMidReply        // it writes the header and half the payload of a reply, then hangs up
	faultSilent          // it reads requests and never answers: timeouts.call applies
	faultMute            // it never answers, not even a CONNECT
)

// faultCase is one failure point: a fault, armed before the clients' CONNECT (early)
// or after their handshakes and before their requests.
type faultCase struct {
	name  string
	f     fault
	early bool
}

var faultCases = []faultCase{
	{"none", faultNone, false},
	{"refused-at-connect", faultRefused, true},
	{"handshake-fails-at-connect", faultHandshake, true},
	{"write-fails-at-connect", faultWrite, true},
	{"silent-at-connect", faultMute, true},
	{"refused", faultRefused, false},
	{"handshake-fails", faultHandshake, false},
	{"write-fails", faultWrite, false},
	{"read-fails", faultRead, false},
	{"mid-reply", faultMidReply, false},
	{"silent", faultSilent, false},
}

// unreached reports whether, with this fault, no request can reach a daemon: then the
// dispatcher may answer a call with its own exception instead of closing the client.
func (f fault) unreached() bool {
	return f == faultRefused || f == faultHandshake || f == faultWrite
}

// requestKind is a message a client sends after its CONNECT.
type requestKind struct {
	name  string
	typ   frame.MsgType
	flags frame.Flags
}

var requestKinds = []requestKind{
	{"INVOKE", frame.Invoke, 0},
	{"INVOKE-oneway", frame.Invoke, frame.FlagOneway},
	{"INVOKE-batch", frame.Invoke, frame.FlagBatch},
	{"PING", frame.Ping, 0},
	{"RESULT", frame.Result, 0},
	{"CONNECT", frame.Connect, 0},
	{"CONNECTOK", frame.ConnectOK, 0},
	{"CONNECTFAIL", frame.ConnectFail, 0},
	{"type99", 99, 0},
}

// matrixSerializers: every Pyro4 serializer id, and ids the dispatcher cannot write an
// answer in (42 is Pyro4's Message.ping).
var matrixSerializers = []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal, frame.Pickle, frame.Dill,
	frame.Msgpack, frame.Cloudpickle, 0, 42, 200}

var matrixModes = []struct {
	name   string
	mutate func(*config.Config)
}{
	{"session", func(*config.Config) {}},
	{"pooled", pipelined(config.DefaultPoolMaxOpen, 1)},
	{"pipelined", pipelined(config.DefaultPoolMaxOpen, 8)},
}

// faultyBackend is a Pyro4 peer that echoes calls (CONNECT gets CONNECTOK, PING a PING,
// INVOKE a RESULT, oneway INVOKE nothing) until arm, then fails as its fault says.
type faultyBackend struct {
	net.Listener
	fault fault
	armed atomic.Bool

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	stray []frame.MsgType // messages the dispatcher should never have forwarded
}

func newFaultyBackend(t *testing.T, f fault) *faultyBackend {
	b := &faultyBackend{fault: f, conns: map[net.Conn]struct{}{}}
	b.Listener = testBackend(t, b.serve)
	t.Cleanup(func() { b.closeConns(false) }) // a silent backend's connections end with the test
	return b
}

func (b *faultyBackend) serve(c net.Conn, r *frame.Reader) {
	b.mu.Lock()
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	for {
		m, err := r.Next()
		if err != nil || r.ReadRest(&m) != nil {
			return
		}
		armed := b.armed.Load()
		h := m.Header
		h.Flags = 0
		switch m.Header.Type {
		case frame.Connect:
			if armed && b.fault == faultHandshake {
				return
			}
			if armed && b.fault == faultMute {
				continue
			}
			h.Type = frame.ConnectOK
		case frame.Invoke:
			h.Type = frame.Result
		case frame.Ping:
		default:
			b.mu.Lock()
			b.stray = append(b.stray, m.Header.Type)
			b.mu.Unlock()
			return
		}
		oneway := m.Header.Type == frame.Invoke && m.Header.Flags.Has(frame.FlagOneway)
		msg := frame.AppendMessage(nil, h, nil, m.Payload)
		if armed && m.Header.Type != frame.Connect {
			switch b.fault {
			case faultRead:
				return
			case faultMidReply:
				if !oneway {
					c.Write(msg[:len(msg)-len(m.Payload)/2])
				}
				return
			case faultSilent:
				continue
			}
		}
		if oneway {
			continue
		}
		if _, err := c.Write(msg); err != nil {
			return
		}
		if armed && b.fault == faultWrite {
			c.(*net.TCPConn).SetLinger(0) // closed with a reset: the next write to it fails
			return
		}
	}
}

// arm starts the backend's fault.
func (b *faultyBackend) arm() {
	b.armed.Store(true)
	switch b.fault {
	case faultRefused:
		b.Listener.Close()
		b.closeConns(false)
	case faultHandshake:
		b.closeConns(false)
	case faultWrite:
		b.closeConns(true)
	}
}

// closeConns closes the backend's connections, with a reset when asked.
func (b *faultyBackend) closeConns(reset bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		if reset {
			c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}
}

func (b *faultyBackend) strays() []frame.MsgType {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]frame.MsgType(nil), b.stray...)
}

// outcome is what a client got for a request: a whole reply, or its connection closed,
// or neither (err: a hang past answerWithin, a message cut short, a broken stream).
type outcome struct {
	h       frame.Header
	payload []byte
	closed  bool
	err     error
	took    time.Duration
}

func (o outcome) String() string {
	switch {
	case o.err != nil:
		return fmt.Sprintf("no answer after %v: %v", o.took.Round(time.Millisecond), o.err)
	case o.closed:
		return "connection closed"
	}
	return fmt.Sprintf("%v %v seq %d %v %.60q", o.h.Type, o.h.Flags, o.h.Seq, o.h.Serializer, o.payload)
}

// ended makes the outcome of a failed write or read: closed when the dispatcher closed
// the connection (EOF between messages, or a reset).
func ended(err error, start time.Time) outcome {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return outcome{closed: true, took: time.Since(start)}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("hung: %w", err)
	}
	return outcome{err: err, took: time.Since(start)}
}

// sendAs sends a message with serializer ser as the client's next seq.
func (g *goClient) sendAs(ser frame.Serializer, t frame.MsgType, flags frame.Flags, payload []byte) error {
	g.seq++
	h := frame.Header{Type: t, Flags: flags, Seq: g.seq, Serializer: ser}
	g.out = frame.AppendMessage(g.out[:0], h, nil, payload)
	_, err := g.c.Write(g.out)
	return err
}

// ask sends a message and waits for its answer (see outcome), at most answerWithin.
func (g *goClient) ask(ser frame.Serializer, t frame.MsgType, flags frame.Flags, payload []byte) outcome {
	start := time.Now()
	if err := g.sendAs(ser, t, flags, payload); err != nil {
		return ended(err, start)
	}
	g.c.SetReadDeadline(start.Add(answerWithin))
	m, err := g.r.Next()
	if err == nil {
		err = g.r.ReadRest(&m)
	}
	if err != nil {
		return ended(err, start)
	}
	return outcome{h: m.Header, payload: bytes.Clone(m.Payload), took: time.Since(start)}
}

// encodable reports whether the dispatcher can write its own answers in ser.
func encodable(ser frame.Serializer) bool {
	_, err := frame.AppendExceptionPayload(nil, ser, frame.ExcCommunicationError, "x")
	return err == nil
}

// fromDispatcher checks that o is an answer the dispatcher made itself (a CONNECTFAIL or
// an exception RESULT) in the request's serializer, or marshal for a CONNECTFAIL to one
// it cannot write.
func fromDispatcher(o outcome, typ frame.MsgType, ser frame.Serializer) error {
	want := ser
	if typ == frame.ConnectFail && !encodable(ser) {
		want = frame.Marshal
	}
	if o.h.Type != typ || (typ == frame.Result) != o.h.Flags.Has(frame.FlagException) || o.h.Serializer != want ||
		!bytes.Contains(o.payload, []byte("pyro-dispatch")) {
		return fmt.Errorf("got %v, want a pyro-dispatch %v in %v", o, typ, want)
	}
	return nil
}

// checkConnect checks the answer to a client's CONNECT and reports whether calls may follow.
func checkConnect(o outcome, seq uint16, ser frame.Serializer, fc faultCase) (bool, error) {
	switch {
	case o.err != nil:
		return false, o.err
	case o.closed && fc.early:
		return false, nil
	case o.closed:
		return false, errors.New("connection closed, want CONNECTOK")
	case o.h.Seq != seq:
		return false, fmt.Errorf("got %v to seq %d", o, seq)
	case fc.early && (fc.f != faultWrite || o.h.Type != frame.ConnectOK): // a reset comes after a CONNECTOK
		return false, fromDispatcher(o, frame.ConnectFail, ser)
	case o.h.Type != frame.ConnectOK || o.h.Serializer != ser:
		return false, fmt.Errorf("got %v, want CONNECTOK", o)
	}
	return true, nil
}

// checkAnswer checks the answer o to request k with the given seq, serializer and payload
// on a connection whose CONNECT was answered (up) or not.
func checkAnswer(o outcome, k requestKind, seq uint16, ser frame.Serializer, payload []byte, fc faultCase, up bool) error {
	valid := k.typ == frame.Invoke || k.typ == frame.Ping
	switch {
	case o.err != nil:
		return o.err
	case !o.closed && o.h.Seq != seq:
		return fmt.Errorf("got %v to seq %d", o, seq)
	case !up || !valid:
		if !o.closed {
			return fmt.Errorf("got %v, want the connection closed", o)
		}
	case fc.f == faultNone:
		want := k.typ
		if want == frame.Invoke {
			want = frame.Result
		}
		if o.closed || o.h.Type != want || o.h.Flags != 0 || o.h.Serializer != ser || !bytes.Equal(o.payload, payload) {
			return fmt.Errorf("got %v, want the backend's %v", o, want)
		}
	case o.closed:
	case fc.f.unreached() && encodable(ser):
		return fromDispatcher(o, frame.Result, ser)
	default:
		return fmt.Errorf("got %v, want the connection closed", o)
	}
	return nil
}

// tally counts the outcomes of a case's requests.
type tally struct {
	mu                                       sync.Mutex
	replies, exceptions, closed, connectFail int
	slowest                                  time.Duration
}

func (t *tally) add(o outcome, connect bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.slowest = max(t.slowest, o.took)
	switch {
	case o.err != nil:
	case o.closed:
		if !connect {
			t.closed++
		}
	case o.h.Type == frame.ConnectFail:
		t.connectFail++
	case o.h.Flags.Has(frame.FlagException):
		t.exceptions++
	case !connect:
		t.replies++
	}
}

// Every request a client may send, in each serializer id, in every mode, at every point a
// backend may fail, gets a reply with its seq (the backend's, or the dispatcher's
// CONNECTFAIL or exception when nothing reached a daemon) or the client's connection
// closed, within the configured timeouts: never a hang, never a reply to another seq. A
// oneway call is followed by a PING that must be answered so. A message a client may not
// send after its CONNECT gets the connection closed and is never forwarded.
func TestEveryRequestGetsReplyOrEOF(t *testing.T) {
	for _, mode := range matrixModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			for _, fc := range faultCases {
				t.Run(fc.name, func(t *testing.T) {
					t.Parallel()
					runFaultCase(t, mode.mutate, fc)
				})
			}
		})
	}
}

// runFaultCase runs every request kind in every serializer, one client each, against a
// backend with fault fc, all at once.
func runFaultCase(t *testing.T, mode func(*config.Config), fc faultCase) {
	be := newFaultyBackend(t, fc.f)
	_, addr := startProxy(t, be.Addr().String(), func(c *config.Config) {
		mode(c)
		c.Timeouts.Header, c.Timeouts.Dial, c.Timeouts.Call = time.Second, time.Second, time.Second
		c.Listeners[0].Pool.WaitTimeout = time.Second
	})
	if fc.early {
		be.arm()
	}
	var tl tally
	var connected, done sync.WaitGroup
	armed := make(chan struct{})
	for _, k := range requestKinds {
		for _, ser := range matrixSerializers {
			connected.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				if err := runFaultClient(addr, fc, k, ser, &tl, connected.Done, armed); err != nil {
					t.Errorf("%s %v: %v", k.name, ser, err)
				}
			}()
		}
	}
	connected.Wait()
	if !fc.early {
		be.arm()
	}
	close(armed)
	done.Wait()
	if s := be.strays(); len(s) > 0 {
		t.Errorf("the dispatcher forwarded %v to the backend", s)
	}
	t.Logf("%d clients: %d replies, %d exceptions, %d closed; %d CONNECTFAIL; slowest answer %v",
		len(requestKinds)*len(matrixSerializers), tl.replies, tl.exceptions, tl.closed, tl.connectFail, tl.slowest.Round(time.Millisecond))
}

// runFaultClient connects (CONNECT in ser), calls connected, waits for armed, then sends a
// request of kind k in ser (a oneway one followed by a PING) and checks the answers.
func runFaultClient(addr string, fc faultCase, k requestKind, ser frame.Serializer, tl *tally, connected func(), armed <-chan struct{}) error {
	c, err := net.DialTimeout("tcp", addr, answerWithin)
	if err != nil {
		connected()
		return err
	}
	defer c.Close()
	g := &goClient{c: c, r: frame.NewReader(c, 0, frame.Limits{})}
	payload := []byte(fmt.Sprintf("%s in %v%s", k.name, ser, strings.Repeat(".", 40)))
	o := g.ask(ser, frame.Connect, 0, payload)
	connected()
	<-armed
	tl.add(o, true)
	up, err := checkConnect(o, g.seq, ser, fc)
	if err != nil {
		return fmt.Errorf("CONNECT: %w", err)
	}
	if k.typ == frame.Invoke && k.flags.Has(frame.FlagOneway) {
		start := time.Now()
		if err := g.sendAs(ser, k.typ, k.flags, payload); err != nil {
			o = ended(err, start)
		} else {
			k = requestKind{"PING after a oneway INVOKE", frame.Ping, 0}
			o = g.ask(ser, frame.Ping, 0, payload)
		}
	} else {
		o = g.ask(ser, k.typ, k.flags, payload)
	}
	tl.add(o, false)
	if err := checkAnswer(o, k, g.seq, ser, payload, fc, up); err != nil {
		return fmt.Errorf("%s: %w", k.name, err)
	}
	return nil
}
