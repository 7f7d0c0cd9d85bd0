package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// This file: the chaos driver and its faults, one function each. Faults that may fail
// calls (disruptive) come one after another; the others come beside them. Every fault
// targets 127.0.0.1, is bounded in count and time, and ends by itself; each is logged
// as a JSON line (faults.jsonl) with what it did, when it began and when it was over.

// stallSeconds is how long a Python daemon stops in the middle of each reply it sends
// during the second after a SIGUSR1.
const stallSeconds = 1200 * time.Millisecond

// faultKind is one kind of fault.
type faultKind struct {
	name string
	// disruptive faults may fail calls; they run one at a time.
	disruptive bool
	// holds: while it lasts, calls on its paths may wait for it (a pipelined connection's
	// calls behind a reply its client does not read); every disruptive fault holds too.
	holds  bool
	weight int
	run    func(s *soak, rng *rand.Rand, f *Fault)
	what   string // for the report
}

var faultKinds = []faultKind{
	{"backend_kill", true, true, 4, (*soak).killBackend,
		"SIGKILL of one backend process (a Python process with a plain and an HMAC daemon, or a Go echo daemon), restarted on its ports after 0–1 s"},
	{"group_kill", true, true, 1, (*soak).killGroup,
		"SIGKILL of both members of group go or py (the Python processes: pyhmac too), restarted after 0–1 s"},
	{"backend_stall", true, true, 3, (*soak).stallBackend,
		"a backend stalls mid-reply: a Python daemon (SIGUSR1) writes half of every reply of the next second, waits 1.2 s, then the rest; a Go echo daemon is SIGSTOPped 0.3–1.5 s"},
	{"pool_exhaustion", true, true, 2, (*soak).exhaustPool,
		"enough slow calls (soak.echo.slow, the Go probe's handshake) on the pooled or pipelined listener to fill every connection of both py members for 2–4 s"},
	{"client_abort", false, false, 3, (*soak).abortClients,
		"3–10 Go clients send an 8 MiB call and close mid-request (part of it) or mid-reply (all of it, 0–5 ms before closing)"},
	{"client_kill", false, false, 2, (*soak).killClient,
		"a Python client making 8 MiB calls is SIGKILLed 0.5–3 s after it started (mid-request or mid-reply)"},
	{"client_stops_reading", false, true, 2, (*soak).stopReading,
		"a client sends an 8 MiB call and reads nothing of the reply for 2–14 s (4 KiB receive buffer), then closes"},
	{"garbage", false, false, 3, (*soak).sendGarbage,
		"3–8 connections send random bytes, a bad magic, a bad checksum, a header over max_message_size, garbage after a CONNECT, or half a message then nothing; each must be closed by the dispatcher (half messages, and fewer bytes than a header, after timeouts.header)"},
	{"connection_storm", false, false, 1, (*soak).storm,
		"1.5–3 s of connections at 2,000/s to one listener, every other one with a CONNECT, each reset at once"},
	{"reload", false, false, 2, (*soak).reload,
		"SIGHUP with the next configuration variant: go-c added to group go (weight 2), balances and weights changed, back to the base"},
}

// chaos injects faults until `until`: the disruptive ones one after another, 2–6 s
// apart; the others beside them, 1–4 s apart, at most one of a kind at a time. Each
// kind comes once, in random order, before any comes twice. It returns once every
// fault it began is over.
func (s *soak) chaos(ctx context.Context, until time.Time) {
	var wg sync.WaitGroup
	for _, disruptive := range []bool{true, false} {
		wg.Go(func() { s.faultLoop(ctx, until, disruptive) })
	}
	wg.Wait()
}

func (s *soak) faultLoop(ctx context.Context, until time.Time, disruptive bool) {
	var kinds []faultKind
	total := 0
	for _, k := range faultKinds {
		if k.disruptive == disruptive {
			kinds = append(kinds, k)
			total += k.weight
		}
	}
	stream := uint64(1)
	minGap, spread := time.Second, 3*time.Second
	if disruptive {
		stream, minGap, spread = 2, 2*time.Second, 4*time.Second
	}
	rng := rand.New(rand.NewPCG(s.seed, stream))
	first := rng.Perm(len(kinds))
	var busy sync.Map // kind name → true while one runs
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		gap := minGap + time.Duration(rng.Int64N(int64(spread)))
		if time.Now().Add(gap).After(until) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(gap):
		}
		k := kinds[0]
		if i < len(first) {
			k = kinds[first[i]]
		} else {
			for n, j := rng.IntN(total), 0; ; j++ {
				if n -= kinds[j].weight; n < 0 {
					k = kinds[j]
					break
				}
			}
		}
		frng := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
		if disruptive {
			s.inject(k, frng)
		} else if _, running := busy.LoadOrStore(k.name, true); !running {
			wg.Go(func() {
				s.inject(k, frng)
				busy.Delete(k.name)
			})
		}
	}
}

// inject runs one fault, then logs it and starts measuring its recovery.
func (s *soak) inject(k faultKind, rng *rand.Rand) Fault {
	s.mu.Lock()
	s.seq++
	f := Fault{Seq: s.seq, Kind: k.name}
	s.mu.Unlock()
	f.Start = time.Now()
	k.run(s, rng, &f)
	if f.End.IsZero() {
		f.End = time.Now()
	}
	s.watch.expect(f.Seq, slices.DeleteFunc(slices.Clone(f.Paths), func(p Path) bool { return !s.probed[p] }), f.End)
	line, _ := json.Marshal(f)
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.faultLog.Write(append(line, '\n'))
	s.mu.Unlock()
	problem := ""
	if f.Problem != "" {
		problem = " PROBLEM: " + f.Problem
	}
	fmt.Fprintf(s.out, "%s fault %d %s (%v): %s%s\n", f.Start.Format("15:04:05.000"), f.Seq, f.Kind,
		f.End.Sub(f.Start).Round(time.Millisecond), f.Detail, problem)
	return f
}

// pick returns one of xs.
func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

// plainListeners are the listeners a Go client can use (it does not sign HMAC).
func plainListeners() []string {
	var ls []string
	for _, l := range listenerNames {
		if !hmacListener(l) {
			ls = append(ls, l)
		}
	}
	return ls
}

// killed are the causes of a call lost with a backend: its connection closed, or a
// refusal for a call or CONNECT that found no member to take it.
var killed = []Cause{CauseClosed, CauseRefused}

// killBackend SIGKILLs one backend process and restarts it on its ports.
func (s *soak) killBackend(rng *rand.Rand, f *Fault) {
	b := pick(rng, s.w.backends[:4]) // go-c comes and goes with reloads: not killed
	f.Target, f.Paths, f.Causes = b.name, pathsTo(b.groups()...), killed
	f.Detail, f.Problem = s.restart(rng, b)
	f.End = time.Now()
}

// killGroup SIGKILLs both members of group go or py and restarts them.
func (s *soak) killGroup(rng *rand.Rand, f *Fault) {
	bs := s.w.backends[0:2]
	if rng.IntN(2) == 0 {
		bs = s.w.backends[2:4]
	}
	f.Target, f.Paths, f.Causes = bs[0].name+"+"+bs[1].name, pathsTo(bs[0].groups()...), killed
	var mu sync.Mutex
	var details, problems []string
	var wg sync.WaitGroup
	for _, b := range bs {
		r := rand.New(rand.NewPCG(rng.Uint64(), 0))
		wg.Go(func() {
			d, p := s.restart(r, b)
			mu.Lock()
			details, problems = append(details, b.name+": "+d), append(problems, p)
			mu.Unlock()
		})
	}
	wg.Wait()
	f.End = time.Now()
	f.Detail, f.Problem = strings.Join(details, "; "), strings.TrimSpace(strings.Join(problems, " "))
}

// restart SIGKILLs b, waits 0–1 s and starts it again on its ports.
func (s *soak) restart(rng *rand.Rand, b *backend) (detail, problem string) {
	down := time.Duration(rng.Int64N(int64(time.Second)))
	old := b.proc()
	t0 := time.Now()
	old.kill()
	time.Sleep(down)
	if err := s.w.startBackend(b); err != nil {
		return fmt.Sprintf("SIGKILL pid %d, not restarted", old.pid()), "restart failed: " + err.Error()
	}
	return fmt.Sprintf("SIGKILL pid %d, down %v, pid %d listening again %v after the kill", old.pid(),
		down.Round(time.Millisecond), b.proc().pid(), time.Since(t0).Round(time.Millisecond)), ""
}

// stallBackend makes one backend stop in the middle of its replies.
func (s *soak) stallBackend(rng *rand.Rand, f *Fault) {
	b := pick(rng, s.w.backends[:4])
	p := b.proc()
	f.Target, f.Paths = b.name, pathsTo(b.groups()...)
	if b.python {
		p.signal(syscall.SIGUSR1)
		// Replies begun in the window's last moment stall past it.
		time.Sleep(time.Second + stallSeconds + 200*time.Millisecond)
		f.Detail = fmt.Sprintf("SIGUSR1 to pid %d: every reply of the next second written half, then %v later the rest", p.pid(), stallSeconds)
		return
	}
	d := 300*time.Millisecond + time.Duration(rng.Int64N(int64(1200*time.Millisecond)))
	p.signal(syscall.SIGSTOP)
	time.Sleep(d)
	p.signal(syscall.SIGCONT)
	f.Detail = fmt.Sprintf("SIGSTOP pid %d for %v (wherever it was: mid-reply for the large ones)", p.pid(), d.Round(time.Millisecond))
}

// exhaustPool fills every connection of both py members' pools of one pooled listener
// with slow calls for 2–4 s, on the Go probe's handshake: its calls, and the slow ones
// beyond the pool, wait pool.wait_timeout and are refused.
func (s *soak) exhaustPool(rng *rand.Rand, f *Fault) {
	l := pick(rng, []string{"pooled", "pipelined"})
	// Calls beyond the slots wait (n-slots)·hold/slots for one: over pool.wait_timeout.
	slots, hold := 2*pooledMaxOpen, 500*time.Millisecond
	n := 3*slots + 8
	if l == "pipelined" {
		// A daemon answers a connection's calls one after another: the 8 queued on one
		// take 2 s, and a slot frees only as the first of them is answered.
		slots, hold = 2*pipelinedMaxOpen*pipelinedDepth, 250*time.Millisecond
		n = slots + 4
	}
	d := 2*time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
	f.Target, f.Paths, f.Causes = l, []Path{{l, groupPy}}, []Cause{CauseRefused}
	until := time.Now().Add(d)
	var ok, refused, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			o, r, err := s.hog(s.w.addr(l), until, hold, fmt.Sprintf("hog%d-%d", f.Seq, i))
			ok.Add(int64(o))
			refused.Add(int64(r))
			if err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	f.Detail = fmt.Sprintf("%d clients on %s called slow(%v) for %v (%d slots): %d answered, %d refused by the dispatcher, %d clients failed otherwise",
		n, l, hold, d.Round(time.Millisecond), slots, ok.Load(), refused.Load(), failed.Load())
	if failed.Load() > 0 {
		f.Problem = fmt.Sprintf("%d of the slow clients failed otherwise than refused", failed.Load())
	}
}

// hog calls soak.echo.slow(hold) on a connection of its own until `until`, and counts
// the calls answered and those the dispatcher refused.
func (s *soak) hog(addr string, until time.Time, hold time.Duration, tag string) (ok, refused int, err error) {
	c, r, err := dialPyro(addr, "soak.echo")
	if refusedConnect(err) {
		return 0, 1, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	x := strconv.FormatFloat(hold.Seconds(), 'f', 3, 64) + "|" + tag
	for seq := uint16(1); time.Now().Before(until); seq++ {
		c.SetDeadline(time.Now().Add(callTimeout))
		if _, err := c.Write(bench.CallMessage(frame.Serpent, seq, 0, "soak.echo", "slow", x)); err != nil {
			return ok, refused, err
		}
		m, err := r.Next()
		if err == nil {
			err = r.ReadRest(&m)
		}
		switch {
		case err != nil:
			return ok, refused, err
		case m.Header.Seq != seq || m.Header.Type != frame.Result:
			return ok, refused, fmt.Errorf("call seq %d answered with %v seq %d", seq, m.Header.Type, m.Header.Seq)
		case m.Header.Flags.Has(frame.FlagException) && strings.Contains(string(m.Payload), "pyro-dispatch:"):
			refused++
		case m.Header.Flags.Has(frame.FlagException):
			return ok, refused, fmt.Errorf("exception: %.200s", m.Payload)
		default:
			ok++
		}
	}
	return ok, refused, nil
}

// dialPyro connects to addr and makes the load generator's CONNECT for object.
func dialPyro(addr, object string) (net.Conn, *frame.Reader, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := frame.NewReader(c, 0, frame.Limits{MaxMessageSize: maxMessageSize})
	_, err = c.Write(bench.HandshakeMessage(frame.Serpent, object))
	var m frame.Message
	if err == nil {
		m, err = r.Next()
	}
	if err == nil {
		err = r.ReadRest(&m)
	}
	if err == nil && m.Header.Type != frame.ConnectOK {
		err = fmt.Errorf("CONNECT answered with %v: %.200s", m.Header.Type, m.Payload)
	}
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	c.SetDeadline(time.Time{})
	return c, r, nil
}

// refusedConnect reports whether err is dialPyro's for a CONNECT that the dispatcher
// refused itself (CONNECTFAIL "pyro-dispatch: …").
func refusedConnect(err error) bool {
	return err != nil && strings.Contains(err.Error(), "CONNECTFAIL") && strings.Contains(err.Error(), "pyro-dispatch:")
}

// bigCall is an 8 MiB echo(x) call of object (serpent, seq 1), made once.
func (s *soak) bigCall(object string) []byte {
	s.bigOnce.Do(func() {
		x := strings.Repeat("a", 8<<20)
		s.big = map[string][]byte{}
		for _, o := range []string{bench.EchoObject, "soak.echo"} {
			s.big[o] = bench.CallMessage(frame.Serpent, 1, 0, o, "echo", x)
		}
	})
	return s.big[object]
}

// abortClients: Go clients that send an 8 MiB call and leave mid-request or mid-reply.
func (s *soak) abortClients(rng *rand.Rand, f *Fault) {
	l := pick(rng, plainListeners())
	n := 3 + rng.IntN(8)
	f.Target, f.Paths = l, pathsOf(l)
	var midRequest, midReply, refused int
	for range n {
		object := pick(rng, []string{bench.EchoObject, "soak.echo"})
		c, _, err := dialPyro(s.w.addr(l), object)
		if err != nil {
			refused++
			continue
		}
		msg := s.bigCall(object)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if rng.IntN(2) == 0 {
			c.Write(msg[:frame.HeaderSize+1+rng.IntN(len(msg)-frame.HeaderSize-1)])
			midRequest++
		} else {
			c.Write(msg)
			time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
			midReply++
		}
		c.Close()
	}
	f.Detail = fmt.Sprintf("on %s: %d clients left mid-request, %d mid-reply, %d could not connect", l, midRequest, midReply, refused)
}

// killClient SIGKILLs a real Pyro4 client in the middle of its 8 MiB calls.
func (s *soak) killClient(rng *rand.Rand, f *Fault) {
	c := pick(rng, pyClients) // its listener and serializer: a handshake the dispatcher has seen
	l := c.listener
	f.Target, f.Paths = l, pathsOf(l)
	argv := []string{s.opt.python, "-u", "interop/testdata/soak_client.py", "--victim", "--addr", s.w.addr(l),
		"--name", fmt.Sprintf("victim%d", f.Seq), "--serializer", c.ser}
	if hmacListener(l) {
		argv = append(argv, "--hmac", s.w.clientKey)
	}
	p, err := s.w.start("victim", nil, argv...)
	if err != nil {
		f.Problem = "could not start the client: " + err.Error()
		return
	}
	after := 500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))
	time.Sleep(after)
	p.kill()
	f.Detail = fmt.Sprintf("a Python client making 8 MiB echo calls on %s (%s), SIGKILLed (pid %d) %v after it started", l, c.ser, p.pid(), after.Round(time.Millisecond))
}

// stopReading: a client sends an 8 MiB call and reads nothing of its reply for a while.
func (s *soak) stopReading(rng *rand.Rand, f *Fault) {
	l := pick(rng, plainListeners())
	object := pick(rng, []string{bench.EchoObject, "soak.echo"})
	f.Target, f.Paths = l, pathsOf(l)
	c, _, err := dialPyro(s.w.addr(l), object)
	if err != nil {
		f.Detail = fmt.Sprintf("could not connect to %s: %v", l, err)
		return
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	hold := 2*time.Second + time.Duration(rng.Int64N(int64(12*time.Second)))
	c.SetWriteDeadline(time.Now().Add(callTimeout))
	_, err = c.Write(s.bigCall(object))
	time.Sleep(hold)
	f.Detail = fmt.Sprintf("a client on %s sent an 8 MiB echo(x) to %s (write: %v) and read nothing for %v, then closed", l, object, err, hold.Round(time.Millisecond))
}

// garbageKinds are the bad connections of sendGarbage; those marked after need a
// CONNECT first (a plain listener), those marked half (and random bytes shorter than a
// header) are closed only after timeouts.header.
var garbageKinds = []struct {
	name        string
	after, half bool
}{
	{"random bytes", false, false}, {"bad magic", false, false}, {"bad checksum", false, false},
	{"header over max_message_size", false, false}, {"garbage after a CONNECT", true, false},
	{"half a CONNECT", false, true}, {"half a call", true, true},
}

// sendGarbage opens connections that send bad input, and checks that the dispatcher
// closes each of them.
func (s *soak) sendGarbage(rng *rand.Rand, f *Fault) {
	n := 3 + rng.IntN(6)
	var mu sync.Mutex
	var done, problems []string
	var wg sync.WaitGroup
	targets := map[string]bool{}
	for range n {
		g := pick(rng, garbageKinds)
		l := pick(rng, listenerNames)
		if g.after {
			l = pick(rng, plainListeners())
		}
		targets[l] = true
		junk := make([]byte, 1+rng.IntN(4<<10))
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		wg.Go(func() {
			took, err := s.garbage(l, g.name, junk)
			mu.Lock()
			defer mu.Unlock()
			if errors.Is(err, errRefusedConnect) {
				done = append(done, fmt.Sprintf("%s on %s not sent: %v", g.name, l, err))
				return
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s on %s: %v", g.name, l, err))
				return
			}
			done = append(done, fmt.Sprintf("%s on %s closed after %v", g.name, l, took.Round(time.Millisecond)))
		})
	}
	wg.Wait()
	for l := range targets {
		f.Paths = append(f.Paths, pathsOf(l)...)
	}
	f.Target = strings.Join(slices.Sorted(maps.Keys(targets)), ",")
	slices.Sort(done)
	f.Detail = strings.Join(done, "; ")
	f.Problem = strings.Join(problems, "; ")
}

// errRefusedConnect is a CONNECT the dispatcher refused (no member could take it, while
// another fault has them down): the bad input meant to follow it is not sent.
var errRefusedConnect = errors.New("its CONNECT was refused")

// garbage sends one kind of bad input to listener l and waits for the dispatcher to
// close the connection: at once, or after timeouts.header for half a message.
func (s *soak) garbage(l, kind string, junk []byte) (time.Duration, error) {
	var c net.Conn
	var err error
	var msg []byte
	hs := bench.HandshakeMessage(frame.Serpent, bench.EchoObject)
	switch kind {
	case "garbage after a CONNECT", "half a call":
		c, _, err = dialPyro(s.w.addr(l), bench.EchoObject)
	default:
		c, err = net.DialTimeout("tcp", s.w.addr(l), 5*time.Second)
	}
	if refusedConnect(err) {
		return 0, fmt.Errorf("%w: %v", errRefusedConnect, err)
	}
	if err != nil {
		return 0, fmt.Errorf("could not connect: %w", err)
	}
	defer c.Close()
	switch kind {
	case "random bytes", "garbage after a CONNECT":
		junk[0] = 'X' // not the magic PYRO
		msg = junk
	case "bad magic":
		msg = append([]byte("PYRX"), hs[4:]...)
	case "bad checksum":
		msg = append([]byte(nil), hs...)
		msg[frame.HeaderSize-1] ^= 0x5a
	case "header over max_message_size":
		msg = make([]byte, frame.HeaderSize)
		frame.Header{Type: frame.Connect, Serializer: frame.Serpent, DataLen: maxMessageSize + 1}.Put(msg)
	case "half a CONNECT":
		msg = hs[:len(hs)/2]
	case "half a call":
		call := bench.CallMessage(frame.Serpent, 1, 0, bench.EchoObject, "echo", strings.Repeat("h", 10<<10))
		msg = call[:len(call)/2]
	}
	bound := 3 * time.Second
	if strings.HasPrefix(kind, "half") || len(msg) < frame.HeaderSize {
		// Less than a header is a stalled header, as half a message: the dispatcher reads
		// a whole header before it looks at it, as a Pyro4 daemon does.
		bound += s.w.header
	}
	t0 := time.Now()
	c.SetDeadline(t0.Add(bound))
	if _, err := c.Write(msg); err != nil && !isReset(err) {
		return 0, fmt.Errorf("write: %w", err)
	}
	_, err = io.Copy(io.Discard, c)
	took := time.Since(t0)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return took, fmt.Errorf("not closed by the dispatcher within %v", bound)
	}
	return took, nil
}

// isReset reports whether err is the peer's reset or a write after its close.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// storm opens connections at 2,000/s to one listener for 1.5–3 s: every other one makes
// a CONNECT and reads the answer; each is reset at once (no TIME_WAIT left behind).
func (s *soak) storm(rng *rand.Rand, f *Fault) {
	const workers, rate = 16, 2000
	l := pick(rng, listenerNames)
	d := 1500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))
	f.Target, f.Paths = l, pathsOf(l)
	hs := bench.HandshakeMessage(frame.Serpent, bench.EchoObject)
	end := time.Now().Add(d)
	var connects, answered, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			interval := workers * time.Second / rate
			buf := make([]byte, frame.HeaderSize)
			for next, i := time.Now().Add(time.Duration(w)*interval/workers), 0; next.Before(end); next, i = next.Add(interval), i+1 {
				time.Sleep(time.Until(next))
				c, err := net.DialTimeout("tcp", s.w.addr(l), time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				connects.Add(1)
				if i%2 == 0 {
					c.SetDeadline(time.Now().Add(2 * time.Second))
					if _, err := c.Write(hs); err == nil {
						if _, err := io.ReadFull(c, buf); err == nil {
							answered.Add(1)
						}
					}
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		})
	}
	wg.Wait()
	took := time.Since(f.Start)
	f.Detail = fmt.Sprintf("%d connections to %s in %v (%.0f/s), %d CONNECTs answered, %d connects failed",
		connects.Load(), l, took.Round(time.Millisecond), float64(connects.Load())/took.Seconds(), answered.Load(), failed.Load())
}

// reload writes the next configuration variant (the base one when final) and sends
// SIGHUP; the fault is over when the dispatcher logged that it reloaded.
func (s *soak) reload(rng *rand.Rand, f *Fault) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.w.mu.Lock()
	v := (s.w.variant + 1) % configVariants
	s.w.mu.Unlock()
	if f.Kind == "final_reload" {
		v = 0
	}
	f.Target, f.Paths = fmt.Sprintf("variant %d", v), pathsTo(groupGo, groupPy, groupPyHMAC)
	if err := s.w.writeConfig(v); err != nil {
		f.Problem = err.Error()
		return
	}
	logPath := filepath.Join(s.w.dir, "dispatcher.log")
	from := fileSize(logPath)
	f.Start = time.Now()
	s.w.disp.signal(syscall.SIGHUP)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		switch tail := readFrom(logPath, from); {
		case strings.Contains(tail, `"msg":"reloaded"`):
			f.End = time.Now()
			f.Detail = fmt.Sprintf("SIGHUP with configuration variant %d: reloaded in %v", v, f.End.Sub(f.Start).Round(time.Millisecond))
			return
		case strings.Contains(tail, `"msg":"reload failed`):
			f.Problem = "the reload failed: " + tail
			return
		}
	}
	f.Problem = "no \"reloaded\" line in the dispatcher's log 5 s after SIGHUP"
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns what the file holds from offset on.
func readFrom(path string, offset int64) string {
	fh, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer fh.Close()
	b, _ := io.ReadAll(io.NewSectionReader(fh, offset, 1<<30))
	return string(b)
}
