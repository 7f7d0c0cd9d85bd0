package frame

import (
	"bytes"
	"errors"
	"testing"
)

func chunks(pairs ...string) Annotations {
	var a []byte
	for i := 0; i < len(pairs); i += 2 {
		a = AppendAnnotation(a, ChunkID([]byte(pairs[i])), []byte(pairs[i+1]))
	}
	return a
}

func TestAnnotationsIterate(t *testing.T) {
	a := chunks("CORR", "0123456789abcdef", "XTRA", "", "ROUT", "east")
	var ids, vals []string
	it := a.Iter()
	for it.Next() {
		ids = append(ids, it.ID().String())
		vals = append(vals, string(it.Value()))
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	if got := ids[0] + ids[1] + ids[2]; got != "CORRXTRAROUT" {
		t.Fatalf("ids %v", ids)
	}
	if vals[0] != "0123456789abcdef" || vals[1] != "" || vals[2] != "east" {
		t.Fatalf("values %q", vals)
	}
	if v, ok := a.Lookup(ChunkID{'R', 'O', 'U', 'T'}); !ok || string(v) != "east" {
		t.Fatalf("lookup ROUT = %q %v", v, ok)
	}
	if _, ok := a.Lookup(HMAC); ok {
		t.Fatal("found HMAC in annotations without one")
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := Annotations(nil).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestAnnotationsMalformed(t *testing.T) {
	good := chunks("CORR", "0123456789abcdef")
	for name, a := range map[string]Annotations{
		"short head":  good[:4],
		"short value": good[:len(good)-1],
		"trailing":    append(bytes.Clone(good), 'x'),
	} {
		var ae *AnnotationError
		if err := a.Validate(); !errors.As(err, &ae) || !IsProtocolError(err) {
			t.Errorf("%s: got %v", name, err)
		}
		if _, ok := a.Lookup(ChunkID{'Z', 'Z', 'Z', 'Z'}); ok {
			t.Errorf("%s: lookup found a chunk", name)
		}
	}
}

func FuzzAnnotations(f *testing.F) {
	f.Add([]byte(chunks("CORR", "0123456789abcdef", "BLBI", "\xa9\x03\xda\x01a\xda\x01b\xda\x01c")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		a := Annotations(in)
		total := 0
		it := a.Iter()
		for it.Next() {
			total += chunkHeadLen + len(it.Value())
		}
		if err := it.Err(); err != nil {
			return
		}
		if total != len(in) {
			t.Fatalf("valid chunks cover %d of %d bytes", total, len(in))
		}
	})
}

func BenchmarkAnnotationLookup(b *testing.B) {
	a := chunks("XTRA", "something", "ROUT", "east", "CORR", "0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := a.Lookup(CORR); !ok {
			b.Fatal("no CORR")
		}
	}
}

func TestAppendWithout(t *testing.T) {
	a := chunks("CORR", "0123456789abcdef", "ROUT", "east", "CORR", "x")
	got := Annotations(a.AppendWithout(nil, CORR))
	if !bytes.Equal(got, chunks("ROUT", "east")) {
		t.Fatalf("got %q", got)
	}
	if out := Annotations(nil).AppendWithout([]byte("k"), CORR); string(out) != "k" {
		t.Fatalf("got %q", out)
	}
}
