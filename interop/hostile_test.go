package interop

import (
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// hostileCase is one kind of bad input from a raw Go client to the dispatcher.
type hostileCase struct {
	name      string
	handshake bool   // do a real CONNECT to the backend first
	send      []byte // then send this and stall
	msg       string // the dispatcher's log line: message ...
	err       string // ... and a substring of its "error" field
}

const (
	hostileMaxMessage = 1 << 20 // limits.max_message_size in the test
	hostileHeaderWait = time.Second
)

// hostileHeader is a valid header (serpent, seq 1) of type typ announcing dataLen payload
// bytes and annLen annotation bytes.
func hostileHeader(typ frame.MsgType, dataLen, annLen int) []byte {
	return frame.Header{Type: typ, Seq: 1, Serializer: frame.Serpent, DataLen: dataLen, AnnLen: annLen}.Append(nil)
}

// hostileEdit returns a copy of a valid INVOKE message with f applied to its bytes.
func hostileEdit(f func(b []byte)) []byte {
	b := rawMsg(frame.Invoke, 1, nil, "# serpent utf-8 python3.2\n('fault.svc','echo',(1,),{})")
	f(b)
	return b
}

// hostileAnnotations returns a CONNECT whose header announces annLen annotation bytes
// followed by the raw chunk bytes given (which do not add up).
func hostileAnnotations(annLen int, chunks string) []byte {
	b := frame.Header{Type: frame.Connect, Serializer: frame.Serpent, DataLen: len(rawConnectPayload), AnnLen: annLen}.Append(nil)
	b = append(b, chunks...)
	return append(b, rawConnectPayload...)
}

func hostileCases() []hostileCase {
	const (
		bad     = "closing client: bad message"
		timeout = "closing client: timed out"
		closing = "closing client"
	)
	invoke := rawMsg(frame.Invoke, 1, nil, "# serpent utf-8 python3.2\n('fault.svc','echo',(1,),{})")
	var cases []hostileCase
	for _, after := range []bool{false, true} {
		suffix := " before CONNECT"
		if after {
			suffix = " after the handshake"
		}
		cases = append(cases,
			hostileCase{name: "garbage" + suffix, send: []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), msg: bad, err: `bad magic "GET "`},
			hostileCase{name: "wrong magic" + suffix, send: hostileEdit(func(b []byte) { copy(b, "PYRX") }), msg: bad, err: `bad magic "PYRX"`},
			hostileCase{name: "wrong version" + suffix, send: hostileEdit(func(b []byte) { binary.BigEndian.PutUint16(b[4:], 47) }), msg: bad, err: "unsupported protocol version 47"},
			hostileCase{name: "bad checksum" + suffix, send: hostileEdit(func(b []byte) { b[23] ^= 0x5a }), msg: bad, err: "header checksum"},
			hostileCase{name: "over max_message_size" + suffix, send: hostileHeader(frame.Invoke, 2*hostileMaxMessage, 0), msg: bad, err: "message size 2097152 over the limit of 1048576 bytes"},
			hostileCase{name: "negative payload length" + suffix, send: hostileHeader(frame.Invoke, -5, 0), msg: bad, err: "negative payload length"},
			hostileCase{name: "chunk longer than the annotations" + suffix, send: hostileAnnotations(10, "CORR\x00\x10abcd"), msg: bad, err: "bad annotations"},
			hostileCase{name: "chunks short of the annotation length" + suffix, send: hostileAnnotations(12, "ABCD\x00\x02xyEF"), msg: bad, err: "bad annotations"},
			hostileCase{name: "half a header then a stall" + suffix, send: invoke[:10], msg: timeout, err: "i/o timeout"},
			hostileCase{name: "a 4 GiB length (0xFFFFFFFF)" + suffix, send: hostileHeader(frame.Invoke, -1, 0), msg: bad, err: "negative payload length"},
			hostileCase{name: "endless annotations (64 KiB announced, a trickle sent)" + suffix,
				send: append(hostileHeader(frame.Invoke, 10, 65535), "ABCD\xff\xf9xxxxxxxx"...), msg: timeout, err: "i/o timeout"},
		)
		for i := range cases[len(cases)-11:] {
			cases[len(cases)-11+i].handshake = after
		}
	}
	cases = append(cases,
		hostileCase{name: "nothing at all", msg: timeout, err: "reading CONNECT"},
		hostileCase{name: "first message INVOKE", send: invoke, msg: closing, err: "first message is INVOKE, want CONNECT"},
		hostileCase{name: "first message PING", send: rawMsg(frame.Ping, 0, nil, "ping"), msg: closing, err: "first message is PING, want CONNECT"},
		hostileCase{name: "first message of unknown type", send: rawMsg(99, 0, nil, "x"), msg: closing, err: "first message is type(99), want CONNECT"},
		hostileCase{name: "CONNECT payload over the buffered limit", send: append(hostileHeader(frame.Connect, 200<<10, 0), "# serpent"...),
			msg: closing, err: "CONNECT payload of 204800 bytes over the 65536 byte limit"},
		hostileCase{name: "second CONNECT", handshake: true, send: rawMsg(frame.Connect, 1, nil, rawConnectPayload), msg: closing, err: "CONNECT message where INVOKE or PING belongs"},
		hostileCase{name: "CONNECTOK from the client", handshake: true, send: rawMsg(frame.ConnectOK, 1, nil, "'hello'"), msg: closing, err: "CONNECTOK message where INVOKE or PING belongs"},
		hostileCase{name: "RESULT from the client", handshake: true, send: rawMsg(frame.Result, 1, nil, "1"), msg: closing, err: "RESULT message where INVOKE or PING belongs"},
		hostileCase{name: "unknown type after the handshake", handshake: true, send: rawMsg(77, 1, nil, "x"), msg: closing, err: "type(77) message where INVOKE or PING belongs"},
	)
	return cases
}

// TestHostileInput sends each kind of bad input on its own connection through a
// dispatcher in front of a real Pyro4 daemon. Each must close that connection (EOF or
// reset, nothing sent back) after a log line with the reason and the client's address,
// while a real Pyro4 client connected before, during and after keeps getting answers, and
// so does a raw Go client that did the handshake first.
func TestHostileInput(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	_, backend := faultDaemon(t, "127.0.0.1:0")
	p := startProxy(t, backend, func(c *config.Config) {
		c.Limits.MaxMessageSize = hostileMaxMessage
		c.Timeouts.Header = hostileHeaderWait
	})
	stop := filepath.Join(t.TempDir(), "stop")
	steady := pyro4test.StartDaemon(t, script(t, "fault_client.py"), p.uri("fault.svc"), stop)
	bystander := rawDial(t, p.addr)
	bystander.handshake(t)
	bystander.ping(t)

	t.Run("cases", func(t *testing.T) {
		for _, c := range hostileCases() {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				hostileRun(t, p, steady, c)
			})
		}
	})
	if t.Failed() {
		return
	}
	bystander.ping(t)
	faultStopClient(t, steady, stop)
	faultWantOK(t, faultCall(t, p.uri("fault.svc"), "echo", []any{"after"}, nil), "after")
}

func hostileRun(t *testing.T, p *proxy, steady *pyro4test.Process, c hostileCase) {
	conn := rawDial(t, p.addr)
	client := conn.LocalAddr().String()
	if c.handshake {
		conn.handshake(t)
		conn.ping(t)
	}
	before := faultCalls(steady)
	start := time.Now()
	if len(c.send) > 0 {
		conn.rawSend(t, c.send)
	}
	conn.expectClosed(t, hostileHeaderWait+faultWait)
	e := p.waitLog(t, c.msg, map[string]string{"client": client, "error": c.err})
	if got := toString(e.ContextMap()["client"]); got != client {
		t.Errorf("log line names client %q, want %q", got, client)
	}
	t.Logf("closed after %v: %s error=%q", time.Since(start).Round(time.Millisecond), e.Message, toString(e.ContextMap()["error"]))
	if strings.Contains(c.msg, "timed out") && time.Since(start) < hostileHeaderWait/2 {
		t.Errorf("closed after %v, before the %v header timeout", time.Since(start), hostileHeaderWait)
	}
	// The real Pyro4 client keeps getting answers after this connection is gone.
	faultWaitFor(t, "the steady Pyro4 client to complete another call", func() bool {
		return faultCalls(steady) > before || hostileExited(steady)
	})
	if hostileExited(steady) {
		t.Fatalf("the steady Pyro4 client died:\n%s", steady.Stderr())
	}
}

func hostileExited(p *pyro4test.Process) bool {
	select {
	case <-p.Done():
		return true
	default:
		return false
	}
}
