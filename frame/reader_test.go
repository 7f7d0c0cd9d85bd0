package frame

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func message(t MsgType, seq uint16, ann Annotations, payload string) []byte {
	h := Header{Type: t, Seq: seq, DataLen: len(payload), Serializer: Serpent, AnnLen: len(ann)}
	out, _ := AppendHead(nil, h, ann)
	return append(out, payload...)
}

func TestReaderSequence(t *testing.T) {
	ann := chunks("CORR", "0123456789abcdef")
	var stream []byte
	payloads := []string{"", "x", strings.Repeat("p", 300), strings.Repeat("q", 5000)}
	for i, p := range payloads {
		stream = append(stream, message(Invoke, uint16(i), ann, p)...)
	}
	for _, size := range []int{0, 30, 64, 1 << 16} {
		for name, src := range map[string]io.Reader{
			"whole":   bytes.NewReader(stream),
			"onebyte": iotest.OneByteReader(bytes.NewReader(stream)),
			"half":    iotest.HalfReader(bytes.NewReader(stream)),
		} {
			r := NewReader(src, size, Limits{MaxMessageSize: 1 << 20})
			for i, p := range payloads {
				m, err := r.Next()
				if err != nil {
					t.Fatalf("size %d %s msg %d: %v", size, name, i, err)
				}
				if m.Header.Seq != uint16(i) || !bytes.Equal(m.Annotations, ann) {
					t.Fatalf("size %d %s msg %d: header %+v", size, name, i, m.Header)
				}
				if len(m.Payload)+m.Remaining != len(p) {
					t.Fatalf("size %d %s msg %d: %d buffered + %d remaining != %d", size, name, i, len(m.Payload), m.Remaining, len(p))
				}
				if i%2 == 0 {
					if err := r.ReadRest(&m); err != nil || string(m.Payload) != p || !m.Whole() {
						t.Fatalf("size %d %s msg %d: ReadRest %v", size, name, i, err)
					}
					if h, err := ParseHeader(m.Raw); err != nil || h != m.Header {
						t.Fatalf("size %d %s msg %d: Raw after ReadRest: %v", size, name, i, err)
					}
				} else {
					var sink bytes.Buffer
					sink.Write(m.Payload)
					if _, err := r.CopyRest(&sink, &m); err != nil || sink.String() != p {
						t.Fatalf("size %d %s msg %d: CopyRest %v", size, name, i, err)
					}
				}
			}
			if _, err := r.Next(); err != io.EOF {
				t.Fatalf("size %d %s: end of stream gave %v, want io.EOF", size, name, err)
			}
		}
	}
}

// The reader must not consume bytes past an incomplete payload: the rest belongs to
// whoever copies it straight from the source.
func TestReaderStopsAtPayload(t *testing.T) {
	payload := strings.Repeat("z", 10000)
	stream := append(message(Invoke, 1, nil, payload), message(Ping, 2, nil, "pong")...)
	src := bytes.NewReader(stream)
	r := NewReader(src, 128, Limits{})
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if m.Remaining == 0 || src.Len() != m.Remaining+len(stream)-HeaderSize-len(payload) {
		t.Fatalf("read past the payload: %d remaining, %d left on source", m.Remaining, src.Len())
	}
	if r.NextBuffered() {
		t.Fatal("NextBuffered with a payload pending")
	}
	if _, err := r.Next(); !errors.Is(err, ErrPayloadPending) {
		t.Fatalf("Next with a pending payload gave %v", err)
	}
	if err := r.Discard(&m); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(); err != nil || !r.NextBuffered() {
		t.Fatalf("the PING is buffered after Wait: %v %v", err, r.NextBuffered())
	}
	m, err = r.Next()
	if err != nil || m.Header.Type != Ping || string(m.Payload) != "pong" {
		t.Fatalf("next message %+v %v", m.Header, err)
	}
}

func TestReaderErrors(t *testing.T) {
	good := message(Invoke, 1, chunks("CORR", "0123456789abcdef"), "payload")
	badAnn := bytes.Clone(good)
	badAnn[HeaderSize+5]++ // chunk length one longer than the annotation area
	var (
		se *SizeError
		ae *AnnotationError
		me *MagicError
	)
	cases := []struct {
		name string
		in   []byte
		lim  Limits
		ok   func(error) bool
	}{
		{"empty", nil, Limits{}, func(err error) bool { return err == io.EOF }},
		{"half header", good[:10], Limits{}, func(err error) bool { return err == io.ErrUnexpectedEOF }},
		{"half annotations", good[:HeaderSize+3], Limits{}, func(err error) bool { return err == io.ErrUnexpectedEOF }},
		{"too large", good, Limits{MaxMessageSize: 10}, func(err error) bool { return errors.As(err, &se) }},
		{"bad annotations", badAnn, Limits{}, func(err error) bool { return errors.As(err, &ae) }},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Limits{}, func(err error) bool { return errors.As(err, &me) }},
	}
	for _, c := range cases {
		_, err := NewReader(bytes.NewReader(c.in), 0, c.lim).Next()
		if !c.ok(err) {
			t.Errorf("%s: got %v", c.name, err)
		}
	}
	r := NewReader(bytes.NewReader(good[:len(good)-2]), 0, Limits{})
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ReadRest(&m); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated payload gave %v", err)
	}
}

// BenchmarkReaderNext reads small messages from a stream that is refilled in place: the
// steady state must not allocate.
func BenchmarkReaderNext(b *testing.B) {
	msg := message(Invoke, 1, chunks("CORR", "0123456789abcdef"), strings.Repeat("p", 200))
	src := bytes.NewReader(msg)
	r := NewReader(src, 0, Limits{})
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		src.Reset(msg)
		m, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := r.ReadRest(&m); err != nil {
			b.Fatal(err)
		}
	}
}

// Release gives the buffer up only between messages with nothing read ahead; the reader
// then reads on with a new buffer of its initial size.
func TestReaderRelease(t *testing.T) {
	var stream []byte
	for i := range 3 {
		stream = append(stream, message(Invoke, uint16(i), nil, strings.Repeat("x", 100))...)
	}
	first := len(stream) / 3
	r := NewReader(iotest.HalfReader(bytes.NewReader(stream)), 64, Limits{})
	m, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	if r.Release() {
		t.Fatal("released with a payload pending")
	}
	r = NewReader(bytes.NewReader(stream), 1024, Limits{}) // reads all three at once
	if m, err = r.Next(); err == nil {
		err = r.ReadRest(&m)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Buffered() == 0 || r.Release() {
		t.Fatalf("released with %d bytes of the next message buffered", r.Buffered())
	}
	r = NewReader(bytes.NewReader(stream[:first]), 64, Limits{})
	if m, err = r.Next(); err == nil {
		err = r.ReadRest(&m)
	}
	if err != nil || r.Buffered() != 0 {
		t.Fatalf("%v, %d buffered", err, r.Buffered())
	}
	if !r.Release() || r.buf != nil {
		t.Fatal("not released between messages")
	}
	r.Reset(bytes.NewReader(stream[first:]))
	for i := 1; i < 3; i++ {
		if err := r.Wait(); err != nil {
			t.Fatal(err)
		}
		if len(r.buf) != 64 && i == 1 {
			t.Fatalf("new buffer of %d bytes, want the initial 64", len(r.buf))
		}
		if m, err = r.Next(); err == nil {
			err = r.ReadRest(&m)
		}
		if err != nil || m.Header.Seq != uint16(i) || len(m.Payload) != 100 {
			t.Fatalf("message %d after Release: %+v %v", i, m.Header, err)
		}
		r.Release()
	}
}
