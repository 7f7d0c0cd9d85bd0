package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

func TestClassifyPython(t *testing.T) {
	for _, c := range []struct {
		class, reason string
		want          Cause
	}{
		{"Pyro4.errors.ConnectionClosedError", "receiving: not enough data", CauseClosed},
		{"Pyro4.errors.ConnectionClosedError", "sending: connection lost: [Errno 32] Broken pipe", CauseClosed},
		{"Pyro4.errors.CommunicationError", "connection to ('127.0.0.1', 20001) rejected: pyro-dispatch: no healthy backend in group py (…)", CauseRefused},
		{"Pyro4.errors.CommunicationError", "pyro-dispatch: no connection to backend 127.0.0.1:2 free in time (8 open, 3 waiting)", CauseRefused},
		{"Pyro4.errors.CommunicationError", "cannot connect to ('127.0.0.1', 20001): [Errno 111] Connection refused", CauseOther},
		{"Pyro4.errors.CommunicationError", "the daemon said: see pyro-dispatch: for details", CauseOther},
		{"Pyro4.errors.TimeoutError", "receiving: timeout", CauseTimeout},
		{"__main__.Mismatch", "echo: got 'p001-…'", CauseWrong},
		{"Pyro4.errors.ProtocolError", "invalid msg sequence number", CauseWrong},
		{"builtins.KeyError", "x", CauseOther},
	} {
		if got := classifyPython(c.class, c.reason); got != c.want {
			t.Errorf("%s: %s: %s, want %s", c.class, c.reason, got, c.want)
		}
	}
}

// failGo makes the load generator fail a call the given way, against a stand-in
// server, and returns its error.
func failGo(t *testing.T, answer func(c net.Conn)) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			answer(c)
		}
	}()
	var got error
	_, err = bench.Run(t.Context(), bench.Config{Targets: []bench.Target{{Name: "x", Addr: ln.Addr().String()}}, Calls: 1,
		Payload: 100, Unique: true, Timeout: 2 * time.Second, Observe: func(c bench.Call) {
			if got == nil {
				got = c.Err
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatal("the call did not fail")
	}
	return got
}

func TestClassifyGo(t *testing.T) {
	handshake := func(c net.Conn) []byte {
		b := make([]byte, len(bench.HandshakeMessage(frame.Serpent, bench.EchoObject)))
		io.ReadFull(c, b)
		return b
	}
	refusedAtConnect := failGo(t, func(c net.Conn) {
		defer c.Close()
		handshake(c)
		c.Write(connectFail("pyro-dispatch: no healthy backend in group go (…)"))
	})
	closedAtConnect := failGo(t, func(c net.Conn) { handshake(c); c.Close() })
	for _, c := range []struct {
		err  error
		want Cause
	}{
		{refusedAtConnect, CauseRefused},
		{closedAtConnect, CauseClosed},
		{io.EOF, CauseClosed},
		{fmt.Errorf("write: %w", syscall.EPIPE), CauseClosed},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, CauseClosed},
		{errors.New("something else"), CauseOther},
	} {
		if got := classifyGo(c.err); got != c.want {
			t.Errorf("%v: %s, want %s", c.err, got, c.want)
		}
	}
}

// connectFail is a CONNECTFAIL with reason, in serpent.
func connectFail(reason string) []byte {
	p, _ := frame.AppendStringPayload(nil, frame.Serpent, reason)
	return frame.AppendMessage(nil, frame.Header{Type: frame.ConnectFail, Serializer: frame.Serpent}, nil, p)
}

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func TestExplain(t *testing.T) {
	kill := Fault{Seq: 1, Kind: "backend_kill", Start: at(10), End: at(11), Paths: []Path{{"session", "py"}, {"pooled", "py"}}, Causes: killed}
	exhaust := Fault{Seq: 2, Kind: "pool_exhaustion", Start: at(20), End: at(23), Paths: []Path{{"pooled", "py"}}, Causes: []Cause{CauseRefused}}
	storm := Fault{Seq: 3, Kind: "connection_storm", Start: at(30), End: at(32), Paths: []Path{{"session", "go"}}}
	faults := []Fault{kill, exhaust, storm}
	call := func(path Path, from, to float64, cause Cause) Failure {
		return Failure{Path: path, Start: at(from), End: at(to), Cause: cause}
	}
	sessPy, pooledPy, sessGo := Path{"session", "py"}, Path{"pooled", "py"}, Path{"session", "go"}
	for i, c := range []struct {
		x    Failure
		want int
	}{
		{call(sessPy, 9.9, 10.2, CauseClosed), 1},                 // in flight when killed
		{call(pooledPy, 10.5, 10.6, CauseRefused), 1},             // no member then
		{call(sessPy, 12.9, 12.95, CauseRefused), 1},              // within 2 s of its end
		{call(sessPy, 13.1, 13.2, CauseRefused), 0},               // later: unexplained
		{call(Path{"session", "go"}, 10.5, 10.6, CauseClosed), 0}, // another group
		{call(sessPy, 10.5, 10.6, CauseTimeout), 0},               // a hang is never explained
		{call(pooledPy, 21, 22, CauseRefused), 2},                 // the pool was full
		{call(pooledPy, 21, 22, CauseClosed), 0},                  // that closes nothing
		{call(sessPy, 21, 22, CauseRefused), 0},                   // another listener's pool
		{call(sessGo, 31, 31.1, CauseClosed), 0},                  // a storm fails no call
		{call(sessPy, 9, 9.5, CauseClosed), 0},                    // before the fault
	} {
		fs := []Failure{c.x}
		explain(fs, faults)
		if fs[0].Fault != c.want {
			t.Errorf("case %d: explained by %d, want %d", i, fs[0].Fault, c.want)
		}
	}
	// A connection closed while its client was idle is found closed at the next call.
	idle := call(sessPy, 16, 16.1, CauseClosed)
	idle.Idle = at(9)
	refused := call(sessPy, 16, 16.1, CauseRefused)
	refused.Idle = at(9)
	fs := []Failure{idle, refused}
	explain(fs, faults)
	if fs[0].Fault != 1 || fs[1].Fault != 0 {
		t.Errorf("idle across the kill: closed explained by %d (want 1), refused by %d (want 0)", fs[0].Fault, fs[1].Fault)
	}
}

func TestRecoveryWatch(t *testing.T) {
	w := newRecoveryWatch()
	p, q := Path{"pooled", "go"}, Path{"session", "go"}
	w.ok(p, at(0.5), at(0.6))
	w.expect(1, []Path{p, q}, at(1))
	w.ok(p, at(0.9), at(1.2)) // started before the end: does not count
	w.ok(p, at(1.1), at(1.3))
	w.ok(p, at(1.2), at(1.25)) // a later one: the first found counts
	// A call that started after the end but was back before the fault was reported.
	w.ok(q, at(2.1), at(2.2))
	w.expect(2, []Path{q}, at(2))
	w.expect(3, []Path{q}, at(5))
	got := map[[2]any]time.Duration{}
	for _, r := range w.results() {
		got[[2]any{r.Fault, r.Path}] = r.After
	}
	want := map[[2]any]time.Duration{
		{1, p}: 300 * time.Millisecond, {1, q}: 1200 * time.Millisecond, {2, q}: 200 * time.Millisecond, {3, q}: -1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("recoveries %v, want %v", got, want)
	}
}

func TestOverlaps(t *testing.T) {
	p := Path{"pipelined", "go"}
	faults := []Fault{
		{Seq: 1, Kind: "reload", Start: at(10), End: at(10.01), Paths: []Path{p}},
		{Seq: 2, Kind: "backend_stall", Start: at(10.005), End: at(11.2), Paths: []Path{p}},
		{Seq: 3, Kind: "garbage", Start: at(10), End: at(20), Paths: []Path{p}},
		{Seq: 4, Kind: "backend_kill", Start: at(30), End: at(31), Paths: []Path{p}},
	}
	rs := []Recovery{
		{Fault: 1, Path: p, End: at(10.01), After: 1200 * time.Millisecond}, // held up by the stall
		{Fault: 2, Path: p, End: at(11.2), After: 10 * time.Millisecond},    // the garbage holds nothing
		{Fault: 4, Path: p, End: at(31), After: 20 * time.Millisecond},
		{Fault: 3, Path: p, End: at(20), After: -1},
	}
	overlaps(rs, faults, holds)
	for i, want := range []int{2, 0, 0, 0} {
		if rs[i].Overlap != want {
			t.Errorf("recovery of fault %d: overlap %d, want %d", rs[i].Fault, rs[i].Overlap, want)
		}
	}
}
