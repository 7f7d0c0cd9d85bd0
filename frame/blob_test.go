package frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"
)

type blobVector struct {
	name string
	hex  string
	want BlobInfo
}

// BLBI annotations made by Pyro4 4.82 Proxy.__serializeBlobArgs (marshal.dumps of
// (info, object_id, method)), and by marshal.dumps of tuple literals and older versions.
var blobVectors = []blobVector{
	{name: "proxy/str", hex: "2903da05746f706963fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: "topic", Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/same", hex: "2903fa0b6578616d706c652e6f626a7200000000da0c70726f636573735f626c6f62", want: BlobInfo{Info: "example.obj", Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/unicode", hex: "2903f50d00000074c3b8706963e282acf09f9880fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: "t\u00f8pic\u20ac\U0001f600", Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/empty", hex: "2903da00fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: "", Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/bytes", hex: "2903f30500000000ff726177fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: []byte("\x00\xffraw"), Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/int", hex: "2903e92a000000fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: int64(42), Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/negint", hex: "2903e9f9fffffffa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: int64(-7), Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/bigint", hex: "2903ec03000000000000000004fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: int64(1099511627776), Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/minint64", hex: "2903ecfbffffff00000000000000000800fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: int64(math.MinInt64), Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/maxint64", hex: "2903ec05000000ff7fff7fff7fff7f0700fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: int64(9223372036854775807), Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/none", hex: "29034efa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: nil, Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/true", hex: "290354fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: true, Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/false", hex: "290346fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: false, Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/float", hex: "2903e7000000000000f83ffa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: float64(1.5), Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/negzero", hex: "2903e70000000000000080fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: math.Copysign(0, -1), Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/inf", hex: "2903e7000000000000f07ffa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: math.Inf(1), Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/tuple", hex: "2903a903da0161e9010000004efa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: []any{"a", int64(1), nil}, Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/list", hex: "2903db03000000da01785b02000000da0179e70000000000000440a900fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: []any{"x", []any{"y", float64(2.5)}, []any{}}, Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/nested", hex: "2903a902a902da05746f70696372020000007202000000fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: []any{[]any{"topic", "topic"}, "topic"}, Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/longstr", hex: "2903c12c010000787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/emptytuple", hex: "2903a900fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: []any{}, Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/quote", hex: "2903fa0a6974277320227122205cfa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: "it's \"q\" \\", Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/mixed", hex: "2903a907da05746f706963fa0b6578616d706c652e6f626ae92a0000004ee7000000000000f83ff30200000000625b0200000054467202000000da0c70726f636573735f626c6f62", want: BlobInfo{Info: []any{"topic", "example.obj", int64(42), nil, float64(1.5), []byte("\x00b"), []any{true, false}}, Object: "example.obj", Method: "process_blob"}},
	{name: "proxy/obj=o", hex: "2903da05746f706963da016fda016d", want: BlobInfo{Info: "topic", Object: "o", Method: "m"}},
	{name: "proxy/obj=\u00fcn\u00ef.obj", hex: "2903da05746f706963f509000000c3bc6ec3af2e6f626af5050000006dc3a97468", want: BlobInfo{Info: "topic", Object: "\u00fcn\u00ef.obj", Method: "m\u00e9th"}},
	{name: "proxy/obj=Pyro.Daemon", hex: "2903da05746f706963fa0b5079726f2e4461656d6f6eda0c6765745f6d65746164617461", want: BlobInfo{Info: "topic", Object: "Pyro.Daemon", Method: "get_metadata"}},
	{name: "proxy/obj=xxxxxxxxxxxx", hex: "2903da05746f706963c12c010000787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878da016d", want: BlobInfo{Info: "topic", Object: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", Method: "m"}},
	{name: "literal/('topic', 'example.obj', 'proc", hex: "a903da05746f706963fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", want: BlobInfo{Info: "topic", Object: "example.obj", Method: "process_blob"}},
	{name: "literal/('same', 'same', 'm')", hex: "a903da0473616d657201000000da016d", want: BlobInfo{Info: "same", Object: "same", Method: "m"}},
	{name: "literal/(42, 'o', 'm')", hex: "a903e92a000000da016fda016d", want: BlobInfo{Info: int64(42), Object: "o", Method: "m"}},
	{name: "literal/(None, 'o', 'm')", hex: "a9034eda016fda016d", want: BlobInfo{Info: nil, Object: "o", Method: "m"}},
	{name: "literal/('m', 'o', 'm')", hex: "a903da016dda016f7201000000", want: BlobInfo{Info: "m", Object: "o", Method: "m"}},
	{name: "literal/((1, 'o'), 'o', 'm')", hex: "a903a902e901000000da016f7203000000da016d", want: BlobInfo{Info: []any{int64(1), "o"}, Object: "o", Method: "m"}},
	{name: "version0", hex: "28030000006604312e323575010000006f7502000000c3bc", want: BlobInfo{Info: float64(1.25), Object: "o", Method: "\u00fc"}},
	{name: "version1", hex: "28030000006604312e323575010000006f7502000000c3bc", want: BlobInfo{Info: float64(1.25), Object: "o", Method: "\u00fc"}},
	{name: "version2", hex: "280300000067000000000000f43f75010000006f7502000000c3bc", want: BlobInfo{Info: float64(1.25), Object: "o", Method: "\u00fc"}},
	{name: "version3", hex: "a803000000e7000000000000f43ff4010000006ff502000000c3bc", want: BlobInfo{Info: float64(1.25), Object: "o", Method: "\u00fc"}},
	{name: "version4", hex: "a903e7000000000000f43fda016ff502000000c3bc", want: BlobInfo{Info: float64(1.25), Object: "o", Method: "\u00fc"}},
	{name: "version2/list", hex: "28030000005b02000000690100000075010000006175010000006f75010000006d", want: BlobInfo{Info: []any{int64(1), "a"}, Object: "o", Method: "m"}},
}

var blobErrorVectors = []struct{ name, hex string }{
	{"dict", "a9037bda0161e90100000030da016fda016d"},
	{"set", "a9033c01000000e901000000da016fda016d"},
	{"frozenset", "a9033e01000000e901000000da016fda016d"},
	{"complex", "a903f90000000000000000000000000000f03fda016fda016d"},
	{"ellipsis", "a9032eda016fda016d"},
	{"two", "a902da0174da016f"},
	{"four", "a904da0174da016fda016dda0178"},
	{"objint", "a903da0174e901000000da016d"},
	{"methbytes", "a903da0174da016ff3010000006d"},
	{"bigint", "a903ec0500000000000000000000001000da016fda016d"},
	{"code", "a903e30000000000000000000000000100000003000000f30600000097006401530029024ee900000000a9007204000000f300000000fa112f746d702f67656e2f67656e676f2e7079fa083c6c616d6264613e72070000006b00000073060000008000c02180007205000000da016fda016d"},
	{"notuple", "db03000000da0174da016fda016d"},
	{"str", "da03746f6d"},
	{"nested-dict", "a9032902e9010000007bda0161e90200000030da016fda016d"},
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeBlobInfo(t *testing.T) {
	for _, v := range blobVectors {
		t.Run(v.name, func(t *testing.T) {
			b := mustHex(t, v.hex)
			got, err := DecodeBlobInfo(b)
			if err != nil {
				t.Fatalf("DecodeBlobInfo(%s): %v", v.hex, err)
			}
			if !reflect.DeepEqual(got, v.want) {
				t.Fatalf("DecodeBlobInfo(%s)\n got %#v\nwant %#v", v.hex, got, v.want)
			}
			if f, ok := v.want.Info.(float64); ok && math.Signbit(f) != math.Signbit(got.Info.(float64)) {
				t.Fatalf("sign of %v lost: got %v", f, got.Info)
			}
		})
	}
}

// The PROTOCOL.md examples, from marshal.dumps of tuple literals.
func TestDecodeBlobInfoProtocolExamples(t *testing.T) {
	for _, tc := range []struct {
		hex  string
		want BlobInfo
	}{
		{"a903da05746f706963fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62", BlobInfo{"topic", "example.obj", "process_blob"}},
		{"a903da0473616d657201000000da016d", BlobInfo{"same", "same", "m"}},
		{"a903e92a000000da016fda016d", BlobInfo{int64(42), "o", "m"}},
		{"a9034eda016fda016d", BlobInfo{nil, "o", "m"}},
	} {
		got, err := DecodeBlobInfo(mustHex(t, tc.hex))
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodeBlobInfo(%s) = %#v, %v; want %#v", tc.hex, got, err, tc.want)
		}
	}
}

func TestDecodeBlobInfoHandMade(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want BlobInfo
	}{
		// CPython reads the ASCII codes as Latin-1.
		{"latin1 short", ")\x03z\x02\xe9!z\x01oz\x01m", BlobInfo{"é!", "o", "m"}},
		{"latin1 long", ")\x03a\x01\x00\x00\x00\xffz\x01oA\x01\x00\x00\x00m", BlobInfo{"ÿ", "o", "m"}},
		{"interned utf8", ")\x03t\x02\x00\x00\x00\xc3\xa9Z\x01ou\x01\x00\x00\x00m", BlobInfo{"é", "o", "m"}},
		{"int64 code", ")\x03I\x00\x00\x00\x00\x01\x00\x00\x00z\x01oz\x01m", BlobInfo{int64(1) << 32, "o", "m"}},
		{"long zero", ")\x03l\x00\x00\x00\x00z\x01oz\x01m", BlobInfo{int64(0), "o", "m"}},
		{"long -1", ")\x03l\xff\xff\xff\xff\x01\x00z\x01oz\x01m", BlobInfo{int64(-1), "o", "m"}},
		{"text float inf", ")\x03f\x03infz\x01oz\x01m", BlobInfo{math.Inf(1), "o", "m"}},
		{"text float overflow", ")\x03f\x051e400z\x01oz\x01m", BlobInfo{math.Inf(1), "o", "m"}},
		{"flag on None is ignored", ")\x03\xcez\x01o\xda\x01m", BlobInfo{nil, "o", "m"}},
		{"flagged ref", ")\x03\xda\x01xz\x01o\xf2\x00\x00\x00\x00", BlobInfo{"x", "o", "x"}},
		{"big tuple code", "(\x03\x00\x00\x00Tz\x01oz\x01m", BlobInfo{true, "o", "m"}},
		{"ref to a tuple", ")\x03\xa9\x01z\x01az\x01or\x00\x00\x00\x00", BlobInfo{}}, // method is a tuple: error
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBlobInfo([]byte(tc.in))
			if tc.want == (BlobInfo{}) {
				if err == nil {
					t.Fatalf("got %#v, want an error", got)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, %v; want %#v", got, err, tc.want)
			}
		})
	}
}

func TestDecodeBlobInfoSharedRefs(t *testing.T) {
	// (('topic','topic'),'topic') from a Proxy: the inner tuple's strings are refs.
	got, err := DecodeBlobInfo(mustHex(t, "2903a902a902da05746f70696372020000007202000000fa0b6578616d706c652e6f626ada0c70726f636573735f626c6f62"))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{[]any{"topic", "topic"}, "topic"}
	if !reflect.DeepEqual(got.Info, want) {
		t.Fatalf("got %#v, want %#v", got.Info, want)
	}
	// A list referenced twice: ([1], r) -> both items are the same list.
	got, err = DecodeBlobInfo([]byte(")\x03)\x02\xdb\x01\x00\x00\x00\xe9\x07\x00\x00\x00r\x00\x00\x00\x00z\x01oz\x01m"))
	if err != nil {
		t.Fatal(err)
	}
	want = []any{[]any{int64(7)}, []any{int64(7)}}
	if !reflect.DeepEqual(got.Info, want) {
		t.Fatalf("got %#v, want %#v", got.Info, want)
	}
}

func TestDecodeBlobInfoErrors(t *testing.T) {
	deep := strings.Repeat(")\x01", maxMarshalDepth+1) + "N"
	for _, tc := range []struct {
		name   string
		in     []byte
		reason string // substring of the error
		eof    bool   // errors.Is(err, io.ErrUnexpectedEOF)
	}{
		{"empty", nil, "ends inside type code", true},
		{"not a tuple", []byte("z\x01x"), "want a tuple", false},
		{"trailing bytes", []byte(")\x03Nz\x01oz\x01mN"), "1 trailing bytes", false},
		{"ref out of range", []byte(")\x03Nz\x01or\x05\x00\x00\x00"), "reference 5 out of range", false},
		{"ref huge", []byte(")\x03Nz\x01or\xff\xff\xff\xff"), "out of range", false},
		{"ref to the outer tuple", []byte("\xa9\x03r\x00\x00\x00\x00z\x01oz\x01m"), "still being read", false},
		{"ref to a None", []byte(")\x03\xcez\x01or\x00\x00\x00\x00"), "out of range", false},
		{"self-referencing list", []byte(")\x03\xdb\x01\x00\x00\x00r\x00\x00\x00\x00z\x01oz\x01m"), "still being read", false},
		{"too deep", []byte(")\x03" + deep + "z\x01oz\x01m"), "nested deeper", false},
		{"tuple count past input", []byte(")\x03(\xff\xff\xff\x7fz\x01oz\x01m"), "tuple of 2147483647 items", true},
		{"list count past input", []byte(")\x03[\x00\x00\x00\x10z\x01oz\x01m"), "list of", true},
		{"negative count", []byte(")\x03[\xff\xff\xff\xffz\x01oz\x01m"), "negative list size", false},
		{"str past input", []byte(")\x03u\x00\x00\x01\x00abc"), "str", true},
		{"short str past input", []byte(")\x03z\xffabc"), "str of 255 bytes", true},
		{"small tuple past input", []byte(")\x03)\xffN"), "tuple of 255 items", true},
		{"long digits past input", []byte(")\x03l\x00\x00\x00\x01\x01\x00"), "digits", true},
		{"long unnormalized", []byte(")\x03l\x01\x00\x00\x00\x00\x00z\x01oz\x01m"), "unnormalized", false},
		{"long digit out of range", []byte(")\x03l\x01\x00\x00\x00\x00\x80z\x01oz\x01m"), "digit out of range", false},
		{"long too big", mustHex(t, "a903ec0500000000000000000000001000da016fda016d"), "64 bits", false},
		{"long 2**63", []byte(")\x03l\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\x00z\x01oz\x01m"), "64 bits", false},
		{"bad utf8", []byte(")\x03u\x02\x00\x00\x00\xc3(z\x01oz\x01m"), "not valid UTF-8", false},
		{"lone surrogate", []byte(")\x03u\x03\x00\x00\x00\xed\xa0\x80z\x01oz\x01m"), "not valid UTF-8", false},
		{"bad text float", []byte(")\x03f\x030x1z\x01oz\x01m"), "bad float", false},
		{"empty text float", []byte(")\x03f\x00z\x01oz\x01m"), "bad float", false},
		{"unknown code", []byte(")\x03?z\x01oz\x01m"), "unknown type code '?'", false},
		{"unknown flagged code", []byte(")\x03\xffz\x01oz\x01m"), "unknown type code 0x7f", false},
		{"NULL in tuple", []byte(")\x030z\x01oz\x01m"), "NULL", false},
		{"truncated int", []byte(")\x03i\x01\x00"), "int", true},
		{"truncated float", []byte(")\x03g\x01\x00"), "float", true},
		{"truncated ref", []byte(")\x03Nz\x01or\x00"), "reference", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeBlobInfo(tc.in)
			if err == nil {
				t.Fatalf("got %#v, want an error", got)
			}
			var me *MarshalError
			if !errors.As(err, &me) {
				t.Fatalf("error %T %v is not a *MarshalError", err, err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not mention %q", err, tc.reason)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) != tc.eof {
				t.Errorf("error %q: errors.Is(io.ErrUnexpectedEOF) = %v, want %v", err, !tc.eof, tc.eof)
			}
			if me.Offset < 0 || me.Offset > len(tc.in) {
				t.Errorf("offset %d outside the input of %d bytes", me.Offset, len(tc.in))
			}
			if IsProtocolError(err) {
				t.Errorf("a bad BLBI must not count as a stream error")
			}
		})
	}
}

// Real marshal data of types a BLBI info may not hold, and tuples of the wrong shape.
func TestDecodeBlobInfoRefusesPythonValues(t *testing.T) {
	for _, v := range blobErrorVectors {
		got, err := DecodeBlobInfo(mustHex(t, v.hex))
		var me *MarshalError
		if !errors.As(err, &me) {
			t.Errorf("%s: got %#v, %v; want a *MarshalError", v.name, got, err)
			continue
		}
		t.Logf("%s: %v", v.name, err)
	}
}

// Every proper prefix of a valid annotation is truncated data.
func TestDecodeBlobInfoTruncated(t *testing.T) {
	for _, v := range blobVectors {
		b := mustHex(t, v.hex)
		for n := range len(b) {
			_, err := DecodeBlobInfo(b[:n])
			if err == nil {
				t.Fatalf("%s: prefix of %d bytes decoded", v.name, n)
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%s: prefix of %d bytes: %v, want a truncation error", v.name, n, err)
			}
		}
	}
}

// The result must not alias the input.
func TestDecodeBlobInfoCopies(t *testing.T) {
	b := []byte(")\x03)\x02s\x02\x00\x00\x00abz\x02cdz\x01oz\x01m")
	got, err := DecodeBlobInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	want := []any{[]byte("ab"), "cd"}
	if !reflect.DeepEqual(got.Info, want) {
		t.Fatalf("after overwriting the input got %#v, want %#v", got.Info, want)
	}
}

// A hostile annotation of the maximum chunk size must make the decoder allocate no more
// than a small multiple of its size.
func TestDecodeBlobInfoAllocationBound(t *testing.T) {
	inputs := map[string][]byte{
		// 13000 remembered ints in a list: one remembered-object entry per 5 bytes
		"many refs": append(append([]byte(")\x03[\xc8\x32\x00\x00"), bytes.Repeat([]byte{0xe9, 1, 0, 0, 0}, 13000)...), "z\x01oz\x01m"...),
		// 65000 refs to one big tuple of Nones: shared, not copied
		"refs to a big tuple": append(append(append([]byte(")\x03)\x02\xa8\xe8\x03\x00\x00"), bytes.Repeat([]byte{'N'}, 1000)...),
			append([]byte("(\x20\x31\x00\x00"), bytes.Repeat([]byte("r\x00\x00\x00\x00"), 0x3120)...)...), "z\x01oz\x01m"...),
		"huge counts": []byte(")\x03(\xff\xff\xff\x7f" + strings.Repeat("N", 60000)),
		"deep":        []byte(")\x03" + strings.Repeat("[\xff\xff\x00\x00", 10000)),
	}
	for name, in := range inputs {
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		_, err := DecodeBlobInfo(in)
		runtime.ReadMemStats(&ms1)
		alloc := ms1.TotalAlloc - ms0.TotalAlloc
		t.Logf("%s: %d input bytes, %d bytes allocated, err %v", name, len(in), alloc, err)
		if alloc > uint64(64*len(in)) {
			t.Errorf("%s: %d bytes allocated for %d input bytes", name, alloc, len(in))
		}
	}
}

func FuzzDecodeBlobInfo(f *testing.F) {
	for _, v := range blobVectors {
		f.Add(mustHex(f, v.hex))
	}
	for _, v := range blobErrorVectors {
		f.Add(mustHex(f, v.hex))
	}
	f.Add([]byte(")\x03\xdb\x01\x00\x00\x00r\x00\x00\x00\x00z\x01oz\x01m"))
	f.Add([]byte(")\x03l\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\x00z\x01oz\x01m"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		got, err := DecodeBlobInfo(b)
		if !bytes.Equal(in, b) {
			t.Fatal("the decoder modified its input")
		}
		if err != nil {
			var me *MarshalError
			if !errors.As(err, &me) {
				t.Fatalf("error %T is not a *MarshalError", err)
			}
			if me.Offset < 0 || me.Offset > len(b) {
				t.Fatalf("offset %d outside the input of %d bytes", me.Offset, len(b))
			}
			_ = err.Error()
			return
		}
		if !utf8.ValidString(got.Object) || !utf8.ValidString(got.Method) {
			t.Fatalf("object %q or method %q is not valid UTF-8", got.Object, got.Method)
		}
		checkInfo(t, got.Info, 0)
		again, err := DecodeBlobInfo(b)
		if err != nil || fmt.Sprintf("%#v", again) != fmt.Sprintf("%#v", got) {
			t.Fatalf("second decode differs: %#v, %v; first %#v", again, err, got)
		}
	})
}

// checkInfo checks that v holds only the documented types, with valid UTF-8 strings.
func checkInfo(t *testing.T, v any, depth int) {
	t.Helper()
	if depth > maxMarshalDepth+1 {
		t.Fatalf("info nested %d deep", depth)
	}
	switch x := v.(type) {
	case nil, bool, int64, float64, []byte:
	case string:
		if !utf8.ValidString(x) {
			t.Fatalf("info string %q is not valid UTF-8", x)
		}
	case []any:
		for _, e := range x {
			checkInfo(t, e, depth+1)
		}
	default:
		t.Fatalf("info holds a %T", v)
	}
}

func BenchmarkDecodeBlobInfo(b *testing.B) {
	in := mustHex(b, blobVectors[0].hex) // ('topic', 'example.obj', 'process_blob') from a Proxy
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := DecodeBlobInfo(in); err != nil {
			b.Fatal(err)
		}
	}
}
