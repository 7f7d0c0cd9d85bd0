// Package pyrocall makes the dispatcher's own Pyro4 calls on a connection it opened: a
// CONNECT, then INVOKEs one at a time, in the json serializer (HMAC-signed when a key is
// given). It serves the control plane (name server lists and registrations), not calls
// on behalf of clients, which are forwarded untouched.
package pyrocall

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/google/uuid"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// MaxReply bounds a reply the client reads (decompressed too).
const MaxReply = 64 << 20

// Client is a connection with a completed handshake. It is not safe for concurrent use.
type Client struct {
	conn   net.Conn
	r      *frame.Reader
	signer *frame.Signer
	seq    uint16
}

// RemoteError is an exception the daemon answered a call (or a CONNECT) with.
type RemoteError struct {
	Class   string // the Python class, as "Pyro4.errors.NamingError"
	Message string // its first argument
}

func (e *RemoteError) Error() string {
	if e.Class == "" {
		return e.Message
	}
	return e.Class + ": " + e.Message
}

// Connect performs the Pyro4 handshake for object on c, which it owns from then on (Close
// closes it), within ctx. key signs the messages (nil: unsigned).
func Connect(ctx context.Context, c net.Conn, object string, key []byte) (*Client, error) {
	cl := &Client{conn: c, r: frame.NewReader(c, 0, frame.Limits{MaxMessageSize: MaxReply}), signer: frame.NewSigner(key)}
	payload, err := json.Marshal(map[string]string{"handshake": "hello", "object": object})
	if err != nil {
		return nil, err
	}
	h := frame.Header{Type: frame.Connect, Serializer: frame.JSON, Flags: frame.FlagMetaOnConnect}
	rep, err := cl.exchange(ctx, h, payload)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if rep.Header.Type != frame.ConnectOK {
		c.Close()
		var reason string
		if json.Unmarshal(rep.Payload, &reason) != nil {
			reason = string(rep.Payload)
		}
		return nil, fmt.Errorf("handshake: %w", &RemoteError{Message: "connection rejected: " + reason})
	}
	return cl, nil
}

// Close closes the connection.
func (cl *Client) Close() error { return cl.conn.Close() }

// Call invokes method on object with args and kwargs (encoded with encoding/json; nil
// for none) and returns the reply's json text. A daemon exception is a *RemoteError.
func (cl *Client) Call(ctx context.Context, object, method string, args []any, kwargs map[string]any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	payload, err := json.Marshal(struct {
		Object string         `json:"object"`
		Method string         `json:"method"`
		Params []any          `json:"params"`
		Kwargs map[string]any `json:"kwargs"`
	}{object, method, args, kwargs})
	if err != nil {
		return nil, err
	}
	cl.seq++
	if cl.seq == 0xFFFF { // the pool's health-check PING
		cl.seq = 1
	}
	rep, err := cl.exchange(ctx, frame.Header{Type: frame.Invoke, Serializer: frame.JSON, Seq: cl.seq}, payload)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", object, method, err)
	}
	if rep.Header.Type != frame.Result || rep.Header.Seq != cl.seq {
		return nil, fmt.Errorf("%s.%s: answered with %v seq %d", object, method, rep.Header.Type, rep.Header.Seq)
	}
	if rep.Header.Flags.Has(frame.FlagException) {
		var exc struct {
			Class string `json:"__class__"`
			Args  []any  `json:"args"`
		}
		e := &RemoteError{Message: string(rep.Payload)}
		if json.Unmarshal(rep.Payload, &exc) == nil && exc.Class != "" {
			e.Class, e.Message = exc.Class, ""
			if len(exc.Args) > 0 {
				e.Message = fmt.Sprint(exc.Args[0])
			}
		}
		return nil, fmt.Errorf("%s.%s: %w", object, method, e)
	}
	return rep.Payload, nil
}

// exchange sends one message and reads the answer (payload decompressed, signature
// checked), within ctx.
func (cl *Client) exchange(ctx context.Context, h frame.Header, payload []byte) (frame.Message, error) {
	if dl, ok := ctx.Deadline(); ok {
		cl.conn.SetDeadline(dl)
	} else {
		cl.conn.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { cl.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	id := uuid.New()
	head, _, err := cl.signer.AppendSignedHead(nil, h, payload, nil, (*[frame.CorrLen]byte)(&id))
	if err != nil {
		return frame.Message{}, err
	}
	if _, err := cl.conn.Write(append(head, payload...)); err != nil {
		return frame.Message{}, err
	}
	m, err := cl.r.Next()
	if err == nil {
		err = cl.r.ReadRest(&m)
	}
	if err != nil {
		return m, err
	}
	if err := cl.signer.Verify(m.Payload, m.Annotations); err != nil {
		return m, err
	}
	if m.Header.Flags.Has(frame.FlagCompressed) {
		zr, err := zlib.NewReader(bytes.NewReader(m.Payload))
		if err != nil {
			return m, err
		}
		defer zr.Close()
		p, err := io.ReadAll(io.LimitReader(zr, MaxReply+1))
		if err != nil {
			return m, err
		}
		if len(p) > MaxReply {
			return m, errors.New("decompressed reply too large")
		}
		m.Payload = p
	}
	if ctx.Err() != nil {
		return m, ctx.Err()
	}
	return m, nil
}
