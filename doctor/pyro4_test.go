package doctor

import (
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
	"github.com/pyro-dispatch/pyro-dispatch/internal/testcert"
)

// The doctor against real Pyro4 4.82 daemons and name servers (skipped without Pyro4
// unless PYRO_DISPATCH_REQUIRE_PYRO4=1).

// daemonScript is an unmodified Pyro4 daemon serving "test.greeter" on 127.0.0.1. It
// prints its HOST:PORT when ready.
const daemonScript = `
import argparse
import Pyro4

ap = argparse.ArgumentParser()
ap.add_argument("--hmac")
ap.add_argument("--ssl", nargs=2, metavar=("CERT", "KEY"))
ap.add_argument("--client-ca", help="with --ssl: require client certificates signed by this CA")
ap.add_argument("--serializers")
ap.add_argument("--register", nargs=3, metavar=("NSPORT", "NAME", "URIHOST"),
                help="register the object in the name server at 127.0.0.1:NSPORT as NAME, with URIHOST in its URI")
o = ap.parse_args()
if o.serializers:
    Pyro4.config.SERIALIZERS_ACCEPTED = set(o.serializers.split(","))
if o.ssl:
    Pyro4.config.SSL = True
    Pyro4.config.SSL_SERVERCERT, Pyro4.config.SSL_SERVERKEY = o.ssl
    if o.client_ca:
        Pyro4.config.SSL_REQUIRECLIENTCERT = True
        Pyro4.config.SSL_CACERTS = o.client_ca


@Pyro4.expose
class Greeter(object):
    def greet(self, name):
        return "hello " + name

    @Pyro4.oneway
    def touch(self):
        pass

    @property
    def motto(self):
        return "be kind"


d = Pyro4.Daemon(host="127.0.0.1", port=0)
if o.hmac:
    d._pyroHmacKey = o.hmac.encode()
d.register(Greeter(), "test.greeter")
if o.register:
    port = d.locationStr.rsplit(":", 1)[1]
    ns = Pyro4.locateNS("127.0.0.1", int(o.register[0]))
    ns.register(o.register[1], "PYRO:test.greeter@%s:%s" % (o.register[2], port))
print(d.locationStr, flush=True)
d.requestLoop()
`

// nsScript is a Pyro4 name server on 127.0.0.1; it prints its HOST:PORT when ready.
const nsScript = `
import Pyro4.naming
uri, daemon, bc = Pyro4.naming.startNS(host="127.0.0.1", port=0, enableBroadcast=False)
print(daemon.locationStr, flush=True)
daemon.requestLoop()
`

// greeter starts the daemon script and returns its HOST:PORT.
func greeter(t *testing.T, args ...string) string {
	t.Helper()
	return pyro4test.StartDaemon(t, daemonScript, args...).Line
}

const greeterMembers = "✓ object: methods greet, touch; oneway touch; attributes motto"

// Proof: a healthy daemon.
func TestPyro4Healthy(t *testing.T) {
	addr := greeter(t)
	target := "PYRO:test.greeter@" + addr
	r := check(t, target, Options{})
	hasLines(t, r,
		`daemon `+addr+`, object "test.greeter"`,
		"✓ dns: 127.0.0.1 is an IP address: nothing to resolve",
		"✓ tls: not needed: plain TCP gets an answer",
		"✓ protocol: Pyro4 (protocol 48)",
		"✓ hmac: not needed",
		"✓ serializers: accepted serpent, json, marshal; refused pickle, dill, msgpack, cloudpickle",
		greeterMembers,
		"✓ verdict: "+target+" answers calls")
	if !r.OK || !r.AnswersCalls || r.ExitCode() != 0 {
		t.Errorf("ok %v, answers %v", r.OK, r.AnswersCalls)
	}
	for _, c := range r.Sections[0].Checks {
		if c.Status != OK {
			t.Errorf("check %s: %s", c.Name, c.Line())
		}
	}

	r = check(t, addr, Options{})
	hasLines(t, r, "✓ objects: Pyro.Daemon, test.greeter", "✓ verdict: "+addr+" answers calls")

	r = check(t, "PYRO:test.nothing@"+addr, Options{})
	hasLines(t, r,
		`✗ object: the daemon has no object "test.nothing"`,
		"hint: it serves Pyro.Daemon, test.greeter; check the object id, or look it up by name (PYRONAME:)",
		"✗ verdict: PYRO:test.nothing@"+addr+` does not answer calls (object: the daemon has no object "test.nothing")`)
}

// Proof: an HMAC daemon without the key fails; with the key it passes.
func TestPyro4HMAC(t *testing.T) {
	addr := greeter(t, "--hmac", "s3cr3t")
	target := "PYRO:test.greeter@" + addr
	r := check(t, target, Options{})
	hasLines(t, r,
		"✓ protocol: Pyro4 (protocol 48)",
		"✗ hmac: needed: the daemon signs its messages, and no key was given",
		`hint: the daemon answered "hmac key config not symmetric"; pass --hmac-key-file FILE with the daemon's key (its _pyroHmacKey, a name server's -k); Pyro4 clients set proxy._pyroHmacKey`,
		"- not checked: serializers, ping, object",
		"✗ verdict: "+target+" does not answer calls (hmac: needed: the daemon signs its messages, and no key was given)")

	r = check(t, target, Options{HMACKey: []byte("s3cr3t")})
	hasLines(t, r,
		"✓ hmac: needed; the key given matches",
		"✓ serializers: accepted serpent, json, marshal; refused pickle, dill, msgpack, cloudpickle",
		greeterMembers,
		"✓ verdict: "+target+" answers calls")

	r = check(t, target, Options{HMACKey: []byte("wrong")})
	hasLines(t, r,
		"✗ hmac: needed, and the key given is not the daemon's",
		"✗ verdict: "+target+" does not answer calls (hmac: needed, and the key given is not the daemon's)")
}

// Proof: a TLS daemon. Without its CA the doctor finds TLS by itself, reports the
// certificate and checks the rest without trusting it; with the CA everything passes.
func TestPyro4TLS(t *testing.T) {
	pyro4test.PythonModule(t, "ssl")
	f, err := testcert.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	server, err := testcert.LoadCA(f.ServerCert, f.ServerKey) // reads any certificate and key
	if err != nil {
		t.Fatal(err)
	}
	notAfter := server.Cert.NotAfter
	addr := greeter(t, "--ssl", f.ServerCert, f.ServerKey)
	target := "PYRO:test.greeter@" + addr
	cert := func(r *Report) string {
		d, _ := r.Sections[0].Check(CheckTLS).Data.(*TLSData)
		if d == nil {
			t.Fatalf("no tls data:\n%s", text(t, r))
		}
		if d.DaysLeft < 364 || d.DaysLeft > 365 {
			t.Errorf("days left %d", d.DaysLeft)
		}
		return fmt.Sprintf("certificate CN=localhost (DNS localhost; IP 127.0.0.1, ::1), issued by CN=%s, expires %s (in %d days)",
			testcert.CAName, notAfter.UTC().Format(time.DateOnly), d.DaysLeft)
	}

	r := check(t, target, Options{})
	hasLines(t, r,
		"✗ tls: needed (TLS 1.3), not trusted: signed by an unknown CA; "+cert(r),
		"hint: pass --tls-ca FILE with the CA that signed it (CN="+testcert.CAName+"), the file Pyro4 clients give as SSL_CACERTS; or --tls-insecure to check the rest without trusting it",
		"✓ protocol: Pyro4 (protocol 48)",
		greeterMembers,
		"✗ verdict: "+target+" answers calls, but 1 check failed (tls: needed (TLS 1.3), not trusted: signed by an unknown CA)")
	if r.ExitCode() != 1 || !r.AnswersCalls {
		t.Errorf("exit %d, answers %v", r.ExitCode(), r.AnswersCalls)
	}

	opts := Options{TLS: &TLSOptions{}}
	opts.TLS.Files.CA = f.CACert
	r = check(t, target, opts)
	hasLines(t, r,
		"✓ tls: needed (TLS 1.3), verified; "+cert(r),
		"✓ serializers: accepted serpent, json, marshal; refused pickle, dill, msgpack, cloudpickle",
		greeterMembers,
		"✓ verdict: "+target+" answers calls")

	// A daemon that wants a client certificate (SSL_REQUIRECLIENTCERT) refuses the
	// handshake without one (in TLS 1.3, after the client's side of it ended).
	mutual := "PYRO:test.greeter@" + greeter(t, "--ssl", f.ServerCert, f.ServerKey, "--client-ca", f.CACert)
	r = check(t, mutual, opts)
	hasLines(t, r,
		"✗ tls: needed (TLS 1.3), refused: daemon requires a client certificate (certificate required alert); "+cert(r),
		"hint: the daemon wants a client certificate (SSL_REQUIRECLIENTCERT): pass --tls-cert FILE and --tls-key FILE, signed by a CA in its SSL_CACERTS",
		"✗ verdict: "+mutual+" does not answer calls (tls: needed (TLS 1.3), refused: daemon requires a client certificate (certificate required alert))")
	opts.TLS.Files.Cert, opts.TLS.Files.Key = f.ClientCert, f.ClientKey
	r = check(t, mutual, opts)
	hasLines(t, r, "✓ tls: needed (TLS 1.3), verified; "+cert(r), "✓ verdict: "+mutual+" answers calls")

	// --tls against a plain daemon.
	plain := greeter(t)
	r = check(t, plain, opts)
	hasLines(t, r,
		"✗ tls: TLS handshake failed: not TLS: plain Pyro4 daemon (SSL not enabled?)",
		"hint: the daemon does not use TLS (SSL=False): drop --tls and the other --tls-* flags",
		"✗ verdict: "+plain+" does not answer calls (tls: TLS handshake failed: not TLS: plain Pyro4 daemon (SSL not enabled?))")
}

// Proof: a name server whose URI for the name points at localhost. The doctor runs on the
// same machine as the name server here, so it warns (only programs on this machine can
// use the URI) and goes on to check the daemon at that URI.
func TestPyro4NameServerLocalhostURI(t *testing.T) {
	ns := pyro4test.StartDaemon(t, nsScript).Line
	_, nsPort, _ := net.SplitHostPort(ns)
	addr := greeter(t, "--register", nsPort, "test.greeter", "localhost")
	_, port, _ := net.SplitHostPort(addr)
	uri := "PYRO:test.greeter@localhost:" + port
	target := "PYRONAME:test.greeter"
	r := check(t, target, Options{NameServer: Endpoint{Host: "127.0.0.1", Port: atoi(t, nsPort)}})
	hasLines(t, r,
		"name server "+ns,
		"✓ protocol: Pyro4 (protocol 48)",
		"! lookup: test.greeter is "+uri+", which points at localhost",
		"hint: only programs on the daemon's machine can use it: "+natHint,
		`daemon localhost:`+port+`, object "test.greeter"`,
		greeterMembers,
		"✓ verdict: "+target+" answers calls, with 1 warning (name server lookup)")
	if d, _ := r.Sections[0].Check(CheckLookup).Data.(*LookupData); d == nil || d.URI != uri {
		t.Errorf("lookup data %+v", d)
	}

	r = check(t, "PYRONAME:test.unknown@"+ns, Options{})
	hasLines(t, r,
		"✗ lookup: NamingError: unknown name: test.unknown",
		"hint: the name is not registered: register it (ns.register), or check its spelling; registered: test.greeter",
		"✗ verdict: PYRONAME:test.unknown@"+ns+" does not answer calls (name server lookup: NamingError: unknown name: test.unknown)")

	r = check(t, ns, Options{})
	hasLines(t, r, "✓ objects: Pyro.Daemon, Pyro.NameServer (a name server)")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A daemon that accepts every serializer: each handshake passes, and the unsafe ones
// make the check warn.
func TestPyro4AllSerializers(t *testing.T) {
	for _, m := range []string{"dill", "msgpack", "cloudpickle"} {
		if !pyro4test.HasModule(t, m) {
			t.Skipf("the Pyro4 Python has no %s", m)
		}
	}
	addr := greeter(t, "--serializers", "serpent,json,marshal,pickle,dill,msgpack,cloudpickle")
	r := check(t, addr, Options{})
	hasLines(t, r,
		"! serializers: accepted serpent, json, marshal, pickle, dill, msgpack, cloudpickle; refused none",
		"hint: the daemon accepts pickle: whoever can connect can make it run code; accept serpent, json and marshal only (SERIALIZERS_ACCEPTED), or refuse pickle at an edge pyro-dispatch")

	// Only marshal: the doctor still connects and pings, but lists no members.
	addr = greeter(t, "--serializers", "marshal")
	r = check(t, "PYRO:test.greeter@"+addr, Options{})
	hasLines(t, r,
		"✓ serializers: accepted marshal; refused serpent, json, pickle, dill, msgpack, cloudpickle",
		"! object: the daemon knows it; its members are not listed",
		"✓ verdict: PYRO:test.greeter@"+addr+" answers calls, with 1 warning (object)")
}

// The handshake payloads the doctor writes are what Pyro4's own serializers read as the
// dict a proxy sends.
func TestConnectPayloadsPyro4(t *testing.T) {
	const script = `
import sys
from Pyro4 import util
for line in sys.stdin:
    sid, data = line.split()
    try:
        ser = util.get_serializer_by_id(int(sid))
    except Exception as e:
        print(sid, "unavailable")
        continue
    print(sid, repr(sorted(ser.deserializeData(bytes.fromhex(data)).items())))
`
	var in strings.Builder
	for _, ser := range allSerializers {
		p, err := connectPayload(ser, "obj.\u00e9x")
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&in, "%d %s\n", ser, hex.EncodeToString(p))
	}
	out, _ := pyro4test.RunPython(t, script, []byte(in.String()))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(allSerializers) {
		t.Fatalf("python printed:\n%s", out)
	}
	for i, ser := range allSerializers {
		want := fmt.Sprintf("%d [('handshake', 'hello'), ('object', 'obj.\u00e9x')]", ser)
		optional := ser == frame.Dill || ser == frame.Msgpack || ser == frame.Cloudpickle
		if optional && lines[i] == fmt.Sprintf("%d unavailable", ser) {
			continue // that module is not installed for the Pyro4 Python
		}
		if lines[i] != want {
			t.Errorf("%v: python read %s, want %s", ser, lines[i], want)
		}
	}
}
