package bench

import (
	"net"
	"strings"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// startEcho runs an EchoServer on a loopback port until the test ends.
func startEcho(tb testing.TB, mutate func(*EchoServer)) *EchoServer {
	tb.Helper()
	s := &EchoServer{}
	if mutate != nil {
		mutate(s)
	}
	if err := s.Listen("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	tb.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return s
}

// echoClientPy drives an EchoServer with a real Pyro4 proxy: argv is the URI and the
// serializer. Every echo result must equal what a Python daemon would send back: the
// value after one trip through the call serializer and one through the result one.
const echoClientPy = `
import sys, Pyro4, Pyro4.core, Pyro4.errors, Pyro4.message, Pyro4.util
uri, sername = sys.argv[1], sys.argv[2]
Pyro4.config.SERIALIZER = sername
ser = Pyro4.util.get_serializer(sername)

def roundtrip(x):
    x1 = ser.loadsCall(ser.dumpsCall("echo", "echo", (x,), {}))[2][0]
    return ser.deserializeData(ser.serializeData(x1)[0])

values = ["hello", "echo", "blob", "", 42, -7, 2**40, 1.5, None, True, [1, 1, "a", "a"],
          {"k": "echo", "j": ("echo", "echo")}, "\u00fcn\u00ef\u20ac\U0001f600", "x" * 5000,
          ("t", 1), {"nested": [{"a": [1, 2, {"b": None}]}]}, ["echo", "echo", ["echo"]]]
if sername != "json":
    values += [b"by\x00tes", {1: "int key"}]
checked = 0
with Pyro4.Proxy(uri) as p:
    p._pyroBind()
    assert p._pyroMethods == {"echo", "oneway", "blob"}, p._pyroMethods
    assert p._pyroOneway == {"oneway"}, p._pyroOneway
    assert p._pyroAttrs == set(), p._pyroAttrs
    for v in values:
        got, want = p.echo(v), roundtrip(v)
        assert got == want and type(got) == type(want), (v, got, want)
        checked += 1
    assert p.oneway("fire") is None
    blob = Pyro4.core.SerializedBlob("topic", ("blob data", 2))
    got = p.blob(blob)
    assert got == "blob data", got
    Pyro4.message.Message.ping(p._pyroConnection)
    try:
        p._pyroInvoke("nope", (), {})
        raise SystemExit("unknown method did not raise")
    except AttributeError as e:
        assert "nope" in str(e), e
    try:
        p.echo()
        raise SystemExit("echo() did not raise")
    except TypeError:
        pass
    assert p.echo("still works") == "still works"

# Compressed calls, and a client that asks for no metadata.
Pyro4.config.COMPRESSION = True
with Pyro4.Proxy(uri) as p:
    assert p.echo("z" * 3000) == "z" * 3000
Pyro4.config.COMPRESSION = False
Pyro4.config.METADATA = False
with Pyro4.Proxy(uri) as p:
    assert p._pyroInvoke("echo", ("no meta",), {}) == "no meta"
Pyro4.config.METADATA = True

# Another object id is refused at connect, as a Pyro4 daemon does.
try:
    with Pyro4.Proxy(uri.replace("PYRO:echo@", "PYRO:other@")) as p:
        p._pyroBind()
    raise SystemExit("unknown object was accepted")
except Pyro4.errors.CommunicationError as e:
    assert "unknown object" in str(e), e
print("ok", checked)
`

func TestEchoServerWithPyro4(t *testing.T) {
	pyro4test.Python(t)
	for _, ser := range []string{"serpent", "json", "marshal"} {
		t.Run(ser, func(t *testing.T) {
			t.Parallel()
			s := startEcho(t, nil)
			out, _ := pyro4test.RunPython(t, echoClientPy, nil, s.URI(), ser)
			if !strings.HasPrefix(string(out), "ok ") {
				t.Fatalf("client said %q", out)
			}
			st := s.Stats()
			if st.Oneway != 1 || st.Blobs != 1 || st.Pings != 1 || st.Handshakes != 3 || st.Exceptions != 2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// goEcho is a raw-frame client of an EchoServer.
type goEcho struct {
	c   net.Conn
	r   *frame.Reader
	out []byte
	seq uint16
	ann frame.Annotations // the last reply's, in the reader's buffer until the next call
}

func dialEcho(tb testing.TB, addr string, ser frame.Serializer) *goEcho {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	g := &goEcho{c: c, r: frame.NewReader(c, 0, frame.Limits{})}
	hs := handshakePayload(nil, ser, EchoObject)
	g.seq = 0xffff // the handshake goes out with seq 0
	if m, _ := g.call(tb, frame.Connect, frame.FlagMetaOnConnect, ser, nil, hs); m.Type != frame.ConnectOK {
		tb.Fatalf("handshake answered with %v", m.Type)
	}
	return g
}

// call sends one message and returns the reply header and payload.
func (g *goEcho) call(tb testing.TB, t frame.MsgType, flags frame.Flags, ser frame.Serializer, ann frame.Annotations, payload []byte) (frame.Header, []byte) {
	tb.Helper()
	g.seq++
	g.out = frame.AppendMessage(g.out[:0], frame.Header{Type: t, Flags: flags, Seq: g.seq, Serializer: ser}, ann, payload)
	if _, err := g.c.Write(g.out); err != nil {
		tb.Fatal(err)
	}
	if flags.Has(frame.FlagOneway) {
		return frame.Header{}, nil
	}
	m, err := g.r.Next()
	if err != nil {
		tb.Fatal(err)
	}
	if err := g.r.ReadRest(&m); err != nil {
		tb.Fatal(err)
	}
	if m.Header.Seq != g.seq {
		tb.Fatalf("reply seq %d to request %d", m.Header.Seq, g.seq)
	}
	g.ann = m.Annotations
	return m.Header, m.Payload
}

func TestEchoServerReplies(t *testing.T) {
	s := startEcho(t, func(s *EchoServer) { s.ResponseSize = 3 })
	for _, ser := range []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal} {
		g := dialEcho(t, s.Addr().String(), ser)
		h, p := g.call(t, frame.Invoke, 0, ser, nil, callPayload(nil, ser, EchoObject, MethodEcho, "hello"))
		want, _ := frame.AppendStringPayload(nil, ser, "xxx")
		if h.Type != frame.Result || h.Flags != 0 || string(p) != string(want) {
			t.Errorf("%v: fixed-size reply %v %v %q", ser, h.Type, h.Flags, p)
		}
		// A request without CORR gets a reply with a fresh one, as from a Pyro4 daemon:
		// a version 4 uuid, another for each call.
		first, ok := g.ann.Lookup(frame.CORR)
		if !ok || len(first) != frame.CorrLen || first[6]>>4 != 4 || first[8]>>6 != 2 || len(g.ann) != h.AnnLen {
			t.Errorf("%v: reply annotations %q, want one fresh CORR", ser, g.ann)
		}
		first = append([]byte(nil), first...)
		g.call(t, frame.Invoke, 0, ser, nil, callPayload(nil, ser, EchoObject, MethodEcho, "hello"))
		if again, _ := g.ann.Lookup(frame.CORR); string(again) == string(first) {
			t.Errorf("%v: two calls got the same CORR %x", ser, again)
		}
		corr := frame.AppendAnnotation(nil, frame.CORR, []byte("0123456789abcdef"))
		h, p = g.call(t, frame.Ping, 0, ser, corr, []byte("ping"))
		if h.Type != frame.Ping || string(p) != "pong" || string(g.ann) != string(corr) {
			t.Errorf("%v: ping answered %v %q (annotations %q)", ser, h.Type, p, g.ann)
		}
		h, _ = g.call(t, frame.Invoke, 0, ser, nil, callPayload(nil, ser, "other", MethodEcho, "x"))
		if !h.Flags.Has(frame.FlagException) {
			t.Errorf("%v: unknown object answered without an exception", ser)
		}
	}
	// A message other than CONNECT first ends the connection.
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(frame.AppendMessage(nil, frame.Header{Type: frame.Invoke, Serializer: frame.Serpent}, nil, []byte("x")))
	if _, err := frame.NewReader(c, 0, frame.Limits{}).Next(); err == nil {
		t.Error("an INVOKE before the handshake was answered")
	}
}

func TestEchoServerRefusesSerializer(t *testing.T) {
	s := startEcho(t, nil)
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(frame.AppendMessage(nil, frame.Header{Type: frame.Connect, Serializer: frame.Pickle}, nil, []byte("x")))
	m, err := frame.NewReader(c, 0, frame.Limits{}).Next()
	if err != nil || m.Header.Type != frame.ConnectFail || m.Header.Serializer != frame.Marshal {
		t.Fatalf("got %+v, %v", m.Header, err)
	}
}

// TestEchoServerAllocations: a small echo call in steady state allocates nothing on the
// server (the client side here allocates nothing either).
func TestEchoServerAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	s := startEcho(t, nil)
	for _, ser := range []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal} {
		g := dialEcho(t, s.Addr().String(), ser)
		payload := callPayload(nil, ser, EchoObject, MethodEcho, strings.Repeat("x", 100))
		call := func() { g.call(t, frame.Invoke, 0, ser, nil, payload) }
		for range 10 {
			call()
		}
		// Allocations are counted process-wide, server goroutine included.
		if n := testing.AllocsPerRun(200, call); n > 0 {
			t.Errorf("%v: %v allocations per call", ser, n)
		}
	}
}

func benchmarkEcho(b *testing.B, ser frame.Serializer, size int, mode Mode) {
	s := startEcho(b, nil)
	g := dialEcho(b, s.Addr().String(), ser)
	var ann frame.Annotations
	var flags frame.Flags
	method := MethodEcho
	if mode == ModeBlob {
		ann = blobAnnotation(nil, EchoObject)
		flags = frame.FlagKeepSerialized
		method = MethodBlob
	}
	payload := callPayload(nil, ser, EchoObject, method, strings.Repeat("x", size))
	b.SetBytes(int64(2 * len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if h, _ := g.call(b, frame.Invoke, flags, ser, ann, payload); h.Type != frame.Result || h.Flags != 0 {
			b.Fatalf("reply %v %v", h.Type, h.Flags)
		}
	}
}

// BenchmarkEchoServer is the echo server's hot path: one small call and its reply over
// loopback TCP, client included. allocs/op counts both sides.
func BenchmarkEchoServer(b *testing.B) {
	for _, ser := range []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal} {
		b.Run(ser.String()+"/16B", func(b *testing.B) { benchmarkEcho(b, ser, 16, ModeCall) })
	}
	b.Run("serpent/64KiB", func(b *testing.B) { benchmarkEcho(b, frame.Serpent, 64<<10, ModeCall) })
	b.Run("marshal/blob/16B", func(b *testing.B) { benchmarkEcho(b, frame.Marshal, 16, ModeBlob) })
}
