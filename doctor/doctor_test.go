package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/dispatchtest"
)

// These tests need no Python: targets are Go stand-ins (a closed port, servers that
// answer like Pyro5, HTTP or not at all) and the Go echo daemon. The real Pyro4 daemons
// and name server are in pyro4_test.go.

// check runs the doctor and fails the test on a usage error.
func check(t *testing.T, target string, opts Options) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	r, err := Run(ctx, target, opts)
	if err != nil {
		t.Fatalf("Run(%q): %v", target, err)
	}
	return r
}

// text renders the report as the command prints it.
func text(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// hasLines fails the test unless every wanted line is a line of the text report.
func hasLines(t *testing.T, r *Report, want ...string) {
	t.Helper()
	out := text(t, r)
	lines := strings.Split(out, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("no line %q in the report:\n%s", w, out)
		}
	}
}

// standIn serves each connection to a fresh 127.0.0.1 port with serve until the test
// ends, and returns the address.
func standIn(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// closedPort returns a 127.0.0.1 address nothing listens on: that of a Go echo daemon
// closed at once.
func closedPort(t *testing.T) string {
	t.Helper()
	s := dispatchtest.Echo(t, "127.0.0.1:0", 0)
	s.Close()
	return s.Addr().String()
}

func TestClosedPort(t *testing.T) {
	addr := closedPort(t)
	r := check(t, addr, Options{})
	hasLines(t, r,
		"daemon "+addr,
		"✓ dns: 127.0.0.1 is an IP address: nothing to resolve",
		"✗ tcp connect: "+addr+": connection refused",
		"hint: nothing listens there: is the daemon running, on this port? A Pyro4 daemon listens on localhost only unless started with host= (or HOST)",
		"- not checked: tls, protocol, hmac, serializers, ping, objects",
		"✗ verdict: "+addr+" does not answer calls (tcp connect: "+addr+": connection refused)")
	if r.AnswersCalls || r.OK || r.ExitCode() != 1 {
		t.Errorf("answers %v, ok %v, exit %d", r.AnswersCalls, r.OK, r.ExitCode())
	}
}

func TestClosedNameServer(t *testing.T) {
	addr := closedPort(t)
	r := check(t, "PYRONAME:example.greeter@"+addr, Options{})
	hasLines(t, r,
		"name server "+addr,
		"✗ tcp connect: "+addr+": connection refused",
		`hint: Pyro4 clients report this as "Failed to locate the nameserver": start one (python3 -m Pyro4.naming); it listens on localhost only unless started with -n HOST`,
		"- not checked: tls, protocol, hmac, lookup",
		"✗ verdict: PYRONAME:example.greeter@"+addr+" does not answer calls (name server tcp connect: "+addr+": connection refused)")
	if len(r.Sections) != 1 {
		t.Errorf("%d sections, want the name server's only", len(r.Sections))
	}
}

// pyro5Header is the start of what a Pyro5 daemon (protocol 502) sends: "PYRO", the
// version, then the rest of its 40-byte header, here a CONNECTFAIL.
var pyro5Header = append([]byte{'P', 'Y', 'R', 'O', 0x01, 0xf6, 3, 3}, make([]byte, 32)...)

func TestPyro5StandIn(t *testing.T) {
	addr := standIn(t, func(c net.Conn) {
		var req [frame.HeaderSize]byte
		if _, err := io.ReadFull(c, req[:]); err == nil {
			c.Write(pyro5Header)
		}
	})
	target := "PYRO:example.greeter@" + addr
	r := check(t, target, Options{})
	hasLines(t, r,
		"✓ tls: not needed: plain TCP gets an answer",
		"✗ protocol: Pyro5 (protocol 502), not Pyro4",
		"hint: Pyro5 is not wire compatible with Pyro4: use Pyro5 clients with this daemon, or run the daemon with Pyro4",
		"- not checked: hmac, serializers, ping, object",
		"✗ verdict: "+target+" does not answer calls (protocol: Pyro5 (protocol 502), not Pyro4)")
	d, _ := r.Sections[0].Check(CheckProtocol).Data.(*ProtocolData)
	if d == nil || d.Version != 502 || d.Name != "Pyro5" {
		t.Errorf("protocol data %+v", d)
	}
}

func TestOtherServers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(c net.Conn)
		line  string
	}{
		{"http", func(c net.Conn) { c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) },
			"✗ protocol: not Pyro: an HTTP server answered"},
		{"pyro3", func(c net.Conn) { c.Write([]byte("PYRO\x00\x05\x00\x10")) },
			"✗ protocol: Pyro 3 or older (protocol 5), not Pyro4"},
		{"older pyro4", func(c net.Conn) { c.Write([]byte("PYRO\x00\x2e")) },
			"✗ protocol: an older Pyro4 (protocol 46), not 48"},
		{"other", func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n")) },
			`✗ protocol: not Pyro: the server answered "SSH-2."`},
		{"closes", func(c net.Conn) {},
			"✗ protocol: the server closed the connection without answering a Pyro4 CONNECT"},
		{"silent", func(c net.Conn) { io.Copy(io.Discard, c) },
			"✗ protocol: no answer to a Pyro4 CONNECT within 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := standIn(t, tc.serve)
			r := check(t, addr, Options{Timeout: 300 * time.Millisecond})
			hasLines(t, r, tc.line)
			if r.AnswersCalls || r.ExitCode() != 1 {
				t.Errorf("answers %v, exit %d", r.AnswersCalls, r.ExitCode())
			}
		})
	}
}

// The Go echo daemon serves no Pyro.Daemon object: the object check falls back to a
// handshake with META_ON_CONNECT, as a Pyro4 proxy makes it.
func TestEchoDaemon(t *testing.T) {
	s := dispatchtest.Echo(t, "127.0.0.1:0", 0)
	r := check(t, s.URI(), Options{})
	hasLines(t, r,
		"✓ protocol: Pyro4 (protocol 48)",
		"✓ hmac: not needed",
		"✓ serializers: accepted serpent, json, marshal; refused pickle, dill, msgpack, cloudpickle",
		"✓ object: methods blob, echo, oneway; oneway oneway; attributes none",
		"✓ verdict: "+s.URI()+" answers calls")
	if !r.OK || r.ExitCode() != 0 {
		t.Errorf("ok %v, exit %d", r.OK, r.ExitCode())
	}
	ping, _ := r.Sections[0].Check(CheckPing).Data.(*PingData)
	if ping == nil || len(ping.RTTMillis) != DefaultPings {
		t.Errorf("ping data %+v", ping)
	}

	r = check(t, "PYRO:nothing@"+s.Addr().String(), Options{})
	hasLines(t, r,
		"✗ object: the daemon refused a handshake for it: unknown object",
		"✗ verdict: PYRO:nothing@"+s.Addr().String()+" does not answer calls (object: the daemon refused a handshake for it: unknown object)")

	r = check(t, s.Addr().String(), Options{})
	hasLines(t, r,
		"! objects: not listed: DaemonError: unknown object",
		"✓ verdict: "+s.Addr().String()+" answers calls, with 1 warning (objects)")
}

func TestUnixSocket(t *testing.T) {
	s := dispatchtest.Echo(t, "unix:"+t.TempDir()+"/echo.sock", 0)
	r := check(t, s.URI(), Options{})
	hasLines(t, r, "✓ verdict: "+s.URI()+" answers calls")
	if c := r.Sections[0].Check(CheckDNS); c != nil {
		t.Errorf("a unix socket has a dns check: %+v", c)
	}
	none := t.TempDir() + "/none.sock"
	r = check(t, "PYRO:echo@./u:"+none, Options{})
	hasLines(t, r, "✗ unix connect: "+none+": no such socket file")
}

// TestHMACKeyGivenToPlainDaemon: a key the daemon does not have makes it refuse.
func TestHMACKeyGivenToPlainDaemon(t *testing.T) {
	s := dispatchtest.Echo(t, "127.0.0.1:0", 0)
	r := check(t, s.URI(), Options{HMACKey: []byte("k")})
	hasLines(t, r, "✗ hmac: not needed, but a key was given")
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Target
		err  string
	}{
		{in: "PYRO:obj@example.com:9999", want: Target{Kind: Object, Object: "obj", At: Endpoint{Host: "example.com", Port: 9999}}},
		{in: "pyro:obj@[::1]:9999", want: Target{Kind: Object, Object: "obj", At: Endpoint{Host: "::1", Port: 9999}}},
		{in: "PYRO:obj@./u:/run/pyro.sock", want: Target{Kind: Object, Object: "obj", At: Endpoint{Socket: "/run/pyro.sock"}}},
		{in: "PYRONAME:a.b", want: Target{Kind: Name, Object: "a.b"}},
		{in: "PYRONAME:a.b@ns.local", want: Target{Kind: Name, Object: "a.b", At: Endpoint{Host: "ns.local", Port: 9090}}},
		{in: "PYRONAME:a.b@[fe80::1]", want: Target{Kind: Name, Object: "a.b", At: Endpoint{Host: "fe80::1", Port: 9090}}},
		{in: "PYRONAME:a.b@10.0.0.1:9091", want: Target{Kind: Name, Object: "a.b", At: Endpoint{Host: "10.0.0.1", Port: 9091}}},
		{in: "10.0.0.1:4000", want: Target{Kind: Address, At: Endpoint{Host: "10.0.0.1", Port: 4000}}},
		{in: "unix:/tmp/x.sock", want: Target{Kind: Address, At: Endpoint{Socket: "/tmp/x.sock"}}},
		{in: "", err: "empty target"},
		{in: "PYRO:obj", err: "needs a location"},
		{in: "PYRO:@h:1", err: "no object id"},
		{in: "PYRO:obj@h:0", err: "bad port"},
		{in: "PYRO:obj@h", err: "want HOST:PORT"},
		{in: "PYROMETA:tag", err: "PYROMETA URIs are not supported"},
		{in: "PYROX:a@b:1", err: "unknown URI protocol PYROX"},
		{in: "justahost", err: "want a PYRO: or PYRONAME: URI, or HOST:PORT"},
	} {
		got, err := ParseTarget(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		tc.want.Raw = tc.in
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if u := URI("o", Endpoint{Host: "::1", Port: 5}); u != "PYRO:o@[::1]:5" {
		t.Errorf("URI: %s", u)
	}
}

func TestRunUsageErrors(t *testing.T) {
	ns := Endpoint{Host: "127.0.0.1", Port: 9090}
	for _, tc := range []struct {
		target string
		opts   Options
		err    string
	}{
		{"127.0.0.1:1", Options{NameServer: ns}, "goes with a PYRONAME: target"},
		{"PYRONAME:x@127.0.0.1:2", Options{NameServer: ns}, "names its name server already"},
		{"127.0.0.1:1", Options{TLS: &TLSOptions{}}, ""},
	} {
		_, err := Run(t.Context(), tc.target, tc.opts)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.target, err, tc.err)
		}
	}
	opts := Options{TLS: &TLSOptions{}}
	opts.TLS.Files.CA = "/nonexistent/ca.pem"
	if _, err := Run(t.Context(), "127.0.0.1:1", opts); err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("missing CA file: %v", err)
	}
}

func TestReach(t *testing.T) {
	for _, tc := range []struct {
		ns    string // where the name server was reached
		uri   Endpoint
		want  Status
		words string
	}{
		{"127.0.0.1:9090", Endpoint{Host: "localhost", Port: 1}, Warn, ", which points at localhost"},
		{"192.0.2.7:9090", Endpoint{Host: "localhost", Port: 1}, Fail, ", which points at localhost"},
		{"192.0.2.7:9090", Endpoint{Host: "127.0.1.1", Port: 1}, Fail, ", which points at localhost"},
		{"[2001:db8::1]:9090", Endpoint{Host: "::1", Port: 1}, Fail, ", which points at localhost"},
		{"192.0.2.7:9090", Endpoint{Socket: "/tmp/s"}, Fail, ", which is a unix socket"},
		{"127.0.0.1:9090", Endpoint{Host: "0.0.0.0", Port: 1}, Fail, ", which is no address a client can connect to"},
		{"192.0.2.7:9090", Endpoint{Host: "10.1.2.3", Port: 1}, Warn, ", a private address"},
		{"10.0.0.2:9090", Endpoint{Host: "10.1.2.3", Port: 1}, OK, ""},
		{"127.0.0.1:9090", Endpoint{Host: "10.1.2.3", Port: 1}, OK, ""},
		{"192.0.2.7:9090", Endpoint{Host: "192.0.2.8", Port: 1}, OK, ""},
	} {
		p := (&runner{ctx: t.Context(), opts: Options{Timeout: time.Second, Resolver: net.DefaultResolver}}).prober(RoleNameServer, Endpoint{}, "")
		p.network, p.addr = "tcp", tc.ns
		st, words, hint := p.reach(tc.uri)
		if st != tc.want || words != tc.words || (st != OK) != (hint != "") {
			t.Errorf("%s from %s: %s %q %q; want %s %q", tc.uri, tc.ns, st, words, hint, tc.want, tc.words)
		}
	}
}

func TestConnectPayloads(t *testing.T) {
	// What Python writes for the same dicts (serpent.dumps, json.dumps, msgpack.packb)
	// and, for marshal and pickle, what its own decoders accept (checked against Pyro4's
	// serializers in TestConnectPayloadsPyro4).
	for _, tc := range []struct {
		ser  frame.Serializer
		obj  string
		want string
	}{
		{frame.Serpent, "", "# serpent utf-8 python3.2\n{'handshake':'hello'}"},
		{frame.Serpent, "it's", "# serpent utf-8 python3.2\n{'handshake':'hello','object':\"it's\"}"},
		{frame.JSON, "obj.x", `{"handshake": "hello", "object": "obj.x"}`},
		{frame.Marshal, "obj.x", "{z\x09handshakez\x05helloz\x06objectz\x05obj.x0"},
		{frame.Pickle, "", "\x80\x02}(X\x09\x00\x00\x00handshakeX\x05\x00\x00\x00hellou."},
		{frame.Msgpack, "o", "\x82\xa9handshake\xa5hello\xa6object\xa1o"},
	} {
		got, err := connectPayload(tc.ser, tc.obj)
		if err != nil || string(got) != tc.want {
			t.Errorf("%v %q: %q, %v; want %q", tc.ser, tc.obj, got, err, tc.want)
		}
	}
	if _, err := connectPayload(frame.Serializer(9), ""); err == nil {
		t.Error("serializer 9: no error")
	}
}

func TestDecodeString(t *testing.T) {
	const s = "message used serializer that is not accepted: 4"
	for _, ser := range allSerializers {
		p, err := frame.AppendStringPayload(nil, ser, s)
		if err != nil {
			t.Fatal(err)
		}
		if got := decodeString(ser, p); got != s {
			t.Errorf("%v: %q", ser, got)
		}
	}
	for _, tc := range []struct {
		ser  frame.Serializer
		p    string
		want string
	}{
		// As Pyro4 4.82 sends them (captured): marshal with FLAG_REF, pickle protocol 5.
		{frame.Marshal, "\xfa\x1dhmac key config not symmetric", "hmac key config not symmetric"},
		{frame.Pickle, "\x80\x05\x95\t\x00\x00\x00\x00\x00\x00\x00\x8c\x05hello\x94.", "hello"},
		{frame.Serpent, "# serpent utf-8 python3.2\n\"it's \\xe9\\u2603\\U0001f600\\n\"", "it's é☃😀\n"},
		{frame.Msgpack, "\xd9\x03abc", "abc"},
		{frame.Marshal, "\xfa\x09short", `"\xfa\tshort"`},
		{frame.Serpent, "# serpent utf-8 python3.2\n'bad \\q'", `"# serpent utf-8 python3.2\n'bad \\q'"`},
		{frame.JSON, "[1]", `"[1]"`},
	} {
		if got := decodeString(tc.ser, []byte(tc.p)); got != tc.want {
			t.Errorf("%v %q: %q, want %q", tc.ser, tc.p, got, tc.want)
		}
	}
}

func TestReportForms(t *testing.T) {
	r := &Report{Target: "PYRONAME:x", Sections: []Section{
		{Role: RoleNameServer, Location: "ns:9090", Checks: []Check{
			{Name: CheckDNS, Status: OK, Summary: "fine"},
			{Name: CheckLookup, Status: Warn, Summary: "x is PYRO:x@localhost:1, which points at localhost", Hint: "do this"},
		}},
		{Role: RoleDaemon, Location: "localhost:1", Object: "x", Checks: []Check{
			{Name: CheckConnect, Status: Fail, Summary: "localhost:1: connection refused; more", Hint: "start it"},
			{Name: CheckTLS, Status: Skip, Summary: "not checked"},
			{Name: CheckProtocol, Status: Skip, Summary: "not checked"},
		}},
	}}
	r.finish(false)
	want := `pyro-dispatch doctor PYRONAME:x
name server ns:9090
  ✓ dns: fine
  ! lookup: x is PYRO:x@localhost:1, which points at localhost
      hint: do this
daemon localhost:1, object "x"
  ✗ tcp connect: localhost:1: connection refused; more
      hint: start it
  - not checked: tls, protocol
✗ verdict: PYRONAME:x does not answer calls (tcp connect: localhost:1: connection refused)
`
	if got := text(t, r); got != want {
		t.Errorf("text:\n%s\nwant:\n%s", got, want)
	}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back struct {
		OK       bool
		Verdict  string
		Sections []struct {
			Role   string
			Checks []struct{ Name, Status, Hint string }
		}
	}
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatalf("%v\n%s", err, b.Bytes())
	}
	if back.OK || back.Verdict != r.Verdict || len(back.Sections) != 2 || back.Sections[1].Checks[0].Status != "fail" ||
		back.Sections[0].Checks[1].Hint != "do this" {
		t.Errorf("JSON: %s", b.Bytes())
	}

	for _, tc := range []struct {
		answers bool
		sts     []Status
		want    string
	}{
		{true, []Status{OK, OK}, "T answers calls"},
		{true, []Status{OK, Warn, Warn}, "T answers calls, with 2 warnings (tls, tls)"},
		{true, []Status{Warn, Fail}, "T answers calls, but 1 check failed (tls: s)"},
		{false, []Status{OK}, "T does not answer calls"},
	} {
		r := &Report{Target: "T", Sections: []Section{{Role: RoleDaemon}}}
		for _, st := range tc.sts {
			r.Sections[0].Checks = append(r.Sections[0].Checks, Check{Name: CheckTLS, Status: st, Summary: "s"})
		}
		r.finish(tc.answers)
		if r.Verdict != tc.want || r.OK != (tc.answers && !slices.Contains(tc.sts, Fail)) {
			t.Errorf("%v %v: %q ok %v", tc.answers, tc.sts, r.Verdict, r.OK)
		}
	}
}

// A canceled context ends the run with the remaining checks skipped, not a hang.
func TestCanceled(t *testing.T) {
	addr := standIn(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	r, err := Run(ctx, addr, Options{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %v", took)
	}
	if r.OK {
		t.Errorf("ok after cancel:\n%s", text(t, r))
	}
}
