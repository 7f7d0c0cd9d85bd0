package interop

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
	"github.com/pyro-dispatch/pyro-dispatch/internal/testcert"
)

// This file: the dispatcher's security features proven with real, unmodified Pyro4
// clients and daemons, in session, pooled and pipelined mode (sessModes): TLS on the
// client side (Pyro4's SSL=True, client certificates required) and on the backend side,
// with the refused clients; the serializer policy; HMAC keys that differ on the two
// sides; the per-IP call rate limit. testdata/security_daemon.py is the daemon,
// testdata/security_client.py runs the steps of a plan (one Python process per mode and
// test) and prints one JSON line per step. Helpers are named sec*.

// secRefusalBound is how quickly a refused client must get its error.
const secRefusalBound = 5 * time.Second

// secDialerCN is the common name of the certificate the dispatcher presents to TLS
// daemons (backend_tls), distinct from the clients' so the daemon shows whose it sees.
const secDialerCN = "pyro-dispatch backend dialer"

// secCerts are testcert's files plus the dispatcher's backend client certificate.
type secCerts struct {
	testcert.Files
	DialerCert, DialerKey string
	ServerSerial          string // the server certificate's serial number, decimal
}

func secWriteCerts(t *testing.T) secCerts {
	t.Helper()
	f, err := testcert.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := testcert.LoadCA(f.CACert, f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	dialer, err := testcert.Issue(ca, testcert.Template(secDialerCN, time.Now(), x509.ExtKeyUsageClientAuth))
	if err != nil {
		t.Fatal(err)
	}
	c := secCerts{Files: f, DialerCert: filepath.Join(f.Dir, "dialer.pem"), DialerKey: filepath.Join(f.Dir, "dialer.key")}
	if err := dialer.WriteFiles(c.DialerCert, c.DialerKey); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.ServerCert)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: not PEM", f.ServerCert)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	c.ServerSerial = cert.SerialNumber.String()
	return c
}

// secDaemon starts testdata/security_daemon.py with args and returns its address
// ("127.0.0.1:PORT"). It is killed when the test ends.
func secDaemon(t *testing.T, args ...string) string {
	t.Helper()
	p := pyro4test.StartDaemon(t, script(t, "security_daemon.py"), args...)
	if _, _, err := config.ParseAddress(p.Line); err != nil || p.Line == "" {
		t.Fatalf("security_daemon.py printed %q, want its address: %v", p.Line, err)
	}
	return p.Line
}

// secStep is one step of a security_client.py plan.
type secStep map[string]any

// secSSL is the "ssl" of a step: Pyro4's SSL_CACERTS, SSL_CLIENTCERT and SSL_CLIENTKEY.
func secSSL(cacerts, cert, key string) map[string]string {
	return map[string]string{"cacerts": cacerts, "cert": cert, "key": key}
}

// secClient runs testdata/security_client.py with the steps and returns each step's
// result by name, failing the test if a step raised or printed nothing.
func secClient(t *testing.T, steps ...secStep) map[string]map[string]any {
	t.Helper()
	plan, err := json.Marshal(map[string]any{"steps": steps})
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr := pyro4test.RunPython(t, script(t, "security_client.py"), plan)
	out := map[string]map[string]any{}
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l struct {
			Name    string         `json:"name"`
			OK      bool           `json:"ok"`
			Result  map[string]any `json:"result"`
			Error   string         `json:"error"`
			Trace   string         `json:"trace"`
			Seconds float64        `json:"seconds"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("security_client.py printed a line that is not JSON: %v\n%s\n--- stderr:\n%s", err, sc.Bytes(), stderr)
		}
		if !l.OK {
			t.Fatalf("step %s failed: %s\n%s", l.Name, l.Error, l.Trace)
		}
		t.Logf("step %s: %.2fs", l.Name, l.Seconds)
		out[l.Name] = l.Result
	}
	for _, s := range steps {
		if _, ok := out[s["name"].(string)]; !ok {
			t.Fatalf("security_client.py printed no result for step %s\n--- stdout:\n%s\n--- stderr:\n%s", s["name"], stdout, stderr)
		}
	}
	return out
}

// secOutcome is the outcome of one call (security_client.py's outcome()).
type secOutcome struct {
	OK         any     `json:"ok"`
	Class      string  `json:"class"`
	Error      string  `json:"error"`
	CauseClass *string `json:"cause_class"`
	Cause      *string `json:"cause"`
	Seconds    float64 `json:"seconds"`
	Local      string  `json:"local"`
}

// failed reports whether the call raised.
func (o secOutcome) failed() bool { return o.Class != "" }

// text is the exception as Python shows it, with its cause.
func (o secOutcome) text() string {
	if !o.failed() {
		b, _ := json.Marshal(o.OK)
		return "ok: " + string(b)
	}
	s := o.Class + ": " + o.Error
	if o.CauseClass != nil {
		s += " (cause " + *o.CauseClass + ": " + *o.Cause + ")"
	}
	return s
}

// secGet decodes res[key...] (a path into nested results) into v.
func secGet(t *testing.T, res map[string]any, v any, path ...string) {
	t.Helper()
	var cur any = res
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("result has no %v: %v", path, res)
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("result has no %v (no %q): %v", path, k, res)
		}
	}
	b, err := json.Marshal(cur)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("result %v = %s: %v", path, b, err)
	}
}

func secOut(t *testing.T, res map[string]any, path ...string) secOutcome {
	t.Helper()
	var o secOutcome
	secGet(t, res, &o, path...)
	return o
}

// secWantOK fails unless the call succeeded with result want (compared as JSON).
func secWantOK(t *testing.T, what string, o secOutcome, want any) {
	t.Helper()
	if o.failed() {
		t.Errorf("%s: %s, want result %v", what, o.text(), want)
		return
	}
	sessEqual(t, what, o.OK, want)
}

// secWantErr fails unless the call raised class with message msg.
func secWantErr(t *testing.T, what string, o secOutcome, class, msg string) {
	t.Helper()
	if o.Class != class || o.Error != msg {
		t.Errorf("%s: %s\nwant %s: %s", what, o.text(), class, msg)
	}
}

// secClientLines returns the log lines at info level or above about client (its exact
// "client" field, HOST:PORT), waiting up to 5 s for at least one.
func secClientLines(t *testing.T, p *proxy, client string) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var lines []string
		for _, e := range p.logs.All() {
			if e.Level >= zapcore.InfoLevel && toString(e.ContextMap()["client"]) == client {
				b, _ := json.Marshal(e.ContextMap())
				lines = append(lines, e.Message+" "+string(b))
			}
		}
		if len(lines) > 0 || time.Now().After(deadline) {
			return lines
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSecurityTLS: a Pyro4 client with SSL=True and a client certificate calls through
// a dispatcher that terminates TLS (client_ca required) in front of a plain daemon, and
// through one with TLS on both sides in front of a daemon with SSL=True and
// SSL_REQUIRECLIENTCERT=True (backend_tls: ca and the dispatcher's own client
// certificate); and, to compare, directly to that daemon. The client checks the
// certificate it is shown in _pyroValidateHandshake (Pyro4's ssl example): the
// dispatcher presents the server certificate file (serial, CN, issuer), as the daemon
// does; a proxy expecting another serial refuses the connection. The plain daemon sees
// no TLS, the TLS daemon the dispatcher's certificate (directly: the client's).
//
// Refused: a plain Pyro4 client (it gets a CONNECTFAIL saying the listener speaks TLS
// only), a TLS client without a certificate, one with a certificate of another CA, one
// that does not trust the dispatcher's certificate. Each gets a Pyro4 error within
// secRefusalBound (which one, for the TLS 1.3 refusals of client certificates, depends
// on whether Python reads the alert or fails its write first), and the dispatcher logs
// exactly one line for that client (its address, as the client's socket had it) naming
// the reason. The same clients are run against the TLS daemon directly (in session
// mode's run), for the record.
func TestSecurityTLS(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	f := secWriteCerts(t)
	plain := secDaemon(t)
	tlsd := secDaemon(t, "--ssl", "--cert", f.ServerCert, "--key", f.ServerKey, "--cacerts", f.CACert, "--require-client-cert")
	good := secSSL(f.CACert, f.ClientCert, f.ClientKey)
	refusals := []struct {
		name   string
		ssl    map[string]string
		reason []string // the log line's reason starts with one of these
	}{
		{"plain_client", nil, []string{"not TLS: plain Pyro4 client (SSL not enabled?)"}},
		{"no_cert", secSSL(f.CACert, "", ""), []string{"client sent no certificate"}},
		{"other_ca_cert", secSSL(f.CACert, f.OtherClientCert, f.OtherClientKey), []string{"client certificate not signed by client_ca"}},
		// TLS 1.3 (what Python negotiates): Go cannot read OpenSSL's alert; TLS 1.2: it can.
		{"untrusting", secSSL(f.OtherCACert, f.ClientCert, f.ClientKey), []string{
			"client aborted the handshake, probably not trusting our certificate", "client does not trust our certificate"}},
	}
	sessEachMode(t, func(t *testing.T, mode string) {
		ltls := &config.ListenerTLS{Cert: f.ServerCert, Key: f.ServerKey, ClientCA: f.CACert}
		front := startProxy(t, plain, sessMode(mode, func(c *config.Config) { c.Listeners[0].TLS = ltls }))
		both := startProxy(t, tlsd, sessMode(mode, func(c *config.Config) {
			c.Listeners[0].TLS = ltls
			c.Listeners[0].BackendTLS = &config.BackendTLS{CA: f.CACert, Cert: f.DialerCert, Key: f.DialerKey}
		}))
		ok := func(name, addr string) secStep {
			return secStep{"name": name, "scenario": "tls_ok", "addr": addr, "ssl": good, "serial": f.ServerSerial, "cn": testcert.ServerName}
		}
		steps := []secStep{ok("front", front.addr), ok("both", both.addr), ok("direct", tlsd)}
		for _, r := range refusals {
			steps = append(steps, secStep{"name": "refused_" + r.name, "scenario": "refused", "addr": front.addr, "ssl": r.ssl})
			if mode == config.ModeSession {
				steps = append(steps, secStep{"name": "direct_refused_" + r.name, "scenario": "refused", "addr": tlsd, "ssl": r.ssl})
			}
		}
		res := secClient(t, steps...)

		type whoami struct {
			SSL        bool    `json:"ssl"`
			PeerCN     *string `json:"peer_cn"`
			TLSVersion *string `json:"tls_version"`
		}
		for _, via := range []string{"front", "both", "direct"} {
			r := res[via]
			var seen []struct {
				Serial     string `json:"serial"`
				CN         string `json:"cn"`
				IssuerCN   string `json:"issuer_cn"`
				TLSVersion string `json:"tls_version"`
				Handshake  any    `json:"handshake"`
			}
			secGet(t, r, &seen, "server_cert")
			if len(seen) != 1 || seen[0].Serial != f.ServerSerial || seen[0].CN != testcert.ServerName || seen[0].IssuerCN != testcert.CAName || seen[0].Handshake != "hello" {
				t.Errorf("%s: the client's _pyroValidateHandshake saw %+v, want one connection with serial %s, CN %s, issuer %s, handshake response hello",
					via, seen, f.ServerSerial, testcert.ServerName, testcert.CAName)
			} else {
				t.Logf("%s: server certificate serial %s CN %s, %s", via, seen[0].Serial, seen[0].CN, seen[0].TLSVersion)
			}
			secWantErr(t, via+": a proxy expecting another serial", secOut(t, r, "wrong_serial"), "Pyro4.errors.CommunicationError", "cert serial number incorrect")
			for _, k := range []string{"add", "echo"} {
				sessEqual(t, via+" "+k+" vs direct", r[k], res["direct"][k])
			}
			var batch []any
			secGet(t, r, &batch, "batch")
			if len(batch) != 4 {
				t.Fatalf("%s: batch results %v", via, batch)
			}
			sessEqual(t, via+": batch", []any{batch[0], batch[1], batch[3]}, []any{3, "batch \u2713", 42})
			var w whoami
			secGet(t, r, &w, "whoami")
			switch via {
			case "front":
				if w.SSL {
					t.Errorf("front: the plain daemon saw a TLS connection: %+v", w)
				}
			case "both":
				if !w.SSL || w.PeerCN == nil || *w.PeerCN != secDialerCN {
					t.Errorf("both: the TLS daemon saw %+v, want TLS with the dispatcher's certificate CN %q", w, secDialerCN)
				}
			case "direct":
				if !w.SSL || w.PeerCN == nil || *w.PeerCN != testcert.ClientName {
					t.Errorf("direct: the TLS daemon saw %+v, want TLS with the client's certificate CN %q", w, testcert.ClientName)
				}
			}
		}
		sessEqual(t, "add", res["front"]["add"], 5)

		for _, rf := range refusals {
			o := secOut(t, res["refused_"+rf.name])
			t.Logf("%s through the dispatcher: %s in %.3fs", rf.name, o.text(), o.Seconds)
			if d, ok := res["direct_refused_"+rf.name]; ok {
				do := secOut(t, d)
				t.Logf("%s directly: %s in %.3fs", rf.name, do.text(), do.Seconds)
				if !do.failed() {
					t.Errorf("%s: the TLS daemon took the client directly: %s", rf.name, do.text())
				}
			}
			if !o.failed() {
				t.Errorf("%s: the dispatcher took the client: %s", rf.name, o.text())
				continue
			}
			if rf.name == "plain_client" {
				// the dispatcher answers a plain CONNECT on a TLS listener in plain
				secWantErr(t, rf.name, o, "Pyro4.errors.CommunicationError",
					"connection to <addr> rejected: pyro-dispatch: this listener speaks TLS only (set Pyro4's SSL config item to True)")
			}
			if !strings.HasPrefix(o.Class, "Pyro4.errors.") || o.Class == "Pyro4.errors.TimeoutError" || o.Seconds >= secRefusalBound.Seconds() {
				t.Errorf("%s: %s after %.3fs, want a Pyro4 communication error within %v", rf.name, o.text(), o.Seconds, secRefusalBound)
			}
			if !strings.HasPrefix(o.Local, "127.0.0.1:") {
				t.Errorf("%s: client's local address %q", rf.name, o.Local)
				continue
			}
			lines := secClientLines(t, front, o.Local)
			if len(lines) != 1 {
				t.Errorf("%s: %d log lines about client %s, want 1:\n%s", rf.name, len(lines), o.Local, strings.Join(lines, "\n"))
				continue
			}
			e := front.waitLog(t, "closing client: TLS handshake failed", map[string]string{"client": o.Local})
			reason := toString(e.ContextMap()["reason"])
			matched := false
			for _, want := range rf.reason {
				matched = matched || strings.HasPrefix(reason, want)
			}
			if !matched || e.Level != zapcore.WarnLevel {
				t.Errorf("%s: logged %q at %v, want a warning with reason %q", rf.name, reason, e.Level, rf.reason)
			} else {
				t.Logf("%s: logged %s", rf.name, lines[0])
			}
		}
	})
}

// TestSecuritySerializerPolicy: a listener with serializers [serpent, json, marshal] in
// front of a daemon that accepts pickle too. A pickle client's CONNECT is refused at
// once, naming the serializer (Pyro4: CommunicationError "connection to ... rejected"),
// and a pickle call on a connection made in serpent gets a SerializeError (after which
// a serpent call works again); the daemon never runs either (its per-token call counts
// stay 0), while a pickle call directly to it runs. Serpent, json and marshal clients
// work.
func TestSecuritySerializerPolicy(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	daemon := secDaemon(t)
	const refusal = "pyro-dispatch: message used serializer that is not accepted: pickle (the policy of listener test accepts serpent, json, marshal)"
	sessEachMode(t, func(t *testing.T, mode string) {
		p := startProxy(t, daemon, sessMode(mode, func(c *config.Config) {
			c.Listeners[0].Serializers = config.StringList{"serpent", "json", "marshal"}
		}))
		res := secClient(t, secStep{"name": "serializer", "scenario": "serializer", "addr": p.addr, "control": daemon, "token": mode})["serializer"]

		for _, ser := range []string{"serpent", "json", "marshal"} {
			secWantOK(t, ser, secOut(t, res, "calls", ser), 1)
			secWantOK(t, ser+" echo", secOut(t, res, "calls", ser+"_echo"), map[string]any{"k": []any{1, 2, "\u2713"}})
		}
		pc := secOut(t, res, "pickle_connect")
		secWantErr(t, "pickle CONNECT", pc, "Pyro4.errors.CommunicationError", "connection to <addr> rejected: "+refusal)
		if pc.Seconds >= secRefusalBound.Seconds() {
			t.Errorf("pickle CONNECT refused after %.3fs, want within %v", pc.Seconds, secRefusalBound)
		}
		secWantOK(t, "serpent call before the pickle call", secOut(t, res, "serpent_first"), 1)
		pl := secOut(t, res, "pickle_later")
		secWantErr(t, "pickle call", pl, "Pyro4.errors.SerializeError", refusal)
		if pl.Seconds >= secRefusalBound.Seconds() {
			t.Errorf("pickle call refused after %.3fs, want within %v", pl.Seconds, secRefusalBound)
		}
		secWantOK(t, "serpent call after the pickle call", secOut(t, res, "serpent_after"), 1)
		secWantOK(t, "pickle call directly to the daemon", secOut(t, res, "pickle_direct"), 1)
		t.Logf("pickle CONNECT: %s (%.3fs); pickle call: %s (%.3fs)", pc.text(), pc.Seconds, pl.text(), pl.Seconds)

		var counts map[string]float64
		secGet(t, res, &counts, "counts")
		want := map[string]float64{"serpent": 1, "json": 1, "marshal": 1, "pickle-connect": 0,
			"serpent-first": 1, "pickle-later": 0, "serpent-after": 1, "pickle-direct": 1}
		if !reflect.DeepEqual(counts, want) {
			t.Errorf("the daemon's call counts per token: %v, want %v (pickle calls through the dispatcher must never run)", counts, want)
		}
		p.waitLog(t, "refused client: serializer policy", nil)
	})
}

// TestSecurityHMAC: the client's key and the daemon's differ; the dispatcher verifies
// with one and signs with the other, both ways (the daemon sees signed requests and
// accepts them, the client accepts the signed replies): calls, a batch, and a 32 MiB
// payload each way. (Re-signed requests carry a correlation id (CORR) the client did not
// send; otherwise the daemon sees what it sees directly.) A wrong key, no key and the daemon's key on the client, at the
// CONNECT and at a later call, are refused as a daemon with the client's key refuses
// them directly: same exception classes, causes and texts. After each, a call with the
// right key works.
func TestSecurityHMAC(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	const clientKey, backendKey = "client key \u2713", "backend key"
	backend := secDaemon(t, "--hmac", backendKey)
	direct := secDaemon(t, "--hmac", clientKey)
	dir := t.TempDir()
	ckf, bkf := filepath.Join(dir, "client.key"), filepath.Join(dir, "backend.key")
	if err := os.WriteFile(ckf, []byte(clientKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bkf, []byte(backendKey), 0o600); err != nil {
		t.Fatal(err)
	}
	sessEachMode(t, func(t *testing.T, mode string) {
		p := startProxy(t, backend, sessMode(mode, func(c *config.Config) {
			c.Listeners[0].HMAC = &config.HMAC{ClientKeyFile: ckf, BackendKeyFile: bkf}
		}))
		res := secClient(t,
			secStep{"name": "proxy", "scenario": "hmac", "addr": p.addr, "hmac": clientKey, "backend_key": backendKey, "big_mib": 32},
			secStep{"name": "direct", "scenario": "hmac", "addr": direct, "hmac": clientKey, "backend_key": backendKey})
		got, dir := res["proxy"], res["direct"]

		sessEqual(t, "add", got["add"], 3)
		for _, k := range []string{"add", "echo", "batch", "daemon_saw_hmac", "response_has_hmac"} {
			sessEqual(t, k+" through the dispatcher vs direct", got[k], dir[k])
		}
		sessEqual(t, "batch", got["batch"], []any{3, "batch \u2713", map[string]any{"daemon_saw_hmac": true}, 42})
		if got["daemon_saw_hmac"] != true || got["response_has_hmac"] != true {
			t.Errorf("daemon saw HMAC: %v, reply had HMAC: %v", got["daemon_saw_hmac"], got["response_has_hmac"])
		}
		t.Logf("request annotations the daemon saw: through the dispatcher %v, directly %v", got["annotations"], dir["annotations"])
		var big struct {
			Len      int  `json:"len"`
			ReplyLen int  `json:"reply_len"`
			ShaOK    bool `json:"sha_ok"`
			ReplyOK  bool `json:"reply_ok"`
		}
		secGet(t, got, &big, "big")
		if big.Len != 32<<20 || big.ReplyLen != 32<<20 || !big.ShaOK || !big.ReplyOK {
			t.Errorf("32 MiB payload: %+v", big)
		}
		sessEqual(t, "call after the big payload", got["big_after"], 42)
		t.Logf("32 MiB each way: %vs", got["big_seconds"])

		want := map[string]string{
			"wrong_key_connect":   "Pyro4.errors.CommunicationError: cannot connect to <addr>: message hmac mismatch (cause Pyro4.errors.SecurityError: message hmac mismatch)",
			"no_key_connect":      "Pyro4.errors.CommunicationError: cannot connect to <addr>: hmac key config not symmetric (cause Pyro4.errors.SecurityError: hmac key config not symmetric)",
			"backend_key_connect": "Pyro4.errors.CommunicationError: cannot connect to <addr>: message hmac mismatch (cause Pyro4.errors.SecurityError: message hmac mismatch)",
			"wrong_key_later":     "Pyro4.errors.ConnectionClosedError: receiving: not enough data",
			"no_key_later":        "Pyro4.errors.ConnectionClosedError: receiving: not enough data",
			"backend_key_later":   "Pyro4.errors.ConnectionClosedError: receiving: not enough data",
		}
		for _, bad := range []string{"wrong_key", "no_key", "backend_key"} {
			for _, at := range []string{"_connect", "_later"} {
				k := bad + at
				o, d := secOut(t, got, k), secOut(t, dir, k)
				t.Logf("%s: through the dispatcher %s (%.3fs); directly %s", k, o.text(), o.Seconds, d.text())
				if o.text() != d.text() {
					t.Errorf("%s: through the dispatcher\n  %s\ndirectly\n  %s", k, o.text(), d.text())
				}
				if o.text() != want[k] {
					t.Errorf("%s: %s\nwant %s", k, o.text(), want[k])
				}
				if o.Seconds >= secRefusalBound.Seconds() {
					t.Errorf("%s: refused after %.3fs, want within %v", k, o.Seconds, secRefusalBound)
				}
			}
			secWantOK(t, bad+": the right key after a refused CONNECT", secOut(t, got, bad+"_connect_then_good"), 4)
			secWantOK(t, bad+": a call before the key changed", secOut(t, got, bad+"_later_first"), 6)
			secWantOK(t, bad+": the right key after the refused call", secOut(t, got, bad+"_later_then_good"), 10)
		}
	})
}

// TestSecurityRateLimit: with calls_per_second_per_ip 10 (burst 3), a real Pyro4 client
// on 127.0.0.1 calling as fast as it can gets Pyro4 CommunicationErrors naming the limit
// at once, while another Pyro4 client at the same time from 127.0.0.2 (its socket bound
// there) making 5 calls 0.2 s apart gets none. A refused call is an ordinary error reply:
// the connection stays open (shown with _pyroRawWireResponse, as Pyro4 itself drops its
// connection after any CommunicationError) and works again once the bucket refilled.
func TestSecurityRateLimit(t *testing.T) {
	t.Parallel()
	requirePyro4(t)
	daemon := secDaemon(t)
	const rate, burst, otherCalls = 10, 3, 5
	const refusal = "pyro-dispatch: rate limit of 10 calls/s per client IP exceeded by 127.0.0.1 (burst 3)"
	sessEachMode(t, func(t *testing.T, mode string) {
		p := startProxy(t, daemon, sessMode(mode, func(c *config.Config) {
			c.Limits.CallsPerSecondPerIP, c.Limits.Burst = rate, burst
		}))
		res := secClient(t, secStep{"name": "rate", "scenario": "rate", "addr": p.addr,
			"other_source": "127.0.0.2", "other_calls": otherCalls, "other_interval": 0.2, "refill": 0.5})["rate"]

		var lim struct {
			OK         int            `json:"ok"`
			Errors     map[string]int `json:"errors"`
			Locals     []string       `json:"locals"`
			First      string         `json:"first_local"`
			MaxSeconds float64        `json:"max_error_seconds"`
			Seconds    float64        `json:"seconds"`
		}
		secGet(t, res, &lim, "limited")
		var other struct {
			OK     int    `json:"ok"`
			Errors []any  `json:"errors"`
			Local  string `json:"local"`
		}
		secGet(t, res, &other, "other")
		t.Logf("limited client (%s): %d calls ok in %.2fs, errors %v; other client (%s): %d ok, errors %v",
			lim.First, lim.OK, lim.Seconds, lim.Errors, other.Local, other.OK, other.Errors)

		wantKey := "Pyro4.errors.CommunicationError: " + refusal
		if len(lim.Errors) != 1 || lim.Errors[wantKey] < 3 {
			t.Errorf("limited client's errors %v, want only (and at least 3 times) %q", lim.Errors, wantKey)
		}
		if maxOK := burst + int(rate*lim.Seconds*1.2) + 2; lim.OK < 1 || lim.OK > maxOK {
			t.Errorf("limited client: %d calls ok in %.2fs, want 1..%d", lim.OK, lim.Seconds, maxOK)
		}
		if lim.MaxSeconds >= secRefusalBound.Seconds() {
			t.Errorf("limited client: a refused call took %.3fs", lim.MaxSeconds)
		}
		if !strings.HasPrefix(lim.First, "127.0.0.1:") || !reflect.DeepEqual(lim.Locals, []string{"127.0.0.1"}) && len(lim.Locals) != 0 {
			t.Errorf("limited client's addresses: %s, %v", lim.First, lim.Locals)
		}
		if !strings.HasPrefix(other.Local, "127.0.0.2:") || other.OK != otherCalls || len(other.Errors) != 0 || res["other_alive"] != false {
			t.Errorf("other client (%s): %d calls ok, errors %v, still running %v; want %d calls ok, no error",
				other.Local, other.OK, other.Errors, res["other_alive"], otherCalls)
		}
		var raw struct {
			Class string `json:"class"`
			Error string `json:"error"`
		}
		secGet(t, res, &raw, "raw_refused")
		if raw.Class != "Pyro4.errors.CommunicationError" || raw.Error != refusal {
			t.Errorf("raw client's refused call: %+v", raw)
		}
		sessEqual(t, "raw client's connection after the refused call", res["raw_same_connection_after_refusal"], true)
		sessEqual(t, "raw client's call after the bucket refilled", res["raw_after_refill"],
			map[string]any{"exception": false, "result": 42, "same_connection": true})
	})
}
