package frame

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pymarshal"
)

// This file locates the parts of a whole INVOKE payload for a Go peer that answers calls
// itself (the bench echo backend): the object id and method to dispatch on, and the bytes
// of the first positional argument to send back. Unlike the peeks it reads the whole
// payload, but it still decodes nothing it does not have to: arguments are skipped with
// the same bounded walkers (nesting depth, payload length) and handed out as bytes.

// Call is an INVOKE payload located in place by ParseCall: the object id and method name
// (matched with ObjectIs and MethodIs, decoded with Object and Method) and where the first
// positional argument is. It aliases the payload it was parsed from.
type Call struct {
	ser       Serializer
	payload   []byte
	obj, meth callString
	// arg0 is the span of the first positional argument in payload; arg0Start < 0 when
	// the call has none.
	arg0Start, arg0End int
	// base is, for marshal, the number of remembered objects before the first argument:
	// the offset of its back-reference indices.
	base int
}

// callString is a located str: text literal contents (maybe escaped) or marshal contents.
type callString struct {
	raw     []byte
	marshal bool // marshal contents, else a serpent or json literal (json: Call.ser)
	esc     bool // text literal holding a backslash
	latin1  bool // marshal ascii code: contents read as Latin-1
}

var (
	errCallTruncated = cannotPeek("payload ends inside the call")
	errCallNotStr    = cannotPeek("the object id or method is not a str")
	errCallArgs      = cannotPeek("the call's positional arguments are not a tuple or list")
)

// ParseCall locates the object id, the method name and the first positional argument of
// a whole INVOKE payload in serpent, json or marshal: the tuple (object, method, args,
// kwargs) of serpent and marshal, or the json dict with keys "object", "method", "params"
// and "kwargs" in any order (a key occurring twice is refused). The argument list must be
// a tuple or list. Arguments are skipped without being validated or decoded, with bounded
// nesting; kwargs are not looked at. Errors wrap ErrCannotPeek: a compressed payload, a
// serializer other than those three, or a payload without that shape. ParseCall does not
// allocate unless it fails.
func ParseCall(s Serializer, flags Flags, payload []byte) (Call, error) {
	if flags&FlagCompressed != 0 {
		return Call{}, errPeekCompressed
	}
	c := Call{ser: s, payload: payload, arg0Start: -1}
	var err error
	switch s {
	case Marshal:
		r := marshalReader{b: payload}
		err = c.parseMarshal(&r, true)
	case Serpent, JSON:
		sc := textScanner{b: payload, json: s == JSON}
		if s == JSON {
			err = c.parseJSON(&sc)
		} else {
			err = c.parseSerpent(&sc)
		}
		if err == errPeekShort {
			err = errCallTruncated
		}
	default:
		_, err = peekWindow(s, flags, nil)
	}
	if err != nil {
		return Call{}, err
	}
	return c, nil
}

// Serializer returns the serializer the call was parsed with.
func (c *Call) Serializer() Serializer { return c.ser }

// ObjectIs reports whether the call's object id is name. It does not allocate for names
// of up to 64 bytes.
func (c *Call) ObjectIs(name string) bool { return c.strIs(&c.obj, name) }

// MethodIs reports whether the call's method is name. It does not allocate for names of
// up to 64 bytes.
func (c *Call) MethodIs(name string) bool { return c.strIs(&c.meth, name) }

// Object returns the decoded object id; "" when it is not valid text.
func (c *Call) Object() string { return c.strValue(&c.obj) }

// Method returns the decoded method name; "" when it is not valid text.
func (c *Call) Method() string { return c.strValue(&c.meth) }

// ParseBlobCall is ParseCall for a SerializedBlob call (KEEPSERIALIZED): the object id
// and method are those of the BLBI annotation value blbi, the marshal of (info, object,
// method), as a Pyro4 daemon takes them; the payload gives the first argument (the first
// item of the blob's data). Errors wrap ErrCannotPeek. It does not allocate unless it
// fails.
func ParseBlobCall(blbi []byte, s Serializer, flags Flags, payload []byte) (Call, error) {
	c, err := ParseCall(s, flags, payload)
	if err != nil {
		return Call{}, err
	}
	r := marshalReader{b: blbi}
	n, err := r.tupleHead()
	if err != nil {
		return Call{}, marshalCallError(err)
	}
	if n != 3 {
		return Call{}, cannotPeek("BLBI is a tuple of " + strconv.Itoa(n) + " items, want 3")
	}
	if _, err := r.value(); err != nil { // info
		return Call{}, marshalCallError(err)
	}
	for _, dst := range [2]*callString{&c.obj, &c.meth} {
		v, err := r.value()
		if err != nil {
			return Call{}, marshalCallError(err)
		}
		if v.kind != mkStr {
			return Call{}, errCallNotStr
		}
		*dst = callString{raw: v.raw, marshal: true, latin1: v.latin1}
	}
	if r.off != len(blbi) {
		return Call{}, cannotPeek("trailing bytes after the BLBI tuple")
	}
	return c, nil
}

// HasArg reports whether the call has at least one positional argument.
func (c *Call) HasArg() bool { return c.arg0Start >= 0 }

func (c *Call) strIs(cs *callString, s string) bool {
	switch {
	case cs.marshal:
		if !cs.latin1 {
			return string(cs.raw) == s
		}
		// Latin-1 contents: byte i is the code point of character i.
		i := 0
		for _, r := range s {
			if i >= len(cs.raw) || rune(cs.raw[i]) != r {
				return false
			}
			i++
		}
		return i == len(cs.raw)
	default:
		sc := textScanner{json: c.ser == JSON}
		return sc.keyIs(textLit{raw: cs.raw, esc: cs.esc}, s)
	}
}

func (c *Call) strValue(cs *callString) string {
	if cs.marshal {
		m := mval{kind: mkStr, latin1: cs.latin1, raw: cs.raw}
		if !m.valid() {
			return ""
		}
		return m.str()
	}
	sc := textScanner{json: c.ser == JSON}
	s, err := sc.decode(textLit{raw: cs.raw, esc: cs.esc})
	if err != nil {
		return ""
	}
	return s
}

// AppendFirstArg appends the call's first positional argument to dst as a standalone
// value of the call's serializer, as the RESULT payload of a method returning that
// argument unchanged carries it: for serpent the "# serpent" header line and the literal
// text, for json the value text, for marshal the value's bytes with back-references
// rewritten so that they resolve on their own (references to the object id or method
// string are replaced by a copy of the string, references within the value are
// renumbered). It returns dst unchanged and an error wrapping ErrCannotPeek when the call
// has no positional argument or the marshal value refers back to something other than a
// str or bytes outside it.
func (c *Call) AppendFirstArg(dst []byte) ([]byte, error) {
	if c.arg0Start < 0 {
		return dst, cannotPeek("the call has no positional argument")
	}
	switch c.ser {
	case Serpent:
		dst = append(dst, serpentHeader...)
		return append(dst, c.payload[c.arg0Start:c.arg0End]...), nil
	case JSON:
		return append(dst, c.payload[c.arg0Start:c.arg0End]...), nil
	}
	// Marshal: read the head again to rebuild the table of remembered objects, then copy
	// the argument.
	start := len(dst)
	r := marshalReader{b: c.payload}
	again := Call{}
	if err := again.parseMarshal(&r, false); err != nil {
		return dst, err
	}
	r.off = c.arg0Start
	dst, err := r.appendStandalone(dst, c.base)
	if err != nil {
		return dst[:start], &peekError{reason: "cannot copy the marshal argument", cause: err}
	}
	return dst, nil
}

// --- marshal ---------------------------------------------------------------------------

// parseMarshal reads the call up to its first argument, and past it when skipArg is set.
func (c *Call) parseMarshal(r *marshalReader, skipArg bool) error {
	n, err := r.tupleHead()
	if err != nil {
		return marshalCallError(err)
	}
	if n != 4 {
		return cannotPeek("marshal call is a tuple of " + strconv.Itoa(n) + " items, want 4")
	}
	for _, dst := range [2]*callString{&c.obj, &c.meth} {
		v, err := r.value()
		if err != nil {
			return marshalCallError(err)
		}
		if v.kind != mkStr {
			return errCallNotStr
		}
		*dst = callString{raw: v.raw, marshal: true, latin1: v.latin1}
	}
	// The argument list: a list as Pyro4 writes it, or a tuple.
	if r.off >= len(r.b) {
		return errCallTruncated
	}
	start := r.off
	code := r.b[r.off]
	var count int
	switch code &^ pymarshal.FlagRef {
	case pymarshal.List, pymarshal.Tuple:
		r.off++
		if count, err = r.count(start, "argument list", 1); err != nil {
			return marshalCallError(err)
		}
	case pymarshal.SmallTuple:
		if count, err = r.tupleHead(); err != nil {
			return marshalCallError(err)
		}
		code &^= pymarshal.FlagRef // tupleHead reserved its entry
	default:
		return errCallArgs
	}
	if code&pymarshal.FlagRef != 0 {
		r.reserve()
	}
	c.base = r.nref
	if count > 0 {
		c.arg0Start = r.off
		if !skipArg {
			return nil
		}
		if _, err := r.value(); err != nil {
			return marshalCallError(err)
		}
		c.arg0End = r.off
	}
	return nil
}

func marshalCallError(err error) error {
	if me, ok := err.(*MarshalError); ok && me.Err != nil {
		return errCallTruncated
	}
	return &peekError{reason: "unexpected marshal data", cause: err}
}

// appendStandalone copies the marshal value at r.off to dst so that it decodes on its own:
// a back-reference to an entry below base (remembered before the value) is replaced by a
// copy of that str or bytes, one at or above base is renumbered by subtracting base.
// Entries are reserved as value does, so the numbering stays in step.
func (r *marshalReader) appendStandalone(dst []byte, base int) ([]byte, error) {
	start := r.off
	if err := r.need(1, start, "type code"); err != nil {
		return dst, err
	}
	code := r.b[r.off]
	flag := code&pymarshal.FlagRef != 0
	switch code &^ pymarshal.FlagRef {
	case pymarshal.Ref:
		if err := r.need(5, start, "reference"); err != nil {
			return dst, err
		}
		i := binary.LittleEndian.Uint32(r.b[r.off+1:])
		if uint64(i) >= uint64(r.nref) {
			return dst, r.fail(start, "reference "+strconv.FormatUint(uint64(i), 10)+
				" out of range ("+strconv.Itoa(r.nref)+" remembered objects)")
		}
		r.off += 5
		if int(i) >= base {
			dst = append(dst, pymarshal.Ref)
			return binary.LittleEndian.AppendUint32(dst, i-uint32(base)), nil
		}
		m := r.recall(int(i))
		switch {
		case m.kind == mkBytes:
			dst = append(dst, pymarshal.Bytes)
		case m.kind == mkStr && m.latin1 && len(m.raw) < 256:
			return append(append(dst, pymarshal.ShortASCII, byte(len(m.raw))), m.raw...), nil
		case m.kind == mkStr && m.latin1:
			dst = append(dst, pymarshal.ASCII)
		case m.kind == mkStr:
			dst = append(dst, pymarshal.Unicode)
		default:
			return dst, r.fail(start, "reference to a "+m.kind.String()+" outside the value")
		}
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.raw)))
		return append(dst, m.raw...), nil
	case pymarshal.Tuple, pymarshal.SmallTuple, pymarshal.List, pymarshal.Set, pymarshal.Frozenset, pymarshal.Dict:
		if r.depth >= maxMarshalDepth {
			return dst, r.fail(start, "values nested deeper than "+strconv.Itoa(maxMarshalDepth))
		}
		r.depth++
		defer func() { r.depth-- }()
		r.off++
		n := -1 // -1: a dict, ended by a NULL marker
		switch code &^ pymarshal.FlagRef {
		case pymarshal.SmallTuple:
			if err := r.need(1, start, "tuple"); err != nil {
				return dst, err
			}
			n = int(r.b[r.off])
			r.off++
		case pymarshal.Dict:
		default:
			var err error
			if n, err = r.count(start, "container", 1); err != nil {
				return dst, err
			}
		}
		dst = append(dst, r.b[start:r.off]...)
		if flag {
			r.reserve()
		}
		var err error
		if n >= 0 {
			for range n {
				if dst, err = r.appendStandalone(dst, base); err != nil {
					return dst, err
				}
			}
			return dst, nil
		}
		for {
			if r.off >= len(r.b) {
				return dst, r.eof(start, "dict")
			}
			if r.b[r.off]&^pymarshal.FlagRef == pymarshal.Null {
				r.off++
				return append(dst, pymarshal.Null), nil
			}
			if dst, err = r.appendStandalone(dst, base); err != nil {
				return dst, err
			}
		}
	default:
		// A scalar: copied as is (value reserves its entry when flagged).
		if _, err := r.value(); err != nil {
			return dst, err
		}
		return append(dst, r.b[start:r.off]...), nil
	}
}

// --- serpent and json ------------------------------------------------------------------

// callString of a text literal.
func textCallString(l textLit) callString { return callString{raw: l.raw, esc: l.esc} }

func (c *Call) parseSerpent(sc *textScanner) error {
	if err := sc.expect('('); err != nil {
		return err
	}
	for _, dst := range [2]*callString{&c.obj, &c.meth} {
		l, err := sc.lit()
		if err != nil {
			if err == errPeekShape {
				return errCallNotStr
			}
			return err
		}
		if !utf8.Valid(l.raw) {
			return errPeekUTF8
		}
		*dst = textCallString(l)
		if err := sc.expect(','); err != nil {
			return err
		}
	}
	return c.textArgs(sc)
}

// textArgs reads a serpent tuple or list, or a json array, of arguments at sc.off,
// recording the first one's span, and leaves sc after it.
func (c *Call) textArgs(sc *textScanner) error {
	open, ok := sc.next()
	if !ok {
		return errPeekShort
	}
	var close byte
	switch {
	case open == '[':
		close = ']'
	case open == '(' && !sc.json:
		close = ')'
	default:
		return errCallArgs
	}
	sc.off++
	for i := 0; ; i++ {
		ch, ok := sc.next()
		if !ok {
			return errPeekShort
		}
		if ch == close {
			sc.off++
			return nil
		}
		if i > 0 {
			if ch != ',' {
				return errPeekShape
			}
			sc.off++
			// Python allows a trailing comma (and serpent writes one in a 1-tuple).
			if ch, ok = sc.next(); !ok {
				return errPeekShort
			}
			if ch == close && !sc.json {
				sc.off++
				return nil
			}
		}
		start := sc.off
		if err := sc.skipValue(); err != nil {
			return err
		}
		if i == 0 {
			end := sc.off
			for end > start && isTextSpace(sc.b[end-1]) {
				end--
			}
			c.arg0Start, c.arg0End = start, end
		}
	}
}

func isTextSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

func (c *Call) parseJSON(sc *textScanner) error {
	if err := sc.expect('{'); err != nil {
		return err
	}
	var gotObj, gotMeth, gotArgs bool
	for first := true; ; first = false {
		ch, ok := sc.next()
		if !ok {
			return errPeekShort
		}
		if ch == '}' && first {
			sc.off++
			break
		}
		key, err := sc.lit()
		if err != nil {
			return err
		}
		if err := sc.expect(':'); err != nil {
			return err
		}
		var dst *callString
		var seen *bool
		switch {
		case sc.keyIs(key, "object"):
			dst, seen = &c.obj, &gotObj
		case sc.keyIs(key, "method"):
			dst, seen = &c.meth, &gotMeth
		case sc.keyIs(key, "params"):
			if gotArgs {
				return cannotPeek("a key occurs twice")
			}
			gotArgs = true
			if err := c.textArgs(sc); err != nil {
				return err
			}
		default:
			if err := sc.skipValue(); err != nil {
				return err
			}
		}
		if dst != nil {
			if *seen {
				return cannotPeek("a key occurs twice")
			}
			*seen = true
			l, err := sc.lit()
			if err == errPeekShape {
				return errCallNotStr
			}
			if err != nil {
				return err
			}
			if !utf8.Valid(l.raw) {
				return errPeekUTF8
			}
			*dst = textCallString(l)
		}
		ch, ok = sc.next()
		if !ok {
			return errPeekShort
		}
		sc.off++
		if ch == '}' {
			break
		}
		if ch != ',' {
			return errPeekShape
		}
	}
	if !gotObj || !gotMeth || !gotArgs {
		return cannotPeek(`the json call lacks "object", "method" or "params"`)
	}
	return nil
}
