package frame

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// replyA285 makes a message longer than 255 bytes, past the short string codes.
var replyA285 = strings.Repeat("a", 285)

// replyVectors were produced by Python 3.11 with Pyro4 4.82 on Debian bookworm:
// serpent, json and msgpack by Pyro4.util.get_serializer_by_id(id).dumps(value), pickle by
// pickle.dumps(value, 2), marshal by marshal.dumps of freshly built objects (no FLAG_REF:
// "".join(list(s)) for every str, {...} and (...) built at the call). value is the message
// str, or Pyro4.errors.<class>(message) freshly constructed. class "" means a string payload.
var replyVectors = []struct {
	class string
	msg   string
	want  map[Serializer]string
}{
	{class: "", msg: "boom", want: map[Serializer]string{
		Serpent: "# serpent utf-8 python3.2\n'boom'",
		JSON:    "\"boom\"",
		Marshal: "z\x04boom",
		Pickle:  "\x80\x02X\x04\x00\x00\x00boomq\x00.",
		Msgpack: "\xa4boom",
	}},
	{class: ExcCommunicationError, msg: "boom", want: map[Serializer]string{
		Serpent: "# serpent utf-8 python3.2\n{'__class__':'Pyro4.errors.CommunicationError','__exception__':True,'args':('boom',),'attributes':{}}",
		JSON:    "{\"__class__\": \"Pyro4.errors.CommunicationError\", \"__exception__\": true, \"args\": [\"boom\"], \"attributes\": {}}",
		Marshal: "{z\t__class__z\x1fPyro4.errors.CommunicationErrorz\x0d__exception__Tz\x04args)\x01z\x04boomz\nattributes{00",
		Pickle:  "\x80\x02cPyro4.errors\nCommunicationError\nq\x00X\x04\x00\x00\x00boomq\x01\x85q\x02Rq\x03.",
		Msgpack: "\x84\xa9__class__\xbfPyro4.errors.CommunicationError\xad__exception__\xc3\xa4args\x91\xa4boom\xaaattributes\x80",
	}},
	{class: "", msg: "pyro-dispatch: it's \"quoted\" \\ back", want: map[Serializer]string{
		Serpent: "# serpent utf-8 python3.2\n'pyro-dispatch: it\\'s \"quoted\" \\\\ back'",
		JSON:    "\"pyro-dispatch: it's \\\"quoted\\\" \\\\ back\"",
		Marshal: "z#pyro-dispatch: it's \"quoted\" \\ back",
		Pickle:  "\x80\x02X#\x00\x00\x00pyro-dispatch: it's \"quoted\" \\ backq\x00.",
		Msgpack: "\xd9#pyro-dispatch: it's \"quoted\" \\ back",
	}},
	{class: ExcDaemonError, msg: "pyro-dispatch: it's \"quoted\" \\ back", want: map[Serializer]string{
		Serpent: "# serpent utf-8 python3.2\n{'__class__':'Pyro4.errors.DaemonError','__exception__':True,'args':('pyro-dispatch: it\\'s \"quoted\" \\\\ back',),'attributes':{}}",
		JSON:    "{\"__class__\": \"Pyro4.errors.DaemonError\", \"__exception__\": true, \"args\": [\"pyro-dispatch: it's \\\"quoted\\\" \\\\ back\"], \"attributes\": {}}",
		Marshal: "{z\t__class__z\x18Pyro4.errors.DaemonErrorz\x0d__exception__Tz\x04args)\x01z#pyro-dispatch: it's \"quoted\" \\ backz\nattributes{00",
		Pickle:  "\x80\x02cPyro4.errors\nDaemonError\nq\x00X#\x00\x00\x00pyro-dispatch: it's \"quoted\" \\ backq\x01\x85q\x02Rq\x03.",
		Msgpack: "\x84\xa9__class__\xb8Pyro4.errors.DaemonError\xad__exception__\xc3\xa4args\x91\xd9#pyro-dispatch: it's \"quoted\" \\ back\xaaattributes\x80",
	}},
	{class: "", msg: "pyro-dispatch: it's", want: map[Serializer]string{
		Serpent: "# serpent utf-8 python3.2\n\"pyro-dispatch: it's\"",
		JSON:    "\"pyro-dispatch: it's\"",
		Marshal: "z\x13pyro-dispatch: it's",
		Pickle:  "\x80\x02X\x13\x00\x00\x00pyro-dispatch: it'sq\x00.",
		Msgpack: "\xb3pyro-dispatch: it's",
	}},
	{class: ExcSecurityError, msg: "pyro-dispatch: ünïcode ✓ 😀 \x00\x07\x08\x0c\t\n\r\x1f\x7f\u0085\u00a0\u2028 end", want: map[Serializer]string{
		Serpent: "# serpent utf-8 python3.2\n{'__class__':'Pyro4.errors.SecurityError','__exception__':True,'args':('pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \\x00\\x07\\x08\\x0c\\t\\n\\r\\x1f\\x7f\\x85\\xa0\\u2028 end',),'attributes':{}}",
		JSON:    "{\"__class__\": \"Pyro4.errors.SecurityError\", \"__exception__\": true, \"args\": [\"pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \\u0000\\u0007\\b\\f\\t\\n\\r\\u001f\x7f\xc2\x85\xc2\xa0\xe2\x80\xa8 end\"], \"attributes\": {}}",
		Marshal: "{z\t__class__z\x1aPyro4.errors.SecurityErrorz\x0d__exception__Tz\x04args)\x01u6\x00\x00\x00pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \x00\x07\x08\x0c\t\n\x0d\x1f\x7f\xc2\x85\xc2\xa0\xe2\x80\xa8 endz\nattributes{00",
		Pickle:  "\x80\x02cPyro4.errors\nSecurityError\nq\x00X6\x00\x00\x00pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \x00\x07\x08\x0c\t\n\x0d\x1f\x7f\xc2\x85\xc2\xa0\xe2\x80\xa8 endq\x01\x85q\x02Rq\x03.",
		Msgpack: "\x84\xa9__class__\xbaPyro4.errors.SecurityError\xad__exception__\xc3\xa4args\x91\xd96pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \x00\x07\x08\x0c\t\n\x0d\x1f\x7f\xc2\x85\xc2\xa0\xe2\x80\xa8 end\xaaattributes\x80",
	}},
	{class: "", msg: "pyro-dispatch: ünïcode ✓ 😀 \x00\x07\x08\x0c\t\n\r\x1f\x7f\u0085\u00a0\u2028 end", want: map[Serializer]string{
		Serpent: "# serpent utf-8 python3.2\n'pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \\x00\\x07\\x08\\x0c\\t\\n\\r\\x1f\\x7f\\x85\\xa0\\u2028 end'",
		JSON:    "\"pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \\u0000\\u0007\\b\\f\\t\\n\\r\\u001f\x7f\xc2\x85\xc2\xa0\xe2\x80\xa8 end\"",
		Marshal: "u6\x00\x00\x00pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \x00\x07\x08\x0c\t\n\x0d\x1f\x7f\xc2\x85\xc2\xa0\xe2\x80\xa8 end",
		Pickle:  "\x80\x02X6\x00\x00\x00pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \x00\x07\x08\x0c\t\n\x0d\x1f\x7f\xc2\x85\xc2\xa0\xe2\x80\xa8 endq\x00.",
		Msgpack: "\xd96pyro-dispatch: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93 \xf0\x9f\x98\x80 \x00\x07\x08\x0c\t\n\x0d\x1f\x7f\xc2\x85\xc2\xa0\xe2\x80\xa8 end",
	}},
	{class: ExcCommunicationError, msg: "pyro-dispatch: " + replyA285, want: map[Serializer]string{
		Serpent: "# serpent utf-8 python3.2\n{'__class__':'Pyro4.errors.CommunicationError','__exception__':True,'args':('pyro-dispatch: " + replyA285 + "',),'attributes':{}}",
		JSON:    "{\"__class__\": \"Pyro4.errors.CommunicationError\", \"__exception__\": true, \"args\": [\"pyro-dispatch: " + replyA285 + "\"], \"attributes\": {}}",
		Marshal: "{z\t__class__z\x1fPyro4.errors.CommunicationErrorz\x0d__exception__Tz\x04args)\x01a,\x01\x00\x00pyro-dispatch: " + replyA285 + "z\nattributes{00",
		Pickle:  "\x80\x02cPyro4.errors\nCommunicationError\nq\x00X,\x01\x00\x00pyro-dispatch: " + replyA285 + "q\x01\x85q\x02Rq\x03.",
		Msgpack: "\x84\xa9__class__\xbfPyro4.errors.CommunicationError\xad__exception__\xc3\xa4args\x91\xda\x01,pyro-dispatch: " + replyA285 + "\xaaattributes\x80",
	}},
}

func TestReplyPayloadsMatchPython(t *testing.T) {
	for _, v := range replyVectors {
		for ser, want := range v.want {
			var got []byte
			var err error
			if v.class == "" {
				got, err = AppendStringPayload(nil, ser, v.msg)
			} else {
				got, err = AppendExceptionPayload(nil, ser, v.class, v.msg)
			}
			if err != nil {
				t.Fatalf("%s %q %.30q: %v", ser, v.class, v.msg, err)
			}
			if string(got) != want {
				t.Errorf("%s %q %.30q:\n got %q\nwant %q", ser, v.class, v.msg, got, want)
			}
		}
	}
}

// Dill and cloudpickle read standard pickles, so their payloads are the pickle ones.
func TestReplyDillCloudpicklePayloadsArePickle(t *testing.T) {
	for _, v := range replyVectors {
		for _, ser := range []Serializer{Dill, Cloudpickle} {
			var got []byte
			if v.class == "" {
				got, _ = AppendStringPayload(nil, ser, v.msg)
			} else {
				got, _ = AppendExceptionPayload(nil, ser, v.class, v.msg)
			}
			if want := v.want[Pickle]; string(got) != want {
				t.Errorf("%s %.30q:\n got %q\nwant %q", ser, v.msg, got, want)
			}
		}
	}
}

func TestReplyAppendsToDst(t *testing.T) {
	prefix := []byte("prefix")
	for ser := Serpent; ser <= Cloudpickle; ser++ {
		got, err := AppendExceptionPayload(append([]byte(nil), prefix...), ser, ExcDaemonError, "boom")
		if err != nil {
			t.Fatal(err)
		}
		alone, _ := AppendExceptionPayload(nil, ser, ExcDaemonError, "boom")
		if !bytes.Equal(got, append(append([]byte(nil), prefix...), alone...)) {
			t.Errorf("%s: prefix not kept: %q", ser, got)
		}
	}
}

func TestReplyInvalidUTF8(t *testing.T) {
	// Each byte outside a valid sequence becomes one U+FFFD; a UTF-8 encoded surrogate
	// (ed a0 80) is invalid too.
	bad := "pyro-dispatch: bad \xff\xfe utf8 \xe2\x82 end \xed\xa0\x80 ✓"
	clean := "pyro-dispatch: bad \uFFFD\uFFFD utf8 \uFFFD\uFFFD end \uFFFD\uFFFD\uFFFD ✓"
	for ser := Serpent; ser <= Cloudpickle; ser++ {
		got, err := AppendStringPayload(nil, ser, bad)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := AppendStringPayload(nil, ser, clean)
		if !bytes.Equal(got, want) {
			t.Errorf("%s string: got %q, want %q", ser, got, want)
		}
		got, err = AppendExceptionPayload(nil, ser, ExcCommunicationError, bad)
		if err != nil {
			t.Fatal(err)
		}
		want, _ = AppendExceptionPayload(nil, ser, ExcCommunicationError, clean)
		if !bytes.Equal(got, want) {
			t.Errorf("%s exception: got %q, want %q", ser, got, want)
		}
		if (ser == Serpent || ser == JSON) && !utf8.Valid(got) {
			t.Errorf("%s: output is not valid UTF-8: %q", ser, got)
		}
	}
}

func TestReplyUnknownSerializer(t *testing.T) {
	for _, ser := range []Serializer{0, 8, 0xffff} {
		dst := []byte("keep")
		got, err := AppendStringPayload(dst, ser, "x")
		if !errors.Is(err, ErrUnsupportedSerializer) || string(got) != "keep" {
			t.Errorf("AppendStringPayload(%d) = %q, %v", ser, got, err)
		}
		got, err = AppendExceptionPayload(dst, ser, ExcDaemonError, "x")
		if !errors.Is(err, ErrUnsupportedSerializer) || string(got) != "keep" {
			t.Errorf("AppendExceptionPayload(%d) = %q, %v", ser, got, err)
		}
	}
}

func TestReplyExceptionClass(t *testing.T) {
	good := []string{ExcCommunicationError, ExcDaemonError, ExcSecurityError, "builtins.ValueError", "a.b", "_x.y1.Z_9"}
	bad := []string{"", "ValueError", ".x", "x.", "a..b", "1a.b", "a.1b", "Pyro4.errors.__init__", "a__b.c",
		"a.b c", "a.b\nc", "a.b'", "Pyro4.errörs.X", "a-b.c", "a.b\x00"}
	for _, c := range good {
		for ser := Serpent; ser <= Cloudpickle; ser++ {
			if _, err := AppendExceptionPayload(nil, ser, c, "m"); err != nil {
				t.Errorf("%s %q: %v", ser, c, err)
			}
		}
	}
	for _, c := range bad {
		for ser := Serpent; ser <= Cloudpickle; ser++ {
			got, err := AppendExceptionPayload([]byte("keep"), ser, c, "m")
			if err == nil || string(got) != "keep" {
				t.Errorf("%s %q: got %q, %v; want an error", ser, c, got, err)
			}
		}
	}
}

func TestReplyAppendMessage(t *testing.T) {
	// Pyro4.message.Message(MSG_CONNECTFAIL, serpent 'boom', 1, 0, 7,
	// annotations={"CORR": bytes(range(16))}).to_bytes()
	const wantFail = "PYRO\x000\x00\x03\x00\x00\x00\x07\x00\x00\x00 \x00\x01\x00\x16\x00\x005ZCORR\x00\x10\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\x0d\x0e\x0f# serpent utf-8 python3.2\n'boom'"
	// Pyro4.message.Message(MSG_RESULT, json DaemonError('boom'), 2, FLAGS_EXCEPTION, 65535).to_bytes()
	const wantExc = "PYRO\x000\x00\x05\x00\x01\xff\xff\x00\x00\x00d\x00\x02\x00\x00\x00\x005\x84{\"__class__\": \"Pyro4.errors.DaemonError\", \"__exception__\": true, \"args\": [\"boom\"], \"attributes\": {}}"

	var corr [CorrLen]byte
	for i := range corr {
		corr[i] = byte(i)
	}
	ann := Annotations(AppendAnnotation(nil, CORR, corr[:]))
	payload, err := AppendStringPayload(nil, Serpent, "boom")
	if err != nil {
		t.Fatal(err)
	}
	// DataLen and AnnLen given by the caller are overwritten.
	got := AppendMessage(nil, Header{Type: ConnectFail, Seq: 7, Serializer: Serpent, DataLen: 999, AnnLen: 5}, ann, payload)
	if string(got) != wantFail {
		t.Errorf("CONNECTFAIL:\n got %q\nwant %q", got, wantFail)
	}

	payload, err = AppendExceptionPayload(nil, JSON, ExcDaemonError, "boom")
	if err != nil {
		t.Fatal(err)
	}
	got = AppendMessage([]byte("x"), Header{Type: Result, Flags: FlagException, Seq: 65535, Serializer: JSON}, nil, payload)
	if string(got[1:]) != wantExc || got[0] != 'x' {
		t.Errorf("RESULT:\n got %q\nwant %q", got, wantExc)
	}
	h, err := ParseHeader(got[1:])
	if err != nil {
		t.Fatal(err)
	}
	if h.DataLen != len(payload) || h.AnnLen != 0 || h.Type != Result || h.Flags != FlagException {
		t.Errorf("header %+v", h)
	}
}

// FuzzReplyPayloads checks that no input panics, that the text serializers produce valid
// UTF-8 and that the length fields of the binary ones match.
func FuzzReplyPayloads(f *testing.F) {
	f.Add("boom", ExcCommunicationError)
	f.Add("it's \"q\" \\ \x00\xff\xed\xa0\x80 ✓ 😀 \u2028", "builtins.ValueError")
	f.Add(replyA285+replyA285, "a..b")
	f.Fuzz(func(t *testing.T, msg, class string) {
		for ser := Serializer(0); ser <= Cloudpickle+1; ser++ {
			s, err1 := AppendStringPayload(nil, ser, msg)
			e, err2 := AppendExceptionPayload(nil, ser, class, msg)
			if err1 != nil {
				continue
			}
			switch ser {
			case Serpent, JSON:
				if !utf8.Valid(s) || (err2 == nil && !utf8.Valid(e)) {
					t.Fatalf("%s: invalid UTF-8 output for %q", ser, msg)
				}
			case Pickle, Dill, Cloudpickle:
				if n := len(validUTF8(msg)); len(s) != n+10 {
					t.Fatalf("pickle string payload of %d bytes for %d bytes", len(s), n)
				}
			}
		}
	})
}

func BenchmarkReplyExceptionPayload(b *testing.B) {
	msg := "pyro-dispatch: no backend for object 'obj.x': connection refused"
	for ser := Serpent; ser <= Msgpack; ser++ {
		if ser == Dill {
			continue
		}
		b.Run(ser.String(), func(b *testing.B) {
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				buf, err = AppendExceptionPayload(buf[:0], ser, ExcCommunicationError, msg)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkReplyConnectFailMessage(b *testing.B) {
	reason := "pyro-dispatch: no route for object 'obj.x'"
	payload := make([]byte, 0, 256)
	msg := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		payload, _ = AppendStringPayload(payload[:0], Serpent, reason)
		msg = AppendMessage(msg[:0], Header{Type: ConnectFail, Seq: 1, Serializer: Serpent}, nil, payload)
	}
	b.SetBytes(int64(len(msg)))
}
