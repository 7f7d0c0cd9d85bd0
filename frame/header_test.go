package frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// A CONNECT header as real Pyro4 4.82 writes it: Message(MSG_CONNECT, 63 payload bytes,
// serpent, META_ON_CONNECT, seq 0, one CORR chunk).to_bytes()[:24].
const connectHeaderHex = "5059524f00300001001000000000003f0001001600003580"

func TestParseHeaderReal(t *testing.T) {
	b, _ := hex.DecodeString(connectHeaderHex)
	h, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Header{Type: Connect, Flags: FlagMetaOnConnect, Seq: 0, DataLen: 63, Serializer: Serpent, AnnLen: 22}
	if h != want {
		t.Fatalf("got %+v, want %+v", h, want)
	}
	var out [HeaderSize]byte
	h.Put(out[:])
	if !bytes.Equal(out[:], b) {
		t.Fatalf("re-encoded %x, want %x", out, b)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{Type: Invoke, Flags: FlagOneway | FlagKeepSerialized, Seq: 65535, DataLen: MaxDataLen, Serializer: Marshal, AnnLen: 65535},
		{Type: Ping, Serializer: JSON},
		{Type: Result, Flags: FlagException | FlagItemStreamResult, Seq: 7, DataLen: 1 << 20, Serializer: Pickle, AnnLen: 40},
	} {
		b := h.Append(nil)
		got, err := ParseHeader(b)
		if err != nil || got != h {
			t.Errorf("round trip of %+v: got %+v, %v", h, got, err)
		}
	}
}

func TestParseHeaderErrors(t *testing.T) {
	good := Header{Type: Invoke, Seq: 3, DataLen: 10, Serializer: Serpent}.Append(nil)
	mutate := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	var (
		me *MagicError
		ve *VersionError
		ce *ChecksumError
		se *SizeError
	)
	cases := []struct {
		name   string
		in     []byte
		target any
		check  func() bool
	}{
		{"magic", mutate(func(b []byte) { copy(b, "HTTP") }), &me, func() bool { return string(me.Got[:]) == "HTTP" }},
		{"version", mutate(func(b []byte) { b[5] = 47 }), &ve, func() bool { return ve.Got == 47 }},
		{"checksum", mutate(func(b []byte) { b[23]++ }), &ce, func() bool { return ce.Got == ce.Want+1 }},
		{"negative", Header{Type: Invoke, DataLen: -5}.Append(nil), &se, func() bool { return se.Size == -5 }},
	}
	for _, c := range cases {
		_, err := ParseHeader(c.in)
		if err == nil || !errors.As(err, c.target) || !c.check() {
			t.Errorf("%s: got %v", c.name, err)
			continue
		}
		if !IsProtocolError(err) || err.Error() == "" {
			t.Errorf("%s: not a protocol error: %v", c.name, err)
		}
	}
}

func TestLimits(t *testing.T) {
	h := Header{Type: Invoke, DataLen: 1000, AnnLen: 100}
	var se *SizeError
	if err := (Limits{MaxMessageSize: 1099}).Check(h); !errors.As(err, &se) || se.Size != 1100 || se.Limit != 1099 {
		t.Fatalf("message limit: %v", err)
	}
	if err := (Limits{MaxAnnotations: 99}).Check(h); !errors.As(err, &se) || se.What != "annotations" {
		t.Fatalf("annotation limit: %v", err)
	}
	if err := (Limits{MaxMessageSize: 1100, MaxAnnotations: 100}).Check(h); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
}

func TestStrings(t *testing.T) {
	for got, want := range map[string]string{
		Invoke.String():                         "INVOKE",
		MsgType(9).String():                     "type(9)",
		(FlagOneway | FlagBatch).String():       "ONEWAY|BATCH",
		Flags(0).String():                       "0",
		(FlagException | Flags(0x100)).String(): "EXCEPTION|0x100",
		Cloudpickle.String():                    "cloudpickle",
		Serializer(0).String():                  "serializer(0)",
		CORR.String():                           "CORR",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if s, ok := ParseSerializer("msgpack"); !ok || s != Msgpack {
		t.Errorf("ParseSerializer(msgpack) = %v %v", s, ok)
	}
}

func FuzzParseHeader(f *testing.F) {
	b, _ := hex.DecodeString(connectHeaderHex)
	f.Add(b)
	f.Add(Header{Type: Result, Flags: FlagException, Seq: 9, DataLen: 77, Serializer: JSON, AnnLen: 22}.Append(nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < HeaderSize {
			return
		}
		h, err := ParseHeader(in)
		if err != nil {
			if !IsProtocolError(err) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// A header that parses must re-encode to the same bytes, except the reserved field.
		out := h.Append(nil)
		want := bytes.Clone(in[:HeaderSize])
		want[20], want[21] = 0, 0
		// The checksum covers the reserved field only through the sender's zero.
		if !bytes.Equal(out[:20], want[:20]) || !bytes.Equal(out[22:], want[22:]) {
			t.Fatalf("re-encoded %x from %x", out, in[:HeaderSize])
		}
	})
}

func BenchmarkParseHeader(b *testing.B) {
	in, _ := hex.DecodeString(connectHeaderHex)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHeaderPut(b *testing.B) {
	h := Header{Type: Invoke, Seq: 3, DataLen: 100, Serializer: Serpent, AnnLen: 22}
	var out [HeaderSize]byte
	b.ReportAllocs()
	for b.Loop() {
		h.Put(out[:])
	}
}
