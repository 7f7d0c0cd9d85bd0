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

// pyAddr is Pyro4's connect location as Python prints it: ('host', port).
func pyAddr(host string, port int) string {
	return "(" + string(frame.AppendPyRepr(nil, host)) + ", " + strconv.Itoa(port) + ")"
}
