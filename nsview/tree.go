package nsview

import "github.com/pyro-dispatch/pyro-dispatch/frame"

// A payload is first parsed whole into a flat tree of nodes (one a value, in payload
// order, each with the byte span of its encoding), then walked to find the URIs and
// write the result. Parsing first means a malformed payload fails before Translate is
// called, and a dict is known to be a URI object before any of it is written, whatever
// the order of its keys. Memory is one node per value (at most one per payload byte,
// and Limits.MaxValues); nothing is sized from a count the payload claims.

// kind is the type of a value, as far as URIs are concerned.
type kind uint8

const (
	kNone  kind = iota + 1 // None, null
	kBool                  // True, False
	kInt                   // an integer
	kOther                 // any other scalar: float, complex, bytes, Ellipsis...
	kStr                   // a str
	kTuple                 // a tuple (json: none)
	kList                  // a list (json: array)
	kSet                   // a set or frozenset
	kDict                  // a dict: its children alternate key, value
	kGroup                 // serpent "(x)": x in parentheses, one child
	kRef                   // marshal back-reference to an earlier value
)

func (k kind) container() bool { return k >= kTuple && k <= kGroup }

// node flags.
const (
	flRef   uint8 = 1 << iota // marshal FLAG_REF: the value took a reference slot
	flEsc                     // serpent, json: the string has escapes
	flLatin                   // marshal: an ASCII-coded string with bytes over 0x7f
)

// node is one value of the payload.
type node struct {
	start, end int32 // the encoding: in[start:end]
	a, b       int32 // kStr: the contents in[a:b] (still escaped in text); kRef: a is the slot
	sub        int32 // nodes in the subtree, this one included
	slot       int32 // marshal: the reference slot the value took, or -1
	kind       kind
	flags      uint8
}

// tree is a parsed payload.
type tree struct {
	ser      frame.Serializer
	in       []byte
	nodes    []node
	slots    []int32 // marshal: the node of each reference slot, in the order taken
	maxDepth int
	maxNodes int
}

func (t *tree) parse(in []byte, ser frame.Serializer, lim Limits) error {
	t.ser, t.in = ser, in
	t.nodes, t.slots = t.nodes[:0], t.slots[:0]
	t.maxDepth, t.maxNodes = lim.depth(), lim.values()
	switch ser {
	case frame.Marshal:
		return t.parseMarshal()
	case frame.JSON:
		return t.parseText(true)
	default:
		return t.parseText(false)
	}
}

// open adds a node starting at off; close sets its end once its children are added.
func (t *tree) open(k kind, off int) (int32, error) {
	if len(t.nodes) >= t.maxNodes {
		return 0, t.limit(off, "more values than Limits.MaxValues")
	}
	t.nodes = append(t.nodes, node{start: int32(off), end: int32(off), kind: k, sub: 1, slot: -1})
	return int32(len(t.nodes) - 1), nil
}

func (t *tree) close(i int32, end int) {
	t.nodes[i].end = int32(end)
	t.nodes[i].sub = int32(len(t.nodes)) - i
}

// leaf adds a complete node without children.
func (t *tree) leaf(k kind, start, end int) (int32, error) {
	i, err := t.open(k, start)
	if err == nil {
		t.nodes[i].end = int32(end)
	}
	return i, err
}

// child returns the first child of container i; next the sibling after c; a child c of
// i exists while c < t.after(i).
func (t *tree) after(i int32) int32 { return i + t.nodes[i].sub }
func (t *tree) next(c int32) int32  { return c + t.nodes[c].sub }

// unwrap returns the value node i stands for: the contents of serpent parentheses.
func (t *tree) unwrap(i int32) int32 {
	for t.nodes[i].kind == kGroup {
		i++
	}
	return i
}

// deref is unwrap that also follows a marshal reference to a scalar.
func (t *tree) deref(i int32) int32 {
	i = t.unwrap(i)
	if n := &t.nodes[i]; n.kind == kRef {
		if target := t.slots[n.a]; !t.nodes[target].kind.container() {
			return target
		}
	}
	return i
}

func (t *tree) err(off int, reason string, kind error) *DecodeError {
	return &DecodeError{Serializer: t.ser, Offset: off, Reason: reason, Err: kind}
}

func (t *tree) fail(off int, reason string) error  { return t.err(off, reason, ErrMalformed) }
func (t *tree) limit(off int, reason string) error { return t.err(off, reason, ErrLimit) }
func (t *tree) unsupported(off int, reason string) error {
	return t.err(off, reason, ErrUnsupported)
}

// eof reports a payload that ends before what at off is complete.
func (t *tree) eof(off int, what string) error {
	e := t.err(off, "truncated "+what, ErrMalformed)
	e.eof = true
	return e
}
