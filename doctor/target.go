package doctor

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultNameServerPort is the port of a Pyro4 name server when none is given (NS_PORT).
const DefaultNameServerPort = 9090

// DefaultNameServerHost is the name server host when neither the URI nor Options name one
// (Pyro4's NS_HOST default).
const DefaultNameServerHost = "localhost"

// Kind says what a Target names.
type Kind int

// The kinds of target.
const (
	// Object is a PYRO: URI: an object id at a daemon's address.
	Object Kind = iota
	// Name is a PYRONAME: URI: a name for a name server to resolve.
	Name
	// Address is a daemon's HOST:PORT (or unix:/path) without an object id.
	Address
)

// Endpoint is where a Pyro4 daemon or name server listens: a TCP host and port, or a unix
// socket path.
type Endpoint struct {
	Host   string // host name or IP address, without brackets; "" for a unix socket
	Port   int
	Socket string // unix socket path; "" for TCP
}

// String returns the endpoint as Pyro4 writes a location: HOST:PORT, [IPv6]:PORT or
// ./u:/path.
func (e Endpoint) String() string {
	if e.Socket != "" {
		return "./u:" + e.Socket
	}
	return net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
}

// Target is what the doctor was asked to check, parsed.
type Target struct {
	Kind Kind
	// Object is the object id of a PYRO: URI or the name of a PYRONAME: URI.
	Object string
	// At is the daemon (Object, Address) or the name server named in a PYRONAME: URI
	// (the zero Endpoint when the URI names none).
	At Endpoint
	// Raw is the text parsed.
	Raw string
}

// URI returns the PYRO: URI of an object at e, as Pyro4 prints it.
func URI(object string, e Endpoint) string { return "PYRO:" + object + "@" + e.String() }

// ParseTarget parses PYRO:obj@HOST:PORT, PYRO:obj@[IPv6]:PORT, PYRO:obj@./u:/path,
// PYRONAME:name, PYRONAME:name@HOST[:PORT], HOST:PORT, [IPv6]:PORT or unix:/path. The
// protocol prefix is case-insensitive, as in Pyro4.
func ParseTarget(s string) (Target, error) {
	t := Target{Raw: s}
	if s == "" {
		return t, errors.New("empty target: give a PYRO: or PYRONAME: URI, or HOST:PORT")
	}
	if i := strings.IndexByte(s, ':'); i > 0 && strings.HasPrefix(strings.ToUpper(s[:i]), "PYRO") {
		proto, rest := strings.ToUpper(s[:i]), s[i+1:]
		obj, loc, hasLoc := strings.Cut(rest, "@")
		if obj == "" {
			return t, fmt.Errorf("%s: no object id or name after %s:", s, proto)
		}
		t.Object = obj
		switch proto {
		case "PYRO":
			if !hasLoc {
				return t, fmt.Errorf("%s: a PYRO: URI needs a location: PYRO:%s@HOST:PORT", s, obj)
			}
			e, err := parseLocation(loc, 0)
			if err != nil {
				return t, fmt.Errorf("%s: %w", s, err)
			}
			t.Kind, t.At = Object, e
		case "PYRONAME":
			t.Kind = Name
			if hasLoc {
				e, err := parseLocation(loc, DefaultNameServerPort)
				if err != nil {
					return t, fmt.Errorf("%s: name server location: %w", s, err)
				}
				t.At = e
			}
		case "PYROMETA":
			return t, fmt.Errorf("%s: PYROMETA URIs are not supported: give the object's PYRONAME: or PYRO: URI", s)
		default:
			return t, fmt.Errorf("%s: unknown URI protocol %s (want PYRO or PYRONAME)", s, proto)
		}
		return t, nil
	}
	if path, ok := strings.CutPrefix(s, "unix:"); ok {
		if path == "" {
			return t, fmt.Errorf("%s: no socket path", s)
		}
		t.Kind, t.At = Address, Endpoint{Socket: path}
		return t, nil
	}
	e, err := parseLocation(s, 0)
	if err != nil {
		return t, fmt.Errorf("%s: want a PYRO: or PYRONAME: URI, or HOST:PORT: %w", s, err)
	}
	t.Kind, t.At = Address, e
	return t, nil
}

// ParseNameServer parses the address of a name server: HOST, HOST:PORT or [IPv6]:PORT
// (default port DefaultNameServerPort).
func ParseNameServer(s string) (Endpoint, error) {
	e, err := parseLocation(s, DefaultNameServerPort)
	if err != nil {
		return e, fmt.Errorf("name server %q: %w", s, err)
	}
	return e, nil
}

// parseLocation parses a Pyro4 location: ./u:/path, HOST:PORT or [IPv6]:PORT; a bare
// HOST or [IPv6] gets defPort, unless defPort is 0.
func parseLocation(loc string, defPort int) (Endpoint, error) {
	if path, ok := strings.CutPrefix(loc, "./u:"); ok {
		if path == "" {
			return Endpoint{}, errors.New("no unix socket path after ./u:")
		}
		return Endpoint{Socket: path}, nil
	}
	host, portStr, err := net.SplitHostPort(loc)
	if err != nil && defPort > 0 {
		// No port: a bare host, or a bracketed IPv6 address.
		host, portStr, err = strings.TrimSuffix(strings.TrimPrefix(loc, "["), "]"), strconv.Itoa(defPort), nil
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("want HOST:PORT: %w", err)
	}
	if host == "" {
		return Endpoint{}, errors.New("no host")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return Endpoint{}, fmt.Errorf("bad port %q (want 1 to 65535)", portStr)
	}
	return Endpoint{Host: host, Port: port}, nil
}
