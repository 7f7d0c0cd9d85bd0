package httpgw

import (
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

func TestAppendPyString(t *testing.T) {
	for _, tc := range []struct{ in, ascii, utf string }{
		{"a\"b\\c", `"a\"b\\c"`, `"a\"b\\c"`},
		{"\n\r\t\b\f\x01\x7f", `"\n\r\t\b\f\u0001\u007f"`, "\"\\n\\r\\t\\b\\f\\u0001\x7f\""},
		{"é☃😀", `"\u00e9\u2603\ud83d\ude00"`, `"é☃😀"`},
		{"\xff", `"\ufffd"`, "\"\uFFFD\""},
	} {
		if got := string(frame.AppendPyJSONString(nil, tc.in, true)); got != tc.ascii {
			t.Errorf("ascii %q: %s, want %s", tc.in, got, tc.ascii)
		}
		if got := string(frame.AppendPyJSONString(nil, tc.in, false)); got != tc.utf {
			t.Errorf("utf %q: %s, want %s", tc.in, got, tc.utf)
		}
	}
	if got := string(asciiJSON([]byte(`{"a": ["é😀", 1]}`))); got != `{"a": ["\u00e9\ud83d\ude00", 1]}` {
		t.Errorf("asciiJSON: %s", got)
	}
}

func TestParseQS(t *testing.T) {
	ps := parseQS(nil, "b=2&a=1&c=&d&a=%41+x&e=%zz;f=1")
	want := []param{{"b", []string{"2"}}, {"a", []string{"1", "A x"}}, {"e", []string{"%zz;f=1"}}}
	if len(ps) != len(want) {
		t.Fatalf("%v", ps)
	}
	for i := range ps {
		if ps[i].name != want[i].name || len(ps[i].values) != len(want[i].values) {
			t.Fatalf("%v", ps)
		}
		for j := range ps[i].values {
			if ps[i].values[j] != want[i].values[j] {
				t.Fatalf("%v", ps)
			}
		}
	}
}
