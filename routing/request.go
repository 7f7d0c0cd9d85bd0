package routing

import (
	"fmt"
	"net/netip"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// Request is what is known of a client connection at its CONNECT, or of one call: all a
// rule or a hash key may read. A session owns one and resets it per message, so the
// peeks and the cache key reuse its buffers. Its message slices are valid only until the
// next Reset, and only as long as the message's own slices are (the Reader's buffer).
type Request struct {
	connect bool
	client  netip.Addr
	msg     frame.Message // a copy: a pointer would make the caller's message escape

	// What was peeked from the payload (or the BLBI annotation), filled on first use.
	peeked  peekState
	names   []byte // object id, then method name
	split   int    // names[:split] is the object id
	blob    []byte // the raw BLBI annotation of a SerializedBlob call
	blobInf *frame.BlobInfo

	key []byte // scratch for the decision cache key
}

type peekState uint8

const (
	notPeeked peekState = iota
	peekedOK
	peekFailed
)

// Reset prepares r for a new message: a CONNECT (connect true) or a call, from client (an
// invalid Addr for unix-socket clients). Rules see the payload bytes m holds now.
func (r *Request) Reset(connect bool, client netip.Addr, m *frame.Message) {
	r.connect, r.client, r.msg = connect, client, *m
	r.peeked, r.names, r.split, r.blob, r.blobInf = notPeeked, r.names[:0], 0, nil, nil
}

// ResetCall prepares r for a call known by its facts rather than a message (the HTTP
// gateway's): method on object from client, in serializer, with annotations ann (which
// r keeps, as it keeps a message's).
func (r *Request) ResetCall(client netip.Addr, s frame.Serializer, object, method string, ann frame.Annotations) {
	r.connect, r.client = false, client
	r.msg = frame.Message{Header: frame.Header{Type: frame.Invoke, Serializer: s}, Annotations: ann}
	r.names = append(append(r.names[:0], object...), method...)
	r.split, r.peeked, r.blob, r.blobInf = len(object), peekedOK, nil, nil
}

// Serializer returns the message's serializer id.
func (r *Request) Serializer() frame.Serializer { return r.msg.Header.Serializer }

// Annotation returns the value of an annotation chunk of the message.
func (r *Request) Annotation(id frame.ChunkID) ([]byte, bool) { return r.msg.Annotations.Lookup(id) }

// peek reads object and method once: from the BLBI annotation of a SerializedBlob call
// (whose payload is the blob, not a call), else from the payload prefix (INVOKE), or the
// object from a CONNECT payload. It reports false when they cannot be read.
func (r *Request) peek() bool {
	if r.peeked != notPeeked {
		return r.peeked == peekedOK
	}
	r.peeked = peekFailed
	h := &r.msg.Header
	switch {
	case r.connect:
		out, err := frame.AppendPeekConnectObject(r.names[:0], h.Serializer, h.Flags, r.msg.Payload)
		if err != nil {
			return false
		}
		r.names, r.split = out, len(out)
	case r.isBlob():
		bi, err := r.blobInfo()
		if err != nil {
			return false
		}
		r.names = append(append(r.names[:0], bi.Object...), bi.Method...)
		r.split = len(bi.Object)
	case h.Type == frame.Invoke:
		out, split, err := frame.AppendPeekInvoke(r.names[:0], h.Serializer, h.Flags, r.msg.Payload)
		if err != nil {
			return false
		}
		r.names, r.split = out, split
	default: // a PING names no object
		return false
	}
	r.peeked = peekedOK
	return true
}

// isBlob reports whether the message is a SerializedBlob call, and keeps its BLBI value.
func (r *Request) isBlob() bool {
	if r.connect {
		return false
	}
	if r.blob == nil {
		r.blob, _ = r.msg.Annotations.Lookup(frame.BLBI)
	}
	return r.blob != nil
}

// blobInfo decodes the BLBI annotation once.
func (r *Request) blobInfo() (*frame.BlobInfo, error) {
	if r.blobInf == nil {
		bi, err := frame.DecodeBlobInfo(r.blob)
		if err != nil {
			return nil, err
		}
		r.blobInf = &bi
	}
	return r.blobInf, nil
}

// object returns the object id, when it can be read.
func (r *Request) object() ([]byte, bool) {
	if !r.peek() {
		return nil, false
	}
	return r.names[:r.split], true
}

// method returns the method name of a call, when it can be read.
func (r *Request) method() ([]byte, bool) {
	if r.connect || !r.peek() {
		return nil, false
	}
	return r.names[r.split:], true
}

// blobText returns the info of a SerializedBlob call as text, when there is one: a str
// as it is, other values as Python would print them in a tuple (roughly).
func (r *Request) blobText() (string, bool) {
	if !r.isBlob() {
		return "", false
	}
	bi, err := r.blobInfo()
	if err != nil {
		return "", false
	}
	switch v := bi.Info.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	case nil:
		return "None", true
	default:
		return fmt.Sprint(v), true
	}
}
