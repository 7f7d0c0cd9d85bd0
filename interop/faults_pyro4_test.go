package interop

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// This file: faults the way Pyro4 clients expect them, case by case, with
// testdata/fx_daemon.py (object fx.svc, and chains of objects calling each other) and
// testdata/fx_client.py (one scenario per run), each test run directly and through the
// dispatcher in each of sessModes (fxEachWay) and held to what the client sees directly:
// a backend lost after a request may have reached it closes the client's connection
// (ConnectionClosedError, which Pyro4's retries and reconnects act on), every request
// gets a reply or a closed connection, call cycles never deadlock, abandoned calls hold
// no one up, and a restarted backend is back at once. The example-based tests are in
// faults_examples_test.go.

// Pyro4 exception classes.
const (
	fxClosed  = "Pyro4.errors.ConnectionClosedError"
	fxComm    = "Pyro4.errors.CommunicationError"
	fxTimeout = "Pyro4.errors.TimeoutError"
)

// fxOutcome is one call's outcome in fx_client.py.
type fxOutcome struct {
	pooledOutcome
	At    float64 `json:"at"`          // time.time() when it ended
	Wrong bool    `json:"wrong_reply"` // a result that is not this call's
}

// fxDaemon starts testdata/fx_daemon.py listening on addr with options and returns it
// and its address. It is killed when the test ends.
func fxDaemon(t *testing.T, addr string, opts ...string) (*pyro4test.Process, string) {
	t.Helper()
	p := pyro4test.StartDaemon(t, script(t, "fx_daemon.py"), append([]string{addr}, opts...)...)
	if !strings.HasPrefix(p.Line, "PYRO:fx.svc@") {
		t.Fatalf("fx_daemon.py printed %q, want its URI", p.Line)
	}
	return p, fxLocation(t, p.Line)
}

// fxClient runs one scenario of testdata/fx_client.py to its end and decodes its outcome
// into v.
func fxClient(t *testing.T, v any, scenario string, args ...string) {
	t.Helper()
	out := fxRun(t, 45*time.Second, "fx_client.py", append([]string{scenario}, args...)...)
	fxDecodeLast(t, out, v)
}

// fxWantClass fails unless a call raised class.
func fxWantClass(t *testing.T, what string, o pooledOutcome, class string) {
	t.Helper()
	if o.Class != class {
		t.Errorf("%s: %v, want %s (as directly)", what, o, class)
	}
}

// TestFaultPyro4MaxRetries: the daemon drops the connection of a call it received (the
// reply is lost, as when it dies mid-call). With _pyroMaxRetries 0 the client raises
// ConnectionClosedError; with 2, Pyro4 reconnects and sends the call again, which works.
// Through the dispatcher the same: the client's connection is closed (a CommunicationError
// reply would not be retried), the dispatcher sends nothing again by itself (the daemon
// ran each call as often as directly), and a bystander proxy, connected and idle
// meanwhile, calls on untouched.
func TestFaultPyro4MaxRetries(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	fxEachWay(t, func(t *testing.T, way string) {
		_, backend := fxDaemon(t, "127.0.0.1:0")
		var r struct {
			BystanderBefore pooledOutcome `json:"bystander_before"`
			NoRetry         pooledOutcome `json:"no_retry"`
			Retry           pooledOutcome `json:"retry"`
			RetryAfter      pooledOutcome `json:"retry_after"`
			Bystander       pooledOutcome `json:"bystander"`
			T0Calls         int           `json:"t0_calls"`
			T2Calls         int           `json:"t2_calls"`
		}
		fxClient(t, &r, "maxretries", pyroURI("fx.svc", fxVia(t, way, backend)))
		r.BystanderBefore.wantOK(t, "bystander's first call", "b1")
		fxWantClass(t, "_pyroMaxRetries 0, connection dropped by the daemon", r.NoRetry, fxClosed)
		r.Retry.wantOK(t, "_pyroMaxRetries 2, connection dropped by the daemon once", "ok t2 after 1")
		r.RetryAfter.wantOK(t, "the retrying proxy's next call", "after")
		r.Bystander.wantOK(t, "the idle bystander's next call", "b2")
		if r.T0Calls != 1 || r.T2Calls != 2 {
			t.Errorf("the daemon ran the call without retries %d times (want 1), the one with retries %d times (want 2)", r.T0Calls, r.T2Calls)
		}
	})
}

// TestFaultPyro4Reconnect: a daemon killed (SIGKILL) while the client is idle and
// restarted on the same port: the client's next call raises ConnectionClosedError
// (pooled modes: or simply works) and _pyroReconnect gets it going again within 0.5 s.
// Then the daemon is killed again and comes back after 1 s, while fresh proxies call
// every 50 ms: they fail with a CommunicationError (refused; through the dispatcher a
// CONNECTFAIL: a backend unreachable at CONNECT is refused there, in every mode), never a
// timeout, and the first call that works comes within 0.5 s of the daemon accepting
// connections again.
func TestFaultPyro4Reconnect(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	fxEachWay(t, func(t *testing.T, way string) {
		daemon, backend := fxDaemon(t, "127.0.0.1:0")
		uri := pyroURI("fx.svc", fxVia(t, way, backend))
		dir := t.TempDir()
		client := pyro4test.StartDaemon(t, script(t, "fx_client.py"), "reconnect", uri, dir)
		daemon.Stop()
		daemon, _ = fxDaemon(t, backend)
		fxTouch(t, filepath.Join(dir, "restarted"))
		fxWaitOutput(t, client, "phase2")
		daemon.Stop()
		fxTouch(t, filepath.Join(dir, "down"))
		time.Sleep(time.Second)
		fxDaemon(t, backend)
		up := time.Now()
		var r struct {
			First        pooledOutcome `json:"first"`
			AfterRestart pooledOutcome `json:"after_restart"`
			Reconnect    pooledOutcome `json:"reconnect"`
			Again        pooledOutcome `json:"again"`
			RecoveredIn  float64       `json:"recovered_in"`
			Back         pooledOutcome `json:"back"`
			BackAt       float64       `json:"back_at"`
			DownFailures map[string]struct {
				Count int    `json:"count"`
				Error string `json:"error"`
			} `json:"down_failures"`
		}
		fxDecodeLast(t, fxWait(t, client, faultWait), &r)
		t.Logf("after the restart: %v, reconnect %v, again %v, recovered in %.3fs; while down: %v; back %.3fs after the daemon",
			r.AfterRestart, r.Reconnect, r.Again, r.RecoveredIn, r.DownFailures, r.BackAt-float64(up.UnixNano())/1e9)
		r.First.wantOK(t, "first call", 1)
		if fxPooled(way) && r.AfterRestart.Class == "" {
			r.AfterRestart.wantOK(t, "the idle proxy's call after the restart (hidden by the pool)", 2)
		} else {
			fxWantClass(t, "the idle proxy's call after the daemon was killed and restarted", r.AfterRestart, fxClosed)
			r.Reconnect.wantOK(t, "_pyroReconnect", nil)
			r.Again.wantOK(t, "the call after _pyroReconnect", 3)
		}
		if r.RecoveredIn > 0.5 {
			t.Errorf("the proxy took %.3fs to work again after the restart, want at most 0.5s", r.RecoveredIn)
		}
		r.Back.wantOK(t, "the first call that worked after the second restart", "back")
		if r.BackAt == 0 {
			t.Fatalf("no call worked after the second restart")
		}
		if late := r.BackAt - float64(up.UnixNano())/1e9; late > 0.5 {
			t.Errorf("the first call that worked came %.3fs after the daemon accepted connections again, want at most 0.5s", late)
		}
		if len(r.DownFailures) == 0 {
			t.Errorf("no call failed while the daemon was down for 1s")
		}
		for class, f := range r.DownFailures {
			switch {
			case class != fxComm:
				t.Errorf("while the daemon was down: %d calls raised %s (%s), want %s (as directly: refused)", f.Count, class, f.Error, fxComm)
			case way != fxDirect && !strings.Contains(f.Error, "rejected: pyro-dispatch: backend "+backend+" unreachable"):
				// Directly the proxy cannot connect; through the dispatcher its CONNECT must be
				// refused (CONNECTFAIL), not accepted (pooled: from the handshake cache) and its
				// call then answered with an error: _pyroReconnect would take such a CONNECTOK
				// for a daemon that is back (see TestFaultExampleAutoreconnect).
				t.Errorf("while the daemon was down: %d fresh proxies raised %s(%q), want a CONNECTFAIL (\"connection to ... rejected: pyro-dispatch: backend %s unreachable ...\"): the CONNECT was accepted although the backend is down", f.Count, class, f.Error, backend)
			}
		}
	})
}

// fxStep is one round of a commtimeout client thread.
type fxStep struct {
	Idle      float64       `json:"idle"`
	Ping      string        `json:"ping"`
	PingError string        `json:"ping_error"`
	Reconnect pooledOutcome `json:"reconnect"`
	Call      pooledOutcome `json:"call"`
	Wrong     bool          `json:"wrong_reply"`
}

// TestFaultPyro4CommTimeout: a daemon with COMMTIMEOUT 0.5 s closes idle connections
// while 4 client threads idle 0.9 s or 0.1 s by turns, then ping their connection
// (Message.ping, serializer id 42, as the disconnects example) and call. Every ping gets
// a pong or ConnectionClosedError (then the proxy reconnects), never a timeout or another
// error; every call returns its own value. After 0.9 s the connection is gone directly and
// in session mode; in pooled modes the pool may hide it; after 0.1 s it is there. A raw
// client shows the times: in session mode the dispatcher closes the client's connection
// within 100 ms of the daemon closing the backend one (the time from the last reply to
// the close, compared with the same directly); in pooled modes the idle raw connection
// gets a pong or is closed.
func TestFaultPyro4CommTimeout(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	fxEachWay(t, func(t *testing.T, way string) {
		_, backend := fxDaemon(t, "127.0.0.1:0", "--commtimeout", "0.5")
		addr := fxVia(t, way, backend)
		var r struct {
			Threads [][]fxStep `json:"threads"`
		}
		fxClient(t, &r, "commtimeout", pyroURI("fx.svc", addr), "4", "4", "0.9")
		if len(r.Threads) != 4 {
			t.Fatalf("%d client threads reported, want 4", len(r.Threads))
		}
		closed, hidden := 0, 0
		for i, steps := range r.Threads {
			if steps == nil {
				t.Errorf("client thread %d never finished", i)
				continue
			}
			for n, s := range steps {
				what := fmt.Sprintf("thread %d round %d (idle %.1fs)", i, n-1, s.Idle)
				switch {
				case n == 0:
				case s.Ping == fxClosed:
					closed++
					if s.Idle < 0.5 {
						t.Errorf("%s: ping raised %s after an idle shorter than COMMTIMEOUT", what, s.Ping)
					}
					s.Reconnect.wantOK(t, what+": _pyroReconnect", nil)
				case s.Ping == "pong":
					if s.Idle > 0.5 {
						hidden++
						if !fxPooled(way) {
							t.Errorf("%s: ping answered on a connection the daemon closed (want %s, as directly)", what, fxClosed)
						}
					}
				default:
					t.Errorf("%s: ping: %s %s, want a pong or %s", what, s.Ping, s.PingError, fxClosed)
				}
				if s.Wrong {
					t.Errorf("%s: call answered with another call's reply: %v", what, s.Call)
				} else {
					s.Call.wantOK(t, what+": call", fmt.Sprint([]int{i, n - 1}))
				}
			}
		}
		t.Logf("%d pings after a long idle saw the connection closed, %d were answered", closed, hidden)

		switch way {
		case config.ModeSession:
			direct := fxIdleClose(t, backend)
			via := fxIdleClose(t, addr)
			t.Logf("idle connection closed %v after the last reply directly, %v through the dispatcher", direct, via)
			if via > direct+100*time.Millisecond {
				t.Errorf("the dispatcher closed the idle client %v after the daemon's close (%v vs %v directly), want within 100ms", via-direct, via, direct)
			}
		case config.ModePooled, sessPipelined:
			c := rawDial(t, addr)
			c.handshake(t)
			c.ping(t)
			time.Sleep(900 * time.Millisecond)
			t.Logf("raw ping after 0.9s idle: %s", fxPingOrClosed(t, c))
		}
	})
}

// fxIdleClose returns how long after a PING reply the connection of a raw client at addr,
// then idle, is closed.
func fxIdleClose(t *testing.T, addr string) time.Duration {
	t.Helper()
	c := rawDial(t, addr)
	c.handshake(t)
	c.ping(t)
	start := time.Now()
	c.expectClosed(t, 5*time.Second)
	return time.Since(start)
}

// fxPingOrClosed sends a PING with serializer id 42 (as Pyro4's Message.ping) and
// returns "pong" when answered, "closed" when the connection is closed instead; anything
// else, or no answer within faultWait, fails the test.
func fxPingOrClosed(t *testing.T, c *rawClient) string {
	t.Helper()
	c.seq++
	c.rawSend(t, frame.AppendMessage(nil, frame.Header{Type: frame.Ping, Seq: c.seq, Serializer: frame.Serializer(42)}, nil, []byte("ping")))
	c.SetReadDeadline(time.Now().Add(faultWait))
	m, err := c.r.Next()
	if err == nil {
		err = c.r.ReadRest(&m)
	}
	switch {
	case err == nil && m.Header.Type == frame.Ping && m.Header.Seq == c.seq && string(m.Payload) == "pong":
		return "pong"
	case err == nil:
		t.Fatalf("PING seq %d answered with %v seq %d %q", c.seq, m.Header.Type, m.Header.Seq, m.Payload)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return "closed"
	default:
		t.Fatalf("PING seq %d: neither a reply nor a closed connection: %v", c.seq, err)
	}
	return ""
}

// TestFaultPyro4Cycles: call cycles through one dispatcher: A -> B -> C -> A and
// A -> B -> A, three (two) daemons whose chain objects call the next one through the
// dispatcher's address (a fresh proxy per call; a route per object id), so the last call
// reaches the daemon whose first call is still in flight, with the same correlation id
// (Pyro4 copies it onto nested calls). 6 client threads go round 3 times each: every call
// returns the full trace, none deadlocks (a proxy timeout of 8 s shows one).
func TestFaultPyro4Cycles(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	for _, ring := range [][]string{{"A", "B", "C"}, {"A", "B"}} {
		t.Run(strings.Join(ring, ""), func(t *testing.T) {
			t.Parallel()
			fxEachWay(t, func(t *testing.T, way string) {
				addrs, at := fxRing(t, way, "fx.chain.", ring)
				var want []string
				for i, n := range ring {
					next := ring[(i+1)%len(ring)]
					fxDaemon(t, addrs[n], "--chain", n+"="+at(next))
					want = append(want, "passed on from "+n)
				}
				want = append(want, "complete at A")
				wantJSON, _ := json.Marshal(want)
				var r struct {
					Threads [][]fxOutcome `json:"threads"`
				}
				fxClient(t, &r, "cycle", at("A"), "6", "3", string(wantJSON))
				ok := 0
				for i, calls := range r.Threads {
					if len(calls) == 0 {
						t.Errorf("client thread %d: no call ended (a deadlock)", i)
					}
					for n, o := range calls {
						switch {
						case o.Wrong:
							t.Errorf("thread %d call %d: %v, want %v", i, n, o, want)
						case o.Class != "":
							t.Errorf("thread %d call %d: %v (a %s is a deadlock)", i, n, o, fxTimeout)
						default:
							ok++
						}
					}
				}
				if ok != 6*3 {
					t.Errorf("%d of %d cycles completed", ok, 6*3)
				}
			})
		})
	}
}

// TestFaultPyro4AbandonOnTimeout: a client abandons a 1.5 s call on its 0.3 s
// _pyroTimeout (Pyro4 drops the connection) and calls a 0.2 s method at once on the same
// proxy, 3 rounds in a row (the abandoned calls still running in the daemon): the second
// call takes as long through the dispatcher as directly (within 0.2 s), in every mode.
func TestFaultPyro4AbandonOnTimeout(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	fxEachWay(t, func(t *testing.T, way string) {
		_, backend := fxDaemon(t, "127.0.0.1:0")
		targets := []string{"direct=" + pyroURI("fx.svc", backend)}
		if way != fxDirect {
			targets = append(targets, "proxy="+pyroURI("fx.svc", fxVia(t, way, backend)))
		}
		var r map[string][]struct {
			Abandoned pooledOutcome `json:"abandoned"`
			Next      pooledOutcome `json:"next"`
		}
		fxClient(t, &r, "abandon", targets...)
		for _, target := range targets {
			label, _, _ := strings.Cut(target, "=")
			if len(r[label]) != 3 {
				t.Fatalf("%s: %d rounds reported, want 3", label, len(r[label]))
			}
			for i, round := range r[label] {
				fxWantClass(t, fmt.Sprintf("%s round %d: the abandoned call", label, i), round.Abandoned, fxTimeout)
				round.Next.wantOK(t, fmt.Sprintf("%s round %d: the next call", label, i), fmt.Sprintf("slow-done next-%s-%d", label, i))
				base := 0.2
				if label != fxDirect {
					base = r[fxDirect][i].Next.Seconds
				}
				if round.Next.Seconds > base+0.2 {
					t.Errorf("%s round %d: the call after the abandoned one took %.3fs, %.3fs directly: want within 0.2s", label, i, round.Next.Seconds, base)
				}
			}
		}
	})
}

// TestFaultPyro4KillInFlight: a daemon is killed (SIGKILL) with 16 slow calls in flight,
// each from its own client thread and proxy: every one of those clients raises
// ConnectionClosedError within 5 s, none hangs (a proxy timeout of 15 s), none gets
// another client's reply; once the daemon is back on the same port, each proxy's next
// call returns its own value. (Pooled mode gets 16 connections, so that all 16 calls
// reach the daemon; pipelined mode keeps 4 connections: calls queued behind others on a
// connection are in flight too.)
func TestFaultPyro4KillInFlight(t *testing.T) {
	requirePyro4(t)
	t.Parallel()
	const n = 16
	fxEachWay(t, func(t *testing.T, way string) {
		daemon, backend := fxDaemon(t, "127.0.0.1:0")
		addr := fxVia(t, way, backend, func(c *config.Config) {
			if way == config.ModePooled {
				c.Listeners[0].Pool.MaxOpen = n
			}
		})
		dir := t.TempDir()
		client := pyro4test.StartDaemon(t, script(t, "fx_client.py"), "inflight", pyroURI("fx.svc", addr), dir, fmt.Sprint(n))
		begun := func() int { return strings.Count(daemon.Stdout(), "slow-begin c") }
		if way == sessPipelined {
			faultWaitFor(t, "every client to send its call, one to reach the daemon", func() bool {
				return strings.Count(client.Stdout(), "sent ") == n && begun() > 0
			})
			time.Sleep(500 * time.Millisecond)
		} else {
			faultWaitFor(t, fmt.Sprintf("%d slow calls to reach the daemon", n), func() bool { return begun() == n })
		}
		t.Logf("%d slow calls running in the daemon when it is killed", begun())
		killed := time.Now()
		daemon.Stop()
		fxWaitOutput(t, client, "outcomes")
		fxDaemon(t, backend)
		fxTouch(t, filepath.Join(dir, "restarted"))
		var r struct {
			Calls []*fxOutcome `json:"calls"`
			After []fxOutcome  `json:"after"`
			Warm  []fxOutcome  `json:"warm"`
		}
		fxDecodeLast(t, fxWait(t, client, faultWait), &r)
		for i, o := range r.Warm {
			o.wantOK(t, fmt.Sprintf("client %d before the kill", i), i)
		}
		classes := map[string]int{}
		for i, o := range r.Calls {
			if o == nil {
				t.Errorf("client %d: its call never ended (a hang)", i)
				continue
			}
			classes[o.Class]++
			late := o.At - float64(killed.UnixNano())/1e9
			switch {
			case o.Wrong:
				t.Errorf("client %d: got another client's reply: %v", i, o)
			case o.Class != fxClosed:
				t.Errorf("client %d: %v %.2fs after the kill, want %s (as directly)", i, o.pooledOutcome, late, fxClosed)
			case late > 5:
				t.Errorf("client %d: %s only %.2fs after the kill", i, o.Class, late)
			}
		}
		t.Logf("outcomes of the %d calls by class: %v", n, classes)
		if len(r.After) != n {
			t.Fatalf("%d proxies called again after the restart, want %d", len(r.After), n)
		}
		for i, o := range r.After {
			if o.Wrong {
				t.Errorf("client %d after the restart: another client's reply %v", i, o)
			} else {
				o.wantOK(t, fmt.Sprintf("client %d after the restart", i), fmt.Sprintf("c%d", i))
			}
		}
	})
}
