package nsview

import (
	"encoding/binary"
	"fmt"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pymarshal"
)

// Python marshal, as CPython 3.11's Python/marshal.c (format version 4) reads it. A
// type code with bit 0x80 (FLAG_REF) makes the value take the next reference slot;
// 'r' and a 4-byte index refers back to it. Containers take their slot before their
// items, scalars after their contents (the same order, as scalars have no items), and
// None, True, False, StopIteration and Ellipsis never take one, flag or not. Bytes after
// the value are ignored, as marshal.loads ignores them.

type marshalParser struct {
	*tree
	off   int
	depth int
}

func (t *tree) parseMarshal() error {
	p := marshalParser{tree: t}
	return p.value()
}

// need checks that n more bytes follow p.off.
func (p *marshalParser) need(n int64, start int, what string) error {
	if n > int64(len(p.in)-p.off) {
		return p.eof(start, what)
	}
	return nil
}

// u8 and i32 read a length or count after the type code.
func (p *marshalParser) u8(start int, what string) (int, error) {
	if err := p.need(1, start, what); err != nil {
		return 0, err
	}
	p.off++
	return int(p.in[p.off-1]), nil
}

func (p *marshalParser) i32(start int, what string) (int64, error) {
	if err := p.need(4, start, what); err != nil {
		return 0, err
	}
	p.off += 4
	return int64(int32(binary.LittleEndian.Uint32(p.in[p.off-4:]))), nil
}

// size reads a 4-byte count that must not be negative.
func (p *marshalParser) size(start int, what string) (int64, error) {
	n, err := p.i32(start, what)
	if err == nil && n < 0 {
		err = p.fail(start, what+" size out of range")
	}
	return n, err
}

// take makes node i take the next reference slot when its code has FLAG_REF.
func (p *marshalParser) take(i int32, code byte) {
	if code&pymarshal.FlagRef != 0 {
		p.nodes[i].flags |= flRef
		p.nodes[i].slot = int32(len(p.slots))
		p.slots = append(p.slots, i)
	}
}

func (p *marshalParser) value() error {
	start := p.off
	if start >= len(p.in) {
		return p.eof(start, "value")
	}
	code := p.in[start]
	p.off++
	switch typ := code &^ pymarshal.FlagRef; typ {
	case pymarshal.None:
		_, err := p.leaf(kNone, start, p.off)
		return err
	case pymarshal.False, pymarshal.True:
		_, err := p.leaf(kBool, start, p.off)
		return err
	case pymarshal.StopIter, pymarshal.Ellipsis:
		_, err := p.leaf(kOther, start, p.off)
		return err
	case pymarshal.Int, pymarshal.Long, pymarshal.Float, pymarshal.BinaryFloat, pymarshal.Complex, pymarshal.BinaryComplex, pymarshal.Bytes:
		if err := p.skipScalar(typ, start); err != nil {
			return err
		}
		k := kOther
		if typ == pymarshal.Int || typ == pymarshal.Long {
			k = kInt
		}
		i, err := p.leaf(k, start, p.off)
		if err == nil {
			p.take(i, code)
		}
		return err
	case pymarshal.Unicode, pymarshal.Interned, pymarshal.ASCII, pymarshal.ASCIIInterned, pymarshal.ShortASCII, pymarshal.ShortASCIIInterned:
		return p.str(code, typ, start)
	case pymarshal.Ref:
		idx, err := p.i32(start, "reference")
		if err != nil {
			return err
		}
		if idx < 0 || idx >= int64(len(p.slots)) {
			return p.fail(start, fmt.Sprintf("reference %d to one of %d values", idx, len(p.slots)))
		}
		i, err := p.leaf(kRef, start, p.off)
		if err == nil {
			p.nodes[i].a = int32(idx)
		}
		return err
	case pymarshal.Tuple, pymarshal.SmallTuple, pymarshal.List, pymarshal.Set, pymarshal.Frozenset, pymarshal.Dict:
		return p.container(code, typ, start)
	case pymarshal.Null:
		return p.fail(start, "NULL where a value is needed")
	case pymarshal.Code:
		return p.unsupported(start, "code object")
	default:
		return p.fail(start, "unknown type code "+quoteByte(code))
	}
}

// skipScalar steps over the contents of a number or bytes value.
func (p *marshalParser) skipScalar(typ byte, start int) error {
	var n int64
	switch typ {
	case pymarshal.Int:
		n = 4
	case pymarshal.BinaryFloat:
		n = 8
	case pymarshal.BinaryComplex:
		n = 16
	case pymarshal.Long:
		digits, err := p.i32(start, "long")
		if err != nil {
			return err
		}
		if digits < 0 {
			digits = -digits
		}
		n = 2 * digits
	case pymarshal.Float:
		l, err := p.u8(start, "float")
		if err != nil {
			return err
		}
		n = int64(l)
	case pymarshal.Complex:
		for range 2 {
			l, err := p.u8(start, "complex")
			if err != nil {
				return err
			}
			if err := p.need(int64(l), start, "complex"); err != nil {
				return err
			}
			p.off += l
		}
		return nil
	case pymarshal.Bytes:
		l, err := p.size(start, "bytes")
		if err != nil {
			return err
		}
		n = l
	}
	if err := p.need(n, start, "number"); err != nil {
		return err
	}
	p.off += int(n)
	return nil
}

func (p *marshalParser) str(code, typ byte, start int) error {
	var n int64
	var err error
	if typ == pymarshal.ShortASCII || typ == pymarshal.ShortASCIIInterned {
		var l int
		l, err = p.u8(start, "string")
		n = int64(l)
	} else {
		n, err = p.size(start, "string")
	}
	if err != nil {
		return err
	}
	if err := p.need(n, start, "string"); err != nil {
		return err
	}
	a := p.off
	p.off += int(n)
	i, err := p.leaf(kStr, start, p.off)
	if err != nil {
		return err
	}
	nd := &p.nodes[i]
	nd.a, nd.b = int32(a), int32(p.off)
	if typ != pymarshal.Unicode && typ != pymarshal.Interned && !isASCII(p.in[a:p.off]) {
		nd.flags |= flLatin // marshal reads these bytes as Latin-1, not UTF-8
	}
	p.take(i, code)
	return nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func (p *marshalParser) container(code, typ byte, start int) error {
	if p.depth++; p.depth > p.maxDepth {
		return p.limit(start, "nesting deeper than Limits.MaxDepth")
	}
	defer func() { p.depth-- }()
	var n int64
	var err error
	k := kTuple
	switch typ {
	case pymarshal.SmallTuple:
		var l int
		l, err = p.u8(start, "tuple")
		n = int64(l)
	case pymarshal.Dict:
		k = kDict
	default:
		n, err = p.size(start, "container")
		if typ == pymarshal.List {
			k = kList
		} else if typ == pymarshal.Set || typ == pymarshal.Frozenset {
			k = kSet
		}
	}
	if err != nil {
		return err
	}
	i, err := p.open(k, start)
	if err != nil {
		return err
	}
	p.take(i, code)
	if typ == pymarshal.Dict {
		err = p.dictItems()
	} else {
		// Each item takes at least one byte: a false count runs out of payload, no more.
		for ; n > 0 && err == nil; n-- {
			err = p.value()
		}
	}
	if err == nil {
		p.close(i, p.off)
	}
	return err
}

// dictItems reads key, value pairs up to the NULL code in a key's place.
func (p *marshalParser) dictItems() error {
	for {
		if p.off >= len(p.in) {
			return p.eof(p.off, "dict")
		}
		if p.in[p.off]&^pymarshal.FlagRef == pymarshal.Null {
			p.off++
			return nil
		}
		if err := p.value(); err != nil {
			return err
		}
		if err := p.value(); err != nil {
			return err
		}
	}
}
