package nsview

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Addr is where a Pyro4 URI points: a TCP host and port, or a Unix domain socket. The
// zero Addr is a URI without a location (such as "PYRONAME:name").
type Addr struct {
	Host string // host name or IP address, an IPv6 address without brackets; "" for a socket
	Port int    // TCP port; 0 when the URI gives none (PYRONAME, PYROMETA: the client's NS_PORT)
	Sock string // Unix domain socket path (the location "./u:PATH"); "" for TCP
}

// String returns a as a Pyro4 URI location, as core.URI.location writes it:
// "host:port", "[ipv6]:port", "./u:path"; a host without port when Port is 0, and ""
// for the zero Addr.
func (a Addr) String() string { return string(a.appendTo(nil)) }

// appendTo appends a as a URI location.
func (a Addr) appendTo(dst []byte) []byte {
	switch {
	case a.Host != "":
		if strings.IndexByte(a.Host, ':') >= 0 {
			dst = append(append(append(dst, '['), a.Host...), ']')
		} else {
			dst = append(dst, a.Host...)
		}
		if a.Port != 0 {
			dst = strconv.AppendInt(append(dst, ':'), int64(a.Port), 10)
		}
	case a.Sock != "":
		dst = append(append(dst, unixPrefix...), a.Sock...)
	}
	return dst
}

// ParseAddr reads a location as it is written after the '@' of a Pyro4 URI:
// "host:port", "[ipv6]:port" or "./u:path", and checks that Rewrite can write it: a port
// 1..65535, a host name or IP address, a socket path without ':' or control characters.
func ParseAddr(loc string) (Addr, error) {
	if sock, ok := strings.CutPrefix(loc, unixPrefix); ok {
		a := Addr{Sock: sock}
		return a, a.check()
	}
	host, port, err := net.SplitHostPort(loc)
	if err != nil {
		return Addr{}, fmt.Errorf("%w: %v", ErrBadAddr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return Addr{}, fmt.Errorf("%w: port %q", ErrBadAddr, port)
	}
	a := Addr{Host: host, Port: p}
	return a, a.check()
}

// maxHostLen and maxSockLen bound the addresses Translate may return.
const (
	maxHostLen = 255
	maxSockLen = 1024
)

// check reports whether a can be written into a URI: exactly one of Host (with a port
// 1..65535) and Sock, each in a form core.URI parses back to the same address.
func (a Addr) check() error {
	switch {
	case a.Host != "" && a.Sock != "":
		return fmt.Errorf("%w: both host %q and socket %q", ErrBadAddr, a.Host, a.Sock)
	case a.Host != "":
		if a.Port < 1 || a.Port > 65535 {
			return fmt.Errorf("%w: port %d out of range 1..65535", ErrBadAddr, a.Port)
		}
		if len(a.Host) > maxHostLen || !validHost(a.Host) {
			return fmt.Errorf("%w: host %q is not a host name or IP address", ErrBadAddr, a.Host)
		}
	case a.Sock != "":
		if a.Port != 0 {
			return fmt.Errorf("%w: port %d with a Unix socket", ErrBadAddr, a.Port)
		}
		if len(a.Sock) > maxSockLen || !utf8.ValidString(a.Sock) || strings.ContainsFunc(a.Sock, badSockRune) {
			return fmt.Errorf("%w: socket path %q", ErrBadAddr, a.Sock)
		}
	default:
		return fmt.Errorf("%w: no host and no socket", ErrBadAddr)
	}
	return nil
}

// validHost accepts host names and IPv4 addresses (letters, digits, '.', '-', '_') and,
// when it has a ':', what core.URI takes between brackets: hex digits, ':' and '%'.
func validHost(h string) bool {
	v6 := strings.IndexByte(h, ':') >= 0
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case isHex(c) || c == ':' || c == '%':
			if !v6 && (c == ':' || c == '%') {
				return false
			}
		case v6:
			return false
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '-' || c == '_':
		default:
			return false
		}
	}
	return true
}

// badSockRune: core.URI refuses a ':' in a socket path; control characters would need
// escapes or end the location (a newline).
func badSockRune(r rune) bool { return r == ':' || r < 0x20 || r == 0x7f }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// Form tells how a URI was written in the payload.
type Form uint8

// The forms of a URI.
const (
	FormString Form = iota + 1 // a str such as "PYRO:obj@host:port" (list() values)
	FormObject                 // a Pyro4.core.URI object: a dict with "__class__" and "state"
)

// String returns "string" or "object".
func (f Form) String() string {
	switch f {
	case FormString:
		return "string"
	case FormObject:
		return "object"
	}
	return "form(" + strconv.Itoa(int(f)) + ")"
}

// URI is a Pyro4 URI found in a payload, as Pyro4's core.URI reads it.
type URI struct {
	Protocol string // "PYRO", "PYRONAME" or "PYROMETA"
	Object   string // object id (PYROMETA: the metadata as written); "" when not a str
	Addr     Addr   // location; the zero Addr when there is none
	Form     Form
}

// The protocols of core.URI, and the location prefix of a Unix socket.
const (
	protoPyro  = "PYRO"
	protoName  = "PYRONAME"
	protoMeta  = "PYROMETA"
	unixPrefix = "./u:"
)

// protocol returns the core.URI protocol that b names (any letter case), or "".
func protocol(b []byte) string {
	for _, p := range [...]string{protoPyro, protoName, protoMeta} {
		if len(b) == len(p) && bytes.EqualFold(b, []byte(p)) {
			return p
		}
	}
	return ""
}

// uriText is a URI str located by parseURI: s[objStart:objEnd] is the object,
// s[locStart:locEnd] the location (locStart < 0 when there is none).
type uriText struct {
	proto            string
	objStart, objEnd int
	locStart, locEnd int
	host, sock       []byte
	port             int
}

// split returns where the location starts in s, or where "@location" would go.
func (u *uriText) split() (at int, hasLoc bool) {
	if u.locStart >= 0 {
		return u.locStart, true
	}
	return u.objEnd, false
}

// parseURI reads s as Pyro4 4.82's core.URI(s) does and reports whether it accepts it:
// the regular expression "(?P<protocol>[Pp][Yy][Rr][Oo][a-zA-Z]*):(?P<object>\S+?)
// (@(?P<location>.+))?$", then URI._parseLocation. Ports are read as Python's int()
// reads them (white space, sign, underscores, Unicode decimal digits), but a URI whose
// port is outside 0..65535 is not taken: no daemon can listen there.
func parseURI(s []byte) (u uriText, ok bool) {
	colon := 4
	if len(s) < 6 || !bytes.EqualFold(s[:4], []byte("pyro")) {
		return u, false
	}
	for colon < len(s) && isLetter(s[colon]) {
		colon++
	}
	if colon >= len(s) || s[colon] != ':' {
		return u, false
	}
	if u.proto = protocol(s[:colon]); u.proto == "" {
		return u, false
	}
	u.objStart = colon + 1
	if !u.object(s) {
		return u, false
	}
	if u.locStart < 0 {
		return u, u.proto != protoPyro // a PYRO uri needs a location
	}
	return u, u.location(s[u.locStart:u.locEnd])
}

// object finds the end of the object and the location: the object is the shortest run of
// non-space characters after which either "@" and at least one more character up to the
// end (or a final newline) follow, or the end (or a final newline) itself.
func (u *uriText) object(s []byte) bool {
	lineEnd := len(s) // '.' does not match a newline; '$' also matches before a final one
	if nl := bytes.IndexByte(s, '\n'); nl >= 0 {
		lineEnd = nl
	}
	atEnd := func(i int) bool { return i == len(s) || i == len(s)-1 && s[i] == '\n' }
	u.locStart = -1
	for i := u.objStart; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c == ' ' || c >= '\t' && c <= '\r' || c >= 0x1c && c <= 0x1f {
				return false
			}
			i++
		} else {
			r, n := utf8.DecodeRune(s[i:])
			if pyIsSpace(r) {
				return false
			}
			i += n
		}
		if i < len(s) && s[i] == '@' && i+1 < lineEnd && atEnd(lineEnd) {
			u.objEnd, u.locStart, u.locEnd = i, i+1, lineEnd
			return true
		}
		if atEnd(i) {
			u.objEnd = i
			return true
		}
	}
	return false
}

// location reads loc as URI._parseLocation does.
func (u *uriText) location(loc []byte) bool {
	if bytes.HasPrefix(loc, []byte(unixPrefix)) {
		u.sock = loc[len(unixPrefix):]
		return len(u.sock) > 0 && bytes.IndexByte(u.sock, ':') < 0
	}
	var portText []byte
	hasPort := false
	if loc[0] == '[' {
		// re.match(r"\[([0-9a-fA-F:%]+)](:(\d+))?", location): what follows is ignored.
		if len(loc) > 1 && loc[1] == '[' {
			return false
		}
		i := 1
		for i < len(loc) && (isHex(loc[i]) || loc[i] == ':' || loc[i] == '%') {
			i++
		}
		if i == 1 || i >= len(loc) || loc[i] != ']' {
			return false
		}
		u.host = loc[1:i]
		if i+1 < len(loc) && loc[i+1] == ':' {
			j := i + 2
			for j < len(loc) {
				r, n := utf8.DecodeRune(loc[j:])
				if _, ok := digitValue(r); !ok {
					break
				}
				j += n
			}
			portText, hasPort = loc[i+2:j], j > i+2
		}
	} else {
		// host, _, port = location.partition(":")
		host, port, found := bytes.Cut(loc, []byte{':'})
		u.host, portText, hasPort = host, port, found && len(port) > 0
	}
	if !hasPort {
		return u.proto != protoPyro // names default to the NS port; Port stays 0
	}
	p, ok := pyInt(portText)
	u.port = p
	return ok && p >= 0 && p <= 65535
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// pyIsSpace is what \s matches in a Python str regular expression (and str.isspace()):
// Unicode White_Space plus the separators U+001C..U+001F.
func pyIsSpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

// digitValue returns the value of a Unicode decimal digit (category Nd), as Python's
// int() and the \d of its regular expressions read them. Go's Unicode tables may be
// newer than Python's: a digit added later is accepted here and refused there.
func digitValue(r rune) (int, bool) {
	if r < utf8.RuneSelf {
		return int(r - '0'), r >= '0' && r <= '9'
	}
	if !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	// Decimal digits come in runs of ten from 0 to 9; the table's ranges start at a zero.
	for _, rg := range unicode.Nd.R16 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
			return int(r-rune(rg.Lo)) % 10, true
		}
	}
	return 0, false
}

// pyInt reads b as Python's int(b) in base 10: surrounding white space (Unicode
// White_Space: int() does not strip U+001C..U+001F, which str.isspace() counts), an
// optional sign, digits with single underscores between them. Values beyond ±2^31 are
// refused.
func pyInt(b []byte) (int, bool) {
	b = bytes.TrimFunc(b, unicode.IsSpace)
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	v, digits, under := 0, 0, false
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		if r == '_' {
			if digits == 0 || under {
				return 0, false
			}
			under = true
			continue
		}
		d, ok := digitValue(r)
		if !ok {
			return 0, false
		}
		if v = v*10 + d; v > 1<<31 {
			return 0, false
		}
		digits++
		under = false
	}
	if digits == 0 || under {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}
