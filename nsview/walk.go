package nsview

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pymarshal"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// The walk visits the tree in payload order and writes the result: the bytes between
// replacements are copied from the payload, so the output differs only where a URI's
// address changed.
//
// Marshal back-references need care. A value that took a reference slot and is replaced
// keeps its FLAG_REF bit, so the slots after it keep their numbers, except when it
// becomes None, which takes no slot: then the later references are renumbered. A later
// 'r' to a replaced value sees the new value; where the value wanted there is another
// (a dict key, which is never rewritten, referring to a URI str that was), the 'r' is
// replaced by a copy of the value wanted, without FLAG_REF.

// ctx is what a value is to the walk.
type ctx uint8

const (
	ctxValue ctx = iota // part of the reply value: URIs in it are translated
	ctxKeep             // a dict key, or a URI object's other parts: left as they are
	ctxState            // the state tuple of a URI object
)

// Slot status.
const (
	slotOrig uint8 = iota // the value is as in the payload
	slotNew               // replaced by another str or int, keeping FLAG_REF
	slotGone              // replaced by None: the slot is given up
)

// slotState is what the walk knows of one marshal reference slot.
type slotState struct {
	ctx     ctx   // containers: how the value was walked
	changed bool  // containers: something in it was replaced
	scanned bool  // containers: uris is known
	uris    bool  // containers: hasURIs
	status  uint8 // scalars
	newA    int32 // slotNew: the new str contents are w.vals[newA:newB], or newInt
	newB    int32
	newInt  int
	vDone   bool  // str: the value a reference in ctxValue wants is decided:
	vNew    bool  // a translated URI, w.vals[vA:vB] (else the value in the payload),
	vSame   bool  // and whether the slot holds it
	vA, vB  int32 //
	newKind kind  // slotNew: kStr or kInt
}

type walker struct {
	rw      *Rewriter
	t       *tree
	in      []byte
	out     []byte
	base    int // len(dst)
	copied  int // in[:copied] is written (or replaced) already
	growth  int // how far len(out)-base may exceed copied
	tr      Translate
	edits   int // replacements written
	changes int // of them, those that change a value (not renumbered references)
	slots   []slotState
	removed []int32 // slots given up, in increasing order
	vals    []byte  // contents of replaced and wanted marshal strings
	buf     []byte  // a decoded text string
}

func (w *walker) run(rw *Rewriter, dst, in []byte, ser frame.Serializer, tr Translate) ([]byte, bool, error) {
	*w = walker{
		rw: rw, t: &rw.t, in: in, out: dst, base: len(dst), growth: rw.Limits.growth(len(in)), tr: tr,
		slots: w.slots[:0], removed: w.removed[:0], vals: w.vals[:0], buf: w.buf[:0],
	}
	defer func() { w.in, w.out, w.tr = nil, nil, nil }()
	if ser == frame.Marshal {
		if cap(w.slots) < len(w.t.slots) {
			w.slots = make([]slotState, len(w.t.slots))
		}
		w.slots = w.slots[:len(w.t.slots)]
		clear(w.slots)
	}
	if err := w.walk(0, ctxValue); err != nil {
		return dst, false, err
	}
	out := append(w.out, in[w.copied:]...)
	return out, w.edits > 0, nil
}

func (w *walker) walk(i int32, c ctx) error {
	t := w.t
	n := t.nodes[i]
	if n.slot >= 0 && n.kind.container() {
		w.slots[n.slot].ctx = c
	}
	changes := w.changes
	var err error
	switch n.kind {
	case kStr:
		if c == ctxValue {
			err = w.strLiteral(i)
		}
	case kRef:
		err = w.ref(i, c)
	case kDict:
		done := false
		if c == ctxValue {
			done, err = w.uriObject(i)
		}
		for k := i + 1; !done && err == nil && k < t.after(i); k = t.next(k) {
			if err = w.walk(k, ctxKeep); err == nil {
				k = t.next(k)
				err = w.walk(k, c)
			}
		}
	case kTuple, kList, kSet, kGroup:
		for ch := i + 1; err == nil && ch < t.after(i); ch = t.next(ch) {
			err = w.walk(ch, c)
		}
	}
	if n.slot >= 0 && n.kind.container() && w.changes > changes {
		w.slots[n.slot].changed = true
	}
	return err
}

// --- replacing ---------------------------------------------------------------------------

// begin starts the replacement of the bytes from start: it copies what comes before.
func (w *walker) begin(start int32) {
	w.out = append(w.out, w.in[w.copied:start]...)
}

// end finishes a replacement of the bytes up to end, checking Limits.MaxGrowth.
func (w *walker) end(end int32) error {
	w.copied = int(end)
	w.edits++
	if len(w.out)-w.base-w.copied > w.growth {
		return w.t.limit(int(end), "result grows beyond Limits.MaxGrowth")
	}
	return nil
}

// --- strings -----------------------------------------------------------------------------

// strOf returns the value of str node i; false when it cannot be a URI (an escape that
// does not decode, marshal ASCII codes holding other bytes). Text strings are decoded
// into w.buf, valid until the next call.
func (w *walker) strOf(i int32) ([]byte, bool) {
	n := &w.t.nodes[i]
	if n.kind != kStr {
		return nil, false
	}
	if w.t.ser == frame.Marshal {
		return w.in[n.a:n.b], n.flags&flLatin == 0
	}
	s, buf, ok := textStr(w.in, n, w.t.ser == frame.JSON, w.buf)
	w.buf = buf
	return s, ok
}

// strIs reports whether node i is the str lit.
func (w *walker) strIs(i int32, lit string) bool {
	s, ok := w.strOf(i)
	return ok && string(s) == lit
}

// stringURI reads s as a URI str and asks Translate about it.
func (w *walker) stringURI(s []byte) (u uriText, to Addr, change bool, err error) {
	u, ok := parseURI(s)
	if !ok || w.tr == nil {
		return u, to, false, nil
	}
	uri := URI{
		Protocol: u.proto,
		Object:   w.rw.str(s[u.objStart:u.objEnd]),
		Addr:     Addr{Host: w.rw.str(u.host), Port: u.port, Sock: w.rw.str(u.sock)},
		Form:     FormString,
	}
	to, change, err = w.call(uri)
	if u.locStart < 0 && s[u.objEnd-1] == '@' {
		// An object ending in '@' cannot take a location: Pyro4 reads "o@" + "@gw:1"
		// back as object "o" at "@gw:1". Such a URI is left as it is.
		change = false
	}
	return u, to, change, err
}

// call asks Translate (not nil) about u; change is true when the address is to be
// replaced by to.
func (w *walker) call(u URI) (to Addr, change bool, err error) {
	to, ok := w.tr(u)
	if !ok || to == u.Addr {
		return to, false, nil
	}
	if err := to.check(); err != nil {
		return to, false, fmt.Errorf("nsview: translating %s:%s@%s: %w", u.Protocol, u.Object, u.Addr, err)
	}
	return to, true, nil
}

// appendURI appends the contents of the URI str s (located by u) with the location to.
func appendURI(dst, s []byte, u *uriText, to Addr) []byte {
	at, hasLoc := u.split()
	dst = append(dst, s[:at]...)
	if !hasLoc {
		dst = append(dst, '@')
	}
	return to.appendTo(dst)
}

// strLiteral translates the str node i when it is a URI.
func (w *walker) strLiteral(i int32) error {
	n := w.t.nodes[i]
	s, ok := w.strOf(i)
	if !ok || len(s) < 6 {
		return nil
	}
	u, to, change, err := w.stringURI(s)
	var st *slotState
	if n.slot >= 0 {
		st = &w.slots[n.slot]
		st.vDone, st.vSame = true, true
	}
	if err != nil || !change {
		return err
	}
	w.changes++
	w.begin(n.start)
	switch w.t.ser {
	case frame.Marshal:
		a := len(w.vals)
		w.vals = appendURI(w.vals, s, &u, to)
		w.out = appendMarshalStr(w.out, w.vals[a:], n.flags&flRef != 0)
		if st != nil {
			st.status, st.newKind, st.newA, st.newB = slotNew, kStr, int32(a), int32(len(w.vals))
			st.vNew, st.vA, st.vB = true, st.newA, st.newB
		}
	default:
		var err error
		if w.out, err = w.textURI(w.out, &n, s, &u, to); err != nil {
			return err
		}
	}
	return w.end(n.end)
}

// textURI appends the serpent or json literal of the URI str s (text node n) with the
// location to. The literal keeps its text up to the location, escapes included, when
// that text is certain to be what the serializer writes for it again: no escaped '@'
// (so the location is found by counting '@'), no trailing newline, and in serpent no
// quote in the old or new location (Python's repr chooses the quotes by the whole
// string). Otherwise the whole string is encoded again.
func (w *walker) textURI(dst []byte, n *node, s []byte, u *uriText, to Addr) ([]byte, error) {
	serpent := w.t.ser == frame.Serpent
	raw := w.in[n.a:n.b]
	at, hasLoc := u.split()
	reuse := bytes.Count(raw, []byte{'@'}) == bytes.Count(s, []byte{'@'}) && (hasLoc || at == len(s))
	if serpent {
		reuse = reuse && !bytes.ContainsAny(s[at:], `'"`) && !containsQuote(to.Sock)
	}
	if reuse {
		rawAt := len(raw)
		if hasLoc {
			rawAt = nthIndex(raw, '@', bytes.Count(s[:at], []byte{'@'})) + 1
		}
		q := w.in[n.start]
		dst = append(append(dst, q), raw[:rawAt]...)
		if !hasLoc {
			dst = append(dst, '@')
		}
		return append(appendTextLocation(dst, to, serpent), q), nil
	}
	str := string(appendURI(nil, s, u, to))
	if !utf8.ValidString(str) {
		return dst, w.t.unsupported(int(n.start), "URI string with a lone surrogate")
	}
	if serpent {
		return frame.AppendPyRepr(dst, str), nil
	}
	return frame.AppendPyJSONString(dst, str, false), nil
}

func containsQuote(s string) bool { return strings.ContainsAny(s, `'"`) }

// nthIndex returns the index of the k-th (1-based) c in b; b holds at least k of them.
func nthIndex(b []byte, c byte, k int) int {
	i := -1
	for ; k > 0; k-- {
		i += 1 + bytes.IndexByte(b[i+1:], c)
	}
	return i
}

// appendTextLocation appends the location to, escaped for a serpent ('-quoted, which
// is the same as "-quoted when it holds no quote) or json string. Host names and
// addresses need no escapes; a socket path may.
func appendTextLocation(dst []byte, to Addr, serpent bool) []byte {
	if to.Sock == "" {
		return to.appendTo(dst)
	}
	dst = append(dst, unixPrefix...)
	n := len(dst)
	if serpent {
		dst = frame.AppendPyRepr(dst, to.Sock)
	} else {
		dst = frame.AppendPyJSONString(dst, to.Sock, false)
	}
	copy(dst[n:], dst[n+1:len(dst)-1]) // drop the quotes
	return dst[:len(dst)-2]
}

// appendMarshalStr appends s as marshal.dumps writes a str that is not interned: short
// ASCII, ASCII or UTF-8 by its contents and length, with FLAG_REF when ref.
func appendMarshalStr(dst, s []byte, ref bool) []byte {
	var flag byte
	if ref {
		flag = pymarshal.FlagRef
	}
	switch {
	case isASCII(s) && len(s) < 256:
		dst = append(dst, pymarshal.ShortASCII|flag, byte(len(s)))
	case isASCII(s):
		dst = binary.LittleEndian.AppendUint32(append(dst, pymarshal.ASCII|flag), uint32(len(s)))
	default:
		dst = binary.LittleEndian.AppendUint32(append(dst, pymarshal.Unicode|flag), uint32(len(s)))
	}
	return append(dst, s...)
}

// --- marshal references ------------------------------------------------------------------

// ref writes the marshal reference node i, met in context c.
func (w *walker) ref(i int32, c ctx) error {
	t := w.t
	idx := t.nodes[i].a
	target := t.slots[idx]
	st := &w.slots[idx]
	if t.nodes[target].kind.container() {
		if st.ctx != c && (st.changed || c == ctxValue && w.hasURIs(target, st)) {
			return t.unsupported(int(t.nodes[i].start), "a container with URIs shared between a dict key, a URI object and the value")
		}
		return w.keepRef(i)
	}
	if t.nodes[target].kind == kStr && c == ctxValue {
		if err := w.decide(target, st); err != nil {
			return err
		}
		if st.vSame {
			return w.keepRef(i)
		}
		if st.vNew {
			w.changes++
			w.begin(t.nodes[i].start)
			w.out = appendMarshalStr(w.out, w.vals[st.vA:st.vB], false)
			return w.end(t.nodes[i].end)
		}
	} else if st.status == slotOrig {
		return w.keepRef(i)
	}
	// The value wanted is the one in the payload: copy it, without its slot.
	tn := t.nodes[target]
	w.begin(t.nodes[i].start)
	w.out = append(w.out, w.in[tn.start]&^pymarshal.FlagRef)
	w.out = append(w.out, w.in[tn.start+1:tn.end]...)
	return w.end(t.nodes[i].end)
}

// decide makes the value-context decision for the str in slot st (node target) once:
// it is a URI to translate, or it stays. The slot's own value is final by then (it is
// set where the value is, before any reference to it), so whether it holds the value
// wanted is decided too.
func (w *walker) decide(target int32, st *slotState) error {
	if st.vDone {
		return nil
	}
	st.vDone = true
	st.vSame = st.status == slotOrig
	s, ok := w.strOf(target)
	if !ok {
		return nil
	}
	u, to, change, err := w.stringURI(s)
	if err != nil || !change {
		return err
	}
	a := len(w.vals)
	w.vals = appendURI(w.vals, s, &u, to)
	st.vNew, st.vA, st.vB = true, int32(a), int32(len(w.vals))
	st.vSame = st.status == slotNew && st.newKind == kStr && bytes.Equal(w.vals[st.newA:st.newB], w.vals[a:])
	return nil
}

// keepRef writes reference node i as it is, renumbered when slots before its target
// were given up.
func (w *walker) keepRef(i int32) error {
	n := w.t.nodes[i]
	idx := n.a
	shift := int32(sort.Search(len(w.removed), func(k int) bool { return w.removed[k] >= idx }))
	if shift == 0 {
		return nil
	}
	w.begin(n.start)
	w.out = append(w.out, w.in[n.start])
	w.out = binary.LittleEndian.AppendUint32(w.out, uint32(idx-shift))
	return w.end(n.end)
}

// hasURIs reports whether the container target (slot st) may hold a URI: a str that is
// one, a dict (it may be a URI object), or a reference to another container. The answer
// is kept in st, so that many references to one container cost one scan.
func (w *walker) hasURIs(target int32, st *slotState) bool {
	if !st.scanned {
		st.scanned, st.uris = true, w.scanURIs(target)
	}
	return st.uris
}

func (w *walker) scanURIs(target int32) bool {
	t := w.t
	for j := target; j < t.after(target); j++ {
		k := j
		if t.nodes[j].kind == kRef {
			k = t.slots[t.nodes[j].a]
		}
		switch t.nodes[k].kind {
		case kDict, kTuple, kList, kSet:
			if k != j || t.nodes[k].kind == kDict {
				return true
			}
		case kStr:
			if s, ok := w.strOf(k); ok {
				if _, ok := parseURI(s); ok {
					return true
				}
			}
		}
	}
	return false
}
