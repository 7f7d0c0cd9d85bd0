package frame_test

import (
	"errors"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// TestUnescapeRoundTrip decodes what AppendPyRepr and AppendPyJSONString write back to
// the string they were given.
func TestUnescapeRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `q'uo"te\`, "tab\tnl\ncr\r", "\x00\x1f\x7f", "é☃😀", "\u200b\u2028\U000e0001"} {
		r := frame.AppendPyRepr(nil, s)
		got, err := frame.AppendPyUnescape([]byte("x"), r[1:len(r)-1])
		if err != nil || string(got) != "x"+s {
			t.Errorf("py %q: %q %v", s, got, err)
		}
		for _, ascii := range []bool{false, true} {
			j := frame.AppendPyJSONString(nil, s, ascii)
			got, err := frame.AppendJSONUnescape([]byte("x"), j[1:len(j)-1])
			if err != nil || string(got) != "x"+s {
				t.Errorf("json %q (ascii %v): %q %v", s, ascii, got, err)
			}
		}
	}
}

// TestUnescapeErrors: escapes with no UTF-8 value, or unknown in json, are refused and
// dst comes back as it was.
func TestUnescapeErrors(t *testing.T) {
	for _, raw := range []string{`\ud800`, `\N{DASH}`, `\x4`, `\`} {
		if got, err := frame.AppendPyUnescape([]byte("x"), []byte(raw)); !errors.Is(err, frame.ErrStringEscape) || string(got) != "x" {
			t.Errorf("py %q: %q %v", raw, got, err)
		}
	}
	for _, raw := range []string{`\ud800`, `\udc00\ud800`, `\x41`, `\u12`, `\`} {
		if got, err := frame.AppendJSONUnescape([]byte("x"), []byte(raw)); !errors.Is(err, frame.ErrStringEscape) || string(got) != "x" {
			t.Errorf("json %q: %q %v", raw, got, err)
		}
	}
	if got, err := frame.AppendPyUnescape(nil, []byte(`\q\x41\101`)); err != nil || string(got) != `\qAA` {
		t.Errorf("unknown escape kept: %q %v", got, err)
	}
}
