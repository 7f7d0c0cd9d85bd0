package nsview_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/nsview"
)

// Fuzz input: the low 3 bits of sel pick the serializer id (so pickle, msgpack... too),
// bit 0x80 makes the payload a compressed one, bit 0x40 makes the gateway address a
// Unix socket path (with quotes, to exercise the escapes) instead of a host and port.
const (
	fuzzCompressed = 0x80
	fuzzUnix       = 0x40
)

// FuzzRewrite checks, for any payload: no panic; an error is one of this package's; a
// payload rewritten with every URI kept (translated to itself, refused, or no Translate)
// comes back byte for byte; a payload rewritten to one gateway address stays within
// Limits.MaxGrowth, reads again without error and is a fixed point (rewriting it again
// changes nothing); and it reads the same with the URIs kept as translated.
func FuzzRewrite(f *testing.F) {
	_, gs := loadGolden(f)
	for _, g := range gs {
		sel := byte(g.Ser)
		if g.compressed() {
			sel |= fuzzCompressed
		}
		f.Add(sel, g.payload)
		f.Add(sel|fuzzUnix, g.payload)
	}
	for _, c := range handWritten {
		f.Add(byte(c.ser), []byte(c.in))
	}
	f.Fuzz(func(t *testing.T, sel byte, payload []byte) {
		ser := frame.Serializer(sel & 7)
		rw := nsview.Rewriter{Limits: nsview.Limits{MaxInflated: 1 << 20}} // keeps zlib bombs quick
		run := func(in []byte, tr nsview.Translate) ([]byte, bool, error) {
			if sel&fuzzCompressed != 0 {
				return rw.RewriteCompressed(nil, in, ser, tr)
			}
			return rw.Rewrite(nil, in, ser, tr)
		}
		var found int
		own := func(u nsview.URI) (nsview.Addr, bool) { found++; return u.Addr, true }
		out, changed, err := run(payload, own)
		if err != nil {
			if !errors.Is(err, nsview.ErrNotTranslatable) && !errors.Is(err, nsview.ErrMalformed) &&
				!errors.Is(err, nsview.ErrUnsupported) && !errors.Is(err, nsview.ErrLimit) {
				t.Fatalf("unexpected error %v", err)
			}
			if _, _, err2 := run(payload, nil); (err2 == nil) != (err == nil) {
				t.Fatalf("own address: %v; nil Translate: %v", err, err2)
			}
			return
		}
		if changed || !bytes.Equal(out, payload) {
			t.Fatalf("translated to their own address, %d URIs changed the payload:\n%q\n%q", found, payload, out)
		}
		if out, changed, err := run(payload, nil); err != nil || changed || !bytes.Equal(out, payload) {
			t.Fatalf("nil Translate: %v %v", changed, err)
		}

		gw := nsview.Addr{Host: "gw.example", Port: 9000}
		if sel&fuzzUnix != 0 {
			gw = nsview.Addr{Sock: `/run/gw 'x' "y" \ é.sock`}
		}
		toGW := func(nsview.URI) (nsview.Addr, bool) { return gw, true }
		out, changed, err = run(payload, toGW)
		if err != nil {
			if !errors.Is(err, nsview.ErrUnsupported) && !errors.Is(err, nsview.ErrLimit) {
				t.Fatalf("translated: %v", err)
			}
			return
		}
		if !changed && !bytes.Equal(out, payload) || changed && bytes.Equal(out, payload) {
			t.Fatalf("changed = %v, but the bytes say otherwise", changed)
		}
		if sel&fuzzCompressed == 0 && len(out) > 2*len(payload)+64<<10 {
			t.Fatalf("grew from %d to %d bytes", len(payload), len(out))
		}
		again, changed, err := run(out, toGW)
		if err != nil || changed || !bytes.Equal(again, out) {
			t.Fatalf("not a fixed point: changed %v, err %v\n%q\n%q", changed, err, out, again)
		}
	})
}
