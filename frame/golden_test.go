package frame_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// The golden vectors are real Pyro4 4.82 traffic captured by internal/capture/gen
// (go run ./internal/capture/gen -out frame/testdata/vectors.jsonl). Every expected value
// in them comes from Python: header fields from struct.unpack, annotation chunks from
// Pyro4's Message.recv, and what the client called from the client itself. None comes
// from this package.

const goldenFile = "testdata/vectors.jsonl"

type goldenVector struct {
	Scenario string `json:"scenario"`
	Conn     int    `json:"conn"`
	Dir      string `json:"dir"`
	Index    int    `json:"index"`
	Hex      string `json:"hex"`
	Header   struct {
		Magic      string `json:"magic"`
		Version    int    `json:"version"`
		Type       int    `json:"type"`
		Flags      int    `json:"flags"`
		Seq        int    `json:"seq"`
		DataLen    int    `json:"data_len"`
		Serializer int    `json:"serializer"`
		AnnLen     int    `json:"ann_len"`
		Reserved   int    `json:"reserved"`
		Checksum   int    `json:"checksum"`
	} `json:"header"`
	Annotations [][2]string `json:"annotations"` // [id, hex value] in wire order
	Py          *struct {
		Object *string `json:"object"`
		Method string  `json:"method"`
		Blbi   *struct {
			Info   json.RawMessage `json:"info"`
			Object string          `json:"object"`
			Method string          `json:"method"`
			Codes  []string        `json:"codes"` // marshal type codes; "r0" is a back-reference
		} `json:"blbi"`
	} `json:"py"`
	Expect *struct {
		Kind        string            `json:"kind"`
		Type        int               `json:"type"`
		Seq         int               `json:"seq"`
		Serializer  *string           `json:"serializer"`
		Object      string            `json:"object"`
		Method      string            `json:"method"`
		Metadata    bool              `json:"metadata"`
		Oneway      bool              `json:"oneway"`
		Batch       bool              `json:"batch"`
		Blob        bool              `json:"blob"`
		BlobInfo    json.RawMessage   `json:"blob_info"`
		Annotations map[string]string `json:"annotations"`
		Corr        *string           `json:"corr"`
	} `json:"expect"`

	raw []byte
}

func (v *goldenVector) name() string {
	return fmt.Sprintf("%s/conn%d/%s/%d", v.Scenario, v.Conn, v.Dir, v.Index)
}

func (v *goldenVector) header() frame.Header {
	return frame.Header{
		Type:       frame.MsgType(v.Header.Type),
		Flags:      frame.Flags(v.Header.Flags),
		Seq:        uint16(v.Header.Seq),
		DataLen:    v.Header.DataLen,
		Serializer: frame.Serializer(v.Header.Serializer),
		AnnLen:     v.Header.AnnLen,
	}
}

func (v *goldenVector) annotations() frame.Annotations {
	return frame.Annotations(v.raw[frame.HeaderSize : frame.HeaderSize+v.Header.AnnLen])
}

func (v *goldenVector) payload() []byte { return v.raw[frame.HeaderSize+v.Header.AnnLen:] }

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadGolden(t *testing.T) []*goldenVector {
	t.Helper()
	f, err := os.Open(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*goldenVector
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		v := new(goldenVector)
		if err := json.Unmarshal(sc.Bytes(), v); err != nil {
			t.Fatalf("%s line %d: %v", goldenFile, len(out)+1, err)
		}
		v.raw = mustHex(t, v.Hex)
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestGoldenCoverage makes sure the vectors hold every case the other golden tests are
// meant to check, so that a thin regenerated file cannot make them pass vacuously.
func TestGoldenCoverage(t *testing.T) {
	vs := loadGolden(t)
	seen := map[string]int{}
	for _, v := range vs {
		h := v.header()
		seen["type "+h.Type.String()]++
		seen["serializer "+h.Serializer.String()]++
		for i, name := range []string{"EXCEPTION", "COMPRESSED", "ONEWAY", "BATCH", "META_ON_CONNECT", "ITEMSTREAMRESULT", "KEEPSERIALIZED"} {
			if h.Flags&(1<<i) != 0 {
				seen["flag "+name]++
			}
		}
		for _, c := range v.Annotations {
			seen["chunk "+c[0]]++
		}
		if v.Py != nil && v.Py.Blbi != nil {
			for _, c := range v.Py.Blbi.Codes {
				if c[0] == 'r' {
					seen["marshal back-reference"]++
				}
			}
		}
		if v.Dir == "c2s" && v.Expect == nil {
			t.Errorf("%s: client-to-server message without the client's expectation", v.name())
		}
		// Pyro4's decode of the payload and the client's word must agree, or the generator
		// merged an expectation into the wrong message.
		if e := v.Expect; e != nil && v.Py != nil && v.Py.Method != "" && (v.Py.Method != e.Method || *v.Py.Object != e.Object) {
			t.Errorf("%s: payload calls %s.%s, the client says %s.%s", v.name(), *v.Py.Object, v.Py.Method, e.Object, e.Method)
		}
		if h.Type == frame.Connect && v.Expect != nil && !v.Expect.Metadata {
			seen["connect without metadata"]++
		}
	}
	for _, want := range []string{
		"type CONNECT", "type CONNECTOK", "type CONNECTFAIL", "type INVOKE", "type RESULT", "type PING",
		"serializer serpent", "serializer json", "serializer marshal", "serializer pickle", "serializer serializer(42)",
		"flag EXCEPTION", "flag COMPRESSED", "flag ONEWAY", "flag BATCH", "flag META_ON_CONNECT",
		"flag ITEMSTREAMRESULT", "flag KEEPSERIALIZED",
		"chunk CORR", "chunk HMAC", "chunk BLBI", "chunk STRM", "chunk XYZZ", "chunk DDAA",
		"marshal back-reference", "connect without metadata",
	} {
		if seen[want] == 0 {
			t.Errorf("no vector with %s", want)
		}
	}
	if len(vs) < 300 {
		t.Errorf("only %d vectors", len(vs))
	}
}

func TestGoldenHeaders(t *testing.T) {
	for _, v := range loadGolden(t) {
		want := v.header()
		if v.Header.Magic != "PYRO" || v.Header.Version != frame.Version || v.Header.Reserved != 0 {
			t.Errorf("%s: Python saw magic %q version %d reserved %d", v.name(), v.Header.Magic, v.Header.Version, v.Header.Reserved)
		}
		if len(v.raw) != frame.HeaderSize+want.BodyLen() {
			t.Errorf("%s: %d bytes, header says %d", v.name(), len(v.raw), frame.HeaderSize+want.BodyLen())
			continue
		}
		got, err := frame.ParseHeader(v.raw)
		if err != nil {
			t.Errorf("%s: ParseHeader: %v", v.name(), err)
			continue
		}
		if got != want {
			t.Errorf("%s: ParseHeader = %+v, Python saw %+v", v.name(), got, want)
		}
		if c := got.Checksum(); int(c) != v.Header.Checksum {
			t.Errorf("%s: Checksum = %#04x, Python saw %#04x", v.name(), c, v.Header.Checksum)
		}
		var buf [frame.HeaderSize]byte
		want.Put(buf[:])
		if !bytes.Equal(buf[:], v.raw[:frame.HeaderSize]) {
			t.Errorf("%s: Put = %x, on the wire %x", v.name(), buf, v.raw[:frame.HeaderSize])
		}
	}
}

func TestGoldenAnnotations(t *testing.T) {
	for _, v := range loadGolden(t) {
		ann := v.annotations()
		if err := ann.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", v.name(), err)
			continue
		}
		var got [][2]string
		for it := ann.Iter(); it.Next(); {
			got = append(got, [2]string{it.ID().String(), hex.EncodeToString(it.Value())})
		}
		if len(got) == 0 && len(v.Annotations) == 0 {
			got = v.Annotations // nil vs empty
		}
		if !reflect.DeepEqual(got, v.Annotations) {
			t.Errorf("%s: chunks %q, Pyro4 read %q", v.name(), got, v.Annotations)
		}
		for _, c := range v.Annotations {
			val, ok := ann.Lookup(frame.ChunkID([]byte(c[0])))
			if !ok || hex.EncodeToString(val) != c[1] {
				t.Errorf("%s: Lookup(%s) = %x, %v; want %s", v.name(), c[0], val, ok, c[1])
			}
		}
		e := v.Expect
		if e == nil {
			continue
		}
		// What the client set must be on the wire.
		for id, val := range e.Annotations {
			if got, ok := ann.Lookup(frame.ChunkID([]byte(id))); !ok || hex.EncodeToString(got) != val {
				t.Errorf("%s: user annotation %s = %x, %v; the client set %s", v.name(), id, got, ok, val)
			}
		}
		corr, ok := ann.Lookup(frame.CORR)
		switch {
		case e.Corr == nil && ok:
			t.Errorf("%s: CORR %x, the client set none", v.name(), corr)
		case e.Corr != nil && (!ok || hex.EncodeToString(corr) != *e.Corr):
			t.Errorf("%s: CORR %x, the client set %s", v.name(), corr, *e.Corr)
		}
	}
}

// goldenStreams returns the concatenated messages of each connection and direction.
func goldenStreams(vs []*goldenVector) (names []string, streams map[string][]*goldenVector) {
	streams = map[string][]*goldenVector{}
	for _, v := range vs {
		k := fmt.Sprintf("%s/conn%d/%s", v.Scenario, v.Conn, v.Dir)
		if _, ok := streams[k]; !ok {
			names = append(names, k)
		}
		if n := len(streams[k]); n != v.Index {
			panic(fmt.Sprintf("%s: message %d recorded as index %d", k, n, v.Index))
		}
		streams[k] = append(streams[k], v)
	}
	return names, streams
}

func TestGoldenReader(t *testing.T) {
	names, streams := goldenStreams(loadGolden(t))
	sources := map[string]func([]byte) io.Reader{
		"whole":   func(b []byte) io.Reader { return bytes.NewReader(b) },
		"onebyte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"dataerr": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	}
	for _, size := range []int{0, frame.HeaderSize, 64, 1 << 16} {
		for srcName, src := range sources {
			for _, consume := range []string{"ReadRest", "CopyRest", "MoveHalf", "Discard"} {
				t.Run(fmt.Sprintf("size%d/%s/%s", size, srcName, consume), func(t *testing.T) {
					for _, k := range names {
						readGoldenStream(t, k, streams[k], frame.NewReader(src(goldenConcat(streams[k])), size, frame.Limits{}), consume)
					}
				})
			}
		}
	}
}

func goldenConcat(vs []*goldenVector) []byte {
	var b []byte
	for _, v := range vs {
		b = append(b, v.raw...)
	}
	return b
}

func readGoldenStream(t *testing.T, name string, vs []*goldenVector, r *frame.Reader, consume string) {
	t.Helper()
	for _, v := range vs {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("%s: Next: %v", v.name(), err)
		}
		want := v.payload()
		if m.Header != v.header() || !bytes.Equal(m.Raw, v.raw[:frame.HeaderSize]) ||
			!bytes.Equal(m.Annotations, v.annotations()) {
			t.Fatalf("%s: Next gave header %+v raw %x annotations %x", v.name(), m.Header, m.Raw, m.Annotations)
		}
		if !bytes.HasPrefix(want, m.Payload) || len(m.Payload)+m.Remaining != len(want) {
			t.Fatalf("%s: Next gave %d payload bytes %x and %d remaining, want %d bytes %x",
				v.name(), len(m.Payload), m.Payload, m.Remaining, len(want), want)
		}
		switch consume {
		case "ReadRest":
			if err := r.ReadRest(&m); err != nil {
				t.Fatalf("%s: ReadRest: %v", v.name(), err)
			}
			if !bytes.Equal(m.Payload, want) || !m.Whole() {
				t.Fatalf("%s: ReadRest gave payload %x, want %x", v.name(), m.Payload, want)
			}
			if !bytes.Equal(m.Raw, v.raw[:frame.HeaderSize]) || !bytes.Equal(m.Annotations, v.annotations()) {
				t.Fatalf("%s: after ReadRest raw %x annotations %x", v.name(), m.Raw, m.Annotations)
			}
		case "CopyRest":
			got := append([]byte(nil), m.Payload...)
			var rest bytes.Buffer
			if _, err := r.CopyRest(&rest, &m); err != nil {
				t.Fatalf("%s: CopyRest: %v", v.name(), err)
			}
			if got = append(got, rest.Bytes()...); !bytes.Equal(got, want) {
				t.Fatalf("%s: CopyRest gave payload %x, want %x", v.name(), got, want)
			}
		case "MoveHalf":
			// A move that takes half of the rest and fails (its destination gone): the
			// rest can still be discarded, and the stream stays in step.
			got := append([]byte(nil), m.Payload...)
			var rest bytes.Buffer
			errGone := errors.New("destination gone")
			half := func(dst io.Writer, src io.Reader, n int64) (int64, error) {
				k, err := io.CopyN(dst, src, n/2)
				if err == nil {
					err = errGone
				}
				return k, err
			}
			n := m.Remaining
			if k, err := r.MoveRest(&rest, &m, half); (n > 0 && err != errGone) || k != int64(n/2) || m.Remaining != n-n/2 {
				t.Fatalf("%s: MoveRest = %d, %v; %d remaining of %d", v.name(), k, err, m.Remaining, n)
			}
			if got = append(got, rest.Bytes()...); !bytes.HasPrefix(want, got) {
				t.Fatalf("%s: MoveRest moved %x, want a prefix of %x", v.name(), got, want)
			}
			if err := r.Discard(&m); err != nil {
				t.Fatalf("%s: Discard after MoveRest: %v", v.name(), err)
			}
		case "Discard":
			if err := r.Discard(&m); err != nil {
				t.Fatalf("%s: Discard: %v", v.name(), err)
			}
		}
	}
	if m, err := r.Next(); err != io.EOF {
		t.Fatalf("%s: after %d messages Next = %+v, %v; want io.EOF", name, len(vs), m.Header, err)
	}
}

// goldenValue converts a value as tagged by the Python side ({"str": "x"}, {"tuple":
// [...]}, ...) to the Go value BlobInfo.Info documents for it.
func goldenValue(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 {
		t.Fatalf("bad tagged value %s: %v", raw, err)
	}
	for tag, v := range m {
		var dst any
		switch tag {
		case "none":
			return nil
		case "bool":
			dst = new(bool)
		case "int":
			dst = new(int64)
		case "float":
			dst = new(float64)
		case "str", "bytes":
			dst = new(string)
		case "tuple", "list":
			var items []json.RawMessage
			if err := json.Unmarshal(v, &items); err != nil {
				t.Fatal(err)
			}
			out := []any{}
			for _, it := range items {
				out = append(out, goldenValue(t, it))
			}
			return out
		default:
			t.Fatalf("unknown tag %q", tag)
		}
		if err := json.Unmarshal(v, dst); err != nil {
			t.Fatal(err)
		}
		if tag == "bytes" {
			return mustHex(t, *dst.(*string))
		}
		return reflect.ValueOf(dst).Elem().Interface()
	}
	panic("unreachable")
}

func TestGoldenBlobInfo(t *testing.T) {
	n, refs := 0, 0
	for _, v := range loadGolden(t) {
		blbi, ok := v.annotations().Lookup(frame.BLBI)
		if !ok {
			continue
		}
		n++
		e := v.Expect
		if e == nil || !e.Blob || e.BlobInfo == nil {
			t.Errorf("%s: BLBI chunk, but the client made no blob call", v.name())
			continue
		}
		if !frame.Flags(v.Header.Flags).Has(frame.FlagKeepSerialized) {
			t.Errorf("%s: BLBI without KEEPSERIALIZED", v.name())
		}
		if v.Py != nil && v.Py.Blbi != nil {
			for _, c := range v.Py.Blbi.Codes {
				if c[0] == 'r' {
					refs++
				}
			}
		}
		got, err := frame.DecodeBlobInfo(blbi)
		if err != nil {
			t.Errorf("%s: DecodeBlobInfo(%x): %v", v.name(), blbi, err)
			continue
		}
		want := frame.BlobInfo{Info: goldenValue(t, e.BlobInfo), Object: e.Object, Method: e.Method}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: DecodeBlobInfo(%x) = %#v, the client passed %#v", v.name(), blbi, got, want)
		}
	}
	if n == 0 || refs == 0 {
		t.Errorf("%d BLBI vectors, %d marshal back-references among them", n, refs)
	}
}

// TestGoldenPeek checks the peeks against what the client called: serpent, json and
// marshal payloads give the object (and method), pickle, msgpack and compressed ones
// ErrCannotPeek, as do CONNECT payloads without an object (config.METADATA off).
func TestGoldenPeek(t *testing.T) {
	count := map[string]int{}
	for _, v := range loadGolden(t) {
		e := v.Expect
		h := v.header()
		if v.Dir != "c2s" || e == nil || (h.Type != frame.Connect && h.Type != frame.Invoke) {
			continue
		}
		peekable := !h.Flags.Has(frame.FlagCompressed) &&
			(h.Serializer == frame.Serpent || h.Serializer == frame.JSON || h.Serializer == frame.Marshal)
		var obj, meth string
		var err error
		if h.Type == frame.Connect {
			obj, err = frame.PeekConnectObject(h.Serializer, h.Flags, v.payload())
			meth = e.Method // not peeked
			if !e.Metadata {
				peekable = false // no "object" key
			}
		} else {
			obj, meth, err = frame.PeekInvoke(h.Serializer, h.Flags, v.payload())
		}
		what := fmt.Sprintf("%s %s %s", h.Type, h.Serializer, h.Flags)
		if peekable {
			if err != nil || obj != e.Object || meth != e.Method {
				t.Errorf("%s (%s): peek = %q, %q, %v; the client called %q, %q", v.name(), what, obj, meth, err, e.Object, e.Method)
			}
			count["peeked "+h.Type.String()+" "+h.Serializer.String()]++
		} else {
			if !errors.Is(err, frame.ErrCannotPeek) {
				t.Errorf("%s (%s): peek = %q, %q, %v; want ErrCannotPeek", v.name(), what, obj, meth, err)
			}
			count["refused "+what]++
		}
	}
	var lines []string
	for k, n := range count {
		lines = append(lines, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(lines)
	t.Logf("peeks:\n%s", strings.Join(lines, "\n"))
	for _, want := range []string{
		"peeked CONNECT serpent", "peeked CONNECT json", "peeked CONNECT marshal",
		"peeked INVOKE serpent", "peeked INVOKE json", "peeked INVOKE marshal",
		"refused INVOKE pickle 0", "refused INVOKE serpent COMPRESSED", "refused CONNECT pickle META_ON_CONNECT",
		"refused CONNECT serpent 0",
	} {
		if count[want] == 0 {
			t.Errorf("no vector for %q", want)
		}
	}
}
