package frame

import (
	"encoding/binary"
	"strconv"
)

// ChunkID is the 4-byte ASCII id of an annotation chunk.
type ChunkID [4]byte

// Reserved annotation ids.
var (
	CORR = ChunkID{'C', 'O', 'R', 'R'} // correlation id, 16 raw uuid bytes
	HMAC = ChunkID{'H', 'M', 'A', 'C'} // HMAC-SHA1 of payload and other annotations
	BLBI = ChunkID{'B', 'L', 'B', 'I'} // SerializedBlob info, Python marshal of a 3-tuple
	STRM = ChunkID{'S', 'T', 'R', 'M'} // item stream id
)

// String returns the id as text.
func (id ChunkID) String() string { return string(id[:]) }

// MaxChunkLen is the largest value an annotation chunk can hold.
const MaxChunkLen = 65535

// chunkHeadLen is the size of a chunk's id and length fields.
const chunkHeadLen = 6

// Annotations is the raw annotation area of a message: concatenated chunks of a 4-byte id,
// a 2-byte big-endian length and the value. Its methods work in place and never copy;
// returned values alias the slice.
type Annotations []byte

// Validate checks that the chunk lengths add up exactly to len(a).
func (a Annotations) Validate() error {
	it := a.Iter()
	for it.Next() {
	}
	return it.Err()
}

// Lookup returns the value of the first chunk with the given id.
// It reports false when there is none or the annotations are malformed.
func (a Annotations) Lookup(id ChunkID) ([]byte, bool) {
	it := a.Iter()
	for it.Next() {
		if it.ID() == id {
			return it.Value(), true
		}
	}
	return nil, false
}

// Iter returns an iterator over the chunks of a.
func (a Annotations) Iter() AnnotationIter { return AnnotationIter{a: a, next: 0, cur: -1} }

// AnnotationIter walks annotation chunks without allocating:
//
//	for it := ann.Iter(); it.Next(); { use(it.ID(), it.Value()) }
//
// Check Err after the loop: a malformed chunk ends the iteration with an *AnnotationError.
type AnnotationIter struct {
	a    Annotations
	next int // offset of the next chunk
	cur  int // offset of the current chunk, -1 before the first
	vlen int
	err  error
}

// Next advances to the next chunk and reports whether there is one.
func (it *AnnotationIter) Next() bool {
	if it.err != nil || it.next >= len(it.a) {
		return false
	}
	rest := it.a[it.next:]
	if len(rest) < chunkHeadLen {
		it.err = &AnnotationError{Offset: it.next, Reason: "truncated chunk header (" + strconv.Itoa(len(rest)) + " bytes left)"}
		return false
	}
	n := int(binary.BigEndian.Uint16(rest[4:]))
	if n > len(rest)-chunkHeadLen {
		it.err = &AnnotationError{Offset: it.next, Reason: "chunk " + strconv.Quote(string(rest[:4])) +
			" length " + strconv.Itoa(n) + " exceeds the " + strconv.Itoa(len(rest)-chunkHeadLen) + " bytes left"}
		return false
	}
	it.cur, it.vlen = it.next, n
	it.next += chunkHeadLen + n
	return true
}

// ID returns the current chunk's id.
func (it *AnnotationIter) ID() ChunkID { return ChunkID(it.a[it.cur : it.cur+4]) }

// Value returns the current chunk's value, aliasing the annotations.
func (it *AnnotationIter) Value() []byte {
	s := it.cur + chunkHeadLen
	return it.a[s : s+it.vlen : s+it.vlen]
}

// Err returns the error that ended the iteration, if any.
func (it *AnnotationIter) Err() error { return it.err }

// AppendAnnotation appends one chunk to dst. Values longer than MaxChunkLen are the
// caller's error; the length field keeps only the low 16 bits.
func AppendAnnotation(dst []byte, id ChunkID, value []byte) []byte {
	dst = append(dst, id[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(value)))
	return append(dst, value...)
}

// AppendWithout appends to dst every chunk of a except those with the given id, and
// returns the extended slice. Malformed trailing bytes are dropped.
func (a Annotations) AppendWithout(dst []byte, id ChunkID) []byte {
	for it := a.Iter(); it.Next(); {
		if it.ID() != id {
			dst = AppendAnnotation(dst, it.ID(), it.Value())
		}
	}
	return dst
}
