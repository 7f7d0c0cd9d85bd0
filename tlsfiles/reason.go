package tlsfiles

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// AcceptReason names, for a log line, why the TLS handshake with a connecting client
// failed: err is what (*tls.Conn).Handshake (or the first Read or Write) returned on a
// connection accepted with Server.Config. For example "client sent no certificate",
// "client certificate not signed by client_ca", "not TLS: plain Pyro4 client (SSL not
// enabled?)", "client does not trust our certificate (bad certificate alert)",
// "handshake timed out". Errors it does not know come back as their text; nil gives "".
func AcceptReason(err error) string { return reason(err, false) }

// DialReason is AcceptReason for a handshake with a backend dialed with Client.Config or
// ConfigFor, for example "backend certificate not signed by ca", "backend requires a
// client certificate (certificate required alert)", "backend closed the connection
// during the handshake". In TLS 1.3 a backend that refuses our client certificate says
// so after the client's Handshake returned: the error comes from the first Read (named
// as well), or the first Write fails with a reset; pass that through ReadAlert first.
func DialReason(err error) string { return reason(err, true) }

// ReadAlert helps DialReason on the first exchange after a client handshake. In TLS 1.3
// a backend that refuses our client certificate sends an alert and closes after our
// Handshake returned; a request written next may then fail with "connection reset by
// peer" (or "broken pipe"), while the alert still waits in the socket's receive buffer.
// When err is such a failed write, ReadAlert reads from conn for at most wait and returns
// the read error if it is a TLS alert; otherwise, or when the read gets data or times
// out, it returns err. It leaves conn useless (a read deadline set, data consumed), so
// call it only on a connection that is being given up.
func ReadAlert(conn *tls.Conn, err error, wait time.Duration) error {
	var oe *net.OpError
	if conn == nil || !errors.As(err, &oe) || oe.Op != "write" {
		return err
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	var buf [1]byte
	if _, rerr := conn.Read(buf[:]); rerr != nil {
		if _, _, ok := alertErr(rerr, "remote error"); ok {
			return rerr
		}
	}
	return err
}

// alertCodes maps the text of every TLS alert ("tls: bad certificate") to its code, so
// the unexported alert type inside a "remote error" can be recognized.
var alertCodes = func() map[string]uint8 {
	m := make(map[string]uint8, 256)
	for i := 0; i < 256; i++ {
		m[tls.AlertError(i).Error()] = uint8(i)
	}
	return m
}()

// TLS alert codes (RFC 8446 section 6, RFC 5246 section 7.2).
const (
	alertCloseNotify         = 0
	alertBadRecordMAC        = 20
	alertHandshakeFailure    = 40
	alertBadCertificate      = 42
	alertUnsupportedCert     = 43
	alertCertificateRevoked  = 44
	alertCertificateExpired  = 45
	alertCertificateUnknown  = 46
	alertUnknownCA           = 48
	alertAccessDenied        = 49
	alertProtocolVersion     = 70
	alertInsufficientSec     = 71
	alertUserCanceled        = 90
	alertUnrecognizedName    = 112
	alertCertificateRequired = 116
)

// alertErr returns the alert in err if it is a *net.OpError with the given Op: "remote
// error" for an alert the peer sent, "local error" for one we sent.
func alertErr(err error, op string) (code uint8, text string, ok bool) {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != op || oe.Err == nil {
		return 0, "", false
	}
	text = oe.Err.Error()
	code, ok = alertCodes[text]
	return code, strings.TrimPrefix(text, "tls: "), ok
}

func reason(err error, dial bool) string {
	if err == nil {
		return ""
	}
	peer := "client"
	if dial {
		peer = "backend"
	}

	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return "handshake timed out"
	}
	if errors.Is(err, context.Canceled) {
		return "handshake canceled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "handshake timed out"
	}

	// The peer does not speak TLS.
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		switch {
		case strings.HasPrefix(rh.Msg, "first record does not look like"):
			if bytes.HasPrefix(rh.RecordHeader[:], []byte("PYRO")) {
				if dial {
					return "not TLS: plain Pyro4 daemon (SSL not enabled?)"
				}
				return "not TLS: plain Pyro4 client (SSL not enabled?)"
			}
			return fmt.Sprintf("not TLS (%s sent %q)", peer, rh.RecordHeader[:])
		case strings.Contains(rh.Msg, "SSLv2"):
			return "SSLv2 handshake (" + peer + " too old)"
		}
		return "bad TLS record from " + peer + ": " + rh.Msg
	}

	// The peer refused: it sent an alert.
	if code, text, ok := alertErr(err, "remote error"); ok {
		switch code {
		case alertBadCertificate, alertUnknownCA, alertCertificateUnknown, alertUnsupportedCert,
			alertCertificateExpired, alertCertificateRevoked, alertAccessDenied:
			if dial {
				return "backend rejected our client certificate (" + text + " alert)"
			}
			return "client does not trust our certificate (" + text + " alert)"
		case alertCertificateRequired:
			if dial {
				return "backend requires a client certificate (certificate required alert)"
			}
		case alertProtocolVersion, alertInsufficientSec:
			return "no TLS version in common with " + peer + " (" + text + " alert)"
		case alertHandshakeFailure:
			if dial {
				return "backend refused the handshake (handshake failure alert: client certificate required, or no cipher suite in common)"
			}
			return "client refused the handshake (handshake failure alert)"
		case alertUnrecognizedName:
			if dial {
				return "backend does not know the server name we sent (unrecognized name alert)"
			}
		case alertCloseNotify, alertUserCanceled:
			return peer + " gave up during the handshake (" + text + " alert)"
		}
		return peer + " sent alert: " + text
	}

	// In TLS 1.3 an OpenSSL client (Python's ssl, so Pyro4) that rejects our certificate
	// sends its alert unencrypted while we already expect encrypted records: what we see
	// is a record that fails to decrypt.
	if code, _, ok := alertErr(err, "local error"); ok && code == alertBadRecordMAC {
		if dial {
			return "backend aborted the handshake (bad record MAC: an alert we could not read)"
		}
		return "client aborted the handshake, probably not trusting our certificate (bad record MAC: its TLS 1.3 alert was unreadable)"
	}

	// We refused the peer's certificate.
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		if dial {
			return "backend certificate not signed by ca"
		}
		return "client certificate not signed by client_ca"
	}
	var he x509.HostnameError
	if errors.As(err, &he) {
		return "backend certificate does not match server_name: " + strings.TrimPrefix(he.Error(), "x509: ")
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		switch ci.Reason {
		case x509.Expired:
			return peer + " certificate expired or not yet valid (" + strings.TrimPrefix(ci.Error(), "x509: ") + ")"
		case x509.IncompatibleUsage:
			if dial {
				return "backend certificate not for server authentication (extended key usage)"
			}
			return "client certificate not for client authentication (extended key usage)"
		case x509.NotAuthorizedToSign:
			return peer + " certificate chain has a non-CA issuer"
		}
		return peer + " certificate invalid: " + strings.TrimPrefix(ci.Error(), "x509: ")
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return peer + " certificate rejected: " + strings.TrimPrefix(cv.Err.Error(), "x509: ")
	}

	// crypto/tls refused the handshake itself.
	msg := err.Error()
	switch {
	case strings.Contains(msg, "tls: client didn't provide a certificate"):
		return "client sent no certificate"
	case strings.Contains(msg, "tls: client offered only unsupported versions"):
		return "client's TLS versions are below min_version (client offered " + versions(msg) + ")"
	case strings.Contains(msg, "tls: no cipher suite supported by both client and server"):
		return "no cipher suite in common with " + peer
	case strings.Contains(msg, "tls: server selected unsupported protocol version"):
		return "no TLS version in common with backend"
	case strings.Contains(msg, "tls: either ServerName or InsecureSkipVerify must be specified"):
		return "no server name to verify the backend against (set server_name, or use ConfigFor)"
	}

	// The connection ended.
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return peer + " closed the connection during the handshake"
	case errors.Is(err, syscall.ECONNRESET):
		return peer + " reset the connection during the handshake"
	case errors.Is(err, syscall.EPIPE):
		return peer + " closed the connection during the handshake (broken pipe)"
	case errors.Is(err, net.ErrClosed):
		return "connection closed locally during the handshake"
	}
	return msg
}

// versions turns the "[303 302 301]" that ends a crypto/tls version error into
// "TLS 1.2, TLS 1.1, TLS 1.0".
func versions(msg string) string {
	i, j := strings.LastIndexByte(msg, '['), strings.LastIndexByte(msg, ']')
	if i < 0 || j < i {
		return "?"
	}
	var out []string
	for _, f := range strings.Fields(msg[i+1 : j]) {
		v, err := strconv.ParseUint(f, 16, 16)
		if err != nil {
			out = append(out, f)
			continue
		}
		out = append(out, tls.VersionName(uint16(v)))
	}
	return strings.Join(out, ", ")
}
