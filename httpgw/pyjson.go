package httpgw

import (
	"strconv"
	"unicode/utf8"
)

// appendPyString appends s as a JSON string the way Python's json.dumps writes it: with
// ensureASCII every character outside ' '..'~' is escaped (\uXXXX, lowercase hex, surrogate
// pairs above U+FFFF); without it only '"', '\\' and control characters are. Invalid UTF-8
// is written as U+FFFD.
func appendPyString(dst []byte, s string, ensureASCII bool) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				if c < 0x20 || (ensureASCII && c == 0x7f) {
					dst = appendU(dst, rune(c))
				} else {
					dst = append(dst, c)
				}
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		if !ensureASCII {
			dst = utf8.AppendRune(dst, r) // RuneError for invalid bytes
			continue
		}
		dst = appendEscapedRune(dst, r)
	}
	return append(dst, '"')
}

func appendEscapedRune(dst []byte, r rune) []byte {
	if r > 0xFFFF {
		r -= 0x10000
		dst = appendU(dst, 0xD800+(r>>10))
		return appendU(dst, 0xDC00+(r&0x3FF))
	}
	return appendU(dst, r)
}

func appendU(dst []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(dst, '\\', 'u', hex[r>>12&0xF], hex[r>>8&0xF], hex[r>>4&0xF], hex[r&0xF])
}

// appendPyStringList appends a JSON list of strings in json.dumps style.
func appendPyStringList(dst []byte, list []string, ensureASCII bool) []byte {
	dst = append(dst, '[')
	for i, s := range list {
		if i > 0 {
			dst = append(dst, ',', ' ')
		}
		dst = appendPyString(dst, s, ensureASCII)
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
		out = appendEscapedRune(out, r)
	}
	return out
}

// errorBody is Python's json.dumps(SerializerBase.class_to_dict(x)) for an exception x of
// class class (module-qualified) with the single argument msg and no attributes.
func errorBody(class, msg string) []byte {
	b := []byte(`{"__class__": `)
	b = appendPyString(b, class, true)
	b = append(b, `, "__exception__": true, "args": [`...)
	b = appendPyString(b, msg, true)
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
