package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// SerializersData is what the serializers check found: the serializers whose handshake
// the daemon accepted, and the reasons it gave for the others.
type SerializersData struct {
	Accepted []string          `json:"accepted"`
	Refused  map[string]string `json:"refused"`
}

// allSerializers are the serializers of Pyro4 4.82, in id order.
var allSerializers = []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal, frame.Pickle, frame.Dill, frame.Msgpack, frame.Cloudpickle}

// unsafeSerializers run code on deserialization.
var unsafeSerializers = []string{"pickle", "dill", "cloudpickle"}

// notAccepted is how a Pyro4 daemon refuses a serializer (Daemon._handshake).
const notAccepted = "message used serializer that is not accepted: "

// serializers performs a handshake with each serializer, on a connection each.
func (p *prober) serializers() bool {
	d := &SerializersData{Accepted: []string{}, Refused: map[string]string{}}
	var refused, notes []string
	var reasons []string // distinct reasons other than "not accepted"
	for _, ser := range allSerializers {
		err := p.tryHandshake(ser, "")
		if err == nil {
			d.Accepted = append(d.Accepted, ser.String())
			continue
		}
		why := err.Error()
		var re *refusedError
		if errors.As(err, &re) {
			why = re.reason
		}
		d.Refused[ser.String()] = why
		refused = append(refused, ser.String())
		if !strings.HasPrefix(why, notAccepted) {
			notes = append(notes, ser.String()+": "+why)
			if !slices.Contains(reasons, why) {
				reasons = append(reasons, why)
			}
		}
	}
	summary := "accepted " + listOrNone(d.Accepted) + "; refused " + listOrNone(refused)
	if len(notes) > 0 {
		summary += " (" + strings.Join(notes, "; ") + ")"
	}
	if len(d.Accepted) == 0 {
		hint := "a Pyro4 daemon accepts the serializers in its SERIALIZERS_ACCEPTED (default serpent, json, marshal)"
		if len(reasons) == 1 {
			summary = "every handshake was refused: " + reasons[0]
			hint = handshakeHint(reasons[0])
		}
		return p.add(CheckSerializers, Fail, summary, hint, d)
	}
	for _, u := range unsafeSerializers {
		if slices.Contains(d.Accepted, u) {
			return p.add(CheckSerializers, Warn, summary,
				"the daemon accepts "+u+": whoever can connect can make it run code; accept serpent, json and marshal only (SERIALIZERS_ACCEPTED), or refuse "+u+" at an edge pyro-dispatch", d)
		}
	}
	return p.add(CheckSerializers, OK, summary, "", d)
}

// handshakeHint explains a reason a daemon gave for refusing every handshake.
func handshakeHint(reason string) string {
	if strings.Contains(reason, "no free workers") {
		return "the daemon's thread pool is full: each connected proxy holds a thread (THREADPOOL_SIZE, default 40); release proxies, raise THREADPOOL_SIZE, use SERVERTYPE multiplex, or share few connections through pyro-dispatch in pooled mode"
	}
	return "the daemon's validateHandshake refuses this handshake"
}

// tryHandshake opens a connection, performs one handshake and closes it.
func (p *prober) tryHandshake(ser frame.Serializer, object string) error {
	l, err := p.open()
	if err != nil {
		return err
	}
	defer l.close()
	_, err = l.connect(ser, object)
	return err
}

// preferred returns the serializer for calls: json, which the doctor reads, else the
// first accepted.
func (p *prober) preferred() frame.Serializer {
	d, _ := p.sec.Check(CheckSerializers).Data.(*SerializersData)
	if d == nil || slices.Contains(d.Accepted, "json") || len(d.Accepted) == 0 {
		return frame.JSON
	}
	ser, _ := frame.ParseSerializer(d.Accepted[0])
	return ser
}

// PingData is what the ping check measured.
type PingData struct {
	RTTMillis []float64 `json:"rtt_ms"`
}

// calls connects as a client would, times PINGs and checks the object (or lists the
// daemon's objects), reporting whether the daemon answers calls.
func (p *prober) calls() bool {
	ser := p.preferred()
	l, err := p.open()
	if err == nil {
		defer l.close()
		_, err = l.connect(ser, "")
	}
	if err != nil {
		return p.add(CheckPing, Fail, "handshake in "+ser.String()+" failed: "+err.Error(), "", nil)
	}
	d := &PingData{}
	var best, worst time.Duration
	for i := range p.opts.Pings {
		rtt, err := l.ping(ser)
		if err != nil {
			return p.add(CheckPing, Fail, "no answer to PING: "+err.Error(), "the daemon completed the handshake but does not answer messages", d)
		}
		d.RTTMillis = append(d.RTTMillis, ms(rtt))
		if i == 0 || rtt < best {
			best = rtt
		}
		worst = max(worst, rtt)
	}
	summary := fmt.Sprintf("round trip %s (best of %d; worst %s)", millis(best), p.opts.Pings, millis(worst))
	p.add(CheckPing, OK, summary, "", d)
	if p.object == "" {
		p.objects(l, ser)
		return true
	}
	return p.objectCheck(l, ser)
}

// ObjectData is what the object check found: the object's exposed members, as Pyro4's
// get_metadata lists them.
type ObjectData struct {
	Methods []string `json:"methods"`
	Oneway  []string `json:"oneway"`
	Attrs   []string `json:"attrs"`
}

// ObjectsData is what the objects check found: the object ids the daemon serves.
type ObjectsData struct {
	Objects []string `json:"objects"`
}

// jsonString returns s as a JSON text.
func jsonString(s string) string { return string(frame.AppendPyJSONString(nil, s, false)) }

// objectCheck asks the daemon object for the object's metadata; when the daemon serves no
// Pyro.Daemon object (or does not accept json) it falls back to a handshake for the object
// with META_ON_CONNECT, as a Pyro4 proxy does.
func (p *prober) objectCheck(l *link, ser frame.Serializer) bool {
	if ser == frame.JSON {
		res, err := l.call(daemonObject, "get_metadata", []string{jsonString(p.object)}, `{"as_lists": true}`)
		if err == nil {
			return p.members(res)
		}
		var re *remoteError
		if !errors.As(err, &re) {
			return p.add(CheckObject, Fail, "get_metadata failed: "+err.Error(), "", nil)
		}
		if isRemote(err, "DaemonError") {
			if objs, err := p.registered(l); err == nil {
				return p.add(CheckObject, Fail, fmt.Sprintf("the daemon has no object %q", p.object),
					"it serves "+strings.Join(objs, ", ")+"; check the object id, or look it up by name (PYRONAME:)", &ObjectsData{Objects: objs})
			}
		}
	}
	l2, err := p.open()
	if err != nil {
		return p.add(CheckObject, Fail, "cannot connect again: "+err.Error(), "", nil)
	}
	defer l2.close()
	data, err := l2.connect(ser, p.object)
	var re *refusedError
	switch {
	case errors.As(err, &re):
		return p.add(CheckObject, Fail, "the daemon refused a handshake for it: "+re.reason,
			"a Pyro4 proxy for this URI fails the same way; check the object id", nil)
	case err != nil:
		return p.add(CheckObject, Fail, "handshake for it failed: "+err.Error(), "", nil)
	case ser != frame.JSON:
		return p.add(CheckObject, Warn, "the daemon knows it; its members are not listed",
			"the daemon does not accept json, the only serializer the doctor reads metadata in", nil)
	}
	var hello struct {
		Meta json.RawMessage `json:"meta"`
	}
	if json.Unmarshal(data, &hello) != nil || hello.Meta == nil {
		return p.add(CheckObject, Warn, "the daemon knows it; its handshake reply has no metadata", "", nil)
	}
	return p.members(hello.Meta)
}

// members records the object check from get_metadata's JSON.
func (p *prober) members(res []byte) bool {
	d := &ObjectData{}
	if err := json.Unmarshal(res, d); err != nil {
		return p.add(CheckObject, Fail, "unreadable metadata: "+err.Error(), "", nil)
	}
	for _, s := range [][]string{d.Methods, d.Oneway, d.Attrs} {
		slices.Sort(s)
	}
	if len(d.Methods) == 0 && len(d.Attrs) == 0 {
		return p.add(CheckObject, Warn, "exposes no methods or attributes",
			"Pyro4 serves only what is marked @Pyro4.expose (REQUIRE_EXPOSE): expose the class or its methods", d)
	}
	summary := "methods " + listOrNone(d.Methods) + "; oneway " + listOrNone(d.Oneway) + "; attributes " + listOrNone(d.Attrs)
	return p.add(CheckObject, OK, summary, "", d)
}

// registered asks the daemon object for the ids of the objects it serves.
func (p *prober) registered(l *link) ([]string, error) {
	res, err := l.call(daemonObject, "registered", nil, "")
	if err != nil {
		return nil, err
	}
	var objs []string
	if err := json.Unmarshal(res, &objs); err != nil {
		return nil, fmt.Errorf("registered(): %w", err)
	}
	slices.Sort(objs)
	return objs, nil
}

// objects records the objects check of a daemon address.
func (p *prober) objects(l *link, ser frame.Serializer) {
	if ser != frame.JSON {
		p.add(CheckObjects, Warn, "not listed: the daemon does not accept json", "", nil)
		return
	}
	objs, err := p.registered(l)
	if err != nil {
		p.add(CheckObjects, Warn, "not listed: "+err.Error(), "the daemon does not serve Pyro.Daemon as Pyro4 daemons do", nil)
		return
	}
	summary := strings.Join(objs, ", ")
	if slices.Contains(objs, nameServerObject) {
		summary += " (a name server)"
	}
	p.add(CheckObjects, OK, summary, "", &ObjectsData{Objects: objs})
}

// LookupData is what the lookup check found.
type LookupData struct {
	Name string `json:"name"`
	URI  string `json:"uri,omitempty"`
}

// maxNames bounds the names a failed lookup lists.
const maxNames = 10

// nameServer runs the checks of a name server and looks name up, returning the URI and
// whether it got one.
func (p *prober) nameServer(name string) (Target, bool) {
	var t Target
	ok := p.dns() && p.connect() && p.hello()
	if ok {
		t, ok = p.lookup(name)
	}
	p.skipRest(CheckDNS, p.connectName(), CheckTLS, CheckProtocol, CheckHMAC, CheckLookup)
	if p.ep.Socket != "" {
		p.dropCheck(CheckDNS)
	}
	return t, ok
}

// lookup asks the name server for name's URI and records where it points.
func (p *prober) lookup(name string) (Target, bool) {
	d := &LookupData{Name: name}
	l, err := p.open()
	if err == nil {
		defer l.close()
		_, err = l.connect(frame.JSON, "")
	}
	if err != nil {
		return Target{}, p.add(CheckLookup, Fail, "json handshake failed: "+err.Error(),
			"the doctor looks names up in json, which Pyro4 name servers accept by default", d)
	}
	res, err := l.call(nameServerObject, "lookup", []string{jsonString(name)}, "")
	if err != nil {
		hint := ""
		if isRemote(err, "NamingError") {
			hint = "the name is not registered: register it (ns.register), or check its spelling"
			if names, err := p.names(l); err == nil {
				hint += "; registered: " + names
			}
		}
		return Target{}, p.add(CheckLookup, Fail, err.Error(), hint, d)
	}
	var u struct {
		Class string            `json:"__class__"`
		State []json.RawMessage `json:"state"`
	}
	var proto, object, sock, host string
	var port int
	if json.Unmarshal(res, &u) != nil || u.Class != "Pyro4.core.URI" || len(u.State) != 5 ||
		json.Unmarshal(u.State[0], &proto) != nil || json.Unmarshal(u.State[1], &object) != nil {
		return Target{}, p.add(CheckLookup, Fail, name+": unexpected reply "+string(res), "", d)
	}
	json.Unmarshal(u.State[2], &sock)
	json.Unmarshal(u.State[3], &host)
	json.Unmarshal(u.State[4], &port)
	t := Target{Kind: Object, Object: object, At: Endpoint{Host: host, Port: port, Socket: sock}}
	d.URI = URI(object, t.At)
	t.Raw = d.URI
	if proto != "PYRO" {
		return t, p.add(CheckLookup, Fail, fmt.Sprintf("%s is %s, a %s URI", name, d.URI, proto), "only PYRO: URIs name a daemon", d)
	}
	st, what, hint := p.reach(t.At)
	p.add(CheckLookup, st, name+" is "+d.URI+what, hint, d)
	return t, true // checked further even when clients elsewhere cannot use it
}

// names lists the names the name server knows, for a hint.
func (p *prober) names(l *link) (string, error) {
	res, err := l.call(nameServerObject, "list", nil, "")
	if err != nil {
		return "", err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(res, &m); err != nil {
		return "", err
	}
	var names []string
	for n := range m {
		if n != nameServerObject {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	more := ""
	if len(names) > maxNames {
		more = fmt.Sprintf(" and %d more", len(names)-maxNames)
		names = names[:maxNames]
	}
	return listOrNone(names) + more, nil
}

// reach classifies where a URI from the name server points, seen from where the name
// server was reached: an address clients elsewhere cannot use is a failure when the name
// server is reached over the network, a warning when it is on this machine too (the
// doctor then runs where the daemon runs, and only programs there can use the URI).
func (p *prober) reach(e Endpoint) (Status, string, string) {
	nsLocal := isLoopbackAddr(p.addr) || p.network == "unix"
	onHost := func(what string) (Status, string, string) {
		st := Fail
		if nsLocal {
			st = Warn
		}
		return st, ", which " + what, "only programs on the daemon's machine can use it: " + natHint
	}
	if e.Socket != "" {
		return onHost("is a unix socket")
	}
	ips := p.hostIPs(e.Host)
	switch {
	case len(ips) == 0:
		return OK, "", "" // the dns check of the daemon tells
	case all(ips, net.IP.IsUnspecified):
		return Fail, ", which is no address a client can connect to", "the daemon listens on all interfaces (host=0.0.0.0) and registered that: start it with nathost= the address clients use"
	case all(ips, net.IP.IsLoopback):
		return onHost("points at localhost")
	case !nsLocal && all(ips, isPrivate) && !isPrivate(net.ParseIP(hostOf(p.addr))):
		return Warn, ", a private address", "clients outside that network cannot reach it: " + natHint
	}
	return OK, "", ""
}

// hostIPs returns the IP addresses of host (nil when it does not resolve).
func (p *prober) hostIPs(host string) []net.IP {
	if ip := net.ParseIP(host); ip != nil {
		return []net.IP{ip}
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.Timeout)
	defer cancel()
	addrs, err := p.opts.Resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil
	}
	ips := make([]net.IP, len(addrs))
	for i, a := range addrs {
		ips[i] = a.IP
	}
	return ips
}

func all(ips []net.IP, f func(net.IP) bool) bool {
	for _, ip := range ips {
		if !f(ip) {
			return false
		}
	}
	return true
}

func isPrivate(ip net.IP) bool {
	return ip != nil && (ip.IsPrivate() || ip.IsLinkLocalUnicast())
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func isLoopbackAddr(addr string) bool {
	ip := net.ParseIP(hostOf(addr))
	return ip != nil && ip.IsLoopback()
}
