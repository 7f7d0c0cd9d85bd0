package frame

import "github.com/google/uuid"

// CorrLen is the length of a CORR annotation value: a raw 16-byte uuid.
const CorrLen = 16

// NewCorr returns a fresh correlation id: a random (version 4) uuid, what a Pyro4 daemon
// makes up for a request without one (uuid.uuid4). It comes from uuid's buffered pool of
// randomness, so it allocates nothing (crypto/rand.Read into a local array does under
// the race detector).
func NewCorr() [CorrLen]byte {
	id, _ := uuid.NewRandom() // never fails: crypto/rand crashes the program instead
	return id
}

// init turns on uuid's pool of randomness for NewCorr. uuid.EnableRandPool must not run
// while any goroutine makes a uuid (it sets a plain global), so it runs here, before
// main and before any test; turned on lazily, it raced with uuid.New elsewhere (pyrocall).
func init() {
	uuid.EnableRandPool()
}

// AppendHead appends the header h and the annotations ann to dst, with h.AnnLen set to
// len(ann) and the checksum computed. It returns the extended slice and the header as
// written. The payload is not touched: the caller sends it after these bytes.
func AppendHead(dst []byte, h Header, ann Annotations) ([]byte, Header) {
	h.AnnLen = len(ann)
	dst = h.Append(dst)
	return append(dst, ann...), h
}

// AppendForward appends the header and annotations of a message being forwarded: h with
// the given seq, and ann with a CORR chunk holding newCorr added when ann has none and
// newCorr is not nil. It returns the extended dst, the header as written and the message's
// correlation id (aliasing dst or ann; nil when it has none). The payload is not touched.
func AppendForward(dst []byte, h Header, ann Annotations, seq uint16, newCorr *[CorrLen]byte) ([]byte, Header, []byte) {
	h.Seq = seq
	corr, ok := ann.Lookup(CORR)
	if ok || newCorr == nil {
		out, hh := AppendHead(dst, h, ann)
		return out, hh, corr
	}
	h.AnnLen = len(ann) + chunkHeadLen + CorrLen
	dst = h.Append(dst)
	dst = append(dst, ann...)
	dst = AppendAnnotation(dst, CORR, newCorr[:])
	return dst, h, dst[len(dst)-CorrLen:]
}
