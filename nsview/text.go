package nsview

import (
	"bytes"
	"unicode/utf8"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// The text serializers. Serpent (serpent.py 1.41, as Pyro4 calls it: no indentation) is
// a "# serpent utf-8 python3.2" comment line and a Python literal that serpent.loads
// reads with ast.literal_eval: repr() of str, int, bool and None, floats, "(a,b)",
// "(a,)" and "()" tuples, lists, "{k:v}" dicts, "{a,b}" sets. Json is what json.dumps
// writes and json.loads reads, NaN and Infinity included. Both must be valid UTF-8, as
// the Python side decodes them strictly. The parser also takes white space and
// comments wherever Python does between tokens, trailing commas in serpent, and
// parentheses around a value; it refuses string prefixes, triple quotes and literal
// concatenation, which serpent never writes.

type textParser struct {
	*tree
	off   int
	json  bool
	depth int
}

func (t *tree) parseText(json bool) error {
	if !utf8.Valid(t.in) {
		return t.fail(firstInvalid(t.in), "invalid UTF-8")
	}
	if !json {
		if i := bytes.IndexByte(t.in, 0); i >= 0 {
			return t.fail(i, "NUL byte (serpent.loads refuses it)")
		}
	}
	p := textParser{tree: t, json: json}
	if err := p.value(); err != nil {
		return err
	}
	if p.space(); p.off < len(t.in) {
		return t.fail(p.off, "data after the value")
	}
	return nil
}

func firstInvalid(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// space skips white space, and in serpent comments.
func (p *textParser) space() {
	for p.off < len(p.in) {
		switch p.in[p.off] {
		case ' ', '\t', '\n', '\r':
		case '\f':
			if p.json {
				return
			}
		case '#':
			if p.json {
				return
			}
			if nl := bytes.IndexByte(p.in[p.off:], '\n'); nl >= 0 {
				p.off += nl
			} else {
				p.off = len(p.in)
			}
		default:
			return
		}
		p.off++
	}
}

func (p *textParser) value() error {
	p.space()
	if p.off >= len(p.in) {
		return p.eof(p.off, "value")
	}
	switch c := p.in[p.off]; {
	case c == '"' || c == '\'' && !p.json:
		return p.str(c)
	case c == '(' && !p.json:
		return p.container(kGroup, ')')
	case c == '[':
		return p.container(kList, ']')
	case c == '{':
		return p.container(kDict, '}')
	case c >= '0' && c <= '9' || c == '-' || !p.json && (c == '+' || c == '.'):
		if p.json {
			return p.jsonNumber()
		}
		return p.pyNumber()
	case isLetter(c) || c == '_':
		return p.word()
	default:
		return p.fail(p.off, "unexpected character "+quoteByte(c))
	}
}

func quoteByte(c byte) string {
	const hex = "0123456789abcdef"
	if c >= ' ' && c < 0x7f {
		return "'" + string(c) + "'"
	}
	return "0x" + string([]byte{hex[c>>4], hex[c&15]})
}

// str reads a string literal whose opening quote q is at p.off.
func (p *textParser) str(q byte) error {
	start := p.off
	i := start + 1
	var flags uint8
	for {
		if i >= len(p.in) {
			return p.eof(start, "string")
		}
		c := p.in[i]
		switch {
		case c == q:
		case c == '\\':
			flags |= flEsc
			i += 2
			if !p.json && i <= len(p.in) && p.in[i-1] == '\r' && i < len(p.in) && p.in[i] == '\n' {
				i++ // a backslash before \r\n continues the line
			}
			continue
		case c == '\n' || c == '\r':
			return p.fail(i, "line end in a string")
		case c < 0x20 && p.json:
			return p.fail(i, "control character in a json string")
		default:
			i++
			continue
		}
		break
	}
	p.off = i + 1
	if !p.json {
		end := p.off
		if p.space(); p.off < len(p.in) && (p.in[p.off] == '\'' || p.in[p.off] == '"') {
			return p.unsupported(p.off, "triple quotes or adjacent string literals")
		}
		p.off = end
	}
	n, err := p.leaf(kStr, start, p.off)
	if err == nil {
		p.nodes[n].a, p.nodes[n].b, p.nodes[n].flags = int32(start+1), int32(i), flags
	}
	return err
}

// container reads a container whose opening bracket is at p.off: k is kList for '[',
// kDict for '{' (a set in serpent when its first item has no ':') and kGroup for '('
// ("(x)" is x in parentheses; "()" and "(x,...)" are tuples).
func (p *textParser) container(k kind, closer byte) error {
	if p.depth++; p.depth > p.maxDepth {
		return p.limit(p.off, "nesting deeper than Limits.MaxDepth")
	}
	defer func() { p.depth-- }()
	i, err := p.open(k, p.off)
	if err != nil {
		return err
	}
	p.off++
	if p.space(); p.off < len(p.in) && p.in[p.off] == closer {
		if k == kGroup {
			p.nodes[i].kind = kTuple
		}
		p.off++
		p.close(i, p.off)
		return nil
	}
	if k == kList {
		return p.items(i, closer, false, false)
	}
	if k == kDict {
		err = p.key()
	} else {
		err = p.value()
	}
	if err != nil {
		return err
	}
	switch p.space(); {
	case k == kGroup && p.off < len(p.in) && p.in[p.off] == ')':
		p.off++
		p.close(i, p.off)
		return nil
	case k == kGroup:
		p.nodes[i].kind = kTuple
	case !p.json && p.off < len(p.in) && p.in[p.off] != ':':
		p.nodes[i].kind = kSet
	default:
		if err := p.colonValue(); err != nil {
			return err
		}
	}
	comma, err := p.sep(closer)
	if err != nil {
		return err
	}
	return p.items(i, closer, p.nodes[i].kind == kDict, comma)
}

// key reads a dict key: in json a string only.
func (p *textParser) key() error {
	if p.json {
		if p.space(); p.off < len(p.in) && p.in[p.off] != '"' {
			return p.fail(p.off, "json object key is not a string")
		}
	}
	return p.value()
}

func (p *textParser) colonValue() error {
	if p.space(); p.off >= len(p.in) {
		return p.eof(p.off, "dict")
	}
	if p.in[p.off] != ':' {
		return p.fail(p.off, "expected ':'")
	}
	p.off++
	return p.value()
}

// sep consumes the ',' after an item and reports it, or leaves the closer for items.
func (p *textParser) sep(closer byte) (comma bool, err error) {
	if p.space(); p.off >= len(p.in) {
		return false, p.eof(p.off, "container")
	}
	switch p.in[p.off] {
	case ',':
		p.off++
		return true, nil
	case closer:
		return false, nil
	}
	return false, p.fail(p.off, "expected ',' or "+quoteByte(closer))
}

// items reads the rest of container i up to and including closer: values (pairs when
// pairs is set) separated by commas. afterComma tells whether the item before ended with
// a comma; serpent allows a trailing comma, json does not.
func (p *textParser) items(i int32, closer byte, pairs, afterComma bool) error {
	for {
		if p.space(); p.off >= len(p.in) {
			return p.eof(p.off, "container")
		}
		if p.in[p.off] == closer {
			if p.json && afterComma {
				return p.fail(p.off, "trailing comma in json")
			}
			p.off++
			p.close(i, p.off)
			return nil
		}
		var err error
		if pairs {
			if err = p.key(); err == nil {
				err = p.colonValue()
			}
		} else {
			err = p.value()
		}
		if err != nil {
			return err
		}
		if afterComma, err = p.sep(closer); err != nil {
			return err
		}
	}
}

// pyNumber reads a serpent number: int, float or complex repr ("1e30000", "(1+2j)"
// inside parentheses), taken as one token. Only an optionally signed run of decimal
// digits is an int.
func (p *textParser) pyNumber() error {
	start := p.off
	for p.off < len(p.in) {
		c := p.in[p.off]
		if !(c >= '0' && c <= '9' || isLetter(c) || c == '_' || c == '.' || c == '+' || c == '-') {
			break
		}
		p.off++
	}
	k := kOther
	if _, ok := decimal(p.in[start:p.off], true); ok {
		k = kInt
	}
	_, err := p.leaf(k, start, p.off)
	return err
}

// decimal reads b as an optionally signed run of ASCII digits ('+' only if plus).
func decimal(b []byte, plus bool) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || plus && b[0] == '+') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// jsonNumber reads a json number (-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?) or -Infinity.
func (p *textParser) jsonNumber() error {
	start := p.off
	if p.in[p.off] == '-' {
		p.off++
		if bytes.HasPrefix(p.in[p.off:], []byte("Infinity")) {
			p.off += len("Infinity")
			_, err := p.leaf(kOther, start, p.off)
			return err
		}
	}
	digits := func() int {
		n := 0
		for p.off < len(p.in) && p.in[p.off] >= '0' && p.in[p.off] <= '9' {
			p.off++
			n++
		}
		return n
	}
	switch {
	case p.off < len(p.in) && p.in[p.off] == '0':
		p.off++
	case digits() == 0:
		return p.fail(p.off, "malformed json number")
	}
	k := kInt
	if p.off < len(p.in) && p.in[p.off] == '.' {
		p.off++
		if digits() == 0 {
			return p.fail(p.off, "malformed json number")
		}
		k = kOther
	}
	if p.off < len(p.in) && (p.in[p.off] == 'e' || p.in[p.off] == 'E') {
		p.off++
		if p.off < len(p.in) && (p.in[p.off] == '+' || p.in[p.off] == '-') {
			p.off++
		}
		if digits() == 0 {
			return p.fail(p.off, "malformed json number")
		}
		k = kOther
	}
	_, err := p.leaf(k, start, p.off)
	return err
}

// word reads True, False, None (serpent) or true, false, null, NaN, Infinity (json).
func (p *textParser) word() error {
	start := p.off
	for p.off < len(p.in) && (isLetter(p.in[p.off]) || p.in[p.off] == '_' || p.in[p.off] >= '0' && p.in[p.off] <= '9') {
		p.off++
	}
	k := kind(0)
	switch w := string(p.in[start:p.off]); {
	case p.json && (w == "true" || w == "false"), !p.json && (w == "True" || w == "False"):
		k = kBool
	case p.json && w == "null", !p.json && w == "None":
		k = kNone
	case p.json && (w == "NaN" || w == "Infinity"):
		k = kOther
	default:
		if !p.json && p.off < len(p.in) && (p.in[p.off] == '\'' || p.in[p.off] == '"') {
			return p.unsupported(start, "string prefix")
		}
		return p.fail(start, "unexpected name")
	}
	_, err := p.leaf(k, start, p.off)
	return err
}

// --- strings --------------------------------------------------------------------------

// textStr returns the value of text string n: its raw contents when it has no escapes,
// else decoded into buf. ok is false when an escape cannot be decoded (a lone
// surrogate, \N{...}): such a string is never taken for a URI.
func textStr(in []byte, n *node, json bool, buf []byte) (s, newBuf []byte, ok bool) {
	raw := in[n.a:n.b]
	if n.flags&flEsc == 0 {
		return raw, buf, true
	}
	var err error
	if json {
		buf, err = frame.AppendJSONUnescape(buf[:0], raw)
	} else {
		buf, err = frame.AppendPyUnescape(buf[:0], raw)
	}
	return buf, buf, err == nil
}
