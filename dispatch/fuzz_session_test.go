package dispatch

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// The modes FuzzSession drives, chosen by its input's first byte.
var fuzzModes = []struct {
	name string
	mode func(*config.Listener)
}{
	{"session", func(*config.Listener) {}},
	{"pooled", func(l *config.Listener) {
		l.Mode, l.Affinity = config.ModePooled, []string{"golden.*"}
		l.Pool.MaxOpen, l.Pool.Handshakes = 2, 8
	}},
	{"pipelined", func(l *config.Listener) {
		l.Mode = config.ModePooled
		l.Pool.MaxOpen, l.Pool.Pipeline, l.Pool.Handshakes = 2, 4, 8
	}},
}

// fuzzMaxMessage is the fuzzed servers' max_message_size: a larger message is refused,
// never a request, and a larger reply never an answer.
const fuzzMaxMessage = 16 << 10

// fuzzHang is how long a fuzzed session may take to end: far past every timeout of the
// fuzzed servers (startFuzzServers), so that only a hang exceeds it.
const fuzzHang = 5 * time.Second

// FuzzSession drives a whole client session through the dispatcher, in the mode its
// input's first byte picks, against a backend that echoes each request's payload in a
// reply with the same seq (and no reply to a oneway call, as a Pyro4 daemon). The rest of
// the input is a sequence of client messages (fuzzStream); the client sends them, shuts
// its side down and reads until the dispatcher closes. It asserts: no panic (none
// recovered and logged either), the session ends within fuzzHang, and every reply the
// client gets answers its own requests in order: the same seq, and the echo of the
// payload or an error of the dispatcher's own. One server per mode serves all
// iterations, so what one session leaves behind (a shared pipelined connection, a
// cached handshake) meets the next.
func FuzzSession(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	addrs, logs := startFuzzServers(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		mode := int(data[0]) % len(fuzzModes)
		if err := fuzzSession(addrs[mode], fuzzStream(data[1:])); err != nil {
			t.Fatalf("%s mode: %v", fuzzModes[mode].name, err)
		}
		if errs := logs.TakeAll(); len(errs) > 0 {
			t.Fatalf("%s mode: error logged: %s %v", fuzzModes[mode].name, errs[0].Message, errs[0].ContextMap())
		}
	})
}

// startFuzzServers starts the echo backend and a dispatcher in front of it for each of
// fuzzModes, with short timeouts but no idle one, small limits (payloads over 256 bytes
// are spliced, messages over fuzzMaxMessage refused), metrics and the access log's
// peeks on. Every error-level line they log (a recovered panic) is kept in the logs
// returned.
func startFuzzServers(f *testing.F) ([]string, *observer.ObservedLogs) {
	be := echoBackend(f, func(_ *frame.Reader, m *frame.Message, h *frame.Header) answer {
		switch {
		case m.Header.Type == frame.Ping:
			h.Type = frame.Ping
		case m.Header.Type == frame.Invoke && m.Header.Flags.Has(frame.FlagOneway):
			return silent
		}
		return reply
	})
	core, logs := observer.New(zapcore.ErrorLevel)
	var addrs []string
	for _, m := range fuzzModes {
		_, addr := startProxyLogged(f, be.Addr().String(), zap.New(core), func(c *config.Config) {
			c.Admin.Listen = "127.0.0.1:0" // metrics on
			c.Log.Access = true            // each call's object and method peeked
			c.Limits.MaxMessageSize, c.Limits.BufferedPayload = fuzzMaxMessage, 256
			// No idle timeout: the client always ends its side, which must end the session.
			c.Timeouts = config.Timeouts{Header: 500 * time.Millisecond, Dial: time.Second, Call: time.Second, Drain: time.Second}
			l := &c.Listeners[0]
			l.Pool = config.DefaultPool()
			l.Pool.WaitTimeout = 500 * time.Millisecond
			m.mode(l)
		})
		addrs = append(addrs, addr)
	}
	return addrs, logs
}

// fuzzRaw starts a record of FuzzSession's input that is sent as it is.
const fuzzRaw = 0xFF

// fuzzStream turns the records of FuzzSession's input into the bytes the client sends.
// A record is raw (fuzzRaw, a 2-byte length, then that many bytes, sent as they are:
// garbage, cut or oversize frames) or a message: its type, flags, seq and serializer, a
// byte each, then the lengths of its annotations and of its payload, 2 bytes each, then
// those bytes, sent with a valid header (magic, version, lengths, checksum), so that
// mutations get past the header checks. A length past the input's end is cut to it.
func fuzzStream(in []byte) []byte {
	take := func(n int) []byte {
		n = min(n, len(in))
		b := in[:n]
		in = in[n:]
		return b
	}
	size := func() int {
		b := take(2)
		if len(b) < 2 {
			return 0
		}
		return int(b[0])<<8 | int(b[1])
	}
	var out []byte
	for len(in) > 0 {
		k := take(1)[0]
		if k == fuzzRaw {
			out = append(out, take(size())...)
			continue
		}
		f := take(3)
		if len(f) < 3 {
			break
		}
		h := frame.Header{Type: frame.MsgType(k), Flags: frame.Flags(f[0]), Seq: uint16(f[1]), Serializer: frame.Serializer(f[2])}
		ann := take(size())
		out = frame.AppendMessage(out, h, ann, take(size()))
	}
	return out
}

// fuzzMessage is the record of fuzzStream that sends a message: h's type, flags, seq and
// serializer, annotations ann and payload.
func fuzzMessage(h frame.Header, ann, payload []byte) []byte {
	out := []byte{byte(h.Type), byte(h.Flags), byte(h.Seq), byte(h.Serializer), byte(len(ann) >> 8), byte(len(ann)), byte(len(payload) >> 8), byte(len(payload))}
	return append(append(out, ann...), payload...)
}

// fuzzRawRecord is the record of fuzzStream that sends b as it is.
func fuzzRawRecord(b []byte) []byte {
	return append([]byte{fuzzRaw, byte(len(b) >> 8), byte(len(b))}, b...)
}

// fuzzSeeds are real Pyro4 sessions, the client's side of each connection of the golden
// vectors (each in one of the modes, in turn), and sessions of each mode that go wrong
// in the ways a client can make them: a large (spliced) call, garbage, an oversize or cut
// message, a call before the CONNECT, a second CONNECT, a message type a client never
// sends.
func fuzzSeeds(tb testing.TB) [][]byte {
	file, err := os.Open("../frame/testdata/vectors.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	defer file.Close()
	var seeds [][]byte
	conns := map[string]int{} // scenario and connection: its seed
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v struct {
			Scenario, Dir, Hex string
			Conn               int
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			tb.Fatal(err)
		}
		raw, err := hex.DecodeString(v.Hex)
		if err != nil || v.Dir != "c2s" {
			continue
		}
		h, err := frame.ParseHeader(raw)
		if err != nil {
			tb.Fatal(err)
		}
		key := fmt.Sprint(v.Scenario, v.Conn)
		i, ok := conns[key]
		if !ok {
			i = len(seeds)
			conns[key] = i
			seeds = append(seeds, []byte{byte(i % len(fuzzModes))})
		}
		body := raw[frame.HeaderSize:]
		seeds[i] = append(seeds[i], fuzzMessage(h, body[:h.AnnLen], body[h.AnnLen:])...)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	ser := frame.Serpent
	connect := fuzzMessage(frame.Header{Type: frame.Connect, Serializer: ser}, nil,
		[]byte("# serpent utf-8 python3.2\n{'handshake':'hello','object':'golden.obj'}"))
	call := func(seq uint16, flags frame.Flags, payload []byte) []byte {
		return fuzzMessage(frame.Header{Type: frame.Invoke, Seq: seq, Flags: flags, Serializer: ser}, nil, payload)
	}
	echo := []byte("# serpent utf-8 python3.2\n('golden.obj','echo',('x',),{})")
	oversize := frame.Header{Type: frame.Invoke, Seq: 1, DataLen: 1 << 30, Serializer: ser}.Append(nil)
	cut := frame.AppendMessage(nil, frame.Header{Type: frame.Invoke, Seq: 1, Serializer: ser}, nil, echo)
	for mode := range fuzzModes {
		m := []byte{byte(mode)}
		join := func(records ...[]byte) []byte { return bytes.Join(append([][]byte{m}, records...), nil) }
		seeds = append(seeds,
			join(connect, call(1, 0, echo), fuzzMessage(frame.Header{Type: frame.Ping, Seq: 2, Serializer: ser}, nil, []byte("ping")),
				call(3, frame.FlagOneway, echo), call(4, 0, bytes.Repeat([]byte("large "), 200)), call(5, 0, echo)),
			join(connect, fuzzRawRecord([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))),
			join(connect, fuzzRawRecord(oversize)),
			join(connect, call(1, 0, echo), fuzzRawRecord(cut[:len(cut)-5])),
			join(call(1, 0, echo)),
			join(connect, connect, call(1, 0, echo)),
			join(connect, fuzzMessage(frame.Header{Type: frame.Result, Seq: 1, Serializer: ser}, nil, echo)),
		)
	}
	return seeds
}

// fuzzRequest is a message the client sent, as the dispatcher reads it.
type fuzzRequest struct {
	h       frame.Header
	payload []byte
}

// fuzzSession connects to addr, sends stream, shuts its side down and reads the replies
// until the dispatcher closes the connection. It returns what went wrong: a reply that
// does not answer the next of the client's requests that awaits one (the dispatcher
// answers in order, each request but a oneway call, or closes the connection), or a
// session that did not end within fuzzHang.
func fuzzSession(addr string, stream []byte) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	// Closed with a reset once the session is over, which leaves no TIME_WAIT at either
	// end: thousands of sessions a second would otherwise meet their own 4-tuples still
	// in TIME_WAIT at the dispatcher, and wait a second each for the SYN to be sent again.
	c.(*net.TCPConn).SetLinger(0)
	defer c.Close()
	c.SetDeadline(time.Now().Add(fuzzHang))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		if _, err := c.Write(stream); err == nil { // else the dispatcher closed it early
			c.(*net.TCPConn).CloseWrite()
		}
	}()
	defer func() { <-wrote }()
	reqs := parseRequests(stream)
	r := frame.NewReader(c, 0, frame.Limits{MaxMessageSize: fuzzMaxMessage})
	next := 0 // requests before next are answered or passed over
	for {
		m, err := r.Next()
		if err == nil {
			err = r.ReadRest(&m)
		}
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("the session did not end within %v (%d of %d requests answered or passed)", fuzzHang, next, len(reqs))
		case err != nil:
			return fmt.Errorf("reading the replies: %w", err)
		}
		for next < len(reqs) && reqs[next].h.Type == frame.Invoke && reqs[next].h.Flags.Has(frame.FlagOneway) {
			next++ // a oneway call gets no answer
		}
		if next == len(reqs) || !answers(&m, &reqs[next]) {
			return fmt.Errorf("reply %v seq %d flags %v (%q) does not answer the client's next request awaiting one (%d of %d answered or passed)",
				m.Header.Type, m.Header.Seq, m.Header.Flags, trim(m.Payload), next, len(reqs))
		}
		next++
	}
}

// parseRequests returns the messages a frame reader finds in stream, up to the first
// that is not one or is over fuzzMaxMessage: what the dispatcher may read of it.
func parseRequests(stream []byte) []fuzzRequest {
	var reqs []fuzzRequest
	r := frame.NewReader(bytes.NewReader(stream), 0, frame.Limits{MaxMessageSize: fuzzMaxMessage})
	for {
		m, err := r.Next()
		if err == nil {
			err = r.ReadRest(&m)
		}
		if err != nil {
			return reqs
		}
		reqs = append(reqs, fuzzRequest{h: m.Header, payload: bytes.Clone(m.Payload)})
	}
}

// answers reports whether m answers request q: with its seq, and either the backend's
// echo of its payload (CONNECTOK for a CONNECT, RESULT for an INVOKE, PING for a PING) or
// the dispatcher's own refusal (a CONNECTFAIL for a CONNECT, else an exception).
func answers(m *frame.Message, q *fuzzRequest) bool {
	if m.Header.Seq != q.h.Seq {
		return false
	}
	echo, own := map[frame.MsgType]frame.MsgType{frame.Connect: frame.ConnectOK, frame.Invoke: frame.Result, frame.Ping: frame.Ping}[q.h.Type], frame.Result
	if q.h.Type == frame.Connect {
		own = frame.ConnectFail
	}
	if m.Header.Type == own && (own == frame.ConnectFail || m.Header.Flags.Has(frame.FlagException)) {
		return bytes.Contains(m.Payload, []byte("pyro-dispatch"))
	}
	return m.Header.Type == echo && m.Header.Flags == 0 && bytes.Equal(m.Payload, q.payload)
}

// trim shortens a payload for an error message.
func trim(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
