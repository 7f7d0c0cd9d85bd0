package dispatch

import (
	"bytes"
	"fmt"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// hmacKeys are a listener's HMAC keys (listeners[].hmac), read when the configuration
// is loaded or reloaded. With keys that differ the dispatcher re-signs: it verifies what
// each side sends with that side's key and signs what it forwards with the other's (a
// side without a key sends and gets unsigned messages). With none, or the same key on
// both sides, signed messages pass through untouched, as the daemon verifies them.
type hmacKeys struct {
	client, backend []byte
}

func readHMACKeys(h *config.HMAC) (hmacKeys, error) {
	c, b, err := h.Keys()
	return hmacKeys{client: c, backend: b}, err
}

// resign reports whether messages must be verified and signed again.
func (k hmacKeys) resign() bool {
	return (k.client != nil || k.backend != nil) && !bytes.Equal(k.client, k.backend)
}

// sessionHMAC re-signs one session's messages. Requests are handled by the session's
// goroutine, replies by whoever relays them (in pipelined mode the connection's reader):
// each direction has signers of its own, as a Signer is not safe for concurrent use.
// A nil Signer stands for a side without a key.
type sessionHMAC struct {
	reqVerify, reqSign *frame.Signer // client key, backend key
	repVerify, repSign *frame.Signer // backend key, client key
	ann                []byte        // a verified CONNECT's annotations without HMAC
	rhead              []byte        // a re-signed reply's header and annotations
}

func newSessionHMAC(k hmacKeys) *sessionHMAC {
	if !k.resign() {
		return nil
	}
	return &sessionHMAC{
		reqVerify: frame.NewSigner(k.client), reqSign: frame.NewSigner(k.backend),
		repVerify: frame.NewSigner(k.backend), repSign: frame.NewSigner(k.client),
	}
}

// verifyRequest reads the whole of the client's message m (a signature covers the whole
// payload; bounded by limits.max_message_size) and checks it with the client key. The
// error's text is Pyro4's own ("message hmac mismatch", "hmac key config not symmetric").
func (h *sessionHMAC) verifyRequest(r *frame.Reader, m *frame.Message) error {
	if err := r.ReadRest(m); err != nil {
		return &copyError{fromClient: true, err: err}
	}
	return h.reqVerify.Verify(m.Payload, m.Annotations)
}

// unsigned makes a verified CONNECT m unsigned, as the pooled handshake cache keeps it
// (its pools sign what they send with the backend key).
func (h *sessionHMAC) unsigned(m *frame.Message) {
	h.ann = m.Annotations.AppendWithout(h.ann[:0], frame.HMAC)
	m.Annotations = frame.Annotations(h.ann)
}

// signRequest appends m's header and annotations for the backend, signed with the
// backend key, to dst, with correlation id corr (m's own, or a fresh one when it came
// without, as rewriteRequest chooses).
func (h *sessionHMAC) signRequest(dst []byte, m *frame.Message, corr *[frame.CorrLen]byte) ([]byte, error) {
	head, _, err := h.reqSign.AppendSignedHead(dst, m.Header, m.Payload, m.Annotations, corr)
	return head, err
}

// signReply verifies the backend's whole reply m with the backend key and returns its
// header and annotations signed with the client key.
func (h *sessionHMAC) signReply(r *frame.Reader, m *frame.Message) ([]byte, error) {
	if err := r.ReadRest(m); err != nil {
		return nil, err
	}
	if err := h.repVerify.Verify(m.Payload, m.Annotations); err != nil {
		return nil, fmt.Errorf("backend reply failed the HMAC check with backend_key: %w", err)
	}
	head, _, err := h.repSign.AppendSignedHead(h.rhead[:0], m.Header, m.Payload, m.Annotations, nil)
	if err != nil {
		return nil, err
	}
	h.rhead = head
	return head, nil
}

// signOwn returns a message the dispatcher makes itself (an error, a stored handshake
// reply) signed with the client key, with correlation id corr when given.
func (h *sessionHMAC) signOwn(hdr frame.Header, ann frame.Annotations, corr, payload []byte) []byte {
	var id *[frame.CorrLen]byte
	if len(corr) == frame.CorrLen {
		id = (*[frame.CorrLen]byte)(corr)
	}
	msg, _, err := h.repSign.AppendSignedHead(nil, hdr, payload, ann, id)
	if err != nil { // annotations over 64 KiB: nothing the dispatcher makes
		return frame.AppendMessage(nil, hdr, ann, payload)
	}
	return append(msg, payload...)
}
