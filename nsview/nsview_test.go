package nsview_test

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
	"github.com/pyro-dispatch/pyro-dispatch/nsview"
)

// uriStrings are str values around the edges of what core.URI accepts. want is this
// package's reading ("" when it is not a URI): protocol, object and location joined by
// " | ". TestURIStringsPython checks each against Pyro4 itself.
var uriStrings = []struct{ s, want string }{
	{"PYRO:obj@10.0.0.1:5000", "PYRO | obj | 10.0.0.1:5000"},
	{"pyro:obj@host:0012", "PYRO | obj | host:12"},
	{"PyRoNaMe:n", "PYRONAME | n | "},
	{"PYRONAME:n@nshost", "PYRONAME | n | nshost"},
	{"PYRONAME:n@[::1]", "PYRONAME | n | [::1]"},
	{"PYROMETA:a,b@h:9", "PYROMETA | a,b | h:9"},
	{"PYRO:obj@[::1]:5001", "PYRO | obj | [::1]:5001"},
	{"PYRO:obj@[::1]:5001 trailing", "PYRO | obj | [::1]:5001"},
	{"PYRO:obj@[fe80::1%25]:1", "PYRO | obj | [fe80::1%25]:1"},
	{"PYRO:obj@./u:/tmp/s p'\"é", "PYRO | obj | ./u:/tmp/s p'\"é"},
	{"PYRO:a@b@c:1", "PYRO | a | b@c:1"},
	{"PYRO:obj@h:1\n", "PYRO | obj | h:1"},
	{"PYRO:obj@h: 1_000 ", "PYRO | obj | h:1000"},
	{"PYRO:obj@h:+7", "PYRO | obj | h:7"},
	{"PYRO:obj@h:\u0665\uff10", "PYRO | obj | h:50"}, // Arabic-Indic 5, fullwidth 0
	{"PYRO:obj@[::1]:\u0661\u0662", "PYRO | obj | [::1]:12"},
	{"PYRO:obj@h:\u00a09\u3000", "PYRO | obj | h:9"},
	{"PYRO:obj@h:\x1c9", ""}, // int() does not strip U+001C, though str.isspace() is true
	{"PYRO:o\x1cb@h:1", ""},  // and \S does not match it
	{"PYRO:ob\u200bj@h:1", "PYRO | ob\u200bj | h:1"},
	{"PYRO:@h:1", ""}, // the object would be "@h:1": no location left
	{"PYRONAME:@h:1", "PYRONAME | @h:1 | "},
	{"PYRONAME:a@", "PYRONAME | a@ | "},
	{"PYRO:obj@h", ""},       // PYRO needs a port
	{"PYRO:obj@h:", ""},      // likewise
	{"PYRO:obj@h:1_", ""},    // int() refuses
	{"PYRO:obj@h:-1", ""},    // no daemon listens outside 0..65535
	{"PYRO:obj@h:70000", ""}, //
	{"PYRO:obj@h:1:2", ""},
	{"PYRO:o b@h:1", ""},
	{"PYRO:obj@h:1\nx", ""},
	{"PYRO:obj@./u:", ""},
	{"PYRO:obj@./u:a:b", ""},
	{"PYRO:obj@[[::1]]:1", ""},
	{"PYRO:obj@[g::1]:1", ""},
	{"PYRO:obj@[::1]", ""},
	{"PYROX:obj@h:1", ""},
	{"PYRO1:obj@h:1", ""},
	{" PYRO:obj@h:1", ""},
	{"PYRO:", ""},
}

// findURIs reads each str alone in a json list and returns the URI found in it as
// "protocol | object | location", or "".
func findURIs(t *testing.T, strs []string) []string {
	t.Helper()
	got := make([]string, len(strs))
	for i, s := range strs {
		payload, err := json.Marshal([]string{s})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = nsview.Rewrite(nil, payload, frame.JSON, func(u nsview.URI) (nsview.Addr, bool) {
			got[i] = u.Protocol + " | " + u.Object + " | " + u.Addr.String()
			return nsview.Addr{}, false
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// TestURIStrings checks which str values are URIs and how they are read.
func TestURIStrings(t *testing.T) {
	strs := make([]string, len(uriStrings))
	for i, c := range uriStrings {
		strs[i] = c.s
	}
	for i, got := range findURIs(t, strs) {
		if got != uriStrings[i].want {
			t.Errorf("%q: got %q, want %q", uriStrings[i].s, got, uriStrings[i].want)
		}
	}
}

// TestURIStringsPython checks the readings of TestURIStrings against core.URI.
func TestURIStringsPython(t *testing.T) {
	pyro4test.Python(t)
	script, err := os.ReadFile("testdata/nsgolden.py")
	if err != nil {
		t.Fatal(err)
	}
	strs := make([]string, len(uriStrings))
	for i, c := range uriStrings {
		strs[i] = c.s
	}
	in, _ := json.Marshal(strs)
	out, _ := pyro4test.RunPython(t, string(script), in, "parse")
	var py [][]string
	if err := json.Unmarshal(out, &py); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for i, p := range py {
		want := ""
		if p != nil {
			want = strings.Join(p, " | ")
		}
		if want != uriStrings[i].want {
			t.Errorf("%q: core.URI reads %q, the table says %q", strs[i], want, uriStrings[i].want)
		}
	}
}

// edge translates every URI to one gateway address.
func edge(nsview.URI) (nsview.Addr, bool) {
	return nsview.Addr{Host: "gw.example", Port: 9000}, true
}

// handWritten are payloads Pyro4 does not write but Python reads: the result must be
// exactly want (with edge), and Python must read it as the original with the URIs
// translated (TestHandWrittenPython).
var handWritten = []struct {
	name     string
	ser      frame.Serializer
	in, want string
}{
	{"serpent comments, space, trailing commas", frame.Serpent,
		"# serpent utf-8 python3.2\n# more\n[ 'PYRO:o@h:1' , # c\n {'k' : 'x',},]",
		"# serpent utf-8 python3.2\n# more\n[ 'PYRO:o@gw.example:9000' , # c\n {'k' : 'x',},]"},
	{"serpent parentheses", frame.Serpent,
		"(('PYRO:o@h:1'),{('__class__'):'Pyro4.core.URI','state':(('PYRO'),'o',(None),'h',(1))})",
		"(('PYRO:o@gw.example:9000'),{('__class__'):'Pyro4.core.URI','state':(('PYRO'),'o',(None),'gw.example',(9000))})"},
	{"serpent escapes kept", frame.Serpent,
		`['PYRO:\xe9\u00e9\x7f@h:1']`,
		`['PYRO:\xe9\u00e9\x7f@gw.example:9000']`},
	{"serpent escaped @ re-encoded", frame.Serpent,
		`['PYRO:o\x40h:1']`,
		`['PYRO:o@gw.example:9000']`},
	{"serpent quotes chosen again", frame.Serpent,
		`["PYRO:o'@./u:/a'b"]`,
		`["PYRO:o'@gw.example:9000"]`},
	{"serpent trailing newline", frame.Serpent,
		`['PYRO:o@h:1\n']`,
		`['PYRO:o@gw.example:9000']`},
	{"serpent key untouched", frame.Serpent,
		`{'PYRO:o@h:1':'PYRO:o@h:1'}`,
		`{'PYRO:o@h:1':'PYRO:o@gw.example:9000'}`},
	{"serpent set and complex", frame.Serpent,
		`[{'PYRO:o@h:1'},(1.5+2j),-1e30000,{'__class__':'float','value':'nan'}]`,
		`[{'PYRO:o@gw.example:9000'},(1.5+2j),-1e30000,{'__class__':'float','value':'nan'}]`},
	{"json ensure_ascii", frame.JSON,
		`["PYRO:\u00e9@h:1", "PYRO:\u0040@h:1"]`,
		`["PYRO:\u00e9@gw.example:9000", "PYRO:@@gw.example:9000"]`},
	{"json state as list, duplicate keys", frame.JSON,
		`{"__class__": "x", "__class__": "Pyro4.core.URI", "state": 1, "state": ["PYRO", "o", "/s", null, null]}`,
		`{"__class__": "x", "__class__": "Pyro4.core.URI", "state": 1, "state": ["PYRO", "o", null, "gw.example", 9000]}`},
	{"object ending in @ takes no location", frame.Serpent,
		`['PYRONAME:n@','PYRONAME:n','PYRO:n@@h:1']`,
		`['PYRONAME:n@','PYRONAME:n@gw.example:9000','PYRO:n@gw.example:9000']`},
	{"json numbers", frame.JSON,
		`[-0.5e+3, 0, NaN, -Infinity, Infinity, true, "PYRONAME:n"]`,
		`[-0.5e+3, 0, NaN, -Infinity, Infinity, true, "PYRONAME:n@gw.example:9000"]`},
	{"marshal long port, ASCII codes", frame.Marshal,
		"[\x01\x00\x00\x00{Z\x09__class__A\x0e\x00\x00\x00Pyro4.core.URIZ\x05state(\x05\x00\x00\x00Z\x04PYROt\x01\x00\x00\x00oNa\x01\x00\x00\x00hl\x01\x00\x00\x00\x01\x000",
		"[\x01\x00\x00\x00{Z\x09__class__A\x0e\x00\x00\x00Pyro4.core.URIZ\x05state(\x05\x00\x00\x00Z\x04PYROt\x01\x00\x00\x00oNz\x0agw.examplei\x28\x23\x00\x000"},
	{"marshal trailing bytes kept", frame.Marshal,
		"z\x0aPYRO:o@h:1junk",
		"z\x16PYRO:o@gw.example:9000junk"},
}

func TestHandWritten(t *testing.T) {
	for _, c := range handWritten {
		out, changed, err := nsview.Rewrite(nil, []byte(c.in), c.ser, edge)
		if err != nil || !changed || string(out) != c.want {
			t.Errorf("%s: changed %v, err %v\n got %q\nwant %q", c.name, changed, err, out, c.want)
		}
	}
}

func TestHandWrittenPython(t *testing.T) {
	pyro4test.Python(t)
	script, err := os.ReadFile("testdata/nsgolden.py")
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	mapping := map[string]string{}
	for _, c := range handWritten {
		rec := &recorder{t: t}
		if _, _, err := nsview.Rewrite(nil, []byte(c.in), c.ser, rec.translate); err != nil {
			t.Fatal(err)
		}
		for _, f := range rec.found {
			mapping[f[2]] = "gw.example:9000"
		}
		if err := enc.Encode(map[string]any{"name": c.name, "ser": int(c.ser), "compressed": false,
			"payload": fmt.Sprintf("%x", c.in), "out": fmt.Sprintf("%x", c.want), "mapping": mapping}); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := pyro4test.RunPython(t, string(script), in.Bytes(), "verify")
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var res struct {
			Name, Detail string
			OK           bool
		}
		if err := json.Unmarshal([]byte(l), &res); err != nil || !res.OK {
			t.Errorf("%s: %v %s", res.Name, err, res.Detail)
		}
	}
}

// TestNotTranslatable: the other serializers are refused with ErrNotTranslatable and dst
// is returned as it was.
func TestNotTranslatable(t *testing.T) {
	for _, ser := range []frame.Serializer{frame.Pickle, frame.Dill, frame.Msgpack, frame.Cloudpickle, 0, 99} {
		dst := []byte("keep")
		out, changed, err := nsview.Rewrite(dst, []byte("\x80\x02N."), ser, edge)
		if !errors.Is(err, nsview.ErrNotTranslatable) || changed || string(out) != "keep" {
			t.Errorf("%s: %q %v %v", ser, out, changed, err)
		}
		var rw nsview.Rewriter
		if _, _, err := rw.RewriteCompressed(nil, []byte("x"), ser, edge); !errors.Is(err, nsview.ErrNotTranslatable) {
			t.Errorf("%s compressed: %v", ser, err)
		}
	}
}

// TestMalformed: invalid payloads give ErrMalformed (truncated ones also
// io.ErrUnexpectedEOF) or ErrUnsupported, and dst back unchanged.
func TestMalformed(t *testing.T) {
	cases := []struct {
		ser  frame.Serializer
		in   string
		kind error
		eof  bool
	}{
		{frame.Serpent, "", nsview.ErrMalformed, true},
		{frame.Serpent, "# serpent utf-8 python3.2\n", nsview.ErrMalformed, true},
		{frame.Serpent, "['a'", nsview.ErrMalformed, true},
		{frame.Serpent, "['a]", nsview.ErrMalformed, true},
		{frame.Serpent, "{'a':}", nsview.ErrMalformed, false},
		{frame.Serpent, "['a' 'b']", nsview.ErrUnsupported, false},
		{frame.Serpent, "'''a'''", nsview.ErrUnsupported, false},
		{frame.Serpent, "b'a'", nsview.ErrUnsupported, false},
		{frame.Serpent, "'a\nb'", nsview.ErrMalformed, false},
		{frame.Serpent, "'\xff'", nsview.ErrMalformed, false},
		{frame.Serpent, "'a\x00'", nsview.ErrMalformed, false},
		{frame.Serpent, "[1] 2", nsview.ErrMalformed, false},
		{frame.Serpent, "nope", nsview.ErrMalformed, false},
		{frame.Serpent, "[1,,2]", nsview.ErrMalformed, false},
		{frame.JSON, "[1,]", nsview.ErrMalformed, false},
		{frame.JSON, "{'a': 1}", nsview.ErrMalformed, false},
		{frame.JSON, "{1: 1}", nsview.ErrMalformed, false},
		{frame.JSON, `"a` + "\t" + `"`, nsview.ErrMalformed, false},
		{frame.JSON, "01", nsview.ErrMalformed, false},
		{frame.JSON, "1.", nsview.ErrMalformed, false},
		{frame.JSON, "-", nsview.ErrMalformed, false},
		{frame.JSON, "[\"a\"", nsview.ErrMalformed, true},
		{frame.Marshal, "", nsview.ErrMalformed, true},
		{frame.Marshal, "[\x02\x00\x00\x00N", nsview.ErrMalformed, true},
		{frame.Marshal, "[\xff\xff\xff\x7f", nsview.ErrMalformed, true}, // a count the bytes cannot hold
		{frame.Marshal, "[\xff\xff\xff\xff", nsview.ErrMalformed, false},
		{frame.Marshal, "u\x05\x00\x00\x00abc", nsview.ErrMalformed, true},
		{frame.Marshal, "l\xff\xff\xff\x7f", nsview.ErrMalformed, true},
		{frame.Marshal, "r\x00\x00\x00\x00", nsview.ErrMalformed, false},
		{frame.Marshal, "0", nsview.ErrMalformed, false},
		{frame.Marshal, "{N0", nsview.ErrMalformed, false},
		{frame.Marshal, "Q", nsview.ErrMalformed, false},
		{frame.Marshal, "c\x00\x00\x00\x00", nsview.ErrUnsupported, false},
	}
	for _, c := range cases {
		out, changed, err := nsview.Rewrite([]byte("keep"), []byte(c.in), c.ser, edge)
		var de *nsview.DecodeError
		if !errors.Is(err, c.kind) || !errors.As(err, &de) || errors.Is(err, io.ErrUnexpectedEOF) != c.eof ||
			changed || string(out) != "keep" {
			t.Errorf("%s %q: err %v (eof %v), changed %v, out %q", c.ser, c.in, err, errors.Is(err, io.ErrUnexpectedEOF), changed, out)
		}
	}
}

// TestTruncated cuts golden replies (containers all: every cut is incomplete) at every
// byte: each cut is an ErrMalformed error, never a panic.
func TestTruncated(t *testing.T) {
	_, gs := loadGolden(t)
	var rw nsview.Rewriter
	for _, g := range gs {
		if g.compressed() || g.Error != "" || strings.Contains(g.Name, "bench") ||
			strings.HasSuffix(g.Name, "count()") || strings.HasSuffix(g.Name, "ping()") {
			continue
		}
		for n := range len(g.payload) {
			_, _, err := rw.Rewrite(nil, g.payload[:n], g.ser(), edge)
			if !errors.Is(err, nsview.ErrMalformed) {
				t.Fatalf("%s cut at %d: %v", g.Name, n, err)
			}
		}
	}
}

// TestBadAddr: Translate's address must be writable into a URI.
func TestBadAddr(t *testing.T) {
	for _, a := range []nsview.Addr{
		{}, {Host: "h"}, {Host: "h", Port: 70000}, {Host: "h", Sock: "/s"}, {Host: "h h", Port: 1},
		{Host: "[::1]", Port: 1}, {Host: "h:1", Port: 1}, {Host: "fe80::1%eth0", Port: 1}, {Sock: "/a:b"},
		{Sock: "/a\nb"}, {Sock: "/s", Port: 1}, {Sock: "\xff"}, {Host: strings.Repeat("h", 256), Port: 1},
	} {
		_, _, err := nsview.Rewrite(nil, []byte(`["PYRO:o@h:1"]`), frame.JSON, func(nsview.URI) (nsview.Addr, bool) { return a, true })
		if !errors.Is(err, nsview.ErrBadAddr) {
			t.Errorf("%+v: %v", a, err)
		}
	}
}

func TestAddr(t *testing.T) {
	for _, c := range []struct {
		loc  string
		want nsview.Addr
		ok   bool
	}{
		{"h.example:9090", nsview.Addr{Host: "h.example", Port: 9090}, true},
		{"10.0.0.1:1", nsview.Addr{Host: "10.0.0.1", Port: 1}, true},
		{"[::1]:7", nsview.Addr{Host: "::1", Port: 7}, true},
		{"[fe80::1%2]:7", nsview.Addr{Host: "fe80::1%2", Port: 7}, true},
		{"./u:/run/x y.sock", nsview.Addr{Sock: "/run/x y.sock"}, true},
		{"h", nsview.Addr{}, false},
		{"h:0", nsview.Addr{}, false},
		{"h:x", nsview.Addr{}, false},
		{"::1:7", nsview.Addr{}, false},
		{"./u:", nsview.Addr{}, false},
	} {
		a, err := nsview.ParseAddr(c.loc)
		if (err == nil) != c.ok || c.ok && (a != c.want || a.String() != c.loc) {
			t.Errorf("%q: %+v %v (String %q)", c.loc, a, err, a.String())
		}
		if err != nil && !errors.Is(err, nsview.ErrBadAddr) {
			t.Errorf("%q: %v is not ErrBadAddr", c.loc, err)
		}
	}
	if s := (nsview.Addr{Host: "n", Port: 0}).String(); s != "n" {
		t.Errorf("no port: %q", s)
	}
	if nsview.FormString.String() != "string" || nsview.FormObject.String() != "object" || nsview.Form(9).String() != "form(9)" {
		t.Error("Form.String")
	}
}

// TestLimits: nesting, value count, growth and inflated size are bounded.
func TestLimits(t *testing.T) {
	deep := strings.Repeat("[", 101) + strings.Repeat("]", 101)
	for _, ser := range []frame.Serializer{frame.Serpent, frame.JSON} {
		if _, _, err := nsview.Rewrite(nil, []byte(deep), ser, edge); !errors.Is(err, nsview.ErrLimit) {
			t.Errorf("%s depth: %v", ser, err)
		}
	}
	mdeep := strings.Repeat("[\x01\x00\x00\x00", 101) + "N"
	if _, _, err := nsview.Rewrite(nil, []byte(mdeep), frame.Marshal, edge); !errors.Is(err, nsview.ErrLimit) {
		t.Errorf("marshal depth: %v", err)
	}
	rw := nsview.Rewriter{Limits: nsview.Limits{MaxDepth: 2}}
	if _, _, err := rw.Rewrite(nil, []byte("[[1]]"), frame.JSON, edge); err != nil {
		t.Errorf("depth 2: %v", err)
	}
	if _, _, err := rw.Rewrite(nil, []byte("[[[1]]]"), frame.JSON, edge); !errors.Is(err, nsview.ErrLimit) {
		t.Errorf("depth 3: %v", err)
	}
	rw = nsview.Rewriter{Limits: nsview.Limits{MaxValues: 3}}
	if _, _, err := rw.Rewrite(nil, []byte("[1,2]"), frame.JSON, edge); err != nil {
		t.Errorf("3 values: %v", err)
	}
	if _, _, err := rw.Rewrite(nil, []byte("[1,2,3]"), frame.JSON, edge); !errors.Is(err, nsview.ErrLimit) {
		t.Errorf("4 values: %v", err)
	}
	rw = nsview.Rewriter{Limits: nsview.Limits{MaxGrowth: 10}}
	long := func(nsview.URI) (nsview.Addr, bool) {
		return nsview.Addr{Host: "a-long-gateway-name.example", Port: 1}, true
	}
	if _, _, err := rw.Rewrite(nil, []byte(`["PYRO:o@h:1"]`), frame.JSON, long); !errors.Is(err, nsview.ErrLimit) {
		t.Errorf("growth: %v", err)
	}
	// A long marshal str referred to many times, each reference written back as a copy
	// (a dict key keeps the value before translation): bounded by growth.
	uri := "PYRO:" + strings.Repeat("o", 1000) + "@h:1"
	amp := []byte("[\x00\x00\x01\x00\xe1\xf1\x03\x00\x00" + uri)
	for range 1<<16 - 1 {
		amp = append(amp, "{r\x00\x00\x00\x00N0"...)
	}
	if _, _, err := nsview.Rewrite(nil, amp, frame.Marshal, long); !errors.Is(err, nsview.ErrLimit) {
		t.Errorf("amplification: %v", err)
	}
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(`["PYRO:o@h:1", "` + strings.Repeat("x", 1000) + `"]`))
	zw.Close()
	rw = nsview.Rewriter{Limits: nsview.Limits{MaxInflated: 100}}
	if _, _, err := rw.RewriteCompressed(nil, z.Bytes(), frame.JSON, edge); !errors.Is(err, nsview.ErrLimit) {
		t.Errorf("inflated: %v", err)
	}
	if _, _, err := rw.RewriteCompressed(nil, []byte("not zlib"), frame.JSON, edge); !errors.Is(err, nsview.ErrMalformed) {
		t.Errorf("not zlib: %v", err)
	}
}

// TestCompressed: a compressed payload comes back compressed and translated, or the
// same bytes when nothing changes.
func TestCompressed(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte(`{"a": "PYRO:o@h:1"}`))
	zw.Close()
	var rw nsview.Rewriter
	out, changed, err := rw.RewriteCompressed([]byte("x"), z.Bytes(), frame.JSON, edge)
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(out[1:]))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || string(plain) != `{"a": "PYRO:o@gw.example:9000"}` || out[0] != 'x' {
		t.Fatalf("%q %v", plain, err)
	}
	out, changed, err = rw.RewriteCompressed(nil, z.Bytes(), frame.JSON, nil)
	if err != nil || changed || !bytes.Equal(out, z.Bytes()) {
		t.Fatalf("unchanged: %v %v", changed, err)
	}
}

// TestConcurrent runs the pooled Rewrite from several goroutines (for -race).
func TestConcurrent(t *testing.T) {
	_, gs := loadGolden(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, g := range gs {
				if g.compressed() || g.Error != "" {
					continue
				}
				a, _, err1 := nsview.Rewrite(nil, g.payload, g.ser(), edge)
				b, _, err2 := nsview.Rewrite(nil, g.payload, g.ser(), edge)
				if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
					t.Errorf("%s: %v %v", g.Name, err1, err2)
				}
			}
		}()
	}
	wg.Wait()
}

// TestSteadyAllocs: a reused Rewriter with room in dst does not allocate for a reply it
// has seen before (the URI strings come from its cache).
func TestSteadyAllocs(t *testing.T) {
	_, gs := loadGolden(t)
	for _, g := range gs {
		if !strings.HasSuffix(g.Name, "/bench.list(,meta)") {
			continue
		}
		var rw nsview.Rewriter
		tr := func(u nsview.URI) (nsview.Addr, bool) {
			if u.Addr.Host == "10.1.0.1" {
				return nsview.Addr{Host: "edge.example.com", Port: 8001}, true
			}
			return nsview.Addr{}, false
		}
		dst := make([]byte, 0, 2*len(g.payload))
		if _, _, err := rw.Rewrite(dst, g.payload, g.ser(), tr); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() { rw.Rewrite(dst, g.payload, g.ser(), tr) }); n != 0 {
			t.Errorf("%s: %v allocations a call", g.Name, n)
		}
	}
}
