package nsview

import (
	"encoding/binary"
	"strconv"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pymarshal"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// A URI object is what Pyro4's serializers write for a core.URI (util.py
// SerializerBase.class_to_dict with core.serialize_core_object_to_dict): a dict
// {"__class__": "Pyro4.core.URI", "state": (protocol, object, sockname, host, port)},
// turned back into a URI by dict_to_class wherever it is in the value. As there, the
// last "__class__" and "state" keys count and other keys are ignored; the state may be
// a tuple or a list.

// want is the value a state field is to have: None, a str or an int.
type want struct {
	kind kind
	s    string
	n    int
}

// uriObject translates dict d when it is a URI object and reports whether it was one;
// when it was, the dict is walked.
func (w *walker) uriObject(d int32) (bool, error) {
	t := w.t
	cls, state := int32(-1), int32(-1)
	for k := d + 1; k < t.after(d); k = t.next(t.next(k)) {
		switch key := t.deref(k); {
		case w.strIs(key, "__class__"):
			cls = t.next(k)
		case w.strIs(key, "state"):
			state = t.next(k)
		}
	}
	if cls < 0 || state < 0 || !w.strIs(t.deref(cls), "Pyro4.core.URI") {
		return false, nil
	}
	st := t.unwrap(state)
	shared := t.nodes[st].kind == kRef
	if shared {
		st = t.slots[t.nodes[st].a]
	}
	uri, ok := w.stateURI(st)
	if !ok {
		return false, nil
	}
	if shared && w.slots[t.nodes[t.unwrap(state)].a].ctx != ctxState {
		// Its fields were (or will be) written as those of another value.
		return true, t.unsupported(int(t.nodes[state].start), "URI state shared with a value that is not a URI state")
	}
	var to Addr
	var change bool
	var err error
	if w.tr != nil {
		if to, change, err = w.call(uri); err != nil {
			return true, err
		}
	}
	for k := d + 1; err == nil && k < t.after(d); k = t.next(k) {
		if err = w.walk(k, ctxKeep); err != nil {
			break
		}
		switch k = t.next(k); {
		case k != state:
			err = w.walk(k, ctxKeep)
		case shared:
			err = w.walk(t.unwrap(k), ctxState)
		default:
			err = w.state(st, to, change)
		}
	}
	return true, err
}

// stateFields returns the five fields of a state tuple or list st.
func (w *walker) stateFields(st int32) (f [5]int32, ok bool) {
	t := w.t
	if k := t.nodes[st].kind; k != kTuple && k != kList {
		return f, false
	}
	j := 0
	for c := st + 1; c < t.after(st); c = t.next(c) {
		if j == len(f) {
			return f, false
		}
		f[j] = c
		j++
	}
	return f, j == len(f)
}

// stateURI reads the URI of state st, when its fields have the types core.URI has.
func (w *walker) stateURI(st int32) (URI, bool) {
	t := w.t
	f, ok := w.stateFields(st)
	if !ok {
		return URI{}, false
	}
	var u URI
	u.Form = FormObject
	s, ok := w.strOf(t.deref(f[0]))
	if u.Protocol = protocol(s); !ok || u.Protocol == "" || string(s) != u.Protocol {
		return u, false
	}
	if s, ok := w.strOf(t.deref(f[1])); ok {
		u.Object = w.rw.str(s)
	} else if u.Protocol != protoMeta { // PYROMETA's object is a set of str
		return u, false
	}
	sock, ok1 := w.optStr(t.deref(f[2]))
	host, ok2 := w.optStr(t.deref(f[3]))
	port, ok3 := 0, true
	if p := t.deref(f[4]); t.nodes[p].kind != kNone {
		port, ok3 = w.intOf(p)
		ok3 = ok3 && port >= 0 && port <= 65535
	}
	switch {
	case !ok1 || !ok2 || !ok3:
		return u, false
	case host != "": // core.URI.location: a host first, then a socket
		u.Addr = Addr{Host: host, Port: port}
	case sock != "":
		u.Addr = Addr{Sock: sock}
	}
	return u, true
}

// optStr reads a field that is None or a str.
func (w *walker) optStr(i int32) (string, bool) {
	if w.t.nodes[i].kind == kNone {
		return "", true
	}
	s, ok := w.strOf(i)
	return w.rw.str(s), ok
}

// intOf returns the value of int node i when it fits in 30 bits.
func (w *walker) intOf(i int32) (int, bool) {
	n := &w.t.nodes[i]
	if n.kind != kInt {
		return 0, false
	}
	b := w.in[n.start:n.end]
	switch w.t.ser {
	case frame.Marshal:
		v := int32(binary.LittleEndian.Uint32(b[1:]))
		if b[0]&^pymarshal.FlagRef == pymarshal.Int {
			return int(v), true
		}
		// A long: a signed count of 15-bit digits, least significant first.
		digits, neg := v, v < 0
		if neg {
			digits = -digits
		}
		if digits > 2 {
			return 0, false
		}
		x := 0
		for k := int(digits) - 1; k >= 0; k-- {
			x = x<<15 | int(binary.LittleEndian.Uint16(b[5+2*k:]))
		}
		if neg {
			x = -x
		}
		return x, true
	default:
		v, ok := decimal(b, w.t.ser == frame.Serpent)
		return int(v), ok && v >= -1<<30 && v < 1<<30
	}
}

// state writes the state tuple st of a URI object, its address changed to to when
// change is set.
func (w *walker) state(st int32, to Addr, change bool) error {
	t := w.t
	if slot := t.nodes[st].slot; slot >= 0 {
		w.slots[slot].ctx = ctxState
	}
	changes := w.changes
	f, _ := w.stateFields(st)
	wants := [5]want{2: {kind: kNone}, 3: {kind: kNone}, 4: {kind: kNone}}
	if to.Sock != "" {
		wants[2] = want{kind: kStr, s: to.Sock}
	} else {
		wants[3], wants[4] = want{kind: kStr, s: to.Host}, want{kind: kInt, n: to.Port}
	}
	for j, c := range f {
		var err error
		if j < 2 || !change {
			err = w.walk(c, ctxKeep)
		} else {
			err = w.field(c, wants[j])
		}
		if err != nil {
			return err
		}
	}
	if slot := t.nodes[st].slot; slot >= 0 && w.changes > changes {
		w.slots[slot].changed = true
	}
	return nil
}

// field writes state field c with the value v.
func (w *walker) field(c int32, v want) error {
	t := w.t
	i := t.unwrap(c)
	n := t.nodes[i]
	if n.kind == kRef {
		if w.current(n.a, v) {
			return w.keepRef(i)
		}
		w.changes++
		w.begin(n.start)
		w.out = w.appendWant(w.out, v, false)
		return w.end(n.end)
	}
	if w.same(i, v) {
		return nil
	}
	w.changes++
	ref := n.flags&flRef != 0
	w.begin(n.start)
	w.out = w.appendWant(w.out, v, ref && v.kind != kNone)
	if ref {
		st := &w.slots[n.slot]
		switch v.kind {
		case kNone: // None takes no slot: the later references move down by one
			st.status = slotGone
			w.removed = append(w.removed, n.slot)
		case kStr:
			a := len(w.vals)
			w.vals = append(w.vals, v.s...)
			st.status, st.newKind, st.newA, st.newB = slotNew, kStr, int32(a), int32(len(w.vals))
		default:
			st.status, st.newKind, st.newInt = slotNew, kInt, v.n
		}
	}
	return w.end(n.end)
}

// same reports whether node i holds the value v.
func (w *walker) same(i int32, v want) bool {
	switch v.kind {
	case kStr:
		s, ok := w.strOf(i)
		return ok && string(s) == v.s
	case kInt:
		x, ok := w.intOf(i)
		return ok && x == v.n
	}
	return w.t.nodes[i].kind == kNone
}

// current reports whether reference slot idx holds the value v now.
func (w *walker) current(idx int32, v want) bool {
	st := &w.slots[idx]
	switch st.status {
	case slotNew:
		if st.newKind == kStr {
			return v.kind == kStr && string(w.vals[st.newA:st.newB]) == v.s
		}
		return v.kind == kInt && st.newInt == v.n
	case slotGone:
		return false
	}
	return w.same(w.t.slots[idx], v)
}

// appendWant appends v as the serializer writes it; ref sets FLAG_REF in marshal.
func (w *walker) appendWant(dst []byte, v want, ref bool) []byte {
	switch w.t.ser {
	case frame.Marshal:
		var flag byte
		if ref {
			flag = pymarshal.FlagRef
		}
		switch v.kind {
		case kStr:
			return appendMarshalStr(dst, []byte(v.s), ref)
		case kInt:
			return binary.LittleEndian.AppendUint32(append(dst, pymarshal.Int|flag), uint32(int32(v.n)))
		}
		return append(dst, pymarshal.None)
	case frame.JSON:
		switch v.kind {
		case kStr:
			return frame.AppendPyJSONString(dst, v.s, false)
		case kInt:
			return strconv.AppendInt(dst, int64(v.n), 10)
		}
		return append(dst, "null"...)
	default:
		switch v.kind {
		case kStr:
			return frame.AppendPyRepr(dst, v.s)
		case kInt:
			return strconv.AppendInt(dst, int64(v.n), 10)
		}
		return append(dst, "None"...)
	}
}
