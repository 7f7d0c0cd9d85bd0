package frame

import (
	"bytes"
	"testing"
)

func TestAppendForwardAddsCorr(t *testing.T) {
	ann := chunks("ROUT", "east")
	h := Header{Type: Invoke, Seq: 1, DataLen: 5, Serializer: JSON, AnnLen: len(ann)}
	id := [CorrLen]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	out, hh, corr := AppendForward(nil, h, ann, 42, &id)
	if !bytes.Equal(corr, id[:]) {
		t.Fatalf("corr %x", corr)
	}
	got, err := ParseHeader(out)
	if err != nil {
		t.Fatal(err)
	}
	if got != hh || got.Seq != 42 || got.AnnLen != len(ann)+22 || got.DataLen != 5 {
		t.Fatalf("header %+v (returned %+v)", got, hh)
	}
	a := Annotations(out[HeaderSize:])
	if v, ok := a.Lookup(CORR); !ok || !bytes.Equal(v, id[:]) {
		t.Fatalf("CORR chunk %x %v", v, ok)
	}
	if v, ok := a.Lookup(ChunkID{'R', 'O', 'U', 'T'}); !ok || string(v) != "east" {
		t.Fatal("lost ROUT chunk")
	}
}

func TestAppendForwardKeepsCorr(t *testing.T) {
	ann := chunks("CORR", "AAAAAAAAAAAAAAAA")
	h := Header{Type: Invoke, Seq: 1, Serializer: Serpent, AnnLen: len(ann)}
	id := [CorrLen]byte{9}
	out, hh, corr := AppendForward(nil, h, ann, 1, &id)
	if string(corr) != "AAAAAAAAAAAAAAAA" || hh.AnnLen != len(ann) || !bytes.Equal(out[HeaderSize:], ann) {
		t.Fatalf("rewrote a message that had a CORR: %x", out)
	}
	_, _, corr = AppendForward(nil, Header{Type: Ping}, nil, 0, nil)
	if corr != nil {
		t.Fatalf("corr %x without one", corr)
	}
}

func BenchmarkAppendForwardCorr(b *testing.B) {
	ann := chunks("ROUT", "east")
	h := Header{Type: Invoke, Seq: 1, DataLen: 100, Serializer: Serpent, AnnLen: len(ann)}
	id := [CorrLen]byte{1}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf, _, _ = AppendForward(buf[:0], h, ann, 2, &id)
	}
}

func TestNewCorr(t *testing.T) {
	a, b := NewCorr(), NewCorr()
	for _, id := range [][CorrLen]byte{a, b} {
		if id[6]>>4 != 4 || id[8]>>6 != 2 { // version 4, RFC 4122 variant, as Python's uuid4
			t.Errorf("%x is not a version 4 uuid", id)
		}
	}
	if a == b {
		t.Errorf("two ids alike: %x", a)
	}
	if n := testing.AllocsPerRun(100, func() { a = NewCorr() }); n != 0 {
		t.Errorf("%v allocations per id", n)
	}
}
