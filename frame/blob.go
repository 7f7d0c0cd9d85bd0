package frame

import (
	"encoding/binary"
	"io"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pymarshal"
)

// This file holds the one Python marshal reader of the package. DecodeBlobInfo uses it to
// build Go values from a BLBI annotation; the payload peeks (peek.go) use it in skip mode,
// where it only walks values and hands back strings as slices of the input.
//
// The reader follows CPython 3.11's marshal.c (format version 4) for what it accepts:
// type code bit 0x80 (FLAG_REF) appends the object to a table of remembered objects, code
// 'r' is followed by a 4-byte little-endian index into that table. Which codes honour the
// flag matters for the indices: None, True, False, Ellipsis, StopIteration, the NULL marker
// and 'r' itself never add an entry; containers reserve their entry before their elements
// are read. Python's own writer sets the flag only on objects whose reference count is
// above one, so the same value gets different indices depending on how it was built: real
// BLBI annotations from a Proxy start with ")\x03" (tuple not remembered) while a literal
// tuple gives "\xa9\x03" (remembered, index 0).

// MarshalError reports Python marshal data that cannot be decoded: truncated, malformed,
// or holding a type this package does not accept there.
type MarshalError struct {
	Offset int    // byte offset in the input where the offending item starts
	Reason string // what is wrong, such as "unknown type code '?'"
	Err    error  // io.ErrUnexpectedEOF when the input is truncated, else nil
}

// Error describes the problem and where it is.
func (e *MarshalError) Error() string {
	return "frame: bad marshal data at offset " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Unwrap returns io.ErrUnexpectedEOF for truncated input.
func (e *MarshalError) Unwrap() error { return e.Err }

// BlobInfo is the decoded BLBI annotation of a SerializedBlob call.
type BlobInfo struct {
	// Info is the blob's info value (Pyro4 SerializedBlob.info, typically a topic string):
	// string, []byte, int64, float64, bool, nil, or []any for a tuple or list (nested).
	Info any
	// Object is the target object id.
	Object string
	// Method is the method name.
	Method string
}

// DecodeBlobInfo decodes a BLBI annotation value, the Python marshal encoding of the tuple
// (info, object_id, method). Object and method must be str. Info may be a str, bytes, int
// (within int64), float, bool, None, or a tuple or list of those (nested up to a fixed
// depth). Anything else, and truncated data or trailing bytes, gives a *MarshalError.
// Repeated references to one tuple or list share the same []any; the result never
// aliases b.
func DecodeBlobInfo(b []byte) (BlobInfo, error) {
	r := marshalReader{b: b, full: true}
	start := r.off
	n, err := r.tupleHead()
	if err != nil {
		return BlobInfo{}, err
	}
	if n != 3 {
		return BlobInfo{}, r.fail(start, "BLBI is a tuple of "+strconv.Itoa(n)+" items, want 3 (info, object, method)")
	}
	info, err := r.value()
	if err != nil {
		return BlobInfo{}, err
	}
	// Object and method need no boxed Go value: read them in skip mode and convert the
	// raw contents (remembered strings keep their offsets, so references still work).
	r.full = false
	objAt := r.off
	obj, err := r.value()
	if err != nil {
		return BlobInfo{}, err
	}
	if obj.kind != mkStr {
		return BlobInfo{}, r.fail(objAt, "object id is "+obj.kind.String()+", want str")
	}
	if !obj.valid() {
		return BlobInfo{}, r.fail(objAt, "object id is not valid UTF-8")
	}
	methAt := r.off
	meth, err := r.value()
	if err != nil {
		return BlobInfo{}, err
	}
	if meth.kind != mkStr {
		return BlobInfo{}, r.fail(methAt, "method is "+meth.kind.String()+", want str")
	}
	if !meth.valid() {
		return BlobInfo{}, r.fail(methAt, "method is not valid UTF-8")
	}
	if r.off != len(b) {
		return BlobInfo{}, r.fail(r.off, strconv.Itoa(len(b)-r.off)+" trailing bytes after the tuple")
	}
	return BlobInfo{Info: info.v, Object: obj.str(), Method: meth.str()}, nil
}

// maxMarshalDepth bounds container nesting, in BLBI info and in skipped payload values.
const maxMarshalDepth = 32

// mkind is the Python type of a marshal value.
type mkind uint8

const (
	mkPending mkind = iota // a remembered container whose elements are still being read
	mkNone
	mkBool
	mkInt
	mkFloat
	mkComplex
	mkStr
	mkBytes
	mkTuple
	mkList
	mkDict
	mkSet
	mkEllipsis
	mkStopIter
)

var mkindNames = [...]string{"a container being read", "None", "bool", "int", "float", "complex", "str", "bytes", "tuple", "list", "dict", "set", "Ellipsis", "StopIteration"}

func (k mkind) String() string { return mkindNames[k] }

// mval is one decoded marshal value. raw holds the contents of a str or bytes, aliasing
// the input; latin1 marks a str stored with an ASCII code, which CPython reads as Latin-1.
// v is the Go value, set in full mode only.
type mval struct {
	kind   mkind
	latin1 bool
	at     int // offset of raw in the input
	raw    []byte
	v      any
}

// str returns the Go string of a str value (UTF-8; Latin-1 contents are converted).
func (m *mval) str() string {
	if !m.latin1 {
		return string(m.raw) // already UTF-8: one copy, whatever the length
	}
	var buf [64]byte
	return string(m.appendStr(buf[:0]))
}

// appendStr appends the UTF-8 form of a str value to dst: its contents, or for Latin-1
// contents each byte as the code point of the same value.
func (m *mval) appendStr(dst []byte) []byte {
	if !m.latin1 {
		return append(dst, m.raw...)
	}
	for _, c := range m.raw {
		dst = utf8.AppendRune(dst, rune(c))
	}
	return dst
}

// valid reports whether a str value has a Go string: Latin-1 always does, UTF-8 contents
// must be valid (no lone surrogates).
func (m *mval) valid() bool { return m.latin1 || utf8.Valid(m.raw) }

// equal reports whether a str value equals the ASCII string s, without allocating.
func (m *mval) equal(s string) bool { return m.kind == mkStr && string(m.raw) == s }

// marshalReader reads marshal data from b. In full mode value builds Go values (and
// refuses types BlobInfo cannot hold); otherwise it only walks values, keeping str and
// bytes contents as slices of b and the remembered-object table in step.
type marshalReader struct {
	b     []byte
	off   int
	depth int
	full  bool
	short bool // truncation gives errMarshalShort (see eof)
	nref  int
	small [16]mref // the first remembered objects; the rest go to more
	more  []mref
}

// mref is an entry of the remembered-object table: an mval with its contents stored as
// offsets into the input, to keep the table small.
type mref struct {
	kind       mkind
	latin1     bool
	start, end int32 // str or bytes contents: b[start:end]
	v          any
}

func (r *marshalReader) fail(off int, reason string) *MarshalError {
	return &MarshalError{Offset: off, Reason: reason}
}

// errMarshalShort is what truncated input gives in short mode, which the payload peeks
// use: they only need to know that the window ends early, and a window that ends after
// the fields they look for must not cost an allocation.
var errMarshalShort = &MarshalError{Reason: "data ends early", Err: io.ErrUnexpectedEOF}

func (r *marshalReader) eof(off int, what string) *MarshalError {
	if r.short {
		return errMarshalShort
	}
	return &MarshalError{Offset: off, Reason: "data ends inside " + what, Err: io.ErrUnexpectedEOF}
}

// eofOf is eof for what holding n items of unit, said in the reason only when it is used.
func (r *marshalReader) eofOf(off int, what string, n int64, unit string) *MarshalError {
	if r.short {
		return errMarshalShort
	}
	return r.eof(off, what+" of "+strconv.FormatInt(n, 10)+" "+unit)
}

// reserve adds an entry to the remembered-object table and returns its index.
func (r *marshalReader) reserve() int {
	i := r.nref
	r.nref++
	if i >= len(r.small) {
		// At most one entry per input byte, so the table is bounded by len(b); it grows
		// by doubling to keep the total allocated within twice its final size.
		if len(r.more) == cap(r.more) {
			more := make([]mref, len(r.more), max(32, 2*cap(r.more)))
			copy(more, r.more)
			r.more = more
		}
		r.more = append(r.more, mref{})
	}
	return i
}

func (r *marshalReader) ref(i int) *mref {
	if i < len(r.small) {
		return &r.small[i]
	}
	return &r.more[i-len(r.small)]
}

// remember stores m in entry i.
func (r *marshalReader) remember(i int, m mval) {
	e := mref{kind: m.kind, latin1: m.latin1, v: m.v}
	if m.kind == mkStr || m.kind == mkBytes {
		// Offsets fit: an item's size is checked against the input, and a BLBI chunk or a
		// peek window is far below 2 GiB.
		e.start = int32(m.at)
		e.end = int32(m.at + len(m.raw))
	}
	*r.ref(i) = e
}

// recall returns entry i as an mval.
func (r *marshalReader) recall(i int) mval {
	e := r.ref(i)
	m := mval{kind: e.kind, latin1: e.latin1, v: e.v}
	if e.kind == mkStr || e.kind == mkBytes {
		m.at, m.raw = int(e.start), r.b[e.start:e.end:e.end]
	}
	return m
}

// need checks that n more bytes are available.
func (r *marshalReader) need(n int, start int, what string) error {
	if n > len(r.b)-r.off {
		return r.eof(start, what)
	}
	return nil
}

// count reads a 4-byte little-endian count and checks it against the bytes left, given
// that every counted item takes at least unit bytes.
func (r *marshalReader) count(start int, what string, unit int) (int, error) {
	if err := r.need(4, start, what); err != nil {
		return 0, err
	}
	n := int32(binary.LittleEndian.Uint32(r.b[r.off:]))
	r.off += 4
	if n < 0 {
		return 0, r.fail(start, "negative "+what+" size "+strconv.Itoa(int(n)))
	}
	if int64(n)*int64(unit) > int64(len(r.b)-r.off) {
		return 0, r.eofOf(start, what, int64(n), "items")
	}
	return int(n), nil
}

// tupleHead reads the code and size of a tuple, remembering it when flagged. The tuple's
// entry stays pending; callers that read it this way never resolve it.
func (r *marshalReader) tupleHead() (int, error) {
	start := r.off
	if err := r.need(1, start, "type code"); err != nil {
		return 0, err
	}
	code := r.b[r.off]
	r.off++
	var n int
	switch code &^ pymarshal.FlagRef {
	case pymarshal.SmallTuple:
		if err := r.need(1, start, "tuple"); err != nil {
			return 0, err
		}
		n = int(r.b[r.off])
		r.off++
		if n > len(r.b)-r.off {
			return 0, r.eofOf(start, "tuple", int64(n), "items")
		}
	case pymarshal.Tuple:
		var err error
		if n, err = r.count(start, "tuple", 1); err != nil {
			return 0, err
		}
	default:
		return 0, r.fail(start, "type code "+codeName(code)+", want a tuple")
	}
	if code&pymarshal.FlagRef != 0 {
		r.reserve()
	}
	return n, nil
}

func codeName(c byte) string {
	c &^= pymarshal.FlagRef
	if c >= 0x21 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return "0x" + strconv.FormatUint(uint64(c), 16)
}

// value reads one marshal value.
func (r *marshalReader) value() (mval, error) {
	start := r.off
	if err := r.need(1, start, "type code"); err != nil {
		return mval{}, err
	}
	code := r.b[r.off]
	r.off++
	flag := code&pymarshal.FlagRef != 0
	code &^= pymarshal.FlagRef

	var m mval
	switch code {
	case pymarshal.None:
		return mval{kind: mkNone}, nil
	case pymarshal.True, pymarshal.False:
		m = mval{kind: mkBool}
		if r.full {
			m.v = code == pymarshal.True
		}
		return m, nil
	case pymarshal.Ellipsis, pymarshal.StopIter:
		if r.full {
			return mval{}, r.unsupported(start, code)
		}
		if code == pymarshal.Ellipsis {
			return mval{kind: mkEllipsis}, nil
		}
		return mval{kind: mkStopIter}, nil
	case pymarshal.Null:
		return mval{}, r.fail(start, "unexpected NULL marker")
	case pymarshal.Ref:
		if err := r.need(4, start, "reference"); err != nil {
			return mval{}, err
		}
		i := binary.LittleEndian.Uint32(r.b[r.off:])
		r.off += 4
		if uint64(i) >= uint64(r.nref) {
			return mval{}, r.fail(start, "reference "+strconv.FormatUint(uint64(i), 10)+
				" out of range ("+strconv.Itoa(r.nref)+" remembered objects)")
		}
		m = r.recall(int(i))
		if m.kind == mkPending && r.full {
			return mval{}, r.fail(start, "reference to a container that is still being read (recursive value)")
		}
		return m, nil
	case pymarshal.Code:
		return mval{}, r.unsupported(start, code)
	}

	// Everything below honours FLAG_REF.
	idx := -1
	switch code {
	case pymarshal.Tuple, pymarshal.SmallTuple, pymarshal.List, pymarshal.Dict, pymarshal.Set, pymarshal.Frozenset:
		// Containers are remembered before their elements are read (CPython
		// r_ref_reserve / R_REF before filling), so elements refer to later indices.
		if flag {
			idx = r.reserve()
		}
		var err error
		m, err = r.container(start, code)
		if err != nil {
			return mval{}, err
		}
	default:
		var err error
		m, err = r.scalar(start, code)
		if err != nil {
			return mval{}, err
		}
		if flag {
			idx = r.reserve()
		}
	}
	if idx >= 0 {
		r.remember(idx, m)
	}
	return m, nil
}

func (r *marshalReader) unsupported(start int, code byte) *MarshalError {
	var what string
	switch code {
	case pymarshal.Dict:
		what = "dict"
	case pymarshal.Set:
		what = "set"
	case pymarshal.Frozenset:
		what = "frozenset"
	case pymarshal.Complex, pymarshal.BinaryComplex:
		what = "complex"
	case pymarshal.Ellipsis:
		what = "Ellipsis"
	case pymarshal.StopIter:
		what = "StopIteration"
	case pymarshal.Code:
		return r.fail(start, "code objects are not supported")
	}
	return r.fail(start, what+" is not supported in BLBI info")
}

// scalar reads the body of a non-container value whose code was just read.
func (r *marshalReader) scalar(start int, code byte) (mval, error) {
	var m mval
	switch code {
	case pymarshal.Int:
		if err := r.need(4, start, "int"); err != nil {
			return m, err
		}
		m.kind = mkInt
		if r.full {
			m.v = int64(int32(binary.LittleEndian.Uint32(r.b[r.off:])))
		}
		r.off += 4
	case pymarshal.Int64:
		if err := r.need(8, start, "int64"); err != nil {
			return m, err
		}
		m.kind = mkInt
		if r.full {
			m.v = int64(binary.LittleEndian.Uint64(r.b[r.off:]))
		}
		r.off += 8
	case pymarshal.Long:
		v, err := r.long(start)
		if err != nil {
			return m, err
		}
		m.kind = mkInt
		if r.full {
			m.v = v
		}
	case pymarshal.BinaryFloat:
		if err := r.need(8, start, "float"); err != nil {
			return m, err
		}
		m.kind = mkFloat
		if r.full {
			m.v = math.Float64frombits(binary.LittleEndian.Uint64(r.b[r.off:]))
		}
		r.off += 8
	case pymarshal.Float:
		f, err := r.textFloat(start)
		if err != nil {
			return m, err
		}
		m.kind = mkFloat
		if r.full {
			m.v = f
		}
	case pymarshal.BinaryComplex:
		if r.full {
			return m, r.unsupported(start, code)
		}
		if err := r.need(16, start, "complex"); err != nil {
			return m, err
		}
		r.off += 16
		m.kind = mkComplex
	case pymarshal.Complex:
		if r.full {
			return m, r.unsupported(start, code)
		}
		for range 2 {
			if _, err := r.textFloat(start); err != nil {
				return m, err
			}
		}
		m.kind = mkComplex
	case pymarshal.Bytes:
		n, err := r.count(start, "bytes", 1)
		if err != nil {
			return m, err
		}
		m.kind, m.at, m.raw = mkBytes, r.off, r.b[r.off:r.off+n:r.off+n]
		r.off += n
		if r.full {
			m.v = append([]byte{}, m.raw...)
		}
	case pymarshal.ShortASCII, pymarshal.ShortASCIIInterned:
		if err := r.need(1, start, "str"); err != nil {
			return m, err
		}
		n := int(r.b[r.off])
		r.off++
		if n > len(r.b)-r.off {
			return m, r.eofOf(start, "str", int64(n), "bytes")
		}
		m.kind, m.latin1, m.at, m.raw = mkStr, true, r.off, r.b[r.off:r.off+n:r.off+n]
		r.off += n
	case pymarshal.ASCII, pymarshal.ASCIIInterned:
		n, err := r.count(start, "str", 1)
		if err != nil {
			return m, err
		}
		m.kind, m.latin1, m.at, m.raw = mkStr, true, r.off, r.b[r.off:r.off+n:r.off+n]
		r.off += n
	case pymarshal.Unicode, pymarshal.Interned:
		n, err := r.count(start, "str", 1)
		if err != nil {
			return m, err
		}
		m.kind, m.at, m.raw = mkStr, r.off, r.b[r.off:r.off+n:r.off+n]
		if r.full && !m.valid() {
			// CPython decodes with "surrogatepass"; lone surrogates have no Go string.
			// Skip mode checks only the strings it hands out (valid), as a skipped
			// string with surrogates is fine for Python.
			return m, r.fail(start, "str is not valid UTF-8")
		}
		r.off += n
	default:
		return m, r.fail(start, "unknown type code "+codeName(code))
	}
	if m.kind == mkStr && r.full {
		m.v = m.str()
	}
	return m, nil
}

// long reads the body of a 'l' (arbitrary precision int): a signed 4-byte digit count and
// that many 15-bit digits, least significant first. Values outside int64 are refused in
// full mode; skip mode only validates them.
func (r *marshalReader) long(start int) (int64, error) {
	if err := r.need(4, start, "int"); err != nil {
		return 0, err
	}
	n := int64(int32(binary.LittleEndian.Uint32(r.b[r.off:])))
	r.off += 4
	neg := n < 0
	if neg {
		n = -n
	}
	if n*2 > int64(len(r.b)-r.off) {
		return 0, r.eofOf(start, "int", n, "digits")
	}
	var mag uint64
	overflow := false
	for i := range int(n) {
		d := uint64(binary.LittleEndian.Uint16(r.b[r.off+2*i:]))
		if d >= 1<<15 {
			return 0, r.fail(start, "int digit out of range")
		}
		if i == int(n)-1 && d == 0 {
			return 0, r.fail(start, "unnormalized int")
		}
		if d == 0 || overflow {
			continue
		}
		// Digits occupy disjoint bit ranges, so OR adds them.
		if sh := 15 * i; sh+bits.Len64(d) > 64 {
			overflow = true
		} else {
			mag |= d << sh
		}
	}
	r.off += int(n) * 2
	if r.full && (overflow || mag > 1<<63 || (!neg && mag == 1<<63)) {
		return 0, r.fail(start, "int does not fit in 64 bits")
	}
	if neg {
		return -int64(mag), nil
	}
	return int64(mag), nil
}

// textFloat reads a float stored as text: a 1-byte length and the digits, as
// PyOS_string_to_double accepts them.
func (r *marshalReader) textFloat(start int) (float64, error) {
	if err := r.need(1, start, "float"); err != nil {
		return 0, err
	}
	n := int(r.b[r.off])
	r.off++
	if err := r.need(n, start, "float"); err != nil {
		return 0, err
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	for _, c := range s {
		// strconv also takes hex floats and underscores, which Python does not.
		if c == 'x' || c == 'X' || c == '_' {
			return 0, r.fail(start, "bad float text")
		}
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
			return 0, r.fail(start, "bad float text")
		}
	}
	return f, nil
}

// container reads the body of a tuple, list, dict, set or frozenset whose code was just
// read. In full mode only tuples and lists are accepted and become []any.
func (r *marshalReader) container(start int, code byte) (mval, error) {
	if r.full && (code == pymarshal.Dict || code == pymarshal.Set || code == pymarshal.Frozenset) {
		return mval{}, r.unsupported(start, code)
	}
	if r.depth >= maxMarshalDepth {
		return mval{}, r.fail(start, "values nested deeper than "+strconv.Itoa(maxMarshalDepth))
	}
	r.depth++
	defer func() { r.depth-- }()

	var m mval
	if code == pymarshal.Dict {
		m.kind = mkDict
		for {
			// A NULL marker in key or value position ends the dict (CPython drops a key
			// without value).
			if r.off >= len(r.b) {
				return m, r.eof(start, "dict")
			}
			if r.b[r.off]&^pymarshal.FlagRef == pymarshal.Null {
				r.off++
				return m, nil
			}
			if _, err := r.value(); err != nil {
				return m, err
			}
			if r.off >= len(r.b) {
				return m, r.eof(start, "dict")
			}
			if r.b[r.off]&^pymarshal.FlagRef == pymarshal.Null {
				r.off++
				return m, nil
			}
			if _, err := r.value(); err != nil {
				return m, err
			}
		}
	}

	var n int
	switch code {
	case pymarshal.SmallTuple:
		if err := r.need(1, start, "tuple"); err != nil {
			return m, err
		}
		n = int(r.b[r.off])
		r.off++
		if n > len(r.b)-r.off {
			return m, r.eofOf(start, "tuple", int64(n), "items")
		}
		m.kind = mkTuple
	case pymarshal.Tuple:
		var err error
		n, err = r.count(start, "tuple", 1)
		if err != nil {
			return m, err
		}
		m.kind = mkTuple
	case pymarshal.List:
		var err error
		n, err = r.count(start, "list", 1)
		if err != nil {
			return m, err
		}
		m.kind = mkList
	default: // set, frozenset
		var err error
		n, err = r.count(start, "set", 1)
		if err != nil {
			return m, err
		}
		m.kind = mkSet
	}
	var items []any
	if r.full {
		// n <= bytes left, as every item takes at least one byte.
		items = make([]any, n)
	}
	for i := range n {
		e, err := r.value()
		if err != nil {
			return m, err
		}
		if r.full {
			items[i] = e.v
		}
	}
	if r.full {
		m.v = items
	}
	return m, nil
}
