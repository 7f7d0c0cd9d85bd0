package frame_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// goldenHMACKey is the key the capture generator signed the "hmac" scenario with
// (internal/capture/gen/main.go hmacKey).
const goldenHMACKey = "pyro-dispatch golden key"

var testCorr = [frame.CorrLen]byte{0xc0, 0x44, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}

// hmacChunks builds annotations from id, value pairs.
func hmacChunks(pairs ...string) frame.Annotations {
	var a []byte
	for i := 0; i < len(pairs); i += 2 {
		a = frame.AppendAnnotation(a, frame.ChunkID([]byte(pairs[i])), []byte(pairs[i+1]))
	}
	return a
}

// refDigest is Pyro4's Message.hmac written the way Python does it: the chunks into a
// dict (the last of repeated ids wins), then the payload and the values of the sorted ids
// other than HMAC.
func refDigest(key, payload []byte, ann frame.Annotations) []byte {
	d := map[frame.ChunkID][]byte{}
	for it := ann.Iter(); it.Next(); {
		d[it.ID()] = it.Value()
	}
	mac := hmac.New(sha1.New, key)
	mac.Write(payload)
	for _, id := range slices.SortedFunc(maps.Keys(d), func(a, b frame.ChunkID) int { return bytes.Compare(a[:], b[:]) }) {
		if id != frame.HMAC {
			mac.Write(d[id])
		}
	}
	return mac.Sum(nil)
}

// lastValue returns the value of the last chunk with the given id, as Pyro4's dict has it.
func lastValue(ann frame.Annotations, id frame.ChunkID) ([]byte, bool) {
	var v []byte
	ok := false
	for it := ann.Iter(); it.Next(); {
		if it.ID() == id {
			v, ok = it.Value(), true
		}
	}
	return v, ok
}

func hmacGolden(t *testing.T) []*goldenVector {
	t.Helper()
	var out []*goldenVector
	for _, v := range loadGolden(t) {
		if v.Scenario == "hmac" {
			out = append(out, v)
		}
	}
	if len(out) != 32 {
		t.Fatalf("%d hmac vectors, want 32", len(out))
	}
	return out
}

func TestHMACErrors(t *testing.T) {
	for _, c := range []struct {
		err  *frame.HMACError
		text string
	}{
		{frame.ErrHMACMismatch, "message hmac mismatch"},
		{frame.ErrHMACNotSymmetric, "hmac key config not symmetric"},
	} {
		if c.err.Error() != c.text {
			t.Errorf("Error() = %q, want Pyro4's %q", c.err.Error(), c.text)
		}
		wrapped := fmt.Errorf("client 1.2.3.4: %w", c.err)
		var he *frame.HMACError
		if !errors.Is(wrapped, c.err) || !errors.As(wrapped, &he) || he.Reason != c.text {
			t.Errorf("errors.Is/As on %v: %v %v", wrapped, errors.Is(wrapped, c.err), he)
		}
	}
	if errors.Is(frame.ErrHMACMismatch, frame.ErrHMACNotSymmetric) {
		t.Error("the two refusals compare equal")
	}
}

// TestHMACGolden checks every signed golden message: it verifies with the capture key,
// its HMAC chunk is the digest, and another key, no key, or a changed payload or chunk
// are refused as Pyro4 refuses them. Unsigned golden messages are refused by a keyed
// Signer and accepted by a nil one.
func TestHMACGolden(t *testing.T) {
	good := frame.NewSigner([]byte(goldenHMACKey))
	other := frame.NewSigner([]byte(goldenHMACKey + "!"))
	var none *frame.Signer
	n := 0
	for _, v := range loadGolden(t) {
		ann, payload := v.annotations(), v.payload()
		if v.Scenario != "hmac" {
			if err := good.Verify(payload, ann); err != frame.ErrHMACNotSymmetric {
				t.Errorf("%s: unsigned message, Verify with a key = %v", v.name(), err)
			}
			if err := none.Verify(payload, ann); err != nil {
				t.Errorf("%s: unsigned message, Verify without a key = %v", v.name(), err)
			}
			continue
		}
		n++
		want, ok := ann.Lookup(frame.HMAC)
		if !ok {
			t.Fatalf("%s: no HMAC chunk", v.name())
		}
		if err := good.Verify(payload, ann); err != nil {
			t.Errorf("%s: Verify with the capture key: %v", v.name(), err)
		}
		if d, err := good.Digest(payload, ann); err != nil || !bytes.Equal(d[:], want) {
			t.Errorf("%s: Digest = %x, %v; the HMAC chunk is %x", v.name(), d, err, want)
		}
		if d, err := frame.HMACDigest([]byte(goldenHMACKey), payload, ann); err != nil || !bytes.Equal(d[:], want) {
			t.Errorf("%s: HMACDigest = %x, %v; the HMAC chunk is %x", v.name(), d, err, want)
		}
		if d := refDigest([]byte(goldenHMACKey), payload, ann); !bytes.Equal(d, want) {
			t.Errorf("%s: reference digest %x, the HMAC chunk is %x", v.name(), d, want)
		}
		if err := other.Verify(payload, ann); err != frame.ErrHMACMismatch {
			t.Errorf("%s: Verify with another key = %v", v.name(), err)
		}
		if err := none.Verify(payload, ann); err != frame.ErrHMACNotSymmetric {
			t.Errorf("%s: Verify without a key = %v", v.name(), err)
		}
		// The payload is covered: flip its last byte.
		p := append([]byte(nil), payload...)
		p[len(p)-1] ^= 1
		if err := good.Verify(p, ann); err != frame.ErrHMACMismatch {
			t.Errorf("%s: Verify of a changed payload = %v", v.name(), err)
		}
		// Every other chunk is covered: flip a byte of each.
		off := 0 // offset of the current chunk
		for it := ann.Iter(); it.Next(); off += 6 + len(it.Value()) {
			if it.ID() == frame.HMAC || len(it.Value()) == 0 {
				continue
			}
			a := append(frame.Annotations(nil), ann...)
			a[off+6] ^= 0x80
			if err := good.Verify(payload, a); err != frame.ErrHMACMismatch {
				t.Errorf("%s: Verify with chunk %s changed = %v", v.name(), it.ID(), err)
			}
		}
		// The header is not: a message with another seq still verifies, as in Pyro4.
	}
	if n != 32 {
		t.Errorf("%d hmac vectors, want 32", n)
	}
}

// TestHMACDigestDefinition pins the digest down on hand-made annotations against
// crypto/hmac directly: payload, then the values by sorted id, HMAC left out, the last of
// repeated ids only; ids, lengths and the header are not covered.
func TestHMACDigestDefinition(t *testing.T) {
	key := []byte("k")
	sum := func(parts ...string) []byte {
		mac := hmac.New(sha1.New, key)
		for _, p := range parts {
			mac.Write([]byte(p))
		}
		return mac.Sum(nil)
	}
	cases := []struct {
		name    string
		payload string
		ann     frame.Annotations
		want    []byte
	}{
		{"none", "data", nil, sum("data")},
		{"empty", "", nil, sum("")},
		{"sorted", "p", hmacChunks("ZZZZ", "z", "AAAA", "a", "CORR", "c"), sum("p", "a", "c", "z")},
		{"hmac ignored", "p", hmacChunks("HMAC", "xxxx", "BBBB", "b", "IIII", "i"), sum("p", "b", "i")},
		{"last repeat wins", "p", hmacChunks("XTRA", "1", "AAAA", "a", "XTRA", "2"), sum("p", "a", "2")},
		{"empty values", "p", hmacChunks("AAAA", "", "BBBB", "b"), sum("p", "b")},
		{"byte order", "p", hmacChunks("aaaa", "lower", "ZZZZ", "upper", "\xff\x00\x00\x00", "high"), sum("p", "upper", "lower", "high")},
		// Only the concatenation counts: these collide with each other.
		{"boundaries 1", "pa", hmacChunks("AAAA", "bc"), sum("pabc")},
		{"boundaries 2", "p", hmacChunks("AAAA", "ab", "BBBB", "c"), sum("pabc")},
		{"boundaries 3", "pabc", nil, sum("pabc")},
		{"ids not covered", "pabc", hmacChunks("QQQQ", ""), sum("pabc")},
	}
	s := frame.NewSigner(key)
	for _, c := range cases {
		got, err := s.Digest([]byte(c.payload), c.ann)
		if err != nil || !bytes.Equal(got[:], c.want) {
			t.Errorf("%s: Digest = %x, %v; want %x", c.name, got, err, c.want)
		}
		if ref := refDigest(key, []byte(c.payload), c.ann); !bytes.Equal(ref, c.want) {
			t.Errorf("%s: reference digest %x, want %x", c.name, ref, c.want)
		}
		signed, err := s.AppendSigned(nil, []byte(c.payload), c.ann, nil)
		if err != nil {
			t.Fatalf("%s: AppendSigned: %v", c.name, err)
		}
		if err := s.Verify([]byte(c.payload), signed); err != nil {
			t.Errorf("%s: Verify of AppendSigned: %v", c.name, err)
		}
	}
	// A repeated HMAC chunk: the last one is compared.
	good, _ := s.Digest([]byte("p"), nil)
	if err := s.Verify([]byte("p"), hmacChunks("HMAC", "bogus", "HMAC", string(good[:]))); err != nil {
		t.Errorf("bad then good HMAC chunk: %v", err)
	}
	if err := s.Verify([]byte("p"), hmacChunks("HMAC", string(good[:]), "HMAC", "bogus")); err != frame.ErrHMACMismatch {
		t.Errorf("good then bad HMAC chunk: %v", err)
	}
	// A short or empty HMAC value is a mismatch, not a panic.
	for _, v := range []string{"", "x", string(good[:19]), string(good[:]) + "x"} {
		if err := s.Verify([]byte("p"), hmacChunks("HMAC", v)); err != frame.ErrHMACMismatch {
			t.Errorf("HMAC value %x: %v", v, err)
		}
	}
	// An empty key is no key, as in Pyro4; HMACDigest still computes with it.
	if frame.NewSigner(nil) != nil || frame.NewSigner([]byte{}) != nil {
		t.Error("NewSigner of an empty key is not nil")
	}
	if d, err := frame.HMACDigest(nil, []byte("p"), nil); err != nil || !bytes.Equal(d[:], hmacSum(nil, "p")) {
		t.Errorf("HMACDigest with an empty key = %x, %v", d, err)
	}
	var none *frame.Signer
	if _, err := none.Digest([]byte("p"), nil); err != frame.ErrHMACNotSymmetric {
		t.Errorf("nil Signer Digest: %v", err)
	}
}

func hmacSum(key []byte, s string) []byte {
	mac := hmac.New(sha1.New, key)
	mac.Write([]byte(s))
	return mac.Sum(nil)
}

func TestHMACMalformed(t *testing.T) {
	s := frame.NewSigner([]byte("k"))
	var none *frame.Signer
	for _, bad := range []frame.Annotations{
		frame.Annotations("HMA"),
		append(hmacChunks("HMAC", "01234567890123456789"), 'X'),
		frame.Annotations("CORR\x00\x10short"),
	} {
		var ae *frame.AnnotationError
		if err := s.Verify(nil, bad); !errors.As(err, &ae) {
			t.Errorf("Verify(%q) = %v, want *AnnotationError", bad, err)
		}
		if err := none.Verify(nil, bad); !errors.As(err, &ae) {
			t.Errorf("nil Verify(%q) = %v, want *AnnotationError", bad, err)
		}
		if _, err := s.Digest(nil, bad); !errors.As(err, &ae) {
			t.Errorf("Digest(%q) = %v, want *AnnotationError", bad, err)
		}
		if _, err := frame.HMACDigest([]byte("k"), nil, bad); !errors.As(err, &ae) {
			t.Errorf("HMACDigest(%q) = %v, want *AnnotationError", bad, err)
		}
		dst := []byte("keep")
		out, err := s.AppendSigned(dst, nil, bad, &testCorr)
		if !errors.As(err, &ae) || string(out) != "keep" {
			t.Errorf("AppendSigned(%q) = %q, %v", bad, out, err)
		}
		out, h, err := s.AppendSignedHead(dst, frame.Header{Type: frame.Invoke}, nil, bad, nil)
		if !errors.As(err, &ae) || string(out) != "keep" || h != (frame.Header{}) {
			t.Errorf("AppendSignedHead(%q) = %q, %+v, %v", bad, out, h, err)
		}
	}
}

// TestHMACAppendSigned checks the re-signed annotations chunk by chunk and the limit.
func TestHMACAppendSigned(t *testing.T) {
	a, b := frame.NewSigner([]byte("key A")), frame.NewSigner([]byte("key B"))
	var none *frame.Signer
	payload := []byte("payload")
	in, err := a.AppendSigned(nil, payload, hmacChunks("ZZZZ", "z", "CORR", "old corr 0123456", "AAAA", "a", "CORR", "older corr 01234"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(payload, in); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		s      *frame.Signer
		corr   *[frame.CorrLen]byte
		chunks []string // ids in order
	}{
		{"keep corr", b, nil, []string{"ZZZZ", "CORR", "AAAA", "CORR", "HMAC"}},
		{"new corr", b, &testCorr, []string{"ZZZZ", "AAAA", "CORR", "HMAC"}},
		{"unsigned", none, nil, []string{"ZZZZ", "CORR", "AAAA", "CORR"}},
		{"unsigned new corr", none, &testCorr, []string{"ZZZZ", "AAAA", "CORR"}},
	} {
		dst := make([]byte, 3, 512)
		copy(dst, "pre")
		out, err := c.s.AppendSigned(dst, payload, in, c.corr)
		if err != nil || string(out[:3]) != "pre" || &out[0] != &dst[0] {
			t.Fatalf("%s: AppendSigned = %q, %v", c.name, out, err)
		}
		got := frame.Annotations(out[3:])
		var ids []string
		for it := got.Iter(); it.Next(); {
			ids = append(ids, it.ID().String())
			if id := it.ID(); id != frame.HMAC && id != frame.CORR {
				if want, _ := frame.Annotations(in).Lookup(id); !bytes.Equal(it.Value(), want) {
					t.Errorf("%s: chunk %s = %q, want %q", c.name, id, it.Value(), want)
				}
			}
		}
		if !slices.Equal(ids, c.chunks) {
			t.Errorf("%s: chunks %q, want %q", c.name, ids, c.chunks)
		}
		if corr, _ := got.Lookup(frame.CORR); c.corr != nil && !bytes.Equal(corr, c.corr[:]) {
			t.Errorf("%s: CORR %x", c.name, corr)
		}
		if err := c.s.Verify(payload, got); err != nil {
			t.Errorf("%s: Verify with the signing key: %v", c.name, err)
		}
		wantA := frame.ErrHMACMismatch
		if c.s == nil {
			wantA = frame.ErrHMACNotSymmetric
		}
		if err := a.Verify(payload, got); err != wantA {
			t.Errorf("%s: Verify with key A = %v, want %v", c.name, err, wantA)
		}
	}

	// The limit: annotations that fit only without the HMAC and CORR chunks.
	big := frame.AppendAnnotation(nil, frame.ChunkID([]byte("BIGG")), make([]byte, frame.MaxChunkLen-6-20))
	if out, err := none.AppendSigned(nil, payload, big, nil); err != nil || len(out) != frame.MaxChunkLen-20 {
		t.Errorf("unsigned big: %d bytes, %v", len(out), err)
	}
	var se *frame.SizeError
	if out, err := b.AppendSigned([]byte("x"), payload, big, nil); !errors.As(err, &se) || string(out) != "x" || se.Size != frame.MaxChunkLen+6 {
		t.Errorf("signed big: %d bytes, %v", len(out), err)
	}
	if _, err := none.AppendSigned(nil, payload, big, &testCorr); !errors.As(err, &se) {
		t.Errorf("unsigned big with CORR: %v", err)
	}
	exact := frame.AppendAnnotation(nil, frame.ChunkID([]byte("BIGG")), make([]byte, frame.MaxChunkLen-6-26))
	if out, err := b.AppendSigned(nil, payload, exact, nil); err != nil || len(out) != frame.MaxChunkLen {
		t.Errorf("signed, exactly 65535 bytes: %d, %v", len(out), err)
	}
}

// TestHMACResignGolden re-signs every golden signed message with key B, with and without
// a new CORR chunk, through AppendSignedHead: the result parses, keeps type, flags, seq,
// serializer and payload, verifies with B and not with the capture key A.
func TestHMACResignGolden(t *testing.T) {
	a := frame.NewSigner([]byte(goldenHMACKey))
	b := frame.NewSigner([]byte("backend key B"))
	for _, v := range hmacGolden(t) {
		ann, payload := v.annotations(), v.payload()
		if err := a.Verify(payload, ann); err != nil {
			t.Fatalf("%s: %v", v.name(), err)
		}
		for _, corr := range []*[frame.CorrLen]byte{nil, &testCorr} {
			h := v.header()
			h.Seq += 7 // the dispatcher's seq: not covered by the HMAC
			msg, hh, err := b.AppendSignedHead(nil, h, payload, ann, corr)
			if err != nil {
				t.Fatalf("%s: AppendSignedHead: %v", v.name(), err)
			}
			got, err := frame.ParseHeader(msg)
			if err != nil || got != hh || got.Type != h.Type || got.Flags != h.Flags || got.Seq != h.Seq ||
				got.Serializer != h.Serializer || got.DataLen != len(payload) || len(msg) != frame.HeaderSize+got.AnnLen {
				t.Fatalf("%s: header %+v (returned %+v), %v; %d bytes", v.name(), got, hh, err, len(msg))
			}
			out := frame.Annotations(msg[frame.HeaderSize:])
			if err := b.Verify(payload, out); err != nil {
				t.Errorf("%s: Verify with key B: %v", v.name(), err)
			}
			if err := a.Verify(payload, out); err != frame.ErrHMACMismatch {
				t.Errorf("%s: Verify with key A = %v", v.name(), err)
			}
			if c, ok := out.Lookup(frame.CORR); corr != nil && (!ok || !bytes.Equal(c, corr[:])) {
				t.Errorf("%s: CORR %x, %v", v.name(), c, ok)
			}
			// Signing back with A gives the captured HMAC when nothing else changed.
			if corr == nil {
				back, err := a.AppendSigned(nil, payload, out, nil)
				if err != nil || !bytes.Equal(back, ann) {
					t.Errorf("%s: re-signed back with A: %x, %v; captured %x", v.name(), back, err, ann)
				}
			}
		}
	}
}

// pyroRecvScript reads JSON lines {"hex": message, "key": key or null} and reads each
// message with Pyro4's own Message.recv, which checks the header and the HMAC.
const pyroRecvScript = `
import json, sys
from Pyro4 import message

class BytesConnection(object):
    def __init__(self, data):
        self.data, self.pos = data, 0
    def recv(self, size):
        chunk = self.data[self.pos:self.pos + size]
        self.pos += len(chunk)
        return chunk

for line in sys.stdin:
    req = json.loads(line)
    raw = bytes.fromhex(req["hex"])
    key = req["key"].encode() if req["key"] is not None else None
    conn = BytesConnection(raw)
    try:
        msg = message.Message.recv(conn, hmac_key=key)
        out = {"ok": True, "rest": len(raw) - conn.pos, "seq": msg.seq, "data": msg.data.hex(),
               "annotations": {k: v.hex() for k, v in msg.annotations.items()}}
    except Exception as x:
        out = {"ok": False, "error": "%s.%s: %s" % (type(x).__module__, type(x).__name__, x)}
    print(json.dumps(out), flush=True)
`

type pyroRecvResult struct {
	OK          bool              `json:"ok"`
	Error       string            `json:"error"`
	Rest        int               `json:"rest"`
	Seq         int               `json:"seq"`
	Data        string            `json:"data"`
	Annotations map[string]string `json:"annotations"`
}

func pyroRecv(t *testing.T, reqs []map[string]any) []pyroRecvResult {
	t.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, r := range reqs {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	out, _ := pyro4test.RunPython(t, pyroRecvScript, in.Bytes())
	var res []pyroRecvResult
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var r pyroRecvResult
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("python output %q: %v", out, err)
		}
		res = append(res, r)
	}
	if len(res) != len(reqs) {
		t.Fatalf("python answered %d of %d messages:\n%s", len(res), len(reqs), out)
	}
	return res
}

// TestHMACPyro4Verifies re-signs the golden signed messages in Go with key B, with an
// injected CORR and extra chunks (ids out of order, an empty value, a repeated id), and
// has real Pyro4 read them: with B they are accepted with the annotations Go wrote, with
// the capture key they are refused with "message hmac mismatch", and without a key with
// "hmac key config not symmetric"; the unsigned variant is the reverse.
func TestHMACPyro4Verifies(t *testing.T) {
	pyro4test.Python(t)
	const keyB = "backend key B ünï"
	b := frame.NewSigner([]byte(keyB))
	var none *frame.Signer
	extras := []frame.Annotations{
		nil,
		hmacChunks("ZZZZ", "last id", "AAAA", "first id", "MMMM", ""),
		hmacChunks("XTRA", "repeated, first", "BBBB", "\x00\xff binary", "XTRA", "repeated, last"),
	}
	type sent struct {
		name    string
		signed  bool
		payload []byte
		ann     frame.Annotations
		seq     uint16
		corr    bool // testCorr injected
	}
	var msgs []sent
	var reqs []map[string]any
	for _, v := range hmacGolden(t) {
		for i, extra := range extras {
			ann := append(v.annotations().AppendWithout(nil, frame.HMAC), extra...)
			for _, s := range []*frame.Signer{b, none} {
				h := v.header()
				h.Seq = uint16(1000 + len(msgs))
				msg, _, err := s.AppendSignedHead(nil, h, v.payload(), ann, &testCorr)
				if err != nil {
					t.Fatal(err)
				}
				msg = append(msg, v.payload()...)
				m := sent{fmt.Sprintf("%s extra%d signed=%v", v.name(), i, s != nil), s != nil, v.payload(), frame.Annotations(msg[frame.HeaderSize : len(msg)-len(v.payload())]), h.Seq, true}
				for _, key := range []any{keyB, goldenHMACKey, nil} {
					msgs = append(msgs, m)
					reqs = append(reqs, map[string]any{"hex": hex.EncodeToString(msg), "key": key})
				}
			}
		}
	}
	// A repeated HMAC chunk: Pyro4 compares the last one.
	for _, c := range []struct {
		name      string
		goodFirst bool
	}{{"bogus then good HMAC", false}, {"good then bogus HMAC", true}} {
		payload := []byte("payload")
		good, err := b.AppendSigned(nil, payload, hmacChunks("AAAA", "a"), nil)
		if err != nil {
			t.Fatal(err)
		}
		bogus := hmacChunks("HMAC", strings.Repeat("x", frame.HMACSize))
		ann := append(bogus, good...)
		if c.goodFirst {
			ann = append(append(frame.Annotations(nil), good...), bogus...)
		}
		h := frame.Header{Type: frame.Invoke, Serializer: frame.Serpent, Seq: 1}
		msg := frame.AppendMessage(nil, h, ann, payload)
		if err := b.Verify(payload, ann); (err == nil) == c.goodFirst {
			t.Errorf("%s: Verify = %v", c.name, err)
		}
		msgs = append(msgs, sent{c.name, true, payload, ann, 1, false})
		reqs = append(reqs, map[string]any{"hex": hex.EncodeToString(msg), "key": keyB})
	}
	res := pyroRecv(t, reqs)
	ok := 0
	for i, r := range res {
		m, key := msgs[i], reqs[i]["key"]
		var want string
		switch {
		case m.name == "good then bogus HMAC":
			want = "Pyro4.errors.SecurityError: message hmac mismatch"
		case m.signed && key == keyB, !m.signed && key == nil:
			want = ""
		case m.signed && key == nil, !m.signed && key != nil:
			want = "Pyro4.errors.SecurityError: hmac key config not symmetric"
		default:
			want = "Pyro4.errors.SecurityError: message hmac mismatch"
		}
		if want != "" {
			if r.OK || r.Error != want {
				t.Errorf("%s, Pyro4 key %v: %+v; want %q", m.name, key, r, want)
			}
			continue
		}
		if !r.OK {
			t.Errorf("%s, Pyro4 key %v: refused: %s", m.name, key, r.Error)
			continue
		}
		ok++
		wantAnn := map[string]string{}
		for it := m.ann.Iter(); it.Next(); {
			wantAnn[it.ID().String()] = hex.EncodeToString(it.Value()) // the last repeat wins
		}
		if r.Rest != 0 || r.Seq != int(m.seq) || r.Data != hex.EncodeToString(m.payload) || !maps.Equal(r.Annotations, wantAnn) {
			t.Errorf("%s: Pyro4 read %+v; want seq %d, annotations %v", m.name, r, m.seq, wantAnn)
		}
		if m.corr && r.Annotations["CORR"] != hex.EncodeToString(testCorr[:]) {
			t.Errorf("%s: Pyro4 read CORR %s", m.name, r.Annotations["CORR"])
		}
	}
	if ok != 2*32*len(extras)+1 {
		t.Errorf("Pyro4 accepted %d messages, want %d", ok, 2*32*len(extras)+1)
	}
}

// pyroSignScript prints, for each case, a message Pyro4 builds and signs with the key in
// argv[1]: INVOKE, serpent, seq = case index, with the given payload and annotations.
const pyroSignScript = `
import json, sys
from Pyro4 import message
key = sys.argv[1].encode()
cases = [
    (b"", {}),
    (b"payload", {}),
    (b"payload", {"CORR": bytes(range(16))}),
    (b"p", {"ZZZZ": b"z", "AAAA": b"a", "CORR": bytes(16), "XYZZ": b"", "BLBI": b"\x00\x01\xff"}),
    (b"\x00" * 100000, {"ZZZZ": b"\xfe" * 60000, "aaaa": b"lower case id"}),
    (b"p", {"HMAC": b"the user's own HMAC chunk is replaced", "QQQQ": b"q"}),
]
for i, (data, ann) in enumerate(cases):
    m = message.Message(message.MSG_INVOKE, data, 1, 0, i, annotations=ann, hmac_key=key)
    print(json.dumps({"hex": m.to_bytes().hex(), "hmac": m.annotations["HMAC"].hex()}))
`

// TestHMACPyro4Signs has real Pyro4 sign messages with extra annotations, and checks
// that Go verifies them with the key (and not with another one or none) and computes
// the HMAC Pyro4 put in them.
func TestHMACPyro4Signs(t *testing.T) {
	pyro4test.Python(t)
	const key = "pyro4 signing key"
	out, _ := pyro4test.RunPython(t, pyroSignScript, nil, key)
	s := frame.NewSigner([]byte(key))
	other := frame.NewSigner([]byte("another key"))
	var none *frame.Signer
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var c struct{ Hex, HMAC string }
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("python output %q: %v", line, err)
		}
		raw, _ := hex.DecodeString(c.Hex)
		h, err := frame.ParseHeader(raw)
		if err != nil || len(raw) != frame.HeaderSize+h.BodyLen() {
			t.Fatalf("case %d: %+v, %v", n, h, err)
		}
		ann := frame.Annotations(raw[frame.HeaderSize : frame.HeaderSize+h.AnnLen])
		payload := raw[frame.HeaderSize+h.AnnLen:]
		if err := s.Verify(payload, ann); err != nil {
			t.Errorf("case %d: Verify: %v", n, err)
		}
		if d, err := s.Digest(payload, ann); err != nil || hex.EncodeToString(d[:]) != c.HMAC {
			t.Errorf("case %d: Digest %x, %v; Pyro4 %s", n, d, err, c.HMAC)
		}
		if err := other.Verify(payload, ann); err != frame.ErrHMACMismatch {
			t.Errorf("case %d: Verify with another key: %v", n, err)
		}
		if err := none.Verify(payload, ann); err != frame.ErrHMACNotSymmetric {
			t.Errorf("case %d: Verify without a key: %v", n, err)
		}
		// Pyro4 writes the chunks in dict order, HMAC last (or where a user's HMAC was);
		// re-signing with the same key keeps the other chunks and gives the same digest.
		re, err := s.AppendSigned(nil, payload, ann, nil)
		if v, _ := frame.Annotations(re).Lookup(frame.HMAC); err != nil || hex.EncodeToString(v) != c.HMAC {
			t.Errorf("case %d: re-signed HMAC %x, %v", n, v, err)
		}
		n++
	}
	if n != 6 {
		t.Errorf("%d cases", n)
	}
}

// pyroDaemonScript runs a Pyro4 daemon with the HMAC key argv[1] and server type argv[2],
// serving an object with an echo method as argv[3], and prints its port.
const pyroDaemonScript = `
import sys, Pyro4
Pyro4.config.SERVERTYPE = sys.argv[2]
Pyro4.config.SERIALIZERS_ACCEPTED = {"serpent", "json", "marshal", "pickle"}

@Pyro4.expose
class Golden(object):
    def echo(self, x):
        return x
    def fail(self, x):
        raise ValueError(x)

d = Pyro4.Daemon(host="127.0.0.1", port=0)
d._pyroHmacKey = sys.argv[1].encode()
d.register(Golden(), sys.argv[3])
print(d.sock.getsockname()[1], flush=True)
d.requestLoop()
`

type wireMsg struct {
	raw     []byte
	h       frame.Header
	ann     frame.Annotations
	payload []byte
}

func readWire(t *testing.T, c net.Conn) (wireMsg, error) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, frame.HeaderSize)
	if _, err := io.ReadFull(c, head); err != nil {
		return wireMsg{}, err
	}
	h, err := frame.ParseHeader(head)
	if err != nil {
		t.Fatalf("reply header: %v", err)
	}
	raw := append(head, make([]byte, h.BodyLen())...)
	if _, err := io.ReadFull(c, raw[frame.HeaderSize:]); err != nil {
		t.Fatalf("reply body: %v", err)
	}
	return wireMsg{raw, h, frame.Annotations(raw[frame.HeaderSize : frame.HeaderSize+h.AnnLen]), raw[frame.HeaderSize+h.AnnLen:]}, nil
}

// TestHMACPyro4Daemon talks to a real Pyro4 daemon that has an HMAC key, over a raw
// socket, with golden messages re-signed in Go. Correctly re-signed ones (a new CORR
// injected) are served, and the replies verify with the key. A CONNECT signed with
// another key, or not signed, is answered with a CONNECTFAIL that Go rebuilds (seq 0
// whatever the CONNECT's seq, marshal, the reason, the daemon's CORR if any, signed with the
// daemon's key: byte for byte but for CPython's FLAG_REF bit on the marshal string) and the
// connection is closed; an INVOKE or PING so signed gets no answer at all: the
// daemon closes the connection.
func TestHMACPyro4Daemon(t *testing.T) {
	pyro4test.Python(t)
	const key = "daemon key"
	daemonKey, wrong := frame.NewSigner([]byte(key)), frame.NewSigner([]byte("wrong key"))
	var none *frame.Signer
	// The serpent connection of the golden capture: CONNECT, echo, fail, PING.
	var conn0 []*goldenVector
	for _, v := range hmacGolden(t) {
		if v.Conn == 0 && v.Dir == "c2s" {
			conn0 = append(conn0, v)
		}
	}
	connect, invoke, ping := conn0[0], conn0[1], conn0[3]
	if connect.header().Type != frame.Connect || invoke.header().Type != frame.Invoke || ping.header().Type != frame.Ping {
		t.Fatal("unexpected golden hmac/conn0 messages")
	}
	resign := func(s *frame.Signer, v *goldenVector, seq uint16, corr *[frame.CorrLen]byte) []byte {
		h := v.header()
		h.Seq = seq
		msg, _, err := s.AppendSignedHead(nil, h, v.payload(), v.annotations(), corr)
		if err != nil {
			t.Fatal(err)
		}
		return append(msg, v.payload()...)
	}
	for _, server := range []string{"thread", "multiplex"} {
		t.Run(server, func(t *testing.T) {
			p := pyro4test.StartDaemon(t, pyroDaemonScript, key, server, connect.Expect.Object)
			dial := func() net.Conn {
				c, err := net.DialTimeout("tcp", "127.0.0.1:"+p.Line, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			}
			send := func(c net.Conn, b []byte) {
				if _, err := c.Write(b); err != nil {
					t.Fatal(err)
				}
			}
			expectEOF := func(c net.Conn, what string) {
				if m, err := readWire(t, c); err != io.EOF {
					t.Errorf("%s: after it read %+v, %v; want the connection closed (EOF)", what, m.h, err)
				}
			}
			expectOK := func(c net.Conn, typ frame.MsgType, seq uint16, corr []byte) wireMsg {
				m, err := readWire(t, c)
				if err != nil {
					t.Fatalf("reading the %s: %v", typ, err)
				}
				if m.h.Type != typ || m.h.Seq != seq {
					t.Fatalf("got %s seq %d (%q), want %s seq %d", m.h.Type, m.h.Seq, m.payload, typ, seq)
				}
				if err := daemonKey.Verify(m.payload, m.ann); err != nil {
					t.Errorf("%s reply: Verify with the daemon key: %v", typ, err)
				}
				if got, _ := m.ann.Lookup(frame.CORR); corr != nil && !bytes.Equal(got, corr) {
					t.Errorf("%s reply: CORR %x, want %x", typ, got, corr)
				}
				return m
			}

			// Well signed: the daemon serves, echoes the CORR we injected and signs.
			c := dial()
			corr2 := testCorr
			corr2[15]++
			send(c, resign(daemonKey, connect, 5, &testCorr))
			expectOK(c, frame.ConnectOK, 5, testCorr[:])
			send(c, resign(daemonKey, invoke, 6, &corr2))
			if m := expectOK(c, frame.Result, 6, corr2[:]); !bytes.Contains(m.payload, []byte("signed")) {
				t.Errorf("echo result %q", m.payload)
			}
			send(c, resign(daemonKey, ping, 7, nil))
			expectOK(c, frame.Ping, 7, nil)

			// A refused CONNECT: CONNECTFAIL, then the connection is closed.
			for _, bad := range []struct {
				name   string
				s      *frame.Signer
				reason error
			}{{"wrong key", wrong, frame.ErrHMACMismatch}, {"no key", none, frame.ErrHMACNotSymmetric}} {
				c := dial()
				send(c, resign(bad.s, connect, 9, nil))
				m, err := readWire(t, c)
				if err != nil {
					t.Fatalf("CONNECT with %s: %v", bad.name, err)
				}
				if err := daemonKey.Verify(m.payload, m.ann); err != nil {
					t.Errorf("CONNECTFAIL: Verify with the daemon key: %v", err)
				}
				// Rebuild it: what a dispatcher sends to reproduce the daemon's answer.
				payload, err := frame.AppendStringPayload(nil, frame.Marshal, bad.reason.Error())
				if err != nil {
					t.Fatal(err)
				}
				var ann frame.Annotations
				if corr, ok := m.ann.Lookup(frame.CORR); ok {
					ann = frame.AppendAnnotation(nil, frame.CORR, corr)
				}
				// CPython marshals the reason with FLAG_REF (0x80) on its type code, as the
				// string is shared with the exception's args; it decodes the same.
				if len(m.payload) == 0 || m.payload[0]&^0x80 != payload[0] || !bytes.Equal(m.payload[1:], payload[1:]) {
					t.Errorf("CONNECT with %s: CONNECTFAIL payload %q, want the marshal string %q", bad.name, m.payload, payload)
				}
				payload = m.payload
				want, _, err := daemonKey.AppendSignedHead(nil, frame.Header{Type: frame.ConnectFail, Serializer: frame.Marshal}, payload, ann, nil)
				if err != nil {
					t.Fatal(err)
				}
				if want = append(want, payload...); !bytes.Equal(m.raw, want) {
					t.Errorf("CONNECT with %s: daemon sent\n%x (%s seq %d %q)\nGo builds\n%x", bad.name, m.raw, m.h.Type, m.h.Seq, m.payload, want)
				}
				expectEOF(c, "CONNECTFAIL")
			}

			// A refused INVOKE or PING after a good CONNECT: no answer, the connection closes.
			for _, bad := range []struct {
				name string
				s    *frame.Signer
				v    *goldenVector
			}{{"INVOKE wrong key", wrong, invoke}, {"INVOKE no key", none, invoke}, {"PING wrong key", wrong, ping}, {"PING no key", none, ping}} {
				c := dial()
				send(c, resign(daemonKey, connect, 0, nil))
				expectOK(c, frame.ConnectOK, 0, nil)
				send(c, resign(bad.s, bad.v, 1, nil))
				expectEOF(c, bad.name)
			}
		})
	}
}

func TestHMACAllocs(t *testing.T) {
	s := frame.NewSigner([]byte("key"))
	var none *frame.Signer
	payload := bytes.Repeat([]byte("payload "), 100)
	// Out of order ids and a repeat, so the sort runs.
	ann := hmacChunks("ZZZZ", "z", "XTRA", "1", "CORR", "0123456789abcdef", "AAAA", "a", "XTRA", "2", "BLBI", "blob info")
	signed, err := s.AppendSigned(nil, payload, ann, nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]byte, 0, 1024)
	for name, f := range map[string]func(){
		"Digest": func() {
			if _, err := s.Digest(payload, signed); err != nil {
				t.Fatal(err)
			}
		},
		"Verify": func() {
			if err := s.Verify(payload, signed); err != nil {
				t.Fatal(err)
			}
		},
		"Verify mismatch": func() {
			if err := s.Verify(payload[1:], signed); err != frame.ErrHMACMismatch {
				t.Fatal(err)
			}
		},
		"nil Verify": func() {
			if err := none.Verify(payload, signed); err != frame.ErrHMACNotSymmetric {
				t.Fatal(err)
			}
		},
		"AppendSigned": func() {
			if _, err := s.AppendSigned(dst[:0], payload, signed, &testCorr); err != nil {
				t.Fatal(err)
			}
		},
		"AppendSignedHead": func() {
			if _, _, err := s.AppendSignedHead(dst[:0], frame.Header{Type: frame.Invoke}, payload, signed, &testCorr); err != nil {
				t.Fatal(err)
			}
		},
	} {
		f() // warm up: the Signer's scratch grows once
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}

// fuzzChunks turns arbitrary bytes into well-formed annotations: repeatedly a 4-byte id,
// a length byte and up to that many value bytes.
func fuzzChunks(b []byte) frame.Annotations {
	var a []byte
	for len(b) >= 5 {
		id, n := frame.ChunkID(b[:4]), int(b[4])
		b = b[5:]
		n = min(n, len(b))
		a = frame.AppendAnnotation(a, id, b[:n])
		b = b[n:]
	}
	return a
}

func FuzzHMAC(f *testing.F) {
	f.Add([]byte("key"), []byte("payload"), []byte("CORR\x100123456789abcdefZZZZ\x01zAAAA\x00HMAC\x03abc"), true)
	f.Add([]byte{}, []byte{}, []byte{}, false)
	f.Add([]byte("k"), []byte("p"), []byte(hmacChunks("HMAC", "01234567890123456789", "XTRA", "x")), false)
	f.Fuzz(func(t *testing.T, key, payload, raw []byte, withCorr bool) {
		s := frame.NewSigner(key)
		var corr *[frame.CorrLen]byte
		if withCorr {
			corr = &testCorr
		}
		// Arbitrary annotations: no panic, and malformed ones are reported as such.
		var ae *frame.AnnotationError
		malformed := frame.Annotations(raw).Validate() != nil
		if err := s.Verify(payload, raw); malformed != errors.As(err, &ae) {
			t.Fatalf("Verify of %x: %v (malformed %v)", raw, err, malformed)
		}
		if d, err := frame.HMACDigest(key, payload, raw); malformed != errors.As(err, &ae) {
			t.Fatalf("HMACDigest of %x: %v (malformed %v)", raw, err, malformed)
		} else if err == nil && !bytes.Equal(d[:], refDigest(key, payload, raw)) {
			t.Fatalf("HMACDigest of %x = %x, reference %x", raw, d, refDigest(key, payload, raw))
		}
		if out, err := s.AppendSigned(nil, payload, raw, corr); malformed != (err != nil) {
			t.Fatalf("AppendSigned of %x: %q, %v (malformed %v)", raw, out, err, malformed)
		}

		// Well-formed annotations: sign, then verify.
		ann := fuzzChunks(raw)
		msg, h, err := s.AppendSignedHead(nil, frame.Header{Type: frame.Invoke, Seq: 3}, payload, ann, corr)
		if err != nil {
			var se *frame.SizeError
			if !errors.As(err, &se) || se.Size <= frame.MaxChunkLen {
				t.Fatalf("AppendSignedHead of %x: %v", ann, err)
			}
			return
		}
		if got, err := frame.ParseHeader(msg); err != nil || got != h || len(msg) != frame.HeaderSize+h.AnnLen || h.DataLen != len(payload) {
			t.Fatalf("header %+v (returned %+v), %v; %d bytes", got, h, err, len(msg))
		}
		out := frame.Annotations(msg[frame.HeaderSize:])
		if err := s.Verify(payload, out); err != nil {
			t.Fatalf("Verify of signed %x: %v", out, err)
		}
		if s == nil {
			if _, ok := out.Lookup(frame.HMAC); ok {
				t.Fatalf("no key, but an HMAC chunk in %x", out)
			}
			return
		}
		mac, _ := lastValue(out, frame.HMAC)
		if want := refDigest(key, payload, out); !bytes.Equal(mac, want) {
			t.Fatalf("HMAC %x, reference %x", mac, want)
		}
		if err := frame.NewSigner(append(key, 'x')).Verify(payload, out); err != frame.ErrHMACMismatch {
			t.Fatalf("Verify with another key: %v", err)
		}
		var none *frame.Signer
		if err := none.Verify(payload, out); err != frame.ErrHMACNotSymmetric {
			t.Fatalf("Verify without a key: %v", err)
		}
		// Chunks other than HMAC and (with a new one) CORR are kept in order.
		keep := func(id frame.ChunkID) bool { return id != frame.HMAC && (corr == nil || id != frame.CORR) }
		var a, b []string
		for it := ann.Iter(); it.Next(); {
			if keep(it.ID()) {
				a = append(a, it.ID().String()+"="+string(it.Value()))
			}
		}
		for it := out.Iter(); it.Next(); {
			if keep(it.ID()) {
				b = append(b, it.ID().String()+"="+string(it.Value()))
			}
		}
		if !slices.Equal(a, b) {
			t.Fatalf("chunks %q became %q", a, b)
		}
	})
}

func BenchmarkSignerVerify(b *testing.B) {
	s := frame.NewSigner([]byte("key"))
	payload := bytes.Repeat([]byte("x"), 512)
	signed, _ := s.AppendSigned(nil, payload, hmacChunks("CORR", "0123456789abcdef", "BLBI", "info"), nil)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Verify(payload, signed); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignerResign(b *testing.B) {
	s := frame.NewSigner([]byte("key"))
	payload := bytes.Repeat([]byte("x"), 512)
	signed, _ := s.AppendSigned(nil, payload, hmacChunks("CORR", "0123456789abcdef", "BLBI", "info"), nil)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.AppendSignedHead(dst[:0], frame.Header{Type: frame.Invoke}, payload, signed, &testCorr); err != nil {
			b.Fatal(err)
		}
	}
}
