package nsview

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// Errors of Rewrite, compared with errors.Is. When Rewrite fails the payload should be
// passed on as it is: nothing in it was changed.
var (
	// ErrNotTranslatable: the serializer is not serpent, json or marshal (pickle, dill,
	// cloudpickle and msgpack are not decoded here).
	ErrNotTranslatable = errors.New("nsview: serializer not translatable")
	// ErrMalformed: the payload is not valid in its serializer (wrapped by *DecodeError;
	// a truncated payload also matches io.ErrUnexpectedEOF).
	ErrMalformed = errors.New("nsview: malformed payload")
	// ErrUnsupported: valid, but written in a way this package does not rewrite (wrapped
	// by *DecodeError), such as a triple-quoted serpent string or a marshal code object.
	ErrUnsupported = errors.New("nsview: unsupported payload")
	// ErrLimit: the payload is deeper, has more values or would grow more than Limits
	// allow (wrapped by *DecodeError).
	ErrLimit = errors.New("nsview: limit exceeded")
	// ErrBadAddr: Translate returned an address that cannot be written into a URI.
	ErrBadAddr = errors.New("nsview: invalid translated address")
)

// DecodeError is a payload Rewrite cannot rewrite: where and why.
type DecodeError struct {
	Serializer frame.Serializer
	Offset     int    // byte offset in the (decompressed) payload
	Reason     string // what is wrong there
	Err        error  // ErrMalformed, ErrUnsupported or ErrLimit
	eof        bool   // the payload ends too early
}

// Error describes the problem and where it is.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("nsview: %s payload at byte %d: %s", e.Serializer, e.Offset, e.Reason)
}

// Unwrap returns Err, and io.ErrUnexpectedEOF for a truncated payload.
func (e *DecodeError) Unwrap() []error {
	if e.eof {
		return []error{e.Err, io.ErrUnexpectedEOF}
	}
	return []error{e.Err}
}

// Translate is called for every URI Rewrite finds in a reply value, in payload order:
// the object id and address it reports are what a client would connect to. It returns
// the address to write instead and true, or false to leave the URI as it is; returning
// the URI's own address changes nothing. It must return the same answer for the same
// URI. A value that a marshal payload shares by reference (the same str object under
// two names, a container met twice) is reported once. The URI's strings stay valid
// after the call. A URI str without a location whose object ends in '@' is left as it
// is whatever Translate says: a location written after it would be read back with
// another object id.
type Translate func(u URI) (Addr, bool)

// Limits bound the work and memory of one Rewrite. Zero fields take the defaults.
type Limits struct {
	MaxDepth    int // nesting of containers; default 100
	MaxValues   int // values of any kind (each string, number, container...); default 1<<20
	MaxGrowth   int // bytes the result may exceed the payload by; default len(payload)+64KiB
	MaxInflated int // RewriteCompressed: largest decompressed payload; default 64 MiB
}

// Default limits.
const (
	DefaultMaxDepth    = 100
	DefaultMaxValues   = 1 << 20
	DefaultMaxInflated = 64 << 20
	defaultGrowthSlack = 64 << 10
)

func (l Limits) depth() int  { return orDefault(l.MaxDepth, DefaultMaxDepth) }
func (l Limits) values() int { return orDefault(l.MaxValues, DefaultMaxValues) }
func (l Limits) growth(n int) int {
	return orDefault(l.MaxGrowth, n+defaultGrowthSlack)
}
func (l Limits) inflated() int { return orDefault(l.MaxInflated, DefaultMaxInflated) }

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// Rewriter rewrites payloads, keeping its buffers (and a bounded cache of the strings it
// passes to Translate) from one call to the next. The zero Rewriter is ready to use; it
// is not safe for concurrent use.
type Rewriter struct {
	Limits Limits

	t    tree
	w    walker
	strs map[string]string // interned URI parts, so steady traffic does not allocate
	zip  zipState
}

// maxInterned bounds the string cache: entries, and the length of a cached string.
const (
	maxInterned    = 4096
	maxInternedLen = 256
)

// str returns b as a string, from the cache when it is there.
func (rw *Rewriter) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if s, ok := rw.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= maxInternedLen {
		if rw.strs == nil || len(rw.strs) >= maxInterned {
			rw.strs = make(map[string]string, 64)
		}
		rw.strs[s] = s
	}
	return s
}

// Rewrite appends payload to dst with the address of every URI found in it replaced as
// translate says, and reports whether any byte changed. payload is the reply value of a
// call in serializer ser, not compressed (see RewriteCompressed). Only the URIs change:
// every other byte is copied as it is, so with nothing to translate out is dst with
// payload appended, byte for byte. A nil translate only checks the payload.
//
// The URIs are the str values core.URI accepts ("PYRO:obj@host:port", "PYRO:obj@[::1]:
// port", "PYRO:obj@./u:/path", "PYRONAME:name@host:port", "PYROMETA:a,b@host") and the
// URI objects (a dict whose "__class__" is "Pyro4.core.URI" and whose "state" is
// (protocol, object, sockname, host, port)), wherever they are in the value except in
// dict keys, which are left as they are. A rewritten str keeps its text up to the
// location; a rewritten object gets new sockname, host and port fields. The new values
// are encoded as the serializer encodes them (Python repr in serpent, json.dumps with
// ensure_ascii=False, marshal string codes with their reference flags kept).
//
// On error, dst is returned unchanged; translate may have been called already. A
// message whose payload changed needs its HMAC annotation, if it has one, computed again.
func (rw *Rewriter) Rewrite(dst, payload []byte, ser frame.Serializer, translate Translate) (out []byte, changed bool, err error) {
	if err := checkSerializer(ser); err != nil {
		return dst, false, err
	}
	if len(payload) > frame.MaxDataLen {
		return dst, false, &DecodeError{Serializer: ser, Reason: "payload longer than 2^31-1 bytes", Err: ErrLimit}
	}
	defer rw.release()
	if err := rw.t.parse(payload, ser, rw.Limits); err != nil {
		return dst, false, err
	}
	return rw.w.run(rw, dst, payload, ser, translate)
}

// What a Rewriter keeps between calls: buffers up to these sizes, so that one large
// payload does not pin its memory for good.
const (
	keepValues = 1 << 14
	keepBytes  = 1 << 20
)

// release drops the payload and the buffers that grew past what is kept.
func (rw *Rewriter) release() {
	rw.t.in = nil
	if cap(rw.t.nodes) > keepValues {
		rw.t.nodes, rw.t.slots, rw.w.slots = nil, nil, nil
	}
	if cap(rw.w.vals) > keepBytes || cap(rw.w.buf) > keepBytes {
		rw.w.vals, rw.w.buf = nil, nil
	}
	if rw.zip.inflated.Cap() > keepBytes || cap(rw.zip.plain) > keepBytes {
		rw.zip.inflated, rw.zip.plain = bytes.Buffer{}, nil
	}
}

func checkSerializer(ser frame.Serializer) error {
	switch ser {
	case frame.Serpent, frame.JSON, frame.Marshal:
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotTranslatable, ser)
}

var pool = sync.Pool{New: func() any { return new(Rewriter) }}

// Rewrite is Rewriter.Rewrite with default limits and a Rewriter from a pool.
func Rewrite(dst, payload []byte, ser frame.Serializer, translate Translate) (out []byte, changed bool, err error) {
	rw := pool.Get().(*Rewriter)
	defer pool.Put(rw)
	return rw.Rewrite(dst, payload, ser, translate)
}
