package nsview_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
	"github.com/pyro-dispatch/pyro-dispatch/nsview"
)

// The golden replies are real Pyro4 4.82 name server replies, captured by
// testdata/nsgolden.py (go test ./nsview -run TestGolden -update regenerates them), with
// what Python finds in each and, for serpent and json, the exact bytes Pyro4 writes for
// the reply with the golden mapping applied. Nothing expected comes from this package.

const goldenFile = "testdata/replies.jsonl"

var (
	update      = flag.Bool("update", false, "regenerate "+goldenFile+" with real Pyro4")
	regenerated sync.Once
)

type golden struct {
	Name    string      `json:"name"`
	Ser     int         `json:"ser"`
	Flags   int         `json:"flags"`
	Payload string      `json:"payload"`
	Found   [][4]string `json:"found"` // protocol, object, location, form
	Want    string      `json:"want"`  // serpent, json: the exact result
	Error   string      `json:"error"` // "unsupported": Rewrite must refuse it

	payload []byte
}

func (g *golden) ser() frame.Serializer { return frame.Serializer(g.Ser) }
func (g *golden) compressed() bool      { return frame.Flags(g.Flags).Has(frame.FlagCompressed) }

// loadGolden reads the golden file: the mapping (canonical location to new location)
// and the replies.
func loadGolden(t testing.TB) (map[string]string, []*golden) {
	t.Helper()
	if *update {
		regenerated.Do(func() { regenerate(t) })
	}
	f, err := os.Open(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<22)
	var head struct {
		Mapping map[string]string `json:"mapping"`
	}
	var gs []*golden
	for sc.Scan() {
		if head.Mapping == nil {
			if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
				t.Fatal(err)
			}
			continue
		}
		g := new(golden)
		if err := json.Unmarshal(sc.Bytes(), g); err != nil {
			t.Fatal(err)
		}
		if g.payload, err = hex.DecodeString(g.Payload); err != nil {
			t.Fatal(g.Name, err)
		}
		gs = append(gs, g)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(gs) == 0 || head.Mapping == nil {
		t.Fatal("empty golden file")
	}
	return head.Mapping, gs
}

func regenerate(t testing.TB) {
	script, err := os.ReadFile("testdata/nsgolden.py")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := pyro4test.RunPython(t, string(script), nil, "capture")
	if err := os.WriteFile(goldenFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// recorder is a Translate that maps locations with a mapping and records every URI.
type recorder struct {
	t       testing.TB
	mapping map[string]string
	found   [][4]string
}

func (r *recorder) translate(u nsview.URI) (nsview.Addr, bool) {
	loc := u.Addr.String()
	r.found = append(r.found, [4]string{u.Protocol, u.Object, loc, u.Form.String()})
	to, ok := r.mapping[loc]
	if !ok {
		return nsview.Addr{}, false
	}
	a, err := nsview.ParseAddr(to)
	if err != nil {
		r.t.Fatalf("mapping %q: %v", to, err)
	}
	return a, true
}

// rewrite runs Rewrite or RewriteCompressed as the golden's flags say.
func rewrite(rw *nsview.Rewriter, dst []byte, g *golden, tr nsview.Translate) ([]byte, bool, error) {
	if g.compressed() {
		return rw.RewriteCompressed(dst, g.payload, g.ser(), tr)
	}
	return rw.Rewrite(dst, g.payload, g.ser(), tr)
}

// TestGolden rewrites every golden reply with the mapping and checks the URIs found
// against Python's, the bytes against what Pyro4 writes (serpent, json), and that the
// bytes outside the URIs are the payload's own.
func TestGolden(t *testing.T) {
	mapping, gs := loadGolden(t)
	var rw nsview.Rewriter
	for _, g := range gs {
		t.Run(g.Name, func(t *testing.T) {
			rec := &recorder{t: t, mapping: mapping}
			prefix := []byte("dst:")
			out, changed, err := rewrite(&rw, prefix, g, rec.translate)
			if g.Error != "" {
				if !errors.Is(err, nsview.ErrUnsupported) {
					t.Fatalf("err = %v, want ErrUnsupported", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, []byte("dst:")) {
				t.Fatalf("dst not kept: %q", out[:min(len(out), 8)])
			}
			out = out[len("dst:"):]
			if !equalFound(rec.found, g.Found) {
				t.Errorf("found\n%q\nwant (Python)\n%q", rec.found, g.Found)
			}
			mapped := false
			for _, f := range g.Found {
				_, ok := mapping[f[2]]
				mapped = mapped || ok
			}
			if changed != mapped || changed == bytes.Equal(out, g.payload) {
				t.Errorf("changed = %v, a URI mapped: %v, bytes equal: %v", changed, mapped, bytes.Equal(out, g.payload))
			}
			if g.Want != "" {
				if want, _ := hex.DecodeString(g.Want); !bytes.Equal(out, want) {
					t.Errorf("result\n%q\nwant (Pyro4 dumps)\n%q", out, want)
				}
			}
			checkIdentity(t, &rw, g)
		})
	}
}

func equalFound(got, want [][4]string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// checkIdentity checks that translating every URI to its own address, refusing every
// translation, and a nil Translate all give the payload back byte for byte.
func checkIdentity(t *testing.T, rw *nsview.Rewriter, g *golden) {
	t.Helper()
	for name, tr := range map[string]nsview.Translate{
		"own address": func(u nsview.URI) (nsview.Addr, bool) { return u.Addr, true },
		"refuse":      func(nsview.URI) (nsview.Addr, bool) { return nsview.Addr{Host: "x", Port: 1}, false },
		"nil":         nil,
	} {
		out, changed, err := rewrite(rw, nil, g, tr)
		if err != nil || changed || !bytes.Equal(out, g.payload) {
			t.Errorf("%s: changed %v, err %v, identical %v", name, changed, err, bytes.Equal(out, g.payload))
		}
	}
}

// TestGoldenPython has real Pyro4 decode every rewritten golden reply (its serializer's
// deserializeData, decompressing when flagged) and compare it with the reply as Python
// decodes it from the original payload, with the mapping applied by Python.
func TestGoldenPython(t *testing.T) {
	pyro4test.Python(t)
	mapping, gs := loadGolden(t)
	script, err := os.ReadFile("testdata/nsgolden.py")
	if err != nil {
		t.Fatal(err)
	}
	var rw nsview.Rewriter
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	n := 0
	for _, g := range gs {
		if g.Error != "" {
			continue
		}
		rec := &recorder{t: t, mapping: mapping}
		out, _, err := rewrite(&rw, nil, g, rec.translate)
		if err != nil {
			t.Fatalf("%s: %v", g.Name, err)
		}
		req := map[string]any{"name": g.Name, "ser": g.Ser, "compressed": g.compressed(), "mapping": mapping,
			"payload": g.Payload, "out": hex.EncodeToString(out)}
		if err := enc.Encode(req); err != nil {
			t.Fatal(err)
		}
		n++
	}
	stdout, _ := pyro4test.RunPython(t, string(script), in.Bytes(), "verify")
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	if len(lines) != n {
		t.Fatalf("python verified %d payloads of %d:\n%s", len(lines), n, stdout)
	}
	for _, l := range lines {
		var res struct {
			Name   string `json:"name"`
			OK     bool   `json:"ok"`
			Detail string `json:"detail"`
		}
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		if !res.OK {
			t.Errorf("%s: Python decodes something else:\n%s", res.Name, res.Detail)
		}
	}
}
