package frame

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"testing"
)

// appendPeek is peek for the Append forms: for a CONNECT payload split is len(out), so
// that the method is "".
func appendPeek(typ MsgType, dst []byte, s Serializer, flags Flags, p []byte) ([]byte, int, error) {
	if typ == Connect {
		out, err := AppendPeekConnectObject(dst, s, flags, p)
		return out, len(out), err
	}
	return AppendPeekInvoke(dst, s, flags, p)
}

// appendPrefix is what the non-empty dst of checkAppendPeek holds.
const appendPrefix = "pre\x00fix\xff"

// checkAppendPeek checks that the Append form of the peek of typ agrees with the string
// form's results obj, meth and err on p: into a nil dst, into a prefix with no room (the
// append must grow it) and into a prefix with room (the append must stay in it). The
// prefix must be kept, and on error dst must come back unchanged.
func checkAppendPeek(t testing.TB, typ MsgType, s Serializer, flags Flags, p []byte, obj, meth string, err error) {
	t.Helper()
	tight := []byte(appendPrefix)
	roomy := append(make([]byte, 0, 4*PeekLimit), appendPrefix...)
	for _, dst := range [][]byte{nil, tight[:len(tight):len(tight)], roomy} {
		out, split, aerr := appendPeek(typ, dst, s, flags, p)
		if !reflect.DeepEqual(aerr, err) {
			t.Fatalf("%v into %d/%d bytes: error %v, the string form's %v", typ, len(dst), cap(dst), aerr, err)
		}
		if aerr != nil {
			if (out == nil) != (dst == nil) || len(out) != len(dst) || cap(out) != cap(dst) ||
				(cap(dst) > 0 && &out[:1][0] != &dst[:1][0]) {
				t.Fatalf("%v into %d/%d bytes: error %v with %d/%d bytes, want dst unchanged",
					typ, len(dst), cap(dst), aerr, len(out), cap(out))
			}
			continue
		}
		if len(out) < len(dst) || string(out[:len(dst)]) != appendPrefix[:len(dst)] {
			t.Fatalf("%v into %q: prefix not kept: %q", typ, dst, out)
		}
		if split < len(dst) || split > len(out) {
			t.Fatalf("%v into %d bytes: split %d out of %d bytes", typ, len(dst), split, len(out))
		}
		if o, m := string(out[len(dst):split]), string(out[split:]); o != obj || m != meth {
			t.Fatalf("%v into %d bytes: got %q, %q; the string form %q, %q", typ, len(dst), o, m, obj, meth)
		}
		if cap(dst) > 0 && cap(dst) >= len(out) && (cap(out) == 0 || &out[:1][0] != &dst[:1][0]) {
			t.Fatalf("%v: the append of %d bytes left a dst with room for %d", typ, len(out)-len(dst), cap(dst)-len(dst))
		}
	}
}

// peekCase is one payload the peek tests look at.
type peekCase struct {
	name  string
	typ   MsgType
	ser   Serializer
	flags Flags
	p     []byte
}

// peekCases returns the payloads of the peek tests in peek_test.go (the wire vectors and
// all their prefixes, and the tables) and those of the golden vectors.
func peekCases(t *testing.T) []peekCase {
	var cs []peekCase
	add := func(name string, typ MsgType, s Serializer, flags Flags, p []byte) {
		cs = append(cs, peekCase{name, typ, s, flags, p})
	}
	for _, v := range allVectors() {
		p := []byte(v.payload)
		for n := range min(len(p), PeekLimit+2) {
			add(fmt.Sprintf("%s[:%d]", v.name, n), v.typ, v.ser, v.flags, p[:n])
		}
		add(v.name, v.typ, v.ser, v.flags, p)
	}
	for _, tc := range refusalCases {
		add("refusal "+tc.name, Connect, tc.ser, tc.flags, refusalCall)
		add("refusal "+tc.name, Invoke, tc.ser, tc.flags, refusalCall)
	}
	for _, tc := range limitCases {
		for _, n := range []int{tc.fits(), tc.fits() + 1, 5000} {
			add(fmt.Sprintf("limit %v %d", tc.ser, n), Invoke, tc.ser, 0, tc.payload(n))
		}
	}
	for _, tc := range serpentLiteralCases {
		add("literal "+tc.in, Invoke, Serpent, 0, []byte(serpentHeader+tc.in))
	}
	for _, tc := range connectDictCases {
		add(fmt.Sprintf("dict %v %q", tc.ser, tc.in), Connect, tc.ser, FlagMetaOnConnect, []byte(tc.in))
	}
	for _, tc := range jsonMarshalInvokeCases {
		add(fmt.Sprintf("invoke %v %q", tc.ser, tc.in), Invoke, tc.ser, 0, []byte(tc.in))
	}
	add("marshal cause", Invoke, Marshal, 0, marshalCauseCall)
	// Empty names, which leave dst as it is.
	add("empty serpent", Invoke, Serpent, 0, []byte(serpentHeader+"('','',(),{})"))
	add("empty json", Invoke, JSON, 0, []byte(`{"object": "", "method": ""}`))
	add("empty marshal", Invoke, Marshal, 0, []byte(")\x04z\x00z\x00)\x00{0"))
	add("empty serpent", Connect, Serpent, 0, []byte(serpentHeader+"{'object':''}"))
	return append(cs, goldenPeekCases(t)...)
}

// goldenPeekCases returns the CONNECT and INVOKE messages of the golden vectors (see
// golden_test.go), read from their raw bytes alone.
func goldenPeekCases(t *testing.T) []peekCase {
	data, err := os.ReadFile("testdata/vectors.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var cs []peekCase
	for i, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var v struct {
			Hex string `json:"hex"`
		}
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("golden line %d: %v", i+1, err)
		}
		raw, err := hex.DecodeString(v.Hex)
		if err != nil {
			t.Fatalf("golden line %d: %v", i+1, err)
		}
		h, err := ParseHeader(raw)
		if err != nil {
			t.Fatalf("golden line %d: %v", i+1, err)
		}
		if h.Type == Connect || h.Type == Invoke {
			name := fmt.Sprintf("golden line %d", i+1)
			cs = append(cs, peekCase{name, h.Type, h.Serializer, h.Flags, raw[HeaderSize+h.AnnLen:]})
		}
	}
	if len(cs) < 100 {
		t.Fatalf("only %d golden CONNECT and INVOKE messages", len(cs))
	}
	return cs
}

// The Append forms give what the string forms give, on every payload the peek tests use.
func TestAppendPeekAgrees(t *testing.T) {
	ok := map[string]int{}
	for _, c := range peekCases(t) {
		obj, meth, err := peek(c.typ, c.ser, c.flags, c.p)
		checkAppendPeek(t, c.typ, c.ser, c.flags, c.p, obj, meth, err)
		if err == nil {
			ok[c.typ.String()+" "+c.ser.String()]++
		}
	}
	for _, typ := range []MsgType{Connect, Invoke} {
		for _, s := range []Serializer{Serpent, JSON, Marshal} {
			if ok[typ.String()+" "+s.String()] == 0 {
				t.Errorf("no %v %v payload peeked", typ, s)
			}
		}
	}
}

// The Append forms allocate nothing when dst has room, on every payload they peek.
func TestAppendPeekAllocations(t *testing.T) {
	dst := make([]byte, 0, 4*PeekLimit)
	check := func(name string, typ MsgType, s Serializer, flags Flags, p []byte) {
		t.Helper()
		if _, _, err := appendPeek(typ, dst, s, flags, p); err != nil {
			return
		}
		allocs := testing.AllocsPerRun(20, func() { _, _, _ = appendPeek(typ, dst, s, flags, p) })
		if allocs != 0 {
			t.Errorf("%s: %v allocations", name, allocs)
		}
	}
	for _, c := range peekCases(t) {
		check(c.name, c.typ, c.ser, c.flags, c.p)
	}
	// Named here so that none can drop out of the tables unnoticed: escapes and a
	// Latin-1 marshal str, which the Append forms decode into dst.
	for _, c := range []struct {
		ser      Serializer
		in       string
		obj, met string
	}{
		{Serpent, serpentHeader + `('o\\b\"\'\x41\u00e9','m` + "\xc3\xa9" + `th',(1,),{})`, "o\\b\"'Aé", "méth"},
		{JSON, `{"object": "o\\b\"'\u00e9", "method": "\uD83D\uDE00m", "params": [], "kwargs": {}}`, "o\\b\"'é", "😀m"},
		{Marshal, ")\x04a\x03\x00\x00\x00o\xe9\xffz\x01m[\x00\x00\x00\x00{0", "oéÿ", "m"},
	} {
		out, split, err := AppendPeekInvoke(dst, c.ser, 0, []byte(c.in))
		if err != nil || string(out[:split]) != c.obj || string(out[split:]) != c.met {
			t.Errorf("%v %q: got %q, %q, %v; want %q, %q", c.ser, c.in, out[:split], out[split:], err, c.obj, c.met)
		}
		check(c.in, Invoke, c.ser, 0, []byte(c.in))
	}
}
