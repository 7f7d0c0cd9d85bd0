package frame

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pymarshal"
)

// PeekLimit is how many payload bytes a peek looks at. Pyro4 writes the object id and the
// method name at the start of an INVOKE payload (serpent and marshal tuples, and its json
// dict), and a CONNECT payload is a small dict, so 1 KiB holds them with room for long
// names while keeping the cost of a peek small and fixed. A peek never reads past it, so
// it works on the payload prefix a Reader has buffered (Message.Payload).
const PeekLimit = 1024

// ErrCannotPeek is returned, wrapped with the reason, when a peek cannot tell the object
// id or method from the payload prefix: a compressed payload, a serializer whose format
// is not peeked (pickle, dill, cloudpickle, msgpack), a prefix too short to hold the
// fields, or a payload that does not have the expected shape. Test with errors.Is.
var ErrCannotPeek = errors.New("frame: cannot peek payload")

// peekError is ErrCannotPeek with a reason and, for marshal, the *MarshalError behind it.
type peekError struct {
	reason string
	cause  error
}

func (e *peekError) Error() string {
	if e.cause != nil {
		return ErrCannotPeek.Error() + ": " + e.reason + ": " + e.cause.Error()
	}
	return ErrCannotPeek.Error() + ": " + e.reason
}

func (e *peekError) Is(target error) bool { return target == ErrCannotPeek }
func (e *peekError) Unwrap() error        { return e.cause }

func cannotPeek(reason string) error { return &peekError{reason: reason} }

var (
	errPeekCompressed = cannotPeek("payload is compressed")
	errPeekShort      = cannotPeek("payload prefix too short")
	errPeekBeyond     = cannotPeek("payload prefix too short: the fields are not within the first " + strconv.Itoa(PeekLimit) + " bytes")
	errPeekUTF8       = cannotPeek("object id or method is not valid UTF-8")
	errPeekSerializer = [...]error{
		Pickle:      cannotPeek("pickle payloads are not peeked"),
		Dill:        cannotPeek("dill payloads are not peeked"),
		Msgpack:     cannotPeek("msgpack payloads are not peeked"),
		Cloudpickle: cannotPeek("cloudpickle payloads are not peeked"),
	}
)

// peekWindow checks the flags and serializer and returns the bytes a peek may look at.
func peekWindow(s Serializer, flags Flags, payload []byte) ([]byte, error) {
	if flags&FlagCompressed != 0 {
		return nil, errPeekCompressed
	}
	switch s {
	case Serpent, JSON, Marshal:
	default:
		if int(s) < len(errPeekSerializer) && errPeekSerializer[s] != nil {
			return nil, errPeekSerializer[s]
		}
		return nil, cannotPeek("unknown " + s.String())
	}
	return payload[:min(len(payload), PeekLimit)], nil
}

// PeekConnectObject returns the "object" field of a CONNECT payload, the dict
// {"handshake": ..., "object": ...} that a Pyro4 proxy sends when config.METADATA is on
// (the default), looking at no more than PeekLimit bytes. It returns an error wrapping
// ErrCannotPeek when the field is absent or not a str, the payload cannot be peeked, or
// the key occurs twice within the window (Python would use the last one). Keys that
// follow the window are not seen.
func PeekConnectObject(s Serializer, flags Flags, payload []byte) (string, error) {
	var buf peekBuf
	out, err := AppendPeekConnectObject(buf[:0], s, flags, payload)
	return string(out), err
}

// AppendPeekConnectObject appends the "object" field of a CONNECT payload to dst (decoded,
// UTF-8) and returns the extended slice; the rules and errors are those of
// PeekConnectObject. On error it returns dst unchanged (bytes past its length may have
// been written). It allocates nothing when dst has room, unless a marshal payload holds
// more than 16 remembered (FLAG_REF) values within the window.
func AppendPeekConnectObject(dst []byte, s Serializer, flags Flags, payload []byte) ([]byte, error) {
	w, err := peekWindow(s, flags, payload)
	if err != nil {
		return dst, err
	}
	var out []byte
	if s == Marshal {
		out, err = appendMarshalConnect(dst, w)
	} else {
		sc := textScanner{b: w, json: s == JSON}
		out, _, err = sc.dictFields(dst, "object", "")
	}
	if err != nil {
		return dst, beyond(err, payload)
	}
	return out, nil
}

// peekBuf is the buffer the string forms of the peeks decode into: the decoded fields of
// a serpent or json window never exceed it, so they cost one allocation, the string.
type peekBuf [PeekLimit]byte

// beyond tells a prefix cut by PeekLimit from a short payload in the error.
func beyond(err error, payload []byte) error {
	if err == errPeekShort && len(payload) > PeekLimit {
		return errPeekBeyond
	}
	return err
}

// PeekInvoke returns the object id and method name of an INVOKE payload, looking at no
// more than PeekLimit bytes: the first two items of the serpent or marshal tuple
// (object, method, args, kwargs), or the "object" and "method" fields of the json dict
// (in any order; a key that occurs twice within the window is refused, as Python would
// use the last one, and keys that follow the window are not seen). Errors wrap
// ErrCannotPeek. A BATCH call's method is "<batch>" (the batched calls are in its args,
// which are not peeked); for a KEEPSERIALIZED blob call DecodeBlobInfo on the BLBI
// annotation gives object and method without touching the payload.
func PeekInvoke(s Serializer, flags Flags, payload []byte) (object, method string, err error) {
	var buf peekBuf
	out, split, err := AppendPeekInvoke(buf[:0], s, flags, payload)
	both := string(out) // one allocation for the two
	return both[:split], both[split:], err
}

// AppendPeekInvoke appends the object id and then the method name of an INVOKE payload to
// dst (decoded, UTF-8) and returns the extended slice and the index in it where the
// method starts: object = out[len(dst):split], method = out[split:]. The rules and errors
// are those of PeekInvoke. On error it returns dst unchanged (bytes past its length may
// have been written). It allocates nothing when dst has room.
func AppendPeekInvoke(dst []byte, s Serializer, flags Flags, payload []byte) (out []byte, split int, err error) {
	w, err := peekWindow(s, flags, payload)
	if err != nil {
		return dst, 0, err
	}
	switch s {
	case Marshal:
		out, split, err = appendMarshalInvoke(dst, w)
	case JSON:
		sc := textScanner{b: w, json: true}
		out, split, err = sc.dictFields(dst, "object", "method")
	default:
		sc := textScanner{b: w}
		out, split, err = sc.serpentTuple(dst)
	}
	if err != nil {
		return dst, 0, beyond(err, payload)
	}
	return out, split, nil
}

// --- marshal ---------------------------------------------------------------------------

func marshalPeekError(err error) error {
	if me, ok := err.(*MarshalError); ok && me.Err != nil {
		return errPeekShort
	}
	return &peekError{reason: "unexpected marshal data", cause: err}
}

// appendMarshalInvoke appends the object id and method of the marshal call in w to dst.
func appendMarshalInvoke(dst, w []byte) ([]byte, int, error) {
	r := marshalReader{b: w, short: true}
	n, err := r.tupleHead()
	if err != nil {
		return dst, 0, marshalPeekError(err)
	}
	if n != 4 {
		return dst, 0, cannotPeek("marshal call is a tuple of " + strconv.Itoa(n) + " items, want 4")
	}
	obj, err := r.value()
	if err != nil {
		return dst, 0, marshalPeekError(err)
	}
	meth, err := r.value()
	if err != nil {
		return dst, 0, marshalPeekError(err)
	}
	if obj.kind != mkStr || meth.kind != mkStr {
		return dst, 0, cannotPeek("marshal call's object id or method is not a str")
	}
	if !obj.valid() || !meth.valid() {
		return dst, 0, errPeekUTF8
	}
	dst = obj.appendStr(dst)
	return meth.appendStr(dst), len(dst), nil
}

// appendMarshalConnect appends the "object" field of the marshal handshake dict in w to
// dst.
func appendMarshalConnect(dst, w []byte) ([]byte, error) {
	r := marshalReader{b: w, short: true}
	if len(w) == 0 {
		return dst, errPeekShort
	}
	if w[0]&^pymarshal.FlagRef != pymarshal.Dict {
		return dst, cannotPeek("marshal handshake is not a dict")
	}
	if w[0]&pymarshal.FlagRef != 0 {
		r.reserve()
	}
	r.off = 1
	var obj mval
	found := false
	// atEnd consumes the NULL marker that ends a dict (also in a value's place: CPython
	// then drops the key).
	atEnd := func() bool {
		if r.off < len(w) && w[r.off]&^pymarshal.FlagRef == pymarshal.Null {
			r.off++
			return true
		}
		return false
	}
	for !atEnd() {
		key, err := r.value()
		if err == nil && atEnd() {
			break
		}
		var val mval
		if err == nil {
			val, err = r.value()
		}
		if err != nil {
			if found && errors.Is(err, io.ErrUnexpectedEOF) {
				return obj.appendStr(dst), nil // the window ends inside the dict
			}
			return dst, marshalPeekError(err)
		}
		if key.equal("object") {
			if found {
				return dst, cannotPeek(`"object" key occurs twice`)
			}
			if val.kind != mkStr {
				return dst, cannotPeek(`"object" is ` + val.kind.String() + ", want str")
			}
			if !val.valid() {
				return dst, errPeekUTF8
			}
			obj, found = val, true
		}
	}
	if !found {
		return dst, cannotPeek(`no "object" key`)
	}
	return obj.appendStr(dst), nil
}

// --- serpent and json ------------------------------------------------------------------

// textScanner reads a serpent (Python literal) or json text prefix.
type textScanner struct {
	b    []byte
	off  int
	json bool
}

// textLit is a string literal: its contents between the quotes, still escaped.
type textLit struct {
	raw []byte
	esc bool // raw holds a backslash
}

var (
	errPeekShape   = cannotPeek("payload does not have the expected shape")
	errPeekLiteral = cannotPeek("unsupported string literal")
)

// space skips white space, and in serpent also comments (the "# serpent ..." header).
func (sc *textScanner) space() {
	for sc.off < len(sc.b) {
		switch sc.b[sc.off] {
		case ' ', '\t', '\n', '\r':
			sc.off++
		case '\f':
			if sc.json {
				return
			}
			sc.off++
		case '#':
			if sc.json {
				return
			}
			for sc.off < len(sc.b) && sc.b[sc.off] != '\n' {
				sc.off++
			}
		default:
			return
		}
	}
}

// next skips space and returns the next byte without consuming it.
func (sc *textScanner) next() (byte, bool) {
	sc.space()
	if sc.off >= len(sc.b) {
		return 0, false
	}
	return sc.b[sc.off], true
}

// expect consumes the byte c after optional space.
func (sc *textScanner) expect(c byte) error {
	got, ok := sc.next()
	if !ok {
		return errPeekShort
	}
	if got != c {
		return errPeekShape
	}
	sc.off++
	return nil
}

// lit reads a string literal after optional space: a json string, or a Python str
// literal in either quote style with an optional u prefix.
func (sc *textScanner) lit() (textLit, error) {
	c, ok := sc.next()
	if !ok {
		return textLit{}, errPeekShort
	}
	if !sc.json && (c == 'u' || c == 'U') {
		sc.off++
		if sc.off >= len(sc.b) {
			return textLit{}, errPeekShort
		}
		c = sc.b[sc.off]
		if c != '\'' && c != '"' {
			return textLit{}, errPeekShape
		}
	}
	if c != '"' && (sc.json || c != '\'') {
		return textLit{}, errPeekShape
	}
	return sc.quoted(c)
}

// quoted reads a string literal whose opening quote q is at sc.off. Characters that
// may not appear unescaped are checked by decode, for the strings that are used: in a
// skipped value they would only make the whole payload invalid for Python too.
func (sc *textScanner) quoted(q byte) (textLit, error) {
	b := sc.b
	start := sc.off + 1
	esc := false
	for i := start; ; {
		j := bytes.IndexByte(b[i:], q)
		if j < 0 {
			return textLit{}, errPeekShort
		}
		if k := bytes.IndexByte(b[i:i+j], '\\'); k >= 0 {
			esc = true
			i += k + 2 // the escaped byte, whatever it is, does not end the string
			if i > len(b) {
				return textLit{}, errPeekShort
			}
			continue
		}
		end := i + j
		sc.off = end + 1
		if !sc.json && sc.off < len(b) && (b[sc.off] == '\'' || b[sc.off] == '"') {
			// Triple quotes or implicit concatenation: serpent writes neither, and
			// reading them as separate literals would misplace what follows.
			return textLit{}, errPeekLiteral
		}
		return textLit{raw: b[start:end:end], esc: esc}, nil
	}
}

// appendStrValue reads a string literal and appends it decoded to dst.
func (sc *textScanner) appendStrValue(dst []byte) ([]byte, error) {
	l, err := sc.lit()
	if err != nil {
		return dst, err
	}
	return sc.appendDecoded(dst, l)
}

// decode returns the literal l decoded (see appendDecoded).
func (sc *textScanner) decode(l textLit) (string, error) {
	var buf [64]byte
	out, err := sc.appendDecoded(buf[:0], l)
	return string(out), err
}

// appendDecoded appends the value of the literal l to dst, or returns dst and an error
// when l is not valid UTF-8, holds a character that must be escaped, or an escape that
// is not supported.
func (sc *textScanner) appendDecoded(dst []byte, l textLit) ([]byte, error) {
	if !utf8.Valid(l.raw) {
		return dst, errPeekUTF8
	}
	for i := 0; i < len(l.raw); i++ {
		switch c := l.raw[i]; {
		case c == '\\':
			i++
		case c == '\n' || c == '\r' || (sc.json && c < 0x20):
			return dst, errPeekShape // not allowed unescaped in a string
		}
	}
	if !l.esc {
		return append(dst, l.raw...), nil
	}
	out, err := sc.unescape(dst, l.raw)
	if err != nil {
		return dst, err
	}
	return out, nil
}

// keyIs reports whether the literal l decodes to the ASCII string s.
func (sc *textScanner) keyIs(l textLit, s string) bool {
	if !l.esc {
		return string(l.raw) == s
	}
	if len(l.raw) > 6*len(s) { // \u escapes are the longest, at most 6 bytes each for ASCII
		return false
	}
	var buf [64]byte
	out, err := sc.unescape(buf[:0], l.raw)
	return err == nil && string(out) == s
}

func (sc *textScanner) unescape(dst, raw []byte) ([]byte, error) {
	if sc.json {
		return unescapeJSON(dst, raw)
	}
	return unescapePython(dst, raw)
}

// skipValue skips one value: up to a ',', ':' or closing bracket at nesting depth zero,
// stepping over strings and comments. It does not validate the value.
func (sc *textScanner) skipValue() error {
	depth := 0
	start := sc.off
	for sc.off < len(sc.b) {
		c := sc.b[sc.off]
		switch {
		case c == '"' || (c == '\'' && !sc.json):
			if _, err := sc.quoted(c); err != nil {
				return err
			}
			continue
		case c == '#' && !sc.json:
			sc.space()
			continue
		case c == '(' || c == '[' || c == '{':
			depth++
		case c == ')' || c == ']' || c == '}':
			if depth == 0 {
				if sc.off == start {
					return errPeekShape
				}
				return nil
			}
			depth--
		case c == ',' || c == ':':
			// ':' ends a skipped dict key; after a value the caller refuses it.
			if depth == 0 {
				if sc.off == start {
					return errPeekShape
				}
				return nil
			}
		}
		sc.off++
	}
	return errPeekShort
}

// serpentTuple reads the start of a serpent call tuple ('obj','method',args,kwargs) and
// appends obj and then method to dst, returning where method starts.
func (sc *textScanner) serpentTuple(dst []byte) ([]byte, int, error) {
	if err := sc.expect('('); err != nil {
		return dst, 0, err
	}
	out, err := sc.appendStrValue(dst)
	if err != nil {
		return dst, 0, err
	}
	if err := sc.expect(','); err != nil {
		return dst, 0, err
	}
	split := len(out)
	out, err = sc.appendStrValue(out)
	if err != nil {
		return dst, 0, err
	}
	if err := sc.expect(','); err != nil && err != errPeekShort {
		return dst, 0, err
	}
	return out, split, nil
}

// dictFields scans the top-level dict for the str values of keys k1 and k2 (k2 may be
// ""), as far as the window goes, and appends them to dst as finish does. Both must be
// found; a key found twice is an error.
func (sc *textScanner) dictFields(dst []byte, k1, k2 string) ([]byte, int, error) {
	if err := sc.expect('{'); err != nil {
		return dst, 0, err
	}
	var l1, l2 textLit
	var got1, got2 bool
	done := func() bool { return got1 && (got2 || k2 == "") }
	fail := func(err error) ([]byte, int, error) {
		if err == errPeekShort && done() {
			return sc.finish(dst, l1, l2, k2)
		}
		return dst, 0, err
	}
	for first := true; ; first = false {
		c, ok := sc.next()
		if !ok {
			return fail(errPeekShort)
		}
		if c == '}' && (first || !sc.json) { // Python allows a trailing comma
			sc.off++
			break
		}
		key, err := sc.lit()
		isStr := err == nil
		if err == errPeekShape && !sc.json {
			// A key that is not a str (an int or True, say): skip it.
			err = sc.skipValue()
		}
		if err != nil {
			return fail(err)
		}
		if err := sc.expect(':'); err != nil {
			return fail(err)
		}
		var into *textLit
		var seen *bool
		switch {
		case isStr && sc.keyIs(key, k1):
			into, seen = &l1, &got1
		case isStr && k2 != "" && sc.keyIs(key, k2):
			into, seen = &l2, &got2
		}
		if into != nil {
			if *seen {
				return dst, 0, cannotPeek("a key occurs twice")
			}
			v, err := sc.lit()
			if err != nil {
				if err == errPeekShape {
					err = cannotPeek("the object id or method is not a string")
				}
				return fail(err)
			}
			*into, *seen = v, true
		} else if err := sc.skipValue(); err != nil {
			return fail(err)
		}
		c, ok = sc.next()
		if !ok {
			return fail(errPeekShort)
		}
		sc.off++
		if c == '}' {
			break
		}
		if c != ',' {
			return dst, 0, errPeekShape
		}
	}
	if !done() {
		if k2 == "" {
			return dst, 0, cannotPeek(`no "` + k1 + `" key`)
		}
		return dst, 0, cannotPeek(`no "` + k1 + `" or "` + k2 + `" key`)
	}
	return sc.finish(dst, l1, l2, k2)
}

// finish appends the decoded value of l1 to dst and, unless k2 is "", that of l2,
// returning where the second value starts (the end when there is none).
func (sc *textScanner) finish(dst []byte, l1, l2 textLit, k2 string) ([]byte, int, error) {
	out, err := sc.appendDecoded(dst, l1)
	if err != nil {
		return dst, 0, err
	}
	split := len(out)
	if k2 != "" {
		if out, err = sc.appendDecoded(out, l2); err != nil {
			return dst, 0, err
		}
	}
	return out, split, nil
}

// unescapePython appends the value of a Python str literal's contents to dst.
func unescapePython(dst, raw []byte) ([]byte, error) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i >= len(raw) {
			return nil, errPeekLiteral
		}
		c = raw[i]
		switch c {
		case '\n':
		case '\r':
			if i+1 < len(raw) && raw[i+1] == '\n' {
				i++
			}
		case '\\', '\'', '"':
			dst = append(dst, c)
		case 'a':
			dst = append(dst, '\a')
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'v':
			dst = append(dst, '\v')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := rune(c - '0')
			for k := 0; k < 2 && i+1 < len(raw) && raw[i+1] >= '0' && raw[i+1] <= '7'; k++ {
				i++
				v = v*8 + rune(raw[i]-'0')
			}
			dst = utf8.AppendRune(dst, v)
		case 'x', 'u', 'U':
			n := 2
			if c == 'u' {
				n = 4
			} else if c == 'U' {
				n = 8
			}
			v, ok := hexRune(raw, i+1, n)
			if !ok || v > utf8.MaxRune || (v >= 0xD800 && v < 0xE000) {
				// Lone surrogates (even paired ones: Python does not combine them in a
				// str literal) have no UTF-8 form.
				return nil, errPeekLiteral
			}
			i += n
			dst = utf8.AppendRune(dst, v)
		case 'N':
			return nil, errPeekLiteral // \N{name}: serpent never writes it
		default:
			// Python keeps unknown escapes as they are.
			dst = append(dst, '\\')
			i--
		}
	}
	return dst, nil
}

// unescapeJSON appends the value of a json string's contents to dst.
func unescapeJSON(dst, raw []byte) ([]byte, error) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i >= len(raw) {
			return nil, errPeekLiteral
		}
		switch c = raw[i]; c {
		case '"', '\\', '/':
			dst = append(dst, c)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			v, ok := hexRune(raw, i+1, 4)
			if !ok {
				return nil, errPeekLiteral
			}
			i += 4
			if v >= 0xD800 && v < 0xE000 {
				// A high surrogate must be followed by an escaped low one.
				if v >= 0xDC00 || i+2 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
					return nil, errPeekLiteral
				}
				lo, ok := hexRune(raw, i+3, 4)
				if !ok || lo < 0xDC00 || lo >= 0xE000 {
					return nil, errPeekLiteral
				}
				i += 6
				v = 0x10000 + (v-0xD800)<<10 + (lo - 0xDC00)
			}
			dst = utf8.AppendRune(dst, v)
		default:
			return nil, errPeekLiteral
		}
	}
	return dst, nil
}

// hexRune parses n hex digits at b[i:].
func hexRune(b []byte, i, n int) (rune, bool) {
	if i+n > len(b) {
		return 0, false
	}
	var v rune
	for _, c := range b[i : i+n] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | rune(c)
	}
	return v, true
}
