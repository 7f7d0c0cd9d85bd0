package bench

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// The object an EchoServer serves and its methods, as a Pyro4 client sees them.
const (
	// EchoObject is the object id: a client reaches it as PYRO:echo@HOST:PORT.
	EchoObject = "echo"
	// MethodEcho is echo(x): returns x, re-sent in the caller's serializer.
	MethodEcho = "echo"
	// MethodOneway is oneway(x), a oneway method: no reply (None if called without the
	// oneway flag).
	MethodOneway = "oneway"
	// MethodBlob is blob(b) for a Pyro4 SerializedBlob: returns the first item of the
	// blob's data, like echo.
	MethodBlob = "blob"
)

// DefaultEchoMaxMessage bounds a message an EchoServer accepts when Limits is zero.
const DefaultEchoMaxMessage = 64 << 20

// EchoServer is a Pyro4 daemon in Go for capacity tests, serving one object, EchoObject,
// the way Pyro4 4.82 would serve a class exposing echo, oneway (@oneway) and blob:
//
//   - CONNECT: CONNECTOK "hello", with the metadata (methods, oneway, attrs) when the
//     client asks for it (META_ON_CONNECT), or CONNECTFAIL "unknown object" for another
//     object id; a serializer other than serpent, json or marshal is refused in marshal;
//   - INVOKE: echo(x) returns x in the caller's serializer (its bytes are taken from the
//     request, not decoded), oneway(x) returns nothing, blob(b) with KEEPSERIALIZED and a
//     BLBI annotation returns the first item of the blob's data; errors come back as Pyro4
//     exceptions (DaemonError "unknown object", AttributeError, TypeError, SerializeError);
//     compressed requests are accepted, batch calls are refused;
//   - PING: PING "pong".
//
// Every reply carries a CORR annotation, as a Pyro4 daemon's does: the request's when it
// has one, else a fresh id (so a client reads the same reply directly and through a
// dispatcher that injected one). One goroutine serves each connection with one
// frame.Reader and one reply buffer, so a small call allocates nothing.
//
// Set the fields before Listen; Serve until Close.
type EchoServer struct {
	// Delay is how long each call that gets a reply waits before it is answered, to
	// stand in for work (oneway calls and pings are not delayed).
	Delay time.Duration
	// ResponseSize, when above zero, makes echo and blob return a str of that many
	// bytes instead of their argument.
	ResponseSize int
	// Limits bounds what a client may send; zero means a DefaultEchoMaxMessage message.
	Limits frame.Limits
	// Logf, when set, is told why a connection was dropped (protocol errors).
	Logf func(format string, args ...any)

	ln      net.Listener
	payload [4]echoPayloads // by serializer: serpent, json, marshal

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup

	stats echoCounters
}

// echoPayloads are the fixed payloads of one serializer.
type echoPayloads struct {
	hello, helloMeta, none, fixed []byte
}

// EchoStats counts what an EchoServer has done since Listen.
type EchoStats struct {
	Connections int64 // connections accepted
	Active      int64 // connections open now
	Handshakes  int64 // CONNECTOK replies
	Calls       int64 // INVOKEs answered (exceptions included)
	Oneway      int64 // INVOKEs with the oneway flag (never answered)
	Blobs       int64 // SerializedBlob calls (KEEPSERIALIZED), answered or oneway
	Pings       int64
	Exceptions  int64 // calls answered with a Pyro4 exception
	Dropped     int64 // connections closed for a protocol error
}

type echoCounters struct {
	conns, active, handshakes, calls, oneway, blobs, pings, exceptions, dropped atomic.Int64
}

// Stats returns a snapshot of the counters.
func (s *EchoServer) Stats() EchoStats {
	c := &s.stats
	return EchoStats{
		Connections: c.conns.Load(), Active: c.active.Load(), Handshakes: c.handshakes.Load(),
		Calls: c.calls.Load(), Oneway: c.oneway.Load(), Blobs: c.blobs.Load(), Pings: c.pings.Load(),
		Exceptions: c.exceptions.Load(), Dropped: c.dropped.Load(),
	}
}

// Listen opens the listening socket: "HOST:PORT", "[::1]:PORT" or "unix:/path".
func (s *EchoServer) Listen(addr string) error {
	network, address := SplitAddr(addr)
	if network == "unix" {
		// A stale socket file from an earlier run would make Listen fail; one that still
		// answers belongs to a live server and is left alone.
		if fi, err := os.Lstat(address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.DialTimeout("unix", address, time.Second); err == nil {
				c.Close()
			} else {
				os.Remove(address)
			}
		}
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		return err
	}
	s.ln = ln
	s.conns = map[net.Conn]struct{}{}
	s.prepare()
	return nil
}

// SplitAddr returns the network and address of "HOST:PORT", "[::1]:PORT" (tcp) or
// "unix:/path" (unix).
func SplitAddr(addr string) (network, address string) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return "unix", path
	}
	return "tcp", addr
}

// Addr returns the listening address.
func (s *EchoServer) Addr() net.Addr { return s.ln.Addr() }

// URI returns the Pyro4 URI of the echo object, such as PYRO:echo@127.0.0.1:4711.
func (s *EchoServer) URI() string {
	a := s.ln.Addr()
	if a.Network() == "unix" {
		return "PYRO:" + EchoObject + "@./u:" + a.String()
	}
	return "PYRO:" + EchoObject + "@" + a.String()
}

// Serve accepts connections until Close, serving each on its own goroutine. It returns
// nil after Close, or the error that stopped accepting.
func (s *EchoServer) Serve() error {
	var delay time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Out of file descriptors, say: back off like net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.stats.conns.Add(1)
		s.stats.active.Add(1)
		go s.serveConn(c)
	}
}

// Close stops accepting, closes every connection and waits for their goroutines.
func (s *EchoServer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// prepare builds the fixed payloads of every serializer.
func (s *EchoServer) prepare() {
	for _, ser := range []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal} {
		p := &s.payload[ser]
		p.hello, _ = frame.AppendStringPayload(nil, ser, "hello")
		p.helloMeta = appendHelloMeta(nil, ser)
		p.none = appendNone(nil, ser)
		if s.ResponseSize > 0 {
			p.fixed, _ = frame.AppendStringPayload(nil, ser, strings.Repeat("x", s.ResponseSize))
		}
	}
}

const serpentHeader = "# serpent utf-8 python3.2\n"

// echoMeta is the metadata of the echo object as Pyro4's get_metadata(as_lists=True)
// gives it: every exposed method (sorted), the oneway ones, no attributes.
var echoMeta = struct{ methods, oneway []string }{
	methods: []string{MethodBlob, MethodEcho, MethodOneway},
	oneway:  []string{MethodOneway},
}

// appendHelloMeta appends {"handshake": "hello", "meta": {"methods": [...], "oneway":
// [...], "attrs": []}} as Pyro4's serializers write it.
func appendHelloMeta(dst []byte, ser frame.Serializer) []byte {
	list := func(dst []byte, open, sep, close string, items []string, str func([]byte, string) []byte) []byte {
		dst = append(dst, open...)
		for i, it := range items {
			if i > 0 {
				dst = append(dst, sep...)
			}
			dst = str(dst, it)
		}
		return append(dst, close...)
	}
	switch ser {
	case frame.Serpent:
		q := func(dst []byte, s string) []byte { return append(append(append(dst, '\''), s...), '\'') }
		dst = append(dst, serpentHeader+"{'handshake':'hello','meta':{'methods':"...)
		dst = list(dst, "[", ",", "]", echoMeta.methods, q)
		dst = append(dst, ",'oneway':"...)
		dst = list(dst, "[", ",", "]", echoMeta.oneway, q)
		return append(dst, ",'attrs':[]}}"...)
	case frame.JSON:
		q := func(dst []byte, s string) []byte { return append(append(append(dst, '"'), s...), '"') }
		dst = append(dst, `{"handshake": "hello", "meta": {"methods": `...)
		dst = list(dst, "[", ", ", "]", echoMeta.methods, q)
		dst = append(dst, `, "oneway": `...)
		dst = list(dst, "[", ", ", "]", echoMeta.oneway, q)
		return append(dst, `, "attrs": []}}`...)
	default: // marshal: a dict is '{', key value pairs, '0'; a list is '[' and a count
		q := appendMarshalASCII
		mlist := func(dst []byte, items []string) []byte {
			dst = append(dst, '[', byte(len(items)), 0, 0, 0)
			for _, it := range items {
				dst = q(dst, it)
			}
			return dst
		}
		dst = append(dst, '{')
		dst = q(q(q(dst, "handshake"), "hello"), "meta")
		dst = append(dst, '{')
		dst = mlist(q(dst, "methods"), echoMeta.methods)
		dst = mlist(q(dst, "oneway"), echoMeta.oneway)
		dst = mlist(q(dst, "attrs"), nil)
		return append(dst, '0', '0')
	}
}

// appendMarshalASCII appends a short ASCII str (under 256 bytes) in marshal.
func appendMarshalASCII(dst []byte, s string) []byte {
	return append(append(dst, 'z', byte(len(s))), s...)
}

// appendNone appends the None value.
func appendNone(dst []byte, ser frame.Serializer) []byte {
	switch ser {
	case frame.Serpent:
		return append(dst, serpentHeader+"None"...)
	case frame.JSON:
		return append(dst, "null"...)
	default:
		return append(dst, 'N')
	}
}

// echoConn is the state of one client connection.
type echoConn struct {
	s         *EchoServer
	c         net.Conn
	r         *frame.Reader
	out       []byte // the reply being built: header, annotations, payload
	held      []byte // replies not yet written: more requests had arrived with theirs
	iov       [2][]byte
	bufs      net.Buffers // iov as handed to writev, which consumes it
	annLen    int
	connected bool
	inflate   io.ReadCloser // zlib reader, reused for compressed requests
	plain     bytes.Buffer  // a decompressed payload
}

var errDrop = errors.New("drop connection")

func (s *EchoServer) serveConn(c net.Conn) {
	defer func() {
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.stats.active.Add(-1)
		s.wg.Done()
	}()
	lim := s.Limits
	if lim == (frame.Limits{}) {
		lim.MaxMessageSize = DefaultEchoMaxMessage
	}
	ec := &echoConn{s: s, c: c, r: frame.NewReader(c, 0, lim), out: make([]byte, 0, 1024)}
	for {
		err := ec.serveOne()
		if err == nil && len(ec.held) > 0 && !ec.r.NextBuffered() {
			err = ec.write(nil)
		}
		if err == nil {
			continue
		}
		if err != io.EOF && !errors.Is(err, net.ErrClosed) {
			if frame.IsProtocolError(err) || errors.Is(err, errDrop) {
				s.stats.dropped.Add(1)
			}
			if s.Logf != nil {
				s.Logf("echo: %s: closing connection: %v", c.RemoteAddr(), err)
			}
		}
		return
	}
}

// serveOne reads one message and answers it.
func (ec *echoConn) serveOne() error {
	m, err := ec.r.Next()
	if err != nil {
		return err
	}
	h := m.Header
	switch {
	case h.Type == frame.Connect && !ec.connected:
		if err := ec.r.ReadRest(&m); err != nil {
			return err
		}
		return ec.handshake(&m)
	case !ec.connected:
		return fmt.Errorf("%w: %v before the handshake", errDrop, h.Type)
	case h.Type == frame.Ping:
		ec.s.stats.pings.Add(1)
		if err := ec.r.Discard(&m); err != nil {
			return err
		}
		ec.begin(m.Annotations)
		ec.out = append(ec.out, "pong"...)
		return ec.send(frame.Ping, 0, h.Seq, h.Serializer)
	case h.Type == frame.Invoke && h.Flags.Has(frame.FlagOneway):
		// No reply; the method does nothing, so the payload is not even read.
		ec.s.stats.oneway.Add(1)
		if h.Flags.Has(frame.FlagKeepSerialized) {
			ec.s.stats.blobs.Add(1)
		}
		return ec.r.Discard(&m)
	case h.Type == frame.Invoke:
		if err := ec.r.ReadRest(&m); err != nil {
			return err
		}
		ec.s.stats.calls.Add(1)
		return ec.invoke(&m)
	default:
		return fmt.Errorf("%w: unexpected %v", errDrop, h.Type)
	}
}

// begin starts a reply: room for the header, then a CORR chunk: the request's, or a
// fresh one.
func (ec *echoConn) begin(ann frame.Annotations) {
	ec.out = append(ec.out[:0], zeroHeader[:]...)
	corr, ok := ann.Lookup(frame.CORR)
	if !ok {
		id := frame.NewCorr()
		corr = id[:]
	}
	ec.out = frame.AppendAnnotation(ec.out, frame.CORR, corr)
	ec.annLen = len(ec.out) - frame.HeaderSize
}

var zeroHeader [frame.HeaderSize]byte

// send completes the header of the reply in ec.out and writes it. When the next request
// has arrived already (a client or proxy that pipelines), the reply is held and written
// with the replies to the requests that came with it, as a server that reads ahead does;
// one request at a time, every reply is written at once.
func (ec *echoConn) send(t frame.MsgType, flags frame.Flags, seq uint16, ser frame.Serializer) error {
	h := frame.Header{Type: t, Flags: flags, Seq: seq, Serializer: ser,
		AnnLen: ec.annLen, DataLen: len(ec.out) - frame.HeaderSize - ec.annLen}
	h.Put(ec.out)
	if ec.s.Delay == 0 && ec.r.NextBuffered() {
		ec.held = append(ec.held, ec.out...)
		return nil
	}
	return ec.write(ec.out)
}

// write writes the held replies and then b.
func (ec *echoConn) write(b []byte) error {
	ec.iov = [2][]byte{ec.held, b}
	ec.bufs = ec.iov[:]
	_, err := ec.bufs.WriteTo(ec.c)
	ec.held = ec.held[:0]
	return err
}

func accepted(ser frame.Serializer) bool {
	return ser == frame.Serpent || ser == frame.JSON || ser == frame.Marshal
}

func (ec *echoConn) handshake(m *frame.Message) error {
	h := m.Header
	ec.begin(m.Annotations)
	if !accepted(h.Serializer) {
		// Pyro4 refuses in marshal, which every client can read.
		ec.out, _ = frame.AppendStringPayload(ec.out, frame.Marshal,
			fmt.Sprintf("message used serializer that is not accepted: %d", h.Serializer))
		return ec.send(frame.ConnectFail, 0, h.Seq, frame.Marshal)
	}
	p := &ec.s.payload[h.Serializer]
	if !h.Flags.Has(frame.FlagMetaOnConnect) {
		ec.out = append(ec.out, p.hello...)
		ec.connected = true
		ec.s.stats.handshakes.Add(1)
		return ec.send(frame.ConnectOK, 0, h.Seq, h.Serializer)
	}
	obj, err := frame.PeekConnectObject(h.Serializer, h.Flags, m.Payload)
	if err != nil || obj != EchoObject {
		reason := "unknown object"
		if err != nil {
			reason = "cannot read the handshake: " + err.Error()
		}
		ec.out, _ = frame.AppendStringPayload(ec.out, h.Serializer, reason)
		return ec.send(frame.ConnectFail, 0, h.Seq, h.Serializer)
	}
	ec.out = append(ec.out, p.helloMeta...)
	ec.connected = true
	ec.s.stats.handshakes.Add(1)
	return ec.send(frame.ConnectOK, frame.FlagMetaOnConnect, h.Seq, h.Serializer)
}

// invoke answers a call that expects a reply; m holds the whole payload.
func (ec *echoConn) invoke(m *frame.Message) error {
	h := m.Header
	ser := h.Serializer
	ec.begin(m.Annotations)
	if !accepted(ser) {
		return ec.exception(h, "Pyro4.errors.SerializeError",
			fmt.Sprintf("message used serializer that is not accepted: %d", ser))
	}
	if h.Flags.Has(frame.FlagBatch) {
		return ec.exception(h, "Pyro4.errors.DaemonError", "pyro-dispatch echo: batch calls are not supported")
	}
	payload, flags := m.Payload, h.Flags
	if flags.Has(frame.FlagCompressed) {
		var err error
		if payload, err = ec.decompress(payload); err != nil {
			return ec.exception(h, "Pyro4.errors.SerializeError", "cannot decompress the call: "+err.Error())
		}
		flags &^= frame.FlagCompressed
	}
	var call frame.Call
	var err error
	if flags.Has(frame.FlagKeepSerialized) {
		// A SerializedBlob call: object and method come from BLBI, as in Pyro4.
		ec.s.stats.blobs.Add(1)
		blbi, ok := m.Annotations.Lookup(frame.BLBI)
		if !ok {
			return ec.exception(h, "Pyro4.errors.SerializeError", "KEEPSERIALIZED call without a BLBI annotation")
		}
		call, err = frame.ParseBlobCall(blbi, ser, flags, payload)
	} else {
		call, err = frame.ParseCall(ser, flags, payload)
	}
	if err != nil {
		return ec.exception(h, "Pyro4.errors.SerializeError", "cannot read the call: "+err.Error())
	}
	if !call.ObjectIs(EchoObject) {
		return ec.exception(h, "Pyro4.errors.DaemonError", "unknown object")
	}
	isEcho, isOneway, isBlob := call.MethodIs(MethodEcho), call.MethodIs(MethodOneway), call.MethodIs(MethodBlob)
	if !isEcho && !isOneway && !isBlob {
		return ec.unknownMethod(h, call.Method())
	}
	p := &ec.s.payload[ser]
	switch {
	case isOneway:
		ec.out = append(ec.out, p.none...)
	case !call.HasArg():
		name := MethodEcho
		if isBlob {
			name = MethodBlob
		}
		return ec.exception(h, "builtins.TypeError", name+"() missing 1 required positional argument")
	case ec.s.ResponseSize > 0:
		ec.out = append(ec.out, p.fixed...)
	default:
		if ec.out, err = call.AppendFirstArg(ec.out); err != nil {
			return ec.exception(h, "Pyro4.errors.SerializeError", "cannot echo the argument: "+err.Error())
		}
	}
	ec.delay()
	return ec.send(frame.Result, 0, h.Seq, ser)
}

func (ec *echoConn) delay() {
	if ec.s.Delay > 0 {
		sleepFor(ec.s.Delay)
	}
}

func (ec *echoConn) unknownMethod(h frame.Header, name string) error {
	return ec.exception(h, "builtins.AttributeError", "attempt to access unexposed or unknown remote attribute '"+name+"'")
}

// exception answers the call with a Pyro4 exception, replacing any payload begun.
func (ec *echoConn) exception(h frame.Header, class, msg string) error {
	ec.s.stats.exceptions.Add(1)
	ec.out = ec.out[:frame.HeaderSize+ec.annLen]
	ser := h.Serializer
	out, err := frame.AppendExceptionPayload(ec.out, ser, class, msg)
	if err != nil {
		// A serializer frame cannot encode: answer in marshal, which every client has.
		ser = frame.Marshal
		out, _ = frame.AppendExceptionPayload(ec.out, ser, class, msg)
	}
	ec.out = out
	ec.delay()
	return ec.send(frame.Result, frame.FlagException, h.Seq, ser)
}

func (ec *echoConn) decompress(p []byte) ([]byte, error) {
	var err error
	if ec.inflate == nil {
		ec.inflate, err = zlib.NewReader(bytes.NewReader(p))
	} else {
		err = ec.inflate.(zlib.Resetter).Reset(bytes.NewReader(p), nil)
	}
	if err != nil {
		return nil, err
	}
	ec.plain.Reset()
	if _, err := ec.plain.ReadFrom(io.LimitReader(ec.inflate, DefaultEchoMaxMessage+1)); err != nil {
		return nil, err
	}
	if ec.plain.Len() > DefaultEchoMaxMessage {
		return nil, errors.New("decompressed payload too large")
	}
	return ec.plain.Bytes(), nil
}
