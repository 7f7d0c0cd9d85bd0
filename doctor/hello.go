package doctor

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/tlsfiles"
)

// ProtocolData is what the protocol check read: the first 6 bytes of the answer to a
// Pyro4 CONNECT.
type ProtocolData struct {
	Answer  string `json:"answer"`            // those bytes, quoted
	Version int    `json:"version,omitempty"` // the protocol version, after "PYRO"
	Name    string `json:"name,omitempty"`    // such as "Pyro4", "Pyro5", "Pyro 3"
}

// HMACData is what the hmac check found.
type HMACData struct {
	Required bool `json:"required"`  // the daemon signs its messages
	KeyGiven bool `json:"key_given"` // the doctor had a key
}

// answer is the reply to the first CONNECT on a connection.
type answer struct {
	link    *link
	head    []byte // the first bytes of the answer, up to 6
	err     error  // sending, or reading the answer
	msg     frame.Message
	payload []byte // msg's payload, decompressed
}

func (a *answer) close() {
	if a != nil {
		a.link.close()
	}
}

// pyro4 reports whether the answer starts like a Pyro4 (protocol 48) message.
func (a *answer) pyro4() bool {
	return len(a.head) == 6 && string(a.head[:4]) == "PYRO" && binary.BigEndian.Uint16(a.head[4:]) == frame.Version
}

// maybeTLS reports whether the answer is what a TLS server gives plain Pyro4: a TLS
// record, or no answer at all.
func (a *answer) maybeTLS() bool {
	if len(a.head) > 0 {
		return a.head[0] == 0x15 || a.head[0] == 0x16 // alert, handshake
	}
	return a.err != nil
}

// probe sends a Pyro4 CONNECT (marshal, no object) on conn and reads the answer: first 6
// bytes, "PYRO" and the protocol version of the peer, then the rest if it is Pyro4.
func (p *prober) probe(conn net.Conn) *answer {
	a := &answer{link: newLink(p.ctx, conn, p.opts.HMACKey, p.opts.Timeout)}
	payload, err := connectPayload(frame.Marshal, "")
	if err != nil {
		a.err = err
		return a
	}
	if a.err = a.link.send(frame.Header{Type: frame.Connect, Serializer: frame.Marshal}, payload); a.err != nil {
		return a
	}
	var head [6]byte
	n, err := io.ReadFull(conn, head[:])
	a.head, a.err = head[:n], err
	if err != nil || !a.pyro4() {
		return a
	}
	a.link.r.Reset(io.MultiReader(bytes.NewReader(a.head), conn))
	if a.msg, a.err = a.link.recv(); a.err == nil {
		a.payload, a.err = inflate(a.msg)
	}
	return a
}

// hello finds out how to talk to the endpoint: TLS or not (the tls check), which
// protocol it speaks (protocol) and whether it wants HMAC signatures (hmac).
func (p *prober) hello() bool {
	a, ok := p.greet()
	defer a.close()
	return ok && p.protocol(a) && p.hmac(a)
}

// greet runs the tls check and returns the answer to the first CONNECT, over TLS when
// needed; ok is false when the tls check failed (a is nil then).
func (p *prober) greet() (a *answer, ok bool) {
	if p.opts.TLS != nil {
		p.useTLS = true
		return p.greetTLS(nil)
	}
	c, err := p.dial()
	if err != nil {
		why, hint := p.dialReason(err)
		return nil, p.add(CheckTLS, Fail, "cannot connect again: "+why, hint, nil)
	}
	a = p.probe(c)
	if !a.maybeTLS() {
		p.add(CheckTLS, OK, "not needed: plain TCP gets an answer", "", &TLSData{})
		return a, true
	}
	p.useTLS = true
	ta, ok := p.greetTLS(a)
	if ta == nil && ok {
		p.useTLS = false // not TLS either: the protocol check tells what it is
		return a, true
	}
	a.close()
	return ta, ok
}

// greetTLS opens a TLS connection, records the tls check and probes. plain is the answer
// to plain Pyro4 when TLS is being tried because of it: when the TLS handshake fails
// too, greetTLS records the tls check as skipped (undecided) and returns nil, true.
func (p *prober) greetTLS(plain *answer) (*answer, bool) {
	c, err := p.dial()
	var he *handshakeError
	switch {
	case err == nil:
	case !errors.As(err, &he):
		why, hint := p.dialReason(err)
		return nil, p.add(CheckTLS, Fail, "cannot connect again: "+why, hint, nil)
	case plain != nil:
		p.add(CheckTLS, Skip, "unknown: plain Pyro4 got no answer, and TLS failed too: "+tlsReason(he.err), "", &TLSData{})
		return nil, true
	default:
		hint := "check the daemon's SSL settings (SSL_SERVERCERT, SSL_SERVERKEY) against --tls-ca, --tls-cert and --tls-key"
		var rh tls.RecordHeaderError
		if isAlert(err) {
			hint = alertHint(tlsReason(he.err))
		}
		if errors.As(err, &rh) {
			hint = "the daemon does not use TLS (SSL=False): drop --tls and the other --tls-* flags"
		}
		return nil, p.add(CheckTLS, Fail, err.Error(), hint, &TLSData{})
	}
	tc := c.(*tls.Conn)
	a := p.probe(c)
	if a.err != nil && len(a.head) == 0 {
		a.err = tlsfiles.ReadAlert(tc, a.err, time.Second)
	}
	if isAlert(a.err) {
		// TLS 1.3: the daemon refuses our client certificate after our handshake ended.
		reason := tlsReason(a.err)
		a.close()
		d := tlsData(tc.ConnectionState(), time.Now())
		return nil, p.add(CheckTLS, Fail, "needed ("+d.Version+"), refused: "+reason+"; "+d.describe(), alertHint(reason), d)
	}
	p.tlsCheck(tc.ConnectionState())
	return a, true
}

// tlsCheck records the tls check of a completed handshake.
func (p *prober) tlsCheck(cs tls.ConnectionState) {
	d := tlsData(cs, time.Now())
	needed, cert := "needed ("+d.Version+"), ", "; "+d.describe()
	if p.opts.TLS != nil && p.opts.TLS.Insecure {
		p.add(CheckTLS, Warn, needed+"not verified (--tls-insecure)"+cert, "clients must verify it: give them the CA (SSL_CACERTS)", d)
		return
	}
	if err := verifyPeer(cs, p.tls.Config().RootCAs, p.serverName()); err != nil {
		p.add(CheckTLS, Fail, needed+"not trusted: "+verifyReason(err, p.serverName())+cert, verifyHint(err, d), d)
		return
	}
	d.Verified = true
	if time.Until(d.NotAfter) < ExpiryWarning {
		p.add(CheckTLS, Warn, needed+"verified, expires soon"+cert, "renew the certificate (SSL_SERVERCERT) before clients refuse it", d)
		return
	}
	p.add(CheckTLS, OK, needed+"verified"+cert, "", d)
}

// protocol names what answered the CONNECT.
func (p *prober) protocol(a *answer) bool {
	d := &ProtocolData{Answer: fmt.Sprintf("%q", a.head)}
	if len(a.head) == 6 && string(a.head[:4]) == "PYRO" {
		d.Version = int(binary.BigEndian.Uint16(a.head[4:]))
		switch v := d.Version; {
		case v == frame.Version:
			d.Name = "Pyro4"
			if a.err != nil {
				return p.add(CheckProtocol, Fail, "Pyro4, but its answer is broken: "+a.err.Error(),
					"a Pyro4 daemon answers a CONNECT with one whole message; is something in between?", d)
			}
			return p.add(CheckProtocol, OK, "Pyro4 (protocol 48)", "", d)
		case v >= 500 && v < 600:
			d.Name = "Pyro5"
			return p.add(CheckProtocol, Fail, fmt.Sprintf("Pyro5 (protocol %d), not Pyro4", v),
				"Pyro5 is not wire compatible with Pyro4: use Pyro5 clients with this daemon, or run the daemon with Pyro4", d)
		case v >= 40 && v < frame.Version:
			d.Name = "Pyro4 (older)"
			return p.add(CheckProtocol, Fail, fmt.Sprintf("an older Pyro4 (protocol %d), not 48", v),
				"upgrade the daemon's Pyro4 (4.82 speaks protocol 48)", d)
		case v < 40:
			d.Name = "Pyro 3"
			return p.add(CheckProtocol, Fail, fmt.Sprintf("Pyro 3 or older (protocol %d), not Pyro4", v),
				"Pyro 3 is not wire compatible with Pyro4: port the daemon to Pyro4", d)
		}
		return p.add(CheckProtocol, Fail, fmt.Sprintf("an unknown Pyro protocol version %d, not 48", d.Version),
			"Pyro4 clients speak protocol 48 only", d)
	}
	var ne net.Error
	switch {
	case bytes.HasPrefix(a.head, []byte("HTTP")):
		return p.add(CheckProtocol, Fail, "not Pyro: an HTTP server answered",
			"this port serves HTTP (pyro4-httpgateway or pyro-dispatch http?), not Pyro4: use the daemon's own port", d)
	case len(a.head) > 0 && a.maybeTLS():
		return p.add(CheckProtocol, Fail, "not Pyro: a TLS server answered, and a TLS handshake failed",
			"is it a Pyro4 daemon with SSL=True? try --tls with --tls-ca, --tls-cert and --tls-key", d)
	case len(a.head) > 0:
		return p.add(CheckProtocol, Fail, fmt.Sprintf("not Pyro: the server answered %q", a.head),
			"another service listens on this port: check the port in the URI", d)
	case errors.As(a.err, &ne) && ne.Timeout():
		return p.add(CheckProtocol, Fail, "no answer to a Pyro4 CONNECT within "+p.opts.Timeout.String(),
			"a Pyro4 daemon answers at once; this may be another service, or a daemon whose request loop is stuck", d)
	}
	why := "the server closed the connection without answering a Pyro4 CONNECT"
	if a.err != nil && !errors.Is(a.err, io.EOF) && !errors.Is(a.err, io.ErrUnexpectedEOF) && !errors.Is(a.err, syscall.ECONNRESET) {
		why += " (" + a.err.Error() + ")"
	}
	return p.add(CheckProtocol, Fail, why,
		"not a Pyro4 daemon, or one that drops new clients (a TLS handshake failed too)", d)
}

// hmac compares the signature of the CONNECT's answer with the key the doctor has.
func (p *prober) hmac(a *answer) bool {
	m := a.msg
	_, signed := m.Annotations.Lookup(frame.HMAC)
	key := len(p.opts.HMACKey) > 0
	d := &HMACData{Required: signed, KeyGiven: key}
	answered := ""
	if m.Header.Type == frame.ConnectFail {
		answered = "the daemon answered " + strconv.Quote(decodeString(m.Header.Serializer, a.payload)) + "; "
	}
	verr := a.link.sg.Verify(m.Payload, m.Annotations)
	switch {
	case !key && !signed:
		return p.add(CheckHMAC, OK, "not needed", "", d)
	case !key:
		return p.add(CheckHMAC, Fail, "needed: the daemon signs its messages, and no key was given",
			answered+"pass --hmac-key-file FILE with the daemon's key (its _pyroHmacKey, a name server's -k); Pyro4 clients set proxy._pyroHmacKey", d)
	case !signed:
		return p.add(CheckHMAC, Fail, "not needed, but a key was given",
			answered+"drop --hmac-key-file: this daemon neither signs nor accepts signed messages", d)
	case verr != nil:
		return p.add(CheckHMAC, Fail, "needed, and the key given is not the daemon's",
			answered+"the key must be the daemon's exactly (one trailing newline in the key file is dropped)", d)
	}
	return p.add(CheckHMAC, OK, "needed; the key given matches", "", d)
}
