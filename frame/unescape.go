package frame

import "errors"

// ErrStringEscape is returned by AppendPyUnescape and AppendJSONUnescape for an escape
// sequence they do not decode.
var ErrStringEscape = errors.New("frame: invalid or unsupported escape in string literal")

// AppendPyUnescape appends to dst the value, as UTF-8, of the contents of a Python str
// literal (the bytes between its quotes, no prefix): the inverse of AppendPyRepr. It
// decodes every escape Python's repr writes and the other standard ones; \N{...} and
// escapes of surrogates (which have no UTF-8 form) give ErrStringEscape, and dst is
// returned unchanged. It does not check that raw itself is valid UTF-8.
func AppendPyUnescape(dst, raw []byte) ([]byte, error) {
	out, err := unescapePython(dst, raw)
	if err != nil {
		return dst, ErrStringEscape
	}
	return out, nil
}

// AppendJSONUnescape appends to dst the value, as UTF-8, of the contents of a json string
// (the bytes between its quotes): the inverse of AppendPyJSONString. A lone surrogate
// escape or an unknown escape gives ErrStringEscape, and dst is returned unchanged.
func AppendJSONUnescape(dst, raw []byte) ([]byte, error) {
	out, err := unescapeJSON(dst, raw)
	if err != nil {
		return dst, ErrStringEscape
	}
	return out, nil
}
