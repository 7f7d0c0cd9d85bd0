package frame

import "unicode/utf8"

// AppendPyJSONString appends s as a JSON string the way Python's json.dumps writes it: with
// ensureASCII every character outside ' '..'~' is escaped (\uXXXX, lowercase hex, surrogate
// pairs above U+FFFF); without it only '"', '\\' and control characters are. Invalid UTF-8
// is written as U+FFFD.
func AppendPyJSONString(dst []byte, s string, ensureASCII bool) []byte {
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
		dst = AppendPyJSONRune(dst, r)
	}
	return append(dst, '"')
}

// AppendPyJSONRune appends r as json.dumps(..., ensure_ascii=True) escapes it: \uXXXX,
// a surrogate pair above U+FFFF.
func AppendPyJSONRune(dst []byte, r rune) []byte {
	if r > 0xFFFF {
		r -= 0x10000
		dst = appendU(dst, 0xD800+(r>>10))
		return appendU(dst, 0xDC00+(r&0x3FF))
	}
	return appendU(dst, r)
}

func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xF], hexDigits[r>>8&0xF], hexDigits[r>>4&0xF], hexDigits[r&0xF])
}
