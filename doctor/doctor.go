package doctor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/tlsfiles"
)

// DefaultTimeout bounds each network step (a lookup, a dial, a handshake, one
// request and its reply) when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// DefaultPings is how many PINGs the ping check times when Options.Pings is zero.
const DefaultPings = 3

// Options tune a run. The zero value checks plain daemons without an HMAC key.
type Options struct {
	// NameServer is the name server of a PYRONAME: target whose URI names none; the zero
	// Endpoint means DefaultNameServerHost:DefaultNameServerPort.
	NameServer Endpoint
	// HMACKey is the key daemons sign messages with (Pyro4's _pyroHmacKey); nil for none.
	HMACKey []byte
	// TLS, when set, makes every connection TLS. When nil, TLS is tried only where plain
	// Pyro4 gets no answer, verifying against the system roots.
	TLS *TLSOptions
	// Timeout bounds each network step; 0 means DefaultTimeout.
	Timeout time.Duration
	// Pings is how many PINGs to time; 0 means DefaultPings.
	Pings int
	// Resolver looks host names up; nil means net.DefaultResolver.
	Resolver *net.Resolver
}

// Run checks target (as ParseTarget reads it) and returns the report. Its error is for a
// target or options it cannot use, such as a malformed URI or an unreadable TLS file;
// everything the network answers, or does not, is in the report. Canceling ctx ends the
// run early, the checks not run marked skipped.
func Run(ctx context.Context, target string, opts Options) (*Report, error) {
	t, err := ParseTarget(target)
	if err != nil {
		return nil, err
	}
	if opts.NameServer != (Endpoint{}) {
		switch {
		case t.Kind != Name:
			return nil, errors.New("a name server goes with a PYRONAME: target only")
		case t.At != (Endpoint{}):
			return nil, fmt.Errorf("%s names its name server already; give it once", target)
		}
		t.At = opts.NameServer
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Pings <= 0 {
		opts.Pings = DefaultPings
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	var files tlsfiles.ClientFiles
	if opts.TLS != nil {
		files = opts.TLS.Files
	}
	client, err := tlsfiles.NewClient(files)
	if err != nil {
		return nil, err
	}
	run := &runner{ctx: ctx, opts: opts, tls: client}
	r := &Report{Target: target}
	if t.Kind != Name {
		p := run.prober(RoleDaemon, t.At, t.Object)
		answers := p.daemon()
		r.Sections = append(r.Sections, p.sec)
		r.finish(answers)
		return r, nil
	}
	if t.At == (Endpoint{}) {
		t.At = Endpoint{Host: DefaultNameServerHost, Port: DefaultNameServerPort}
	}
	ns := run.prober(RoleNameServer, t.At, "")
	uri, found := ns.nameServer(t.Object)
	r.Sections = append(r.Sections, ns.sec)
	if !found {
		r.finish(false)
		return r, nil
	}
	p := run.prober(RoleDaemon, uri.At, uri.Object)
	p.fromNS = true
	answers := p.daemon()
	r.Sections = append(r.Sections, p.sec)
	r.finish(answers)
	return r, nil
}

// runner is what the probers of one run share.
type runner struct {
	ctx  context.Context
	opts Options
	tls  *tlsfiles.Client
}

func (run *runner) prober(role string, e Endpoint, object string) *prober {
	return &prober{runner: run, sec: Section{Role: role, Location: e.String(), Object: object}, ep: e, object: object}
}

// prober runs the checks of one endpoint, in order, into its section.
type prober struct {
	*runner
	sec    Section
	ep     Endpoint
	object string
	fromNS bool // the endpoint came from a name server lookup

	network, addr string // set by connect: what later connections dial
	useTLS        bool   // set by hello: later connections use TLS
}

// add records a check and reports whether it did not fail.
func (p *prober) add(name string, st Status, summary, hint string, data any) bool {
	p.sec.Checks = append(p.sec.Checks, Check{Name: name, Status: st, Summary: summary, Hint: hint, Data: data})
	return st != Fail
}

// skipRest records the named checks that have no result yet as skipped.
func (p *prober) skipRest(names ...string) {
	for _, n := range names {
		if p.sec.Check(n) == nil {
			p.add(n, Skip, "not checked", "", nil)
		}
	}
}

func (p *prober) connectName() string {
	if p.ep.Socket != "" {
		return CheckUnixConnect
	}
	return CheckConnect
}

// daemon runs the checks of a daemon and reports whether it answers calls.
func (p *prober) daemon() bool {
	last := CheckObject
	if p.object == "" {
		last = CheckObjects
	}
	answers := p.dns() && p.connect() && p.hello() && p.serializers() && p.calls()
	p.skipRest(CheckDNS, p.connectName(), CheckTLS, CheckProtocol, CheckHMAC, CheckSerializers, CheckPing, last)
	if p.ep.Socket != "" {
		p.dropCheck(CheckDNS)
	}
	return answers
}

// dropCheck removes a check that does not apply.
func (p *prober) dropCheck(name string) {
	cs := p.sec.Checks[:0]
	for _, c := range p.sec.Checks {
		if c.Name != name {
			cs = append(cs, c)
		}
	}
	p.sec.Checks = cs
}

// DNSData is what the dns check found.
type DNSData struct {
	IPv4 []string `json:"ipv4"`
	IPv6 []string `json:"ipv6"`
}

func (d *DNSData) addIP(ip net.IP) {
	if ip.To4() != nil {
		d.IPv4 = append(d.IPv4, ip.String())
	} else {
		d.IPv6 = append(d.IPv6, ip.String())
	}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// dns resolves the host (a unix socket has nothing to resolve).
func (p *prober) dns() bool {
	host := p.ep.Host
	if p.ep.Socket != "" {
		return true
	}
	d := &DNSData{IPv4: []string{}, IPv6: []string{}}
	if ip := net.ParseIP(host); ip != nil {
		d.addIP(ip)
		return p.add(CheckDNS, OK, host+" is an IP address: nothing to resolve", "", d)
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.Timeout)
	defer cancel()
	addrs, err := p.opts.Resolver.LookupIPAddr(ctx, host)
	if err == nil && len(addrs) == 0 {
		err = &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	if err != nil {
		why := err.Error()
		var de *net.DNSError
		if errors.As(err, &de) {
			switch {
			case de.IsNotFound:
				why = "no such host"
			case de.IsTimeout:
				why = "lookup timed out"
			default:
				why = de.Err
			}
		}
		hint := "check the spelling, /etc/hosts and the DNS servers of this machine"
		if p.fromNS {
			hint = "the name server hands out this host name, which this machine cannot resolve: " + natHint
		}
		return p.add(CheckDNS, Fail, host+": "+why, hint, d)
	}
	for _, a := range addrs {
		d.addIP(a.IP)
	}
	return p.add(CheckDNS, OK, fmt.Sprintf("%s: IPv4 %s; IPv6 %s", host, listOrNone(d.IPv4), listOrNone(d.IPv6)), "", d)
}

// ConnectData is what the connect check found.
type ConnectData struct {
	Address string  `json:"address"` // the address connected to
	Millis  float64 `json:"ms"`      // how long connecting took
}

// connect opens a connection, to find out where later ones go and how long it takes.
func (p *prober) connect() bool {
	network, address := "tcp", p.ep.String()
	if p.ep.Socket != "" {
		network, address = "unix", p.ep.Socket
	}
	d := net.Dialer{Timeout: p.opts.Timeout}
	start := time.Now()
	c, err := d.DialContext(p.ctx, network, address)
	took := time.Since(start)
	if err != nil {
		why, hint := p.dialReason(err)
		return p.add(p.connectName(), Fail, address+": "+why, hint, nil)
	}
	p.network, p.addr = network, c.RemoteAddr().String()
	c.Close()
	to := p.addr
	if to != address {
		to = address + " (" + p.addr + ")"
	}
	return p.add(p.connectName(), OK, "connected to "+to+" in "+millis(took), "", &ConnectData{Address: p.addr, Millis: ms(took)})
}

// natHint is the advice for an address clients cannot reach.
const natHint = "a daemon registers the host it was started with (Pyro4's HOST, default localhost); " +
	"start it with host= an address clients can reach, or behind NAT with nathost= and natport= set to the " +
	"external address; or put pyro-dispatch at the edge and register its address"

// dialReason names a failed dial and says what to do.
func (p *prober) dialReason(err error) (why, hint string) {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		why = "connection refused"
		hint = "nothing listens there: is the daemon running, on this port? A Pyro4 daemon listens on localhost only unless started with host= (or HOST)"
		if p.sec.Role == RoleNameServer {
			hint = "Pyro4 clients report this as \"Failed to locate the nameserver\": start one (python3 -m Pyro4.naming); it listens on localhost only unless started with -n HOST"
		}
	case errors.As(err, &ne) && ne.Timeout():
		why = "no answer within " + p.opts.Timeout.String()
		hint = "a firewall drops the packets, or the address is not reachable from here"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		why = "no route to the host"
		hint = "the address is not reachable from this machine's network"
	case errors.Is(err, os.ErrNotExist):
		why = "no such socket file"
		hint = "is the daemon running, with this unixsocket path?"
	case errors.Is(err, os.ErrPermission):
		why = "permission denied"
		hint = "the socket file's permissions do not let this user connect"
	case errors.Is(err, context.Canceled):
		return "canceled", ""
	default:
		why = err.Error()
	}
	if p.fromNS && p.ep.Socket == "" {
		hint = "the name server hands out this address, which does not answer from here: " + natHint
	}
	return why, hint
}

// dial opens a new connection to where connect got through, with TLS if hello found it
// needed.
func (p *prober) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: p.opts.Timeout}
	c, err := d.DialContext(p.ctx, p.network, p.addr)
	if err != nil || !p.useTLS {
		return c, err
	}
	tc, err := handshakeTLS(p.ctx, c, p.tls, p.serverName(), p.opts.Timeout)
	if err != nil {
		c.Close()
		return nil, &handshakeError{err}
	}
	return tc, nil
}

// handshakeError is a failed TLS handshake.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "TLS handshake failed: " + tlsReason(e.err) }
func (e *handshakeError) Unwrap() error { return e.err }

// open dials a connection for messages.
func (p *prober) open() (*link, error) {
	c, err := p.dial()
	if err != nil {
		return nil, err
	}
	return newLink(p.ctx, c, p.opts.HMACKey, p.opts.Timeout), nil
}

// serverName is the name the daemon's certificate must be valid for.
func (p *prober) serverName() string {
	if p.opts.TLS != nil && p.opts.TLS.Files.ServerName != "" {
		return p.opts.TLS.Files.ServerName
	}
	return p.ep.Host
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// millis formats a short duration for the report: "0.21 ms", "35.2 ms", "1.20 s".
func millis(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", ms(d))
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", ms(d))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}
