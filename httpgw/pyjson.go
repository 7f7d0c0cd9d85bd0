package httpgw

import (
	"strconv"
	"unicode/utf8"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// appendPyStringList appends a JSON list of strings in json.dumps style.
func appendPyStringList(dst []byte, list []string, ensureASCII bool) []byte {
	dst = append(dst, '[')
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',', ' ')
		}
		dst = frame.AppendPyJSONString(dst, s, ensureASCII)
	}
	return append(dst, ']')
}

// asciiJSON turns the output of json.dumps(..., ensure_ascii=False) into that of
// json.dumps(..., ensure_ascii=True): outside strings JSON text is ASCII, so escaping every
// non-ASCII character (and DEL) is all that differs.
func asciiJSON(b []byte) []byte {
	ascii := true
	for _, c := range b {
		if c >= 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		return b
	}
	out := make([]byte, 0, len(b)+32)
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x7f {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		out = frame.AppendPyJSONRune(out, r)
	}
	return out
}

// errorBody is Python's json.dumps(SerializerBase.class_to_dict(x)) for an exception x of
// class class (module-qualified) with the single argument msg and no attributes.
func errorBody(class, msg string) []byte {
	b := []byte(`{"__class__": `)
	b = frame.AppendPyJSONString(b, class, true)
	b = append(b, `, "__exception__": true, "args": [`...)
	b = frame.AppendPyJSONString(b, msg, true)
	return append(b, `], "attributes": {}}`...)
}

// pyRepr returns Python's repr of a str (the common cases: single quotes unless the
// string holds a single quote and no double quote).
func pyRepr(s string) string {
	q := byte('\'')
	if containsByte(s, '\'') && !containsByte(s, '"') {
		q = '"'
	}
	b := []byte{q}
	for _, r := range s {
		switch {
		case r == '\\':
			b = append(b, '\\', '\\')
		case r == rune(q):
			b = append(b, '\\', q)
		case r == '\n':
			b = append(b, '\\', 'n')
		case r == '\r':
			b = append(b, '\\', 'r')
		case r == '\t':
			b = append(b, '\\', 't')
		case r < 0x20 || r == 0x7f:
			b = append(b, `\x`...)
			b = append(b, "0123456789abcdef"[r>>4], "0123456789abcdef"[r&0xF])
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return string(append(b, q))
}

func containsByte(s string, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// pyAddr is Pyro4's connect location as Python prints it: ('host', port).
func pyAddr(host string, port int) string {
	return "(" + pyRepr(host) + ", " + strconv.Itoa(port) + ")"
}
