package frame

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// callVector is an INVOKE payload written by Pyro4 4.82 (serializer.dumpsCall('echo',
// 'echo', (x,), {})) and the standalone first argument AppendFirstArg must give. For
// serpent and json that is exactly what Pyro4 writes for x as a result; for marshal the
// same value, checked with Python's marshal.loads (Python itself writes interned strings
// with other codes).
type callVector struct {
	name string
	ser  Serializer
	in   string // payload; hex for marshal
	want string // standalone argument; hex for marshal
}

var callVectors = []callVector{
	{"serpent/str", Serpent, "# serpent utf-8 python3.2\n('echo','echo',('hello',),{})", "# serpent utf-8 python3.2\n'hello'"},
	{"serpent/int", Serpent, "# serpent utf-8 python3.2\n('echo','echo',(42,),{})", "# serpent utf-8 python3.2\n42"},
	{"serpent/list", Serpent, "# serpent utf-8 python3.2\n('echo','echo',([1,1,'a','a'],),{})", "# serpent utf-8 python3.2\n[1,1,'a','a']"},
	{"serpent/dict", Serpent, "# serpent utf-8 python3.2\n('echo','echo',({'k':'echo','j':('echo','echo')},),{})", "# serpent utf-8 python3.2\n{'k':'echo','j':('echo','echo')}"},
	{"serpent/bytes", Serpent, "# serpent utf-8 python3.2\n('echo','echo',({'data': 'YnkAdGVz', 'encoding': 'base64'},),{})", "# serpent utf-8 python3.2\n{'data': 'YnkAdGVz', 'encoding': 'base64'}"},
	{"serpent/unicode", Serpent, "# serpent utf-8 python3.2\n('echo','echo',('\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80',),{})", "# serpent utf-8 python3.2\n'\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80'"},
	{"serpent/none", Serpent, "# serpent utf-8 python3.2\n('echo','echo',(None,),{})", "# serpent utf-8 python3.2\nNone"},
	{"serpent/empty-tuple", Serpent, "# serpent utf-8 python3.2\n('echo','echo',((),),{})", "# serpent utf-8 python3.2\n()"},
	{"serpent/two-args", Serpent, "# serpent utf-8 python3.2\n('echo','echo',('a,b', (1,2)),{})", "# serpent utf-8 python3.2\n'a,b'"},
	{"serpent/list-args", Serpent, "# serpent utf-8 python3.2\n('echo','blob',['x'],{})", "# serpent utf-8 python3.2\n'x'"},
	{"serpent/quote-in-str", Serpent, "# serpent utf-8 python3.2\n('echo','echo',(\"it's )\",),{})", "# serpent utf-8 python3.2\n\"it's )\""},
	{"json/str", JSON, `{"object": "echo", "method": "echo", "params": ["hello"], "kwargs": {}}`, `"hello"`},
	{"json/int", JSON, `{"object": "echo", "method": "echo", "params": [42], "kwargs": {}}`, `42`},
	{"json/list", JSON, `{"object": "echo", "method": "echo", "params": [[1, 1, "a", "a"]], "kwargs": {}}`, `[1, 1, "a", "a"]`},
	{"json/dict", JSON, `{"object": "echo", "method": "echo", "params": [{"k": "echo", "j": ["echo", "echo"]}], "kwargs": {}}`, `{"k": "echo", "j": ["echo", "echo"]}`},
	{"json/null", JSON, `{"object": "echo", "method": "echo", "params": [null], "kwargs": {}}`, `null`},
	{"json/order", JSON, `{"params": ["a\"]", 2], "kwargs": {"x": [1]}, "method": "echo", "object": "echo"}`, `"a\"]"`},
	{"json/spaces", JSON, "{ \"object\" : \"echo\" , \"method\" : \"echo\" , \"params\" : [ 1.5e3 , 2 ] }", `1.5e3`},
	{"marshal/str", Marshal, "2904da046563686f7200000000db01000000da0568656c6c6ffb30", "da0568656c6c6f"},
	{"marshal/ref-to-object", Marshal, "2904da046563686f7200000000db010000007200000000fb30", "7a046563686f"},
	{"marshal/int", Marshal, "2904da046563686f7200000000db01000000e92a000000fb30", "e92a000000"},
	{"marshal/list-refs", Marshal, "2904da046563686f7200000000db01000000db04000000e9010000007203000000da01617204000000fb30", "db04000000e9010000007201000000da01617202000000"},
	{"marshal/dict-refs", Marshal, "2904da046563686f7200000000db01000000fbda016b7200000000da016aa9027200000000720000000030fb30", "fbda016b7a046563686fda016aa9027a046563686f7a046563686f30"},
	{"marshal/bytes", Marshal, "2904da046563686f7200000000db01000000f306000000627900746573fb30", "f306000000627900746573"},
	{"marshal/unicode", Marshal, "2904da046563686f7200000000db01000000f50c000000c3bc6ec3afe282acf09f9880fb30", "f50c000000c3bc6ec3afe282acf09f9880"},
	{"marshal/none", Marshal, "2904da046563686f7200000000db010000004efb30", "4e"},
	{"marshal/float", Marshal, "2904da046563686f7200000000db01000000e7000000000000f83ffb30", "e7000000000000f83f"},
	{"marshal/empty-tuple", Marshal, "2904da046563686f7200000000db01000000a900fb30", "a900"},
	{"marshal/ref-to-method", Marshal, "2904da046563686f7200000000db01000000db02000000da046d6574687203000000fb30", "db02000000da046d6574687201000000"},
	// A plain tuple of arguments and a reference to a long unicode method name.
	{"marshal/tuple-args", Marshal, "2904da016ff5040000006d657468a90172010000007b30", "75040000006d657468"},
}

func vectorBytes(t testing.TB, ser Serializer, s string) []byte {
	if ser != Marshal {
		return []byte(s)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestParseCallVectors(t *testing.T) {
	for _, v := range callVectors {
		t.Run(v.name, func(t *testing.T) {
			in := vectorBytes(t, v.ser, v.in)
			c, err := ParseCall(v.ser, 0, in)
			if err != nil {
				t.Fatalf("ParseCall: %v", err)
			}
			if !c.HasArg() {
				t.Fatal("no argument found")
			}
			wantObj := "echo"
			if v.name == "marshal/tuple-args" {
				wantObj = "o"
			}
			if c.Object() != wantObj {
				t.Errorf("object %q", c.Object())
			}
			if !c.ObjectIs(wantObj) || !c.MethodIs(c.Method()) || c.MethodIs("nope") || c.ObjectIs("nope") {
				t.Errorf("Is does not agree with Object %q / Method %q", c.Object(), c.Method())
			}
			got, err := c.AppendFirstArg([]byte("prefix"))
			if err != nil {
				t.Fatalf("AppendFirstArg: %v", err)
			}
			want := vectorBytes(t, v.ser, v.want)
			if string(got[6:]) != string(want) || string(got[:6]) != "prefix" {
				t.Errorf("got  %q\nwant %q", got[6:], want)
			}
		})
	}
}

func TestParseCallMethods(t *testing.T) {
	cases := []struct {
		ser       Serializer
		in        string
		obj, meth string
		hasArg    bool
		wantErr   string
	}{
		{ser: Serpent, in: "('a\\x62','m',(),{})", obj: "ab", meth: "m"},
		{ser: Serpent, in: "# c\n ( 'o' , \"m\" , [ ] , { } )", obj: "o", meth: "m"},
		{ser: Serpent, in: "('o','m',('x',),{'k':1})", obj: "o", meth: "m", hasArg: true},
		{ser: JSON, in: `{"object": "\u00fc", "method": "m\n", "params": []}`, obj: "ü", meth: "m\n"},
		{ser: JSON, in: `{"object": "o", "method": "m", "params": [], "object": "p"}`, wantErr: "twice"},
		{ser: JSON, in: `{"object": "o", "method": "m"}`, wantErr: "lacks"},
		{ser: JSON, in: `{"object": "o", "method": 3, "params": []}`, wantErr: "not a str"},
		{ser: JSON, in: `{"object": "o", "method": "m", "params": "x"}`, wantErr: "not a tuple or list"},
		{ser: JSON, in: `{"object": "o", "method": "m", "params": [1,`, wantErr: "ends inside"},
		{ser: Serpent, in: "('o',3,(),{})", wantErr: "not a str"},
		{ser: Serpent, in: "('o','m','xy',{})", wantErr: "not a tuple or list"},
		{ser: Serpent, in: "('o','m',(1,2", wantErr: "ends inside"},
		{ser: Msgpack, in: "\x94", wantErr: "msgpack"},
	}
	for _, tc := range cases {
		c, err := ParseCall(tc.ser, 0, []byte(tc.in))
		if tc.wantErr != "" {
			if err == nil || !errors.Is(err, ErrCannotPeek) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s %q: error %v, want one containing %q", tc.ser, tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tc.ser, tc.in, err)
			continue
		}
		if c.Object() != tc.obj || c.Method() != tc.meth || c.HasArg() != tc.hasArg || !c.ObjectIs(tc.obj) || !c.MethodIs(tc.meth) {
			t.Errorf("%s %q: object %q method %q hasArg %v", tc.ser, tc.in, c.Object(), c.Method(), c.HasArg())
		}
		if !tc.hasArg {
			if _, err := c.AppendFirstArg(nil); err == nil {
				t.Errorf("%s %q: AppendFirstArg without argument succeeded", tc.ser, tc.in)
			}
		}
	}
	if _, err := ParseCall(Serpent, FlagCompressed, []byte("x")); !errors.Is(err, ErrCannotPeek) {
		t.Errorf("compressed: %v", err)
	}
}

func TestParseCallMarshalLatin1(t *testing.T) {
	// ('\xfc', 'm', ['a'], {}) with the object id in a short ascii code, read as Latin-1.
	in := []byte("\x29\x04\x7a\x01\xfc\x7a\x01m\x5b\x01\x00\x00\x00\x7a\x01a\x7b\x30")
	c, err := ParseCall(Marshal, 0, in)
	if err != nil {
		t.Fatal(err)
	}
	if c.Object() != "ü" || !c.ObjectIs("ü") || !c.MethodIs("m") || c.ObjectIs("\xfc") {
		t.Errorf("object %q", c.Object())
	}
}

func TestAppendFirstArgMarshalRefusals(t *testing.T) {
	cases := map[string]string{
		// a reference to the argument list itself, which is still being read
		"ref-to-pending": "2904da016fda016ddb0100000072020000007b30",
		// a reference past the table
		"ref-out-of-range": "2904da016fda016d5b01000000720900000030",
		"truncated":        "2904da016fda016d5b01000000da05686568",
	}
	for name, h := range cases {
		in, _ := hex.DecodeString(h)
		c, err := ParseCall(Marshal, 0, in)
		if err == nil {
			_, err = c.AppendFirstArg(nil)
		}
		if !errors.Is(err, ErrCannotPeek) {
			t.Errorf("%s: %v, want an ErrCannotPeek", name, err)
		}
	}
}

func TestParseBlobCall(t *testing.T) {
	payload := []byte("# serpent utf-8 python3.2\n('obj','meth',('blob data',2),{})")
	cases := []struct{ blbi, obj, meth string }{
		// PROTOCOL.md: ('topic','example.obj','process_blob'), and a back-reference.
		{"a903da05746f706963fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", "example.obj", "process_blob"},
		{"a903da0473616d657201000000da016d", "same", "m"},
		{"a903e92a000000da016fda016d", "o", "m"},
	}
	for _, tc := range cases {
		blbi, _ := hex.DecodeString(tc.blbi)
		c, err := ParseBlobCall(blbi, Serpent, 0, payload)
		if err != nil {
			t.Fatalf("%s: %v", tc.blbi, err)
		}
		if !c.ObjectIs(tc.obj) || !c.MethodIs(tc.meth) || c.Object() != tc.obj || c.Method() != tc.meth || c.ObjectIs("obj") {
			t.Errorf("%s: object %q method %q", tc.blbi, c.Object(), c.Method())
		}
		arg, err := c.AppendFirstArg(nil)
		if err != nil || string(arg) != serpentHeader+"'blob data'" {
			t.Errorf("%s: argument %q, %v", tc.blbi, arg, err)
		}
		if n := testing.AllocsPerRun(50, func() { c, _ = ParseBlobCall(blbi, Serpent, 0, payload); _ = c.MethodIs("m") }); n != 0 {
			t.Errorf("%s: %v allocations", tc.blbi, n)
		}
	}
	for _, bad := range []string{"a902da016fda016d", "a903e92a000000e901000000da016d", "a903da016fda016dda016d00", "a903da01"} {
		blbi, _ := hex.DecodeString(bad)
		if _, err := ParseBlobCall(blbi, Serpent, 0, payload); !errors.Is(err, ErrCannotPeek) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestParseCallAllocations(t *testing.T) {
	dst := make([]byte, 0, 256)
	for _, v := range callVectors {
		in := vectorBytes(t, v.ser, v.in)
		n := testing.AllocsPerRun(100, func() {
			c, _ := ParseCall(v.ser, 0, in)
			_ = c.ObjectIs("echo") && c.MethodIs("echo")
			_, _ = c.AppendFirstArg(dst[:0])
		})
		if n != 0 {
			t.Errorf("%s: %v allocations per call", v.name, n)
		}
	}
}

func FuzzParseCall(f *testing.F) {
	for _, v := range callVectors {
		f.Add(uint16(v.ser), vectorBytes(f, v.ser, v.in))
	}
	f.Fuzz(func(t *testing.T, ser uint16, in []byte) {
		s := Serializer(ser%3 + 1)
		c, err := ParseCall(s, 0, in)
		if err != nil {
			if !errors.Is(err, ErrCannotPeek) {
				t.Fatalf("error %v does not wrap ErrCannotPeek", err)
			}
			return
		}
		_ = c.ObjectIs("echo") && c.MethodIs("echo")
		_, _ = c.Object(), c.Method()
		out, err := c.AppendFirstArg(nil)
		if err != nil {
			return
		}
		if s == Marshal {
			// The copy must stand alone: one value, every reference resolvable.
			r := marshalReader{b: out}
			if _, err := r.value(); err != nil || r.off != len(out) {
				t.Fatalf("standalone copy %x does not read back: %v (read %d of %d)", out, err, r.off, len(out))
			}
		} else if len(out) > len(in)+len(serpentHeader) {
			t.Fatalf("argument of %d bytes from a payload of %d", len(out), len(in))
		}
	})
}

func BenchmarkParseCallEcho(b *testing.B) {
	for _, name := range []string{"serpent/str", "json/str", "marshal/str"} {
		for _, v := range callVectors {
			if v.name != name {
				continue
			}
			in := vectorBytes(b, v.ser, v.in)
			dst := make([]byte, 0, 256)
			b.Run(v.ser.String(), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c, err := ParseCall(v.ser, 0, in)
					if err != nil || !c.ObjectIs("echo") || !c.MethodIs("echo") {
						b.Fatal(err)
					}
					if dst, err = c.AppendFirstArg(dst[:0]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func FuzzParseBlobCall(f *testing.F) {
	for _, h := range []string{"a903da05746f706963fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", "a903da0473616d657201000000da016d"} {
		b, _ := hex.DecodeString(h)
		f.Add(b)
	}
	payload := []byte(`{"object": "o", "method": "m", "params": [["x"]], "kwargs": {}}`)
	f.Fuzz(func(t *testing.T, blbi []byte) {
		c, err := ParseBlobCall(blbi, JSON, 0, payload)
		if err != nil {
			if !errors.Is(err, ErrCannotPeek) {
				t.Fatalf("error %v does not wrap ErrCannotPeek", err)
			}
			return
		}
		_, _ = c.Object(), c.Method()
		if out, err := c.AppendFirstArg(nil); err != nil || string(out) != `["x"]` {
			t.Fatalf("argument %q, %v", out, err)
		}
	})
}
