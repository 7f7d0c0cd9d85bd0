package doctor

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/pool"
)

// maxReply bounds a reply the doctor reads (payload plus annotations).
const maxReply = 16 << 20

// Object ids every Pyro4 daemon and name server serve (constants.py).
const (
	daemonObject     = "Pyro.Daemon"
	nameServerObject = "Pyro.NameServer"
)

// link is one connection to an endpoint: the socket (TLS or not), the reader of its
// replies and the signer of its messages (nil: no HMAC key). It is used by one goroutine.
type link struct {
	conn    net.Conn
	r       *frame.Reader
	sg      *frame.Signer
	ctx     context.Context
	timeout time.Duration
	seq     uint16
	stop    func() bool // unregisters the cancellation of ctx
}

// newLink wraps conn, signing with key (nil: none). Canceling ctx aborts the link's
// pending I/O.
func newLink(ctx context.Context, conn net.Conn, key []byte, timeout time.Duration) *link {
	return &link{
		conn: conn, r: frame.NewReader(conn, 0, frame.Limits{MaxMessageSize: maxReply}),
		sg: frame.NewSigner(key), ctx: ctx, timeout: timeout,
		stop: context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) }),
	}
}

func (l *link) close() {
	l.stop()
	l.conn.Close()
}

// arm sets the deadline of the next exchange, unless ctx has ended.
func (l *link) arm() error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	return l.conn.SetDeadline(time.Now().Add(l.timeout))
}

// send writes one message, HMAC-signed when the link has a key.
func (l *link) send(h frame.Header, payload []byte) error {
	msg, _, err := l.sg.AppendSignedHead(nil, h, payload, nil, nil)
	if err != nil {
		return err
	}
	if err := l.arm(); err != nil {
		return err
	}
	_, err = l.conn.Write(append(msg, payload...))
	return err
}

// recv reads the next whole message. Its slices alias the reader's buffer until the
// next recv; its signature is not checked.
func (l *link) recv() (frame.Message, error) {
	if err := l.arm(); err != nil {
		return frame.Message{}, err
	}
	m, err := l.r.Next()
	if err == nil {
		err = l.r.ReadRest(&m)
	}
	return m, err
}

// exchange sends a message and reads the reply, whose signature must be right.
func (l *link) exchange(h frame.Header, payload []byte) (frame.Message, error) {
	if err := l.send(h, payload); err != nil {
		return frame.Message{}, err
	}
	m, err := l.recv()
	if err == nil {
		err = l.sg.Verify(m.Payload, m.Annotations)
	}
	return m, err
}

// connect performs a handshake in serializer ser with payload connectPayload(ser,
// object), and META_ON_CONNECT when object is not empty, and returns the reply's
// payload. The reply's signature is checked; a CONNECTFAIL is a *refusedError.
func (l *link) connect(ser frame.Serializer, object string) ([]byte, error) {
	payload, err := connectPayload(ser, object)
	if err != nil {
		return nil, err
	}
	h := frame.Header{Type: frame.Connect, Serializer: ser, Seq: l.seq}
	if object != "" {
		h.Flags = frame.FlagMetaOnConnect
	}
	m, err := l.exchange(h, payload)
	if err != nil {
		return nil, err
	}
	data, err := inflate(m)
	if err != nil {
		return nil, err
	}
	switch m.Header.Type {
	case frame.ConnectOK:
		return data, nil
	case frame.ConnectFail:
		return nil, &refusedError{reason: decodeString(m.Header.Serializer, data)}
	}
	return nil, fmt.Errorf("handshake answered with %v", m.Header.Type)
}

// ping sends a PING and waits for its answer, timing the round trip.
func (l *link) ping(ser frame.Serializer) (time.Duration, error) {
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	start := time.Now()
	err := pool.PingSigned(&pool.Conn{Conn: l.conn, Reader: l.r}, ser, l.sg, l.timeout)
	return time.Since(start), err
}

// call invokes method of object with the json serializer: params are the JSON texts of
// the positional arguments, kwargs the JSON text of the keyword arguments ("" for none).
// It returns the JSON of the result; an exception reply is a *remoteError.
func (l *link) call(object, method string, params []string, kwargs string) ([]byte, error) {
	p := []byte(`{"object": `)
	p = frame.AppendPyJSONString(p, object, false)
	p = append(p, `, "method": `...)
	p = frame.AppendPyJSONString(p, method, false)
	p = append(p, `, "params": [`+strings.Join(params, ", ")+`], "kwargs": `...)
	if kwargs == "" {
		kwargs = "{}"
	}
	p = append(p, kwargs+"}"...)
	l.seq++
	m, err := l.exchange(frame.Header{Type: frame.Invoke, Serializer: frame.JSON, Seq: l.seq}, p)
	if err != nil {
		return nil, err
	}
	if m.Header.Type != frame.Result || m.Header.Seq != l.seq {
		return nil, fmt.Errorf("call answered with %v seq %d, want RESULT seq %d", m.Header.Type, m.Header.Seq, l.seq)
	}
	data, err := inflate(m)
	if err != nil {
		return nil, err
	}
	if m.Header.Flags.Has(frame.FlagException) {
		return nil, decodeException(data)
	}
	return bytes.Clone(data), nil
}

// refusedError is a CONNECTFAIL: the daemon's reason.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return "handshake refused: " + e.reason }

// remoteError is an exception a call was answered with.
type remoteError struct {
	Class   string // such as "Pyro4.errors.DaemonError"
	Message string
}

func (e *remoteError) Error() string { return shortClass(e.Class) + ": " + e.Message }

// shortClass drops the module of a Pyro4 or builtin exception class.
func shortClass(class string) string {
	for _, p := range []string{"Pyro4.errors.", "builtins."} {
		if s, ok := strings.CutPrefix(class, p); ok {
			return s
		}
	}
	return class
}

// isRemote reports whether err is an exception of the given class (without module).
func isRemote(err error, class string) bool {
	var re *remoteError
	return errors.As(err, &re) && shortClass(re.Class) == class
}

// decodeException reads a json exception payload (util.py SerializerBase.class_to_dict).
func decodeException(data []byte) error {
	var x struct {
		Class string            `json:"__class__"`
		Args  []json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(data, &x); err != nil || x.Class == "" {
		return &remoteError{Class: "unknown", Message: string(data)}
	}
	msgs := make([]string, 0, len(x.Args))
	for _, a := range x.Args {
		var s string
		if json.Unmarshal(a, &s) != nil {
			s = string(a)
		}
		msgs = append(msgs, s)
	}
	return &remoteError{Class: x.Class, Message: strings.Join(msgs, ", ")}
}

// inflate returns the payload of m, decompressed when it is flagged COMPRESSED.
func inflate(m frame.Message) ([]byte, error) {
	if !m.Header.Flags.Has(frame.FlagCompressed) {
		return m.Payload, nil
	}
	zr, err := zlib.NewReader(bytes.NewReader(m.Payload))
	if err != nil {
		return nil, fmt.Errorf("compressed payload: %w", err)
	}
	defer zr.Close()
	data, err := io.ReadAll(io.LimitReader(zr, maxReply))
	if err != nil {
		return nil, fmt.Errorf("compressed payload: %w", err)
	}
	return data, nil
}

// connectPayload encodes the handshake data of a CONNECT in ser, as Pyro4's
// Proxy.__pyroCreateConnection sends it: {"handshake": "hello"}, plus "object": object
// when object is not empty (the META_ON_CONNECT form).
func connectPayload(ser frame.Serializer, object string) ([]byte, error) {
	kv := []string{"handshake", "hello"}
	if object != "" {
		kv = append(kv, "object", object)
	}
	return appendStringDict(nil, ser, kv...)
}

// appendStringDict appends a dict of str keys and values (kv alternating) in ser, as the
// Python serializers write it; strings are those frame.AppendStringPayload writes.
func appendStringDict(dst []byte, ser frame.Serializer, kv ...string) ([]byte, error) {
	str := func(dst []byte, s string) []byte {
		out, _ := frame.AppendStringPayload(dst, ser, s)
		return out
	}
	open, colon, comma, end := "{", "", "", "0"
	switch ser {
	case frame.Serpent:
		open, colon, comma, end = "# serpent utf-8 python3.2\n{", ":", ",", "}"
		str = frame.AppendPyRepr
	case frame.JSON:
		colon, comma, end = ": ", ", ", "}"
	case frame.Marshal:
	case frame.Pickle, frame.Dill, frame.Cloudpickle:
		// PROTO 2, EMPTY_DICT, MARK, the strings, SETITEMS, STOP; a string is what
		// AppendStringPayload writes between its PROTO and its BINPUT and STOP.
		open, end = "\x80\x02}(", "u."
		str = func(dst []byte, s string) []byte {
			one, _ := frame.AppendStringPayload(nil, ser, s)
			return append(dst, one[2:len(one)-3]...)
		}
	case frame.Msgpack:
		open, end = string([]byte{0x80 | byte(len(kv)/2)}), "" // a fixmap
	default:
		return dst, fmt.Errorf("%w %d", frame.ErrUnsupportedSerializer, uint16(ser))
	}
	dst = append(dst, open...)
	for i, s := range kv {
		switch {
		case i%2 == 1:
			dst = append(dst, colon...)
		case i > 0:
			dst = append(dst, comma...)
		}
		dst = str(dst, s)
	}
	return append(dst, end...), nil
}

// decodeString reads a str payload in ser, such as the reason of a CONNECTFAIL. What it
// cannot read comes back quoted as it is.
func decodeString(ser frame.Serializer, p []byte) string {
	raw := func() string { return fmt.Sprintf("%q", p) }
	switch ser {
	case frame.JSON:
		var s string
		if json.Unmarshal(p, &s) != nil {
			return raw()
		}
		return s
	case frame.Serpent:
		_, lit, _ := bytes.Cut(p, []byte("\n"))
		if s, ok := unquotePy(string(lit)); ok {
			return s
		}
	case frame.Marshal:
		if len(p) < 1 {
			return raw()
		}
		switch p[0] &^ 0x80 { // without FLAG_REF
		case 'z', 'Z': // short ascii: 1-byte length
			if len(p) >= 2 && len(p) == 2+int(p[1]) {
				return string(p[2:])
			}
		case 'a', 'A', 'u', 't': // ascii, utf-8: 4-byte length
			if len(p) >= 5 && uint64(len(p)) == 5+uint64(binary.LittleEndian.Uint32(p[1:])) {
				return string(p[5:])
			}
		}
	case frame.Pickle, frame.Dill, frame.Cloudpickle:
		return decodePickleString(p, raw)
	case frame.Msgpack:
		return decodeMsgpackString(p, raw)
	}
	return raw()
}

// decodePickleString reads a pickle of one str: PROTO, an optional FRAME, then
// SHORT_BINUNICODE or BINUNICODE.
func decodePickleString(p []byte, raw func() string) string {
	if len(p) >= 2 && p[0] == 0x80 {
		p = p[2:]
	}
	if len(p) >= 9 && p[0] == 0x95 { // FRAME with an 8-byte length
		p = p[9:]
	}
	switch {
	case len(p) >= 2 && p[0] == 0x8c && len(p) >= 2+int(p[1]):
		return string(p[2 : 2+int(p[1])])
	case len(p) >= 5 && p[0] == 'X' && uint64(len(p)) >= 5+uint64(binary.LittleEndian.Uint32(p[1:])):
		return string(p[5 : 5+binary.LittleEndian.Uint32(p[1:])])
	}
	return raw()
}

// decodeMsgpackString reads a msgpack str.
func decodeMsgpackString(p []byte, raw func() string) string {
	if len(p) == 0 {
		return raw()
	}
	n, skip := -1, 0
	switch c := p[0]; {
	case c&0xe0 == 0xa0:
		n, skip = int(c&0x1f), 1
	case c == 0xd9 && len(p) >= 2:
		n, skip = int(p[1]), 2
	case c == 0xda && len(p) >= 3:
		n, skip = int(binary.BigEndian.Uint16(p[1:])), 3
	case c == 0xdb && len(p) >= 5:
		n, skip = int(binary.BigEndian.Uint32(p[1:])), 5
	}
	if n < 0 || len(p) != skip+n {
		return raw()
	}
	return string(p[skip:])
}

// unquotePy reads a Python str literal as repr() writes it: single or double quotes,
// backslash escapes \\ \' \" \n \r \t \xhh \uhhhh \Uhhhhhhhh.
func unquotePy(lit string) (string, bool) {
	if len(lit) < 2 || (lit[0] != '\'' && lit[0] != '"') || lit[len(lit)-1] != lit[0] {
		return "", false
	}
	in := lit[1 : len(lit)-1]
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		c := in[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i++; i >= len(in) {
			return "", false
		}
		switch c = in[i]; c {
		case '\\', '\'', '"':
			b.WriteByte(c)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'x', 'u', 'U':
			digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
			if i+1+digits > len(in) {
				return "", false
			}
			var r rune
			for _, h := range in[i+1 : i+1+digits] {
				v := strings.IndexRune("0123456789abcdef", h|0x20)
				if v < 0 {
					return "", false
				}
				r = r<<4 | rune(v)
			}
			if !utf8.ValidRune(r) {
				return "", false
			}
			b.WriteRune(r)
			i += digits
		default:
			return "", false
		}
	}
	return b.String(), true
}
