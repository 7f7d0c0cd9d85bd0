package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultReadBufferSize is the initial size of a Reader's buffer: enough for the header,
// usual annotations and a small payload, small enough for many idle connections.
const DefaultReadBufferSize = 2048

// Message is one message as read by a Reader. Its slices alias the Reader's buffer and
// are valid only until the next call to the Reader's Next.
type Message struct {
	Header      Header
	Raw         []byte      // the 24 header bytes as received
	Annotations Annotations // all annotation chunks, validated
	Payload     []byte      // the payload bytes already buffered: a prefix of the payload
	Remaining   int         // payload bytes not yet read from the source
}

// Whole reports whether the complete payload is in Payload.
func (m *Message) Whole() bool { return m.Remaining == 0 }

// Reader reads Pyro4 messages from a byte stream into one buffer it owns and reuses.
// Next buffers the header and the annotations, plus whatever payload bytes arrived with
// them, and never reads past the end of a message whose payload is not yet complete, so
// the caller can move the rest straight from the source (CopyRest, which lets the kernel
// splice between sockets) or buffer it (ReadRest).
type Reader struct {
	src        io.Reader
	lim        Limits
	buf        []byte
	size       int // the initial buffer size, for a buffer given up by Release
	start, end int // buf[start:end] holds bytes read and not yet handed out
	msgStart   int // offset of the current message's header in buf
	pending    int // payload bytes of the current message still on src
	rest       io.LimitedReader
}

// NewReader returns a Reader over src with a buffer of the given initial size
// (DefaultReadBufferSize when size < HeaderSize) that enforces lim.
func NewReader(src io.Reader, size int, lim Limits) *Reader {
	if size < HeaderSize {
		size = DefaultReadBufferSize
	}
	return &Reader{src: src, lim: lim, buf: make([]byte, size), size: size}
}

// Release gives up the buffer when nothing is buffered (it reports whether it did), for
// a reader that will wait long: the next read allocates one of the initial size again.
func (r *Reader) Release() bool {
	if r.end != r.start || r.pending != 0 {
		return false
	}
	r.buf, r.start, r.end, r.msgStart = nil, 0, 0, 0
	return true
}

// Reset makes r read from src, keeping its buffer and limits.
func (r *Reader) Reset(src io.Reader) {
	r.src = src
	r.start, r.end, r.msgStart, r.pending = 0, 0, 0, 0
}

// Buffered returns the number of bytes read from the source past the current message.
func (r *Reader) Buffered() int { return r.end - r.start }

// Wait blocks until at least one byte of the next message is buffered. A caller uses it
// to wait for an idle peer under one deadline and then read the message under another.
func (r *Reader) Wait() error {
	if r.pending != 0 {
		return ErrPayloadPending
	}
	if r.end > r.start {
		return nil
	}
	r.start, r.end = 0, 0
	err := r.fill(1)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return err
}

// NextBuffered reports whether the whole next message (header, annotations and payload)
// is already in the buffer, so that Next and ReadRest need no read from the source.
func (r *Reader) NextBuffered() bool {
	n := r.end - r.start
	if r.pending != 0 || n < HeaderSize {
		return false
	}
	b := r.buf[r.start:]
	body := int64(binary.BigEndian.Uint16(b[18:])) + int64(int32(binary.BigEndian.Uint32(b[12:])))
	return int64(n) >= HeaderSize+body
}

// Wrapper is a source that reads, unchanged, from an inner reader, such as a connection
// type around a socket: CopyRest copies from the innermost one (wrappers may nest), so
// that the kernel can still splice a payload from that socket.
type Wrapper interface {
	Inner() io.Reader
}

// ErrPayloadPending is returned by Next when the previous message's payload was neither
// read nor copied nor discarded.
var ErrPayloadPending = errors.New("frame: previous payload not consumed")

// Next reads the next message's header and annotations. io.EOF means the stream ended
// cleanly between messages; a stream that ends inside a message gives io.ErrUnexpectedEOF.
// Errors of this package's types mean the stream is broken and must be closed.
func (r *Reader) Next() (Message, error) {
	if r.pending != 0 {
		return Message{}, ErrPayloadPending
	}
	if r.start == r.end {
		r.start, r.end = 0, 0
	}
	if err := r.fill(HeaderSize); err != nil {
		if err == io.ErrUnexpectedEOF && r.end == r.start {
			err = io.EOF
		}
		return Message{}, err
	}
	h, err := ParseHeader(r.buf[r.start:])
	if err != nil {
		return Message{}, err
	}
	if err := r.lim.Check(h); err != nil {
		return Message{}, err
	}
	if err := r.fill(HeaderSize + h.AnnLen); err != nil {
		return Message{}, err
	}
	m := Message{Header: h}
	r.msgStart = r.start
	p := r.start + HeaderSize
	m.Raw = r.buf[r.start:p:p]
	m.Annotations = Annotations(r.buf[p : p+h.AnnLen : p+h.AnnLen])
	if err := m.Annotations.Validate(); err != nil {
		return Message{}, err
	}
	p += h.AnnLen
	n := min(r.end-p, h.DataLen)
	m.Payload = r.buf[p : p+n : p+n]
	m.Remaining = h.DataLen - n
	r.start = p + n
	r.pending = m.Remaining
	return m, nil
}

// fill makes sure at least n bytes are buffered from r.start, compacting or growing the
// buffer, and reads no more than the buffer's free space.
func (r *Reader) fill(n int) error {
	if r.end-r.start >= n {
		return nil
	}
	if len(r.buf)-r.start < n {
		if len(r.buf) < n {
			nb := make([]byte, max(n, 2*len(r.buf), r.size))
			r.end = copy(nb, r.buf[r.start:r.end])
			r.buf = nb
		} else {
			r.end = copy(r.buf, r.buf[r.start:r.end])
		}
		r.start = 0
	}
	for r.end-r.start < n {
		k, err := r.src.Read(r.buf[r.end:])
		r.end += k
		if err != nil {
			if r.end-r.start >= n {
				return nil
			}
			if err == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// ReadRest reads the rest of m's payload into the buffer so that m.Payload holds all of
// it. The buffer grows as needed; the caller bounds message sizes with Limits.
func (r *Reader) ReadRest(m *Message) error {
	if m.Remaining == 0 {
		return nil
	}
	if m.Remaining != r.pending {
		return fmt.Errorf("frame: ReadRest on a message that is not the current one")
	}
	// r.start == r.end here: a partial payload means nothing past it was read.
	msgLen := HeaderSize + m.Header.BodyLen()
	if len(r.buf)-r.msgStart < msgLen {
		nb := make([]byte, max(msgLen, 2*len(r.buf)))
		r.end = copy(nb, r.buf[r.msgStart:r.end])
		r.buf, r.msgStart = nb, 0
	}
	stop := r.msgStart + msgLen
	if _, err := io.ReadFull(r.src, r.buf[r.end:stop]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	p := r.msgStart + HeaderSize
	m.Raw = r.buf[r.msgStart:p:p]
	m.Annotations = Annotations(r.buf[p : p+m.Header.AnnLen : p+m.Header.AnnLen])
	p += m.Header.AnnLen
	m.Payload = r.buf[p:stop:stop]
	m.Remaining, r.pending = 0, 0
	r.start, r.end = stop, stop
	return nil
}

// CopyRest copies the rest of m's payload from the source to dst the way io.CopyN does,
// so that between two TCP or unix sockets the kernel splices it without a user-space copy.
func (r *Reader) CopyRest(dst io.Writer, m *Message) (int64, error) {
	if m.Remaining != r.pending {
		return 0, fmt.Errorf("frame: CopyRest on a message that is not the current one")
	}
	if m.Remaining == 0 {
		return 0, nil
	}
	// io.Copy of a *io.LimitedReader, as io.CopyN does, but reusing one LimitedReader.
	src := inner(r.src)
	r.rest = io.LimitedReader{R: src, N: int64(m.Remaining)}
	n, err := io.Copy(dst, &r.rest)
	r.rest.R = nil
	if err == nil && n < int64(m.Remaining) {
		err = io.EOF
	}
	r.pending -= int(n)
	m.Remaining -= int(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// MoveRest hands the rest of m's payload to move, which takes it straight from the
// source (such as splice.Pipe.Copy) and returns how many bytes it took, also on failure;
// the reader's position follows, so that after a failure on dst's side the rest can still
// be discarded and the stream stays in step.
func (r *Reader) MoveRest(dst io.Writer, m *Message, move func(dst io.Writer, src io.Reader, n int64) (int64, error)) (int64, error) {
	if m.Remaining != r.pending {
		return 0, fmt.Errorf("frame: MoveRest on a message that is not the current one")
	}
	if m.Remaining == 0 {
		return 0, nil
	}
	src := inner(r.src)
	n, err := move(dst, src, int64(m.Remaining))
	r.pending -= int(n)
	m.Remaining -= int(n)
	return n, err
}

// Discard reads and drops the rest of m's payload.
func (r *Reader) Discard(m *Message) error {
	_, err := r.CopyRest(io.Discard, m)
	return err
}

// inner returns the reader under src's wrappers (Wrapper), however many.
func inner(src io.Reader) io.Reader {
	for {
		w, ok := src.(Wrapper)
		if !ok {
			return src
		}
		src = w.Inner()
	}
}
