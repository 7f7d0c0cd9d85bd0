package interop

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// replySerializers returns the serializers whose Python module is importable: serpent,
// json, marshal and pickle always (with Pyro4), msgpack, dill and cloudpickle when
// installed (Debian python3-msgpack, python3-dill, python3-cloudpickle).
func replySerializers(t *testing.T) []frame.Serializer {
	t.Helper()
	pyro4test.Python(t)
	sers := []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal, frame.Pickle}
	for _, s := range []frame.Serializer{frame.Msgpack, frame.Dill, frame.Cloudpickle} {
		if pyro4test.HasModule(t, s.String()) {
			sers = append(sers, s)
		} else {
			t.Logf("Python module %s not installed: serializer not tested", s)
		}
	}
	return sers
}

// replyTexts are reasons and messages as the dispatcher may write them. The last one has
// invalid UTF-8, which reaches Python with U+FFFD in place of each bad byte.
var replyTexts = []struct{ in, want string }{
	{"pyro-dispatch: no route for object 'obj.x'", ""},
	{"pyro-dispatch: backend \"db-1\" down: ünïcode ✓ 😀, back\\slash, both ' and \"", ""},
	{"pyro-dispatch: controls \x00\x07\b\f\t\n\r\x1f\x7f \u0085\u00a0\u2028\ufeff end", ""},
	{"pyro-dispatch: it's " + strings.Repeat("long ", 60), ""},
	{"pyro-dispatch: bad \xff\xfe utf-8 \xed\xa0\x80 ✓", "pyro-dispatch: bad \uFFFD\uFFFD utf-8 \uFFFD\uFFFD\uFFFD ✓"},
}

func replyWant(i int) string {
	if replyTexts[i].want != "" {
		return replyTexts[i].want
	}
	return replyTexts[i].in
}

var replyClasses = []string{frame.ExcCommunicationError, frame.ExcDaemonError, frame.ExcSecurityError}

// replyDecodeScript reads messages from stdin with Pyro4's own Message.recv (header checks,
// annotations) and decodes each payload the way core.py does, then prints a JSON list.
const replyDecodeScript = `
import io, json, sys
import Pyro4.message as M
import Pyro4.util as U

class Conn(object):
    def __init__(self, data):
        self.f = io.BytesIO(data)
    def recv(self, size):
        b = self.f.read(size)
        if len(b) != size:
            raise EOFError("short read: %d of %d" % (len(b), size))
        return b
    def close(self):
        pass

data = sys.stdin.buffer.read()
conn = Conn(data)
out = []
while conn.f.tell() < len(data):
    msg = M.Message.recv(conn, [M.MSG_CONNECTFAIL, M.MSG_RESULT])
    ser = U.get_serializer_by_id(msg.serializer_id)
    val = ser.deserializeData(msg.data, compressed=msg.flags & M.FLAGS_COMPRESSED)
    r = {"type": msg.type, "seq": msg.seq, "flags": msg.flags, "serializer": msg.serializer_id,
         "annotations": sorted(msg.annotations)}
    if isinstance(val, BaseException):
        r["class"] = type(val).__module__ + "." + type(val).__qualname__
        r["str"] = str(val)
        r["args"] = list(val.args)
    else:
        r["pytype"] = type(val).__name__
        r["value"] = val
    out.append(r)
json.dump(out, sys.stdout)
`

type replyDecoded struct {
	Type        int      `json:"type"`
	Seq         int      `json:"seq"`
	Flags       int      `json:"flags"`
	Serializer  int      `json:"serializer"`
	Annotations []string `json:"annotations"`
	Class       string   `json:"class"`
	Str         string   `json:"str"`
	Args        []string `json:"args"`
	PyType      string   `json:"pytype"`
	Value       string   `json:"value"`
}

// TestReplyPayloadsDecodedByPyro4 has Pyro4 itself parse the CONNECTFAIL and exception
// RESULT messages the dispatcher builds, for every serializer.
func TestReplyPayloadsDecodedByPyro4(t *testing.T) {
	sers := replySerializers(t)
	var stream []byte
	var want []replyDecoded
	corr := frame.AppendAnnotation(nil, frame.CORR, bytes.Repeat([]byte{0xab}, frame.CorrLen))
	seq := uint16(65530) // wraps past 65535
	for _, ser := range sers {
		for i, text := range replyTexts {
			seq++
			var ann frame.Annotations
			var annWant []string
			if i%2 == 0 {
				ann, annWant = corr, []string{"CORR"}
			}
			payload, err := frame.AppendStringPayload(nil, ser, text.in)
			if err != nil {
				t.Fatal(err)
			}
			stream = frame.AppendMessage(stream, frame.Header{Type: frame.ConnectFail, Seq: seq, Serializer: ser}, ann, payload)
			want = append(want, replyDecoded{Type: 3, Seq: int(seq), Serializer: int(ser), Annotations: annWant,
				PyType: "str", Value: replyWant(i)})

			class := replyClasses[i%len(replyClasses)]
			payload, err = frame.AppendExceptionPayload(nil, ser, class, text.in)
			if err != nil {
				t.Fatal(err)
			}
			stream = frame.AppendMessage(stream, frame.Header{Type: frame.Result, Flags: frame.FlagException, Seq: seq, Serializer: ser}, ann, payload)
			want = append(want, replyDecoded{Type: 5, Seq: int(seq), Flags: 1, Serializer: int(ser), Annotations: annWant,
				Class: class, Str: replyWant(i), Args: []string{replyWant(i)}})
		}
	}
	out, _ := pyro4test.RunPython(t, replyDecodeScript, stream)
	var got []replyDecoded
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if len(got) != len(want) {
		t.Fatalf("Python decoded %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Annotations == nil {
			g.Annotations = []string{}
		}
		if w.Annotations == nil {
			w.Annotations = []string{}
		}
		if fmt.Sprintf("%#v", g) != fmt.Sprintf("%#v", w) {
			t.Errorf("message %d (%s):\n got %+v\nwant %+v", i, frame.Serializer(w.Serializer), g, w)
		}
	}
}

// replyMetaScript prints, per serializer id, the CONNECTOK payload a Pyro4 daemon sends
// for a META_ON_CONNECT handshake to an object with one method "call".
const replyMetaScript = `
import json, sys
import Pyro4.util as U
out = {}
for sid in sys.argv[1:]:
    ser = U.get_serializer_by_id(int(sid))
    resp = {"handshake": "hello", "meta": {"methods": ["call"], "oneway": [], "attrs": []}}
    out[sid] = ser.serializeData(resp, False)[0].hex()
print(json.dumps(out))
`

// replyClientScript connects real Pyro4 proxies to the test's Go listeners, for each
// serializer named in argv[4]: one bind to the CONNECTFAIL listener in the client's
// serializer, one to the listener that answers CONNECTFAIL in marshal, and three calls
// through the listener that accepts and answers every call with an exception.
const replyClientScript = `
import json, sys
import Pyro4, Pyro4.errors
Pyro4.config.COMMTIMEOUT = 20.0
fail, marshalfail, ok = (int(a) for a in sys.argv[1:4])

def exc(x):
    return {"class": type(x).__module__ + "." + type(x).__qualname__, "str": str(x)}

res = {}
for name in sys.argv[4].split(","):
    r = {}
    for key, port in (("fail", fail), ("marshalfail", marshalfail)):
        p = Pyro4.Proxy("PYRO:obj.x@127.0.0.1:%d" % port)
        p._pyroSerializer = name
        try:
            p._pyroBind()
            r[key] = {"class": "", "str": "no exception"}
        except Exception as x:
            r[key] = exc(x)
        p._pyroRelease()
    p = Pyro4.Proxy("PYRO:obj.x@127.0.0.1:%d" % ok)
    p._pyroSerializer = name
    calls = []
    for i in range(3):
        try:
            p.call(i)
            calls.append({"class": "", "str": "no exception"})
        except Exception as x:
            calls.append(exc(x))
    p._pyroRelease()
    r["calls"] = calls
    res[name] = r
print(json.dumps(res))
`

// replyServer is a fake Pyro4 daemon on a loopback port: serve handles one connection.
type replyServer struct {
	t     *testing.T
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startReplyServer(t *testing.T, serve func(c net.Conn, r *frame.Reader) error) *replyServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &replyServer{t: t, ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				err := serve(c, frame.NewReader(c, 0, frame.Limits{MaxMessageSize: 1 << 20}))
				if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					t.Errorf("fake daemon %s: %v", ln.Addr(), err)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *replyServer) port() string {
	return strconv.Itoa(s.ln.Addr().(*net.TCPAddr).Port)
}

// replyRead reads one whole message of the wanted type.
func replyRead(r *frame.Reader, want frame.MsgType) (frame.Message, error) {
	m, err := r.Next()
	if err != nil {
		return m, err
	}
	if err := r.ReadRest(&m); err != nil {
		return m, err
	}
	if m.Header.Type != want {
		return m, fmt.Errorf("got %s, want %s", m.Header.Type, want)
	}
	return m, nil
}

// replyAnn returns the reply annotations a daemon sends: the request's CORR, if any.
func replyAnn(m frame.Message) frame.Annotations {
	if corr, ok := m.Annotations.Lookup(frame.CORR); ok {
		return frame.AppendAnnotation(nil, frame.CORR, corr)
	}
	return nil
}

const (
	replyConnectReason = "pyro-dispatch: no route for object 'obj.x' — ünïcode \"q\" ✓"
	replyMarshalReason = "pyro-dispatch: message used serializer that is not accepted: ☹"
)

// replyCallMessage is the exception message the fake daemon answers call seq with.
func replyCallMessage(seq uint16) string {
	return fmt.Sprintf("pyro-dispatch: call %d refused: it's \"quoted\" \\ ünï ✓", seq)
}

// TestReplyPyro4ClientEndToEnd has real Pyro4 proxies talk to Go listeners that answer
// with the messages frame builds, and checks the exceptions the client raises.
func TestReplyPyro4ClientEndToEnd(t *testing.T) {
	sers := replySerializers(t)
	var ids, names []string
	for _, s := range sers {
		ids = append(ids, strconv.Itoa(int(s)))
		names = append(names, s.String())
	}
	out, _ := pyro4test.RunPython(t, replyMetaScript, nil, ids...)
	var metaHex map[string]string
	if err := json.Unmarshal(out, &metaHex); err != nil {
		t.Fatalf("meta payloads %q: %v", out, err)
	}
	meta := map[frame.Serializer][]byte{}
	for id, h := range metaHex {
		n, _ := strconv.Atoi(id)
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		meta[frame.Serializer(n)] = b
	}

	connectFail := func(marshal bool) func(c net.Conn, r *frame.Reader) error {
		return func(c net.Conn, r *frame.Reader) error {
			m, err := replyRead(r, frame.Connect)
			if err != nil {
				return err
			}
			ser, reason := m.Header.Serializer, replyConnectReason
			if marshal {
				ser, reason = frame.Marshal, replyMarshalReason
			}
			payload, err := frame.AppendStringPayload(nil, ser, reason)
			if err != nil {
				return err
			}
			_, err = c.Write(frame.AppendMessage(nil, frame.Header{Type: frame.ConnectFail, Seq: m.Header.Seq, Serializer: ser}, replyAnn(m), payload))
			return err
		}
	}
	failSrv := startReplyServer(t, connectFail(false))
	marshalSrv := startReplyServer(t, connectFail(true))
	okSrv := startReplyServer(t, func(c net.Conn, r *frame.Reader) error {
		m, err := replyRead(r, frame.Connect)
		if err != nil {
			return err
		}
		ser := m.Header.Serializer
		h := frame.Header{Type: frame.ConnectOK, Seq: m.Header.Seq, Serializer: ser}
		var payload []byte
		if m.Header.Flags.Has(frame.FlagMetaOnConnect) {
			h.Flags = frame.FlagMetaOnConnect
			payload = meta[ser]
		} else if payload, err = frame.AppendStringPayload(nil, ser, "hello"); err != nil {
			return err
		}
		if _, err := c.Write(frame.AppendMessage(nil, h, replyAnn(m), payload)); err != nil {
			return err
		}
		for {
			m, err := replyRead(r, frame.Invoke)
			if err != nil {
				return err
			}
			seq := m.Header.Seq
			class := replyClasses[(int(seq)+len(replyClasses)-1)%len(replyClasses)]
			payload, err := frame.AppendExceptionPayload(nil, m.Header.Serializer, class, replyCallMessage(seq))
			if err != nil {
				return err
			}
			h := frame.Header{Type: frame.Result, Flags: frame.FlagException, Seq: seq, Serializer: m.Header.Serializer}
			if _, err := c.Write(frame.AppendMessage(nil, h, replyAnn(m), payload)); err != nil {
				return err
			}
		}
	})

	out, _ = pyro4test.RunPython(t, replyClientScript, nil,
		failSrv.port(), marshalSrv.port(), okSrv.port(), strings.Join(names, ","))
	type exc struct{ Class, Str string }
	var got map[string]struct {
		Fail, MarshalFail exc
		Calls             []exc
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	rejected := func(s *replyServer, reason string) exc {
		return exc{frame.ExcCommunicationError,
			fmt.Sprintf("connection to ('127.0.0.1', %s) rejected: %s", s.port(), reason)}
	}
	for _, name := range names {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: no result", name)
			continue
		}
		if w := rejected(failSrv, replyConnectReason); g.Fail != w {
			t.Errorf("%s CONNECTFAIL:\n got %+v\nwant %+v", name, g.Fail, w)
		}
		if w := rejected(marshalSrv, replyMarshalReason); g.MarshalFail != w {
			t.Errorf("%s CONNECTFAIL in marshal:\n got %+v\nwant %+v", name, g.MarshalFail, w)
		}
		// Call seqs are 1, 2, 3: the CommunicationError makes the proxy drop its connection,
		// so the second call also checks that it reconnects through a CONNECTOK.
		var want []exc
		for seq := uint16(1); seq <= 3; seq++ {
			want = append(want, exc{replyClasses[seq-1], replyCallMessage(seq)})
		}
		if fmt.Sprint(g.Calls) != fmt.Sprint(want) {
			t.Errorf("%s calls:\n got %+v\nwant %+v", name, g.Calls, want)
		}
	}
}
