package frame

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"hash"
	"slices"
)

// This file computes and checks the HMAC signature of Pyro4 messages (message.py
// Message.hmac and Message.recv), for a dispatcher that verifies a peer's messages with
// one key and signs what it forwards with another.
//
// When a key is set, Pyro4 adds an "HMAC" chunk holding
//
//	HMAC-SHA1(key, payload || v1 || v2 || ... || vn)
//
// where v1..vn are the values of the other annotation chunks, ordered by chunk id (Python
// sorts the ids as ASCII strings: byte order). Message.recv keeps the annotations in a
// dict, so of chunks sharing an id only the last one counts, both in the digest and as the
// HMAC value compared. Nothing else is covered: not the header (type, flags, seq,
// serializer id), nor the chunk ids or lengths, so the digest does not fix where the
// payload ends and one value begins. An empty key is no key, as in Pyro4.

// HMACSize is the length of an HMAC annotation value: a SHA-1 digest.
const HMACSize = sha1.Size

// HMACError is the refusal of a message because of its HMAC chunk. Its Error text is
// exactly the message of the Pyro4.errors.SecurityError that Pyro4's Message.recv raises,
// without this package's "frame: " prefix, so it can be sent to a Pyro4 peer as it is.
// The values returned are ErrHMACMismatch and ErrHMACNotSymmetric; compare with errors.Is.
//
// A Pyro4 daemon answers a CONNECT it refuses so with a CONNECTFAIL carrying that text
// (seq 0 whatever the CONNECT's seq, marshal serializer, signed with its own key) and
// closes the connection; a Pyro4 client with another key or none then fails its own check
// of that reply with the same text, raised as CommunicationError("cannot connect to
// <address>: <text>"). An INVOKE or PING refused so gets no answer: the daemon closes the
// connection, and the client raises ConnectionClosedError("receiving: not enough data").
type HMACError struct {
	Reason string // "message hmac mismatch" or "hmac key config not symmetric"
}

// Error returns Pyro4's text, Reason.
func (e *HMACError) Error() string { return e.Reason }

// The HMAC refusals Pyro4 knows.
var (
	// ErrHMACMismatch: the message is signed, but not with the receiver's key (or its
	// payload or annotations were changed).
	ErrHMACMismatch = &HMACError{Reason: "message hmac mismatch"}
	// ErrHMACNotSymmetric: the message is signed and the receiver has no key, or the
	// receiver has a key and the message is not signed.
	ErrHMACNotSymmetric = &HMACError{Reason: "hmac key config not symmetric"}
)

// chunkRef locates one annotation value to be digested.
type chunkRef struct {
	id  uint32 // the chunk id, big-endian, for ordering
	off int    // offset of the value in the annotations
	n   int    // length of the value
}

// Signer computes and checks Pyro4 HMAC signatures with one key. After its first few
// messages it does not allocate. A Signer is not safe for concurrent use.
//
// A nil *Signer (or a zero Signer) is a party without a key: it verifies only unsigned
// messages and its Append methods write unsigned ones. NewSigner returns nil for an empty
// key.
type Signer struct {
	mac  hash.Hash
	refs []chunkRef     // scratch: the chunks of the message being digested
	sum  [HMACSize]byte // scratch for mac.Sum: a field, so that it does not escape per call
}

// NewSigner returns a Signer for key, or nil when key is empty: Pyro4 treats an empty key
// as no key at all (it neither signs nor accepts signed messages). The key is copied.
func NewSigner(key []byte) *Signer {
	if len(key) == 0 {
		return nil
	}
	return &Signer{mac: hmac.New(sha1.New, key), refs: make([]chunkRef, 0, 8)}
}

// HMACDigest returns the HMAC Pyro4 computes for a message with the given payload and
// annotations under key: HMAC-SHA1 of the payload followed by the values of the
// annotation chunks other than HMAC, ordered by id, the last of repeated ids only. Unlike
// a Signer it uses key as given, empty or not, and allocates; malformed annotations give
// an *AnnotationError.
func HMACDigest(key, payload []byte, ann Annotations) ([HMACSize]byte, error) {
	s := &Signer{mac: hmac.New(sha1.New, key)}
	if _, _, err := s.collect(ann); err != nil {
		return [HMACSize]byte{}, err
	}
	return s.digest(payload, ann), nil
}

// keyless reports whether s has no key.
func (s *Signer) keyless() bool { return s == nil || s.mac == nil }

// collect fills s.refs with the chunks of ann that the digest covers, sorted by id and,
// within an id, by position, and returns the value of the last HMAC chunk.
func (s *Signer) collect(ann Annotations) (mac []byte, signed bool, err error) {
	s.refs = s.refs[:0]
	sorted := true
	it := ann.Iter()
	for it.Next() {
		id := it.ID()
		if id == HMAC {
			mac, signed = it.Value(), true
			continue
		}
		r := chunkRef{id: binary.BigEndian.Uint32(id[:]), off: it.cur + chunkHeadLen, n: it.vlen}
		if k := len(s.refs); k > 0 && s.refs[k-1].id >= r.id {
			sorted = false
		}
		s.refs = append(s.refs, r)
	}
	if err := it.Err(); err != nil {
		return nil, false, err
	}
	if !sorted {
		slices.SortFunc(s.refs, func(a, b chunkRef) int {
			if c := cmp.Compare(a.id, b.id); c != 0 {
				return c
			}
			return cmp.Compare(a.off, b.off)
		})
	}
	return mac, signed, nil
}

// digest computes the HMAC of payload and the chunks collect found in ann.
func (s *Signer) digest(payload []byte, ann Annotations) [HMACSize]byte {
	s.mac.Reset()
	s.mac.Write(payload)
	for i, r := range s.refs {
		if i+1 < len(s.refs) && s.refs[i+1].id == r.id {
			continue // a later chunk with the same id replaces this one, as in Pyro4's dict
		}
		s.mac.Write(ann[r.off : r.off+r.n])
	}
	s.mac.Sum(s.sum[:0])
	return s.sum
}

// Digest returns the HMAC of a message with the given payload and annotations, as
// HMACDigest computes it with the Signer's key; any HMAC chunk in ann is ignored.
// Malformed annotations give an *AnnotationError. A nil Signer has no key and returns
// ErrHMACNotSymmetric.
func (s *Signer) Digest(payload []byte, ann Annotations) ([HMACSize]byte, error) {
	if s.keyless() {
		return [HMACSize]byte{}, ErrHMACNotSymmetric
	}
	if _, _, err := s.collect(ann); err != nil {
		return [HMACSize]byte{}, err
	}
	return s.digest(payload, ann), nil
}

// Verify checks a received message as Pyro4's Message.recv does with the Signer's key
// (none for a nil Signer): it returns ErrHMACNotSymmetric when the message is signed and
// there is no key or there is a key and the message is not signed, ErrHMACMismatch when
// the last HMAC chunk is not the message's digest (compared in constant time), an
// *AnnotationError when the annotations are malformed, and nil otherwise.
func (s *Signer) Verify(payload []byte, ann Annotations) error {
	if s.keyless() {
		signed := false
		it := ann.Iter()
		for it.Next() {
			signed = signed || it.ID() == HMAC
		}
		if err := it.Err(); err != nil {
			return err
		}
		if signed {
			return ErrHMACNotSymmetric
		}
		return nil
	}
	mac, signed, err := s.collect(ann)
	if err != nil {
		return err
	}
	if !signed {
		return ErrHMACNotSymmetric
	}
	sum := s.digest(payload, ann)
	if !hmac.Equal(mac, sum[:]) {
		return ErrHMACMismatch
	}
	return nil
}

// AppendSigned appends to dst the annotations of ann re-signed with the Signer's key and
// returns the extended slice: every chunk of ann but HMAC, in order; when corr is not
// nil, the CORR chunks replaced by one holding *corr, after the others; and last an HMAC
// chunk with the digest of payload and these annotations. A nil Signer appends the same
// chunks without an HMAC chunk, as a party without a key sends them.
//
// The spare capacity of dst must not overlap ann or payload. It does not allocate when
// dst has room for the result. On error dst is returned
// unchanged: an *AnnotationError for malformed annotations, or a *SizeError when the
// result is over the 65535 bytes a header can announce.
func (s *Signer) AppendSigned(dst []byte, payload []byte, ann Annotations, corr *[CorrLen]byte) ([]byte, error) {
	start := len(dst)
	it := ann.Iter()
	for it.Next() {
		if id := it.ID(); id != HMAC && (corr == nil || id != CORR) {
			dst = AppendAnnotation(dst, id, it.Value())
		}
	}
	if err := it.Err(); err != nil {
		return dst[:start], err
	}
	if corr != nil {
		dst = AppendAnnotation(dst, CORR, corr[:])
	}
	if !s.keyless() {
		out := Annotations(dst[start:])
		if _, _, err := s.collect(out); err != nil {
			return dst[:start], err // not reached: the chunks were just written
		}
		sum := s.digest(payload, out)
		dst = AppendAnnotation(dst, HMAC, sum[:])
	}
	if n := len(dst) - start; n > MaxChunkLen {
		return dst[:start], &SizeError{What: "annotations", Size: int64(n), Limit: MaxChunkLen}
	}
	return dst, nil
}

// AppendSignedHead appends the header and annotations of a message re-signed with the
// Signer's key, for the payload that the caller sends after them: h with DataLen set to
// len(payload) and AnnLen to the length of the annotations, then the annotations
// AppendSigned makes of ann and corr. It returns the extended slice and the header as
// written. Allocation and errors are as for AppendSigned; on error dst is returned
// unchanged. The caller keeps payload within MaxDataLen.
func (s *Signer) AppendSignedHead(dst []byte, h Header, payload []byte, ann Annotations, corr *[CorrLen]byte) ([]byte, Header, error) {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	out, err := s.AppendSigned(dst, payload, ann, corr)
	if err != nil {
		return dst[:start], Header{}, err
	}
	h.DataLen = len(payload)
	h.AnnLen = len(out) - start - HeaderSize
	h.Put(out[start:])
	return out, h, nil
}
