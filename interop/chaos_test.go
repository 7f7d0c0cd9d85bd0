package interop

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// This file: TestChaos, backend faults at random under load from well-behaved and
// misbehaving Go clients, in each mode. The backend is the Go echo daemon as a process of
// its own (pyro-dispatch echo), so that it can be SIGKILLed, restarted on its port, and
// SIGSTOPped; the dispatcher runs in the test process.

const (
	// chaosDuration is how long the load runs in each mode; CHAOS_DURATION sets another
	// (60s by hand). CHAOS_SEED replays a run's random choices (the timing differs).
	chaosDuration = 6 * time.Second
	chaosClients  = 48
	// chaosSettle: a fault-free window starts this long after the backend is back, and
	// ends when the next fault starts.
	chaosSettle = 500 * time.Millisecond
	// chaosRecoveryLimit bounds the time from a backend's return (listening again, or
	// continued) to the first call that succeeds.
	chaosRecoveryLimit = 500 * time.Millisecond
	chaosAbortRate     = 0.02 // of a client's calls are made by a misbehaving client instead
	chaosCallTimeout   = 10 * time.Second
	chaosRetryPause    = 20 * time.Millisecond // after a failed call, before the next
	chaosSpliced       = config.DefaultBufferedPayload
	chaosMaxPayload    = 2 << 20
	chaosSerpent       = "# serpent utf-8 python3.2\n"
	// chaosShutdownWait bounds the dispatcher's Shutdown (its drain timeout is 15 s):
	// past it the test binary panics with every goroutine's stack, rather than hang.
	chaosShutdownWait = 20 * time.Second
)

// TestChaos: in each mode (session, pooled, pipelined with pipeline 8), 48 Go clients
// call echo(x) through the dispatcher, each x unique to its client and call (30 B to
// 2 MiB: mostly small, some spliced), while every 1–3 s the backend is SIGKILLed and
// restarted on its port (after up to 500 ms down) or SIGSTOPped for 0.1–1 s; 2% of the
// calls are made by misbehaving clients instead, that connect, then close mid-request
// (header and part of a large payload) or mid-reply (a whole large call, never read).
// Every reply is compared byte for byte with its call's argument: none may be another
// call's (misdelivered). A failed call is lost (its connection closed: the client
// reconnects), refused (a "pyro-dispatch:" exception or CONNECTFAIL) or other. Every call
// that starts 500 ms or more after the backend is back and ends before the next fault
// succeeds, and a call succeeds within chaosRecoveryLimit of every return. Not parallel:
// it measures, and runs alone.
func TestChaos(t *testing.T) {
	d := chaosDuration
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			t.Fatalf("CHAOS_DURATION=%q: want a positive duration such as 60s", s)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
	}
	t.Logf("%v per mode (CHAOS_DURATION), seed %d (CHAOS_SEED)", d, seed)
	bin := buildDispatcher(t, t.TempDir())
	for _, mode := range sessModes {
		t.Run(mode, func(t *testing.T) { chaosMode(t, bin, mode, d, seed) })
	}
}

// chaosMode runs the chaos in one mode for d: a backend process, a dispatcher in front of
// it, the clients, the faults; then the figures and the checks.
func chaosMode(t *testing.T, bin, mode string, d time.Duration, seed uint64) {
	b := &chaosBackend{bin: bin, addr: chaosPort(t)}
	b.start(t)
	var watchdog *time.Timer
	t.Cleanup(func() { // runs once the dispatcher's Shutdown returned
		if watchdog != nil {
			watchdog.Stop()
		}
	})
	p := startProxy(t, b.addr, func(c *config.Config) {
		if mode == sessPipelined {
			c.Listeners[0].Mode, c.Listeners[0].Pool.Pipeline = config.ModePooled, sessPipeline
		} else {
			c.Listeners[0].Mode = mode
		}
	})
	t.Cleanup(func() { // runs before the dispatcher's Shutdown, bounded by its drain timeout
		watchdog = time.AfterFunc(chaosShutdownWait, func() {
			buf := make([]byte, 8<<20)
			os.Stderr.Write(buf[:runtime.Stack(buf, true)])
			panic(fmt.Sprintf("TestChaos/%s: the dispatcher's Shutdown has not returned after %v (a deadlock: goroutines above)", mode, chaosShutdownWait))
		})
	})

	stop := make(chan struct{})
	var halt sync.Once
	clients := make([]*chaosClient, chaosClients)
	var wg sync.WaitGroup
	begin := time.Now()
	for i := range clients {
		clients[i] = &chaosClient{id: i, addr: p.addr, rng: rand.New(rand.NewPCG(seed, uint64(i))), stop: stop}
		wg.Go(clients[i].run)
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t.Cleanup(func() { // before the dispatcher shuts down; bounded by the call timeout
		halt.Do(func() { close(stop) })
		<-done
	})

	faults := b.chaos(t, rand.New(rand.NewPCG(seed, 1<<32)), begin.Add(d))
	halt.Do(func() { close(stop) })
	select {
	case <-done:
	case <-time.After(2 * chaosCallTimeout):
		t.Fatalf("clients still in a call %v after they were told to stop (a hang)", 2*chaosCallTimeout)
	}

	f := chaosAnalyse(clients, faults)
	t.Logf("chaos %s, %v: %d calls ok (%d over 64 KiB, %.1f MiB echoed), %d lost in a fault, %d refused, %d misdelivered, %d other failures; "+
		"%d failed of %d in fault-free windows; %d returns (%d kills, %d stops), time to first success after a return max %v (after a kill %v, a stop %v), "+
		"every client served again within %v, %d returns without a success; %d aborted clients (%d mid-request, %d mid-reply; %d more refused at CONNECT)",
		mode, d, f.ok, f.large, float64(f.bytes)/(1<<20), f.lost, f.refused, f.misdelivered, f.other,
		f.failedFree, f.inFree, len(faults), f.kills, f.stops, f.recovery.Round(time.Millisecond), f.recoveryKill.Round(time.Millisecond), f.recoveryStop.Round(time.Millisecond),
		f.allBack.Round(time.Millisecond), f.unrecovered, f.midRequest+f.midReply, f.midRequest, f.midReply, f.abortRefused)
	for i, fl := range faults {
		t.Logf("  fault %d: %s", i+1, fl.describe(begin, f.firstOK[i]))
	}
	chaosLogSummary(t, p)
	chaosExplain(t, p, f.notable)

	if f.misdelivered > 0 {
		t.Errorf("%d calls got a reply that was not their own", f.misdelivered)
	}
	if f.failedFree > 0 {
		t.Errorf("%d calls failed that started %v or more after the backend was back and ended before the next fault", f.failedFree, chaosSettle)
	}
	if f.unrecovered > 0 {
		t.Errorf("after %d of %d returns of the backend no call succeeded before the next fault", f.unrecovered, len(faults))
	}
	if f.recovery > chaosRecoveryLimit {
		t.Errorf("a call succeeded only %v after the backend was back, want within %v", f.recovery.Round(time.Millisecond), chaosRecoveryLimit)
	}
	if f.other > 0 {
		t.Errorf("%d calls failed otherwise than lost with their connection or refused by the dispatcher", f.other)
	}
	if f.large == 0 || f.midRequest == 0 || f.midReply == 0 {
		t.Errorf("the load did not do its job: %d large calls ok, %d clients aborted mid-request, %d mid-reply", f.large, f.midRequest, f.midReply)
	}
}

// chaosPort returns a free 127.0.0.1 address whose port is below Linux's ephemeral range
// (32768 and up): while the backend is down, a dial of the dispatcher to it could take
// the port as its own source port (a self-connect) and keep the restarted backend from
// listening there.
func chaosPort(t *testing.T) string {
	t.Helper()
	for range 100 {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port between 20000 and 32000")
	return ""
}

// chaosBackend is `pyro-dispatch echo --quiet` at a fixed address, restarted there after
// each kill.
type chaosBackend struct {
	bin, addr string
	p         *cliProc
}

// start starts the echo daemon and returns when it listened: when its URI was read.
func (b *chaosBackend) start(t *testing.T) time.Time {
	t.Helper()
	want := "PYRO:" + bench.EchoObject + "@" + b.addr + "\n"
	deadline := time.Now().Add(faultWait)
	for {
		p := cliStart(t, b.bin, "echo", "--listen", b.addr, "--quiet")
		if chaosPrinted(p, deadline) {
			if out := p.stdout.String(); out != want {
				t.Fatalf("pyro-dispatch echo printed %q, want %q", out, want)
			}
			b.p = p
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("pyro-dispatch echo did not listen on %s within %v\n%s", b.addr, faultWait, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond) // it exited: the port was still taken
	}
}

// chaosPrinted waits for p to print a line (true), exit, or outlive deadline.
func chaosPrinted(p *cliProc, deadline time.Time) bool {
	for !strings.Contains(p.stdout.String(), "\n") {
		select {
		case <-p.done:
			return strings.Contains(p.stdout.String(), "\n")
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// chaosFault is a SIGKILL and restart, or a SIGSTOP and SIGCONT, of the backend.
type chaosFault struct {
	kill        bool
	start, back time.Time // the signal; listening again (its URI read) or continued
}

// describe tells what the fault was, when, and how soon a call succeeded after it.
func (f chaosFault) describe(begin time.Time, firstOK time.Duration) string {
	what := "SIGSTOP"
	if f.kill {
		what = "SIGKILL"
	}
	ok := "no call succeeded before the next fault"
	if firstOK >= 0 {
		ok = fmt.Sprintf("first call ok %v after", firstOK.Round(time.Millisecond))
	}
	return fmt.Sprintf("%s at %v, back after %v, %s", what, f.start.Sub(begin).Round(time.Millisecond), f.back.Sub(f.start).Round(time.Millisecond), ok)
}

// chaos faults the backend at random every 1–3 s until `until` (and at least once in
// each way), and returns at `until` or a second after the last return, the backend up.
func (b *chaosBackend) chaos(t *testing.T, rng *rand.Rand, until time.Time) []chaosFault {
	var faults []chaosFault
	stopped := false
	defer func() { // a test failing in between must not leave the clients hanging
		if stopped {
			b.p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	killFirst := rng.IntN(2) == 0
	for i := 0; ; i++ {
		gap := time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
		if i >= 2 && time.Now().Add(gap).After(until) {
			break
		}
		time.Sleep(gap)
		kill := rng.IntN(2) == 0
		if i < 2 {
			kill = killFirst == (i == 0)
		}
		f := chaosFault{kill: kill, start: time.Now()}
		if kill {
			b.p.cmd.Process.Kill()
			<-b.p.done
			time.Sleep(time.Duration(rng.Int64N(int64(500 * time.Millisecond))))
			f.back = b.start(t)
		} else {
			b.p.signal(t, syscall.SIGSTOP)
			stopped = true
			time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(900*time.Millisecond))))
			b.p.signal(t, syscall.SIGCONT)
			stopped = false
			f.back = time.Now()
		}
		faults = append(faults, f)
	}
	end := until
	if last := faults[len(faults)-1].back.Add(time.Second); last.After(end) {
		end = last
	}
	time.Sleep(time.Until(end))
	return faults
}

// chaosOutcome is how a well-behaved call ended.
type chaosOutcome uint8

const (
	chaosOK           chaosOutcome = iota
	chaosLost                      // the connection closed under it (EOF, reset)
	chaosRefused                   // a "pyro-dispatch:" exception or CONNECTFAIL
	chaosMisdelivered              // a reply that is not its own
	chaosOther
)

// chaosWrong is a reply that is not the call's own.
type chaosWrong string

func (e chaosWrong) Error() string { return string(e) }

// chaosClassify tells how a well-behaved call that returned err ended.
func chaosClassify(err error) chaosOutcome {
	var wrong chaosWrong
	switch {
	case err == nil:
		return chaosOK
	case errors.As(err, &wrong) || frame.IsProtocolError(err):
		return chaosMisdelivered
	case strings.Contains(err.Error(), "pyro-dispatch:"):
		return chaosRefused
	case routeLost(err.Error()) || errors.Is(err, syscall.EPIPE):
		return chaosLost
	default:
		return chaosOther
	}
}

// chaosCall is one call of a well-behaved client: its CONNECT too when it had to
// (re)connect first.
type chaosCall struct {
	start, end time.Time
	size       int
	outcome    chaosOutcome
	err        string
	local      string // the failed call's client address, as the dispatcher logs it
}

// chaosClient is a well-behaved Go client on a connection of its own, which now and
// then (chaosAbortRate) makes a misbehaving client's call on another connection instead.
type chaosClient struct {
	id   int
	addr string
	rng  *rand.Rand
	stop <-chan struct{}

	conn              *routeConn
	r                 *frame.Reader
	arg, payload, msg []byte // reused buffers

	calls                              []chaosCall
	midRequest, midReply, abortRefused int
}

// run calls until stopped, pausing chaosRetryPause after a failed call.
func (c *chaosClient) run() {
	defer func() {
		if c.conn != nil {
			c.conn.c.Close()
		}
	}()
	for n := 0; ; n++ {
		select {
		case <-c.stop:
			return
		default:
		}
		if c.rng.Float64() < chaosAbortRate {
			c.misbehave(n)
			continue
		}
		call := c.call(n)
		c.calls = append(c.calls, call)
		if call.outcome != chaosOK {
			select {
			case <-c.stop:
				return
			case <-time.After(chaosRetryPause):
			}
		}
	}
}

// chaosSize is a payload size: mostly small, some up to the spliced size, 3% above it.
func chaosSize(rng *rand.Rand) int {
	switch p := rng.Float64(); {
	case p < 0.90:
		return 30 + rng.IntN(2<<10)
	case p < 0.97:
		return 2<<10 + rng.IntN(chaosSpliced-2<<10)
	default:
		return chaosLarge(rng)
	}
}

// chaosLarge is a size above the spliced size, log-uniform up to chaosMaxPayload.
func chaosLarge(rng *rand.Rand) int {
	lo, hi := math.Log(chaosSpliced+1), math.Log(chaosMaxPayload)
	return min(int(math.Exp(lo+rng.Float64()*(hi-lo))), chaosMaxPayload)
}

// call makes the client's n-th call and records it; a connection that failed is closed.
func (c *chaosClient) call(n int) chaosCall {
	size := chaosSize(c.rng)
	rec := chaosCall{start: time.Now(), size: size}
	err := c.roundTrip(n, size)
	rec.end = time.Now()
	rec.outcome = chaosClassify(err)
	if err != nil {
		rec.err = err.Error()
		if c.conn != nil {
			rec.local = c.conn.c.LocalAddr().String()
		}
		if rec.outcome != chaosRefused && c.conn != nil { // a refused call leaves it usable
			c.conn.c.Close()
			c.conn = nil
		}
	}
	return rec
}

// roundTrip (re)connects if it must, then calls echo(x) with x of size bytes, unique to
// the client and n, and checks the reply byte for byte.
func (c *chaosClient) roundTrip(n, size int) error {
	if c.conn == nil {
		rc, err := routeDial(c.addr, "", bench.EchoObject)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		c.conn, c.r = rc, frame.NewReader(rc.c, 0, frame.Limits{})
	}
	arg := c.fill('c', n, size)
	c.conn.seq++
	seq := c.conn.seq
	c.invoke(seq, arg)
	conn := c.conn.c
	conn.SetDeadline(time.Now().Add(chaosCallTimeout))
	if _, err := conn.Write(c.msg); err != nil {
		return err
	}
	m, err := c.r.Next()
	if err == nil {
		err = c.r.ReadRest(&m)
	}
	if err != nil {
		return err
	}
	h := m.Header
	switch {
	case h.Type != frame.Result || h.Seq != seq:
		return chaosWrong(fmt.Sprintf("call %s (seq %d) answered with %v seq %d: %s", arg[:12], seq, h.Type, h.Seq, chaosPeek(m.Payload)))
	case h.Flags.Has(frame.FlagException):
		return routeException(m.Payload)
	case !chaosEchoes(m.Payload, arg):
		return chaosWrong(fmt.Sprintf("call %s (%d bytes, seq %d) answered with %s", arg[:12], len(arg), seq, chaosPeek(m.Payload)))
	}
	return nil
}

// chaosEchoes reports whether reply is echo's RESULT payload for arg: arg as a serpent
// str.
func chaosEchoes(reply, arg []byte) bool {
	rest, ok := bytes.CutPrefix(reply, []byte(chaosSerpent+"'"))
	return ok && len(rest) == len(arg)+1 && rest[len(arg)] == '\'' && bytes.Equal(rest[:len(arg)], arg)
}

// chaosPeek shows the start of a reply payload (whose call's tag it carries) and its size.
func chaosPeek(p []byte) string {
	s := strings.TrimPrefix(string(p[:min(len(p), 80)]), chaosSerpent)
	return fmt.Sprintf("%q (%d bytes)", s, len(p))
}

// chaosNoise is random text that needs no escaping in serpent, for the bulk of arguments.
var chaosNoise = sync.OnceValue(func() []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, 2*chaosMaxPayload)
	for i := range b {
		b[i] = alphabet[rand.IntN(len(alphabet))]
	}
	return b
})

// fill returns a str argument of size bytes (at least its tag): random text from a random
// place of chaosNoise with the tag KIND CLIENT-N- (such as "c07-0000123-") at its start
// and every KiB, so that no part of it can pass for a part of another call's.
func (c *chaosClient) fill(kind byte, n, size int) []byte {
	b := fmt.Appendf(c.arg[:0], "%c%02d-%07d-", kind, c.id, n)
	tag := len(b)
	if size > tag {
		noise := chaosNoise()
		off := c.rng.IntN(len(noise) - size)
		b = append(b, noise[off:off+size-tag]...)
		for k := 1 << 10; k+tag <= size; k += 1 << 10 {
			copy(b[k:], b[:tag])
		}
	}
	c.arg = b
	return b
}

// invoke builds the INVOKE of echo(arg) in c.msg.
func (c *chaosClient) invoke(seq uint16, arg []byte) {
	c.payload = append(c.payload[:0], chaosSerpent+"('"+bench.EchoObject+"','"+bench.MethodEcho+"',('"...)
	c.payload = append(append(c.payload, arg...), "',),{})"...)
	c.msg = frame.AppendMessage(c.msg[:0], frame.Header{Type: frame.Invoke, Seq: seq, Serializer: frame.Serpent}, nil, c.payload)
}

// misbehave is a misbehaving client: it connects, and sends a large call's header and
// part of its payload, or the whole call; then it closes without reading a reply.
func (c *chaosClient) misbehave(n int) {
	rc, err := routeDial(c.addr, "", bench.EchoObject)
	if err != nil {
		c.abortRefused++
		return
	}
	defer rc.c.Close()
	c.invoke(1, c.fill('m', n, chaosLarge(c.rng)))
	rc.c.SetDeadline(time.Now().Add(3 * time.Second))
	if c.rng.IntN(2) == 0 {
		rc.c.Write(c.msg[:frame.HeaderSize+1+c.rng.IntN(len(c.msg)-frame.HeaderSize-1)])
		c.midRequest++
	} else {
		rc.c.Write(c.msg)
		c.midReply++
	}
	time.Sleep(time.Duration(c.rng.IntN(5000)) * time.Microsecond)
}

// chaosFigures are what one mode's run came to.
type chaosFigures struct {
	ok, large, lost, refused, misdelivered, other int
	bytes                                         int64
	inFree, failedFree                            int
	kills, stops, unrecovered                     int
	recovery, recoveryKill, recoveryStop, allBack time.Duration
	firstOK                                       []time.Duration // by fault: -1 when none
	midRequest, midReply, abortRefused            int
	notable                                       []chaosExample // failures in windows, misdelivered, other
}

// chaosExample is a notable call: when it ran, its client's address and what happened.
type chaosExample struct {
	start, end time.Time
	local      string
	text       string
}

func (e chaosExample) String() string { return e.text }

// chaosFaultFree reports whether a call from start to end lies in a fault-free window:
// before the first fault, or from chaosSettle after a return until the next fault.
func chaosFaultFree(faults []chaosFault, start, end time.Time) bool {
	k := sort.Search(len(faults), func(i int) bool { return faults[i].start.After(start) })
	if k > 0 && start.Before(faults[k-1].back.Add(chaosSettle)) {
		return false
	}
	return k == len(faults) || end.Before(faults[k].start)
}

// chaosWhen places t among the faults: "+D after fault N's return" or "before fault 1".
func chaosWhen(faults []chaosFault, t time.Time) string {
	k := sort.Search(len(faults), func(i int) bool { return faults[i].start.After(t) })
	if k == 0 {
		return "before fault 1"
	}
	f := faults[k-1]
	if t.Before(f.back) {
		return fmt.Sprintf("%v into fault %d", t.Sub(f.start).Round(time.Millisecond), k)
	}
	return fmt.Sprintf("%v after fault %d's return", t.Sub(f.back).Round(time.Millisecond), k)
}

// chaosAnalyse counts the clients' calls by outcome and window, and measures each
// return: the first call that succeeded after it, and every client's first.
func chaosAnalyse(clients []*chaosClient, faults []chaosFault) chaosFigures {
	var f chaosFigures
	var okEnds []time.Time
	for _, c := range clients {
		f.midRequest += c.midRequest
		f.midReply += c.midReply
		f.abortRefused += c.abortRefused
		for _, call := range c.calls {
			free := chaosFaultFree(faults, call.start, call.end)
			if free {
				f.inFree++
			}
			switch call.outcome {
			case chaosOK:
				f.ok++
				f.bytes += int64(call.size)
				if call.size > chaosSpliced {
					f.large++
				}
				okEnds = append(okEnds, call.end)
				continue
			case chaosLost:
				f.lost++
			case chaosRefused:
				f.refused++
			case chaosMisdelivered:
				f.misdelivered++
			default:
				f.other++
			}
			if free {
				f.failedFree++
			}
			if free || call.outcome == chaosMisdelivered || call.outcome == chaosOther {
				what := "failed"
				if free {
					what = "failed in a fault-free window"
				}
				f.notable = append(f.notable, chaosExample{call.start, call.end, call.local, fmt.Sprintf("client %d (%s): a call of %d bytes %s (started %s, took %v): %s",
					c.id, call.local, call.size, what, chaosWhen(faults, call.start), call.end.Sub(call.start).Round(time.Millisecond), call.err)})
			}
		}
	}
	slices.SortFunc(okEnds, func(a, b time.Time) int { return a.Compare(b) })
	for k, fl := range faults {
		if fl.kill {
			f.kills++
		} else {
			f.stops++
		}
		next := time.Now()
		if k+1 < len(faults) {
			next = faults[k+1].start
		}
		f.firstOK = append(f.firstOK, -1)
		i := sort.Search(len(okEnds), func(i int) bool { return !okEnds[i].Before(fl.back) })
		if i == len(okEnds) || !okEnds[i].Before(next) {
			f.unrecovered++
			continue
		}
		r := okEnds[i].Sub(fl.back)
		f.firstOK[k] = r
		f.recovery = max(f.recovery, r)
		if fl.kill {
			f.recoveryKill = max(f.recoveryKill, r)
		} else {
			f.recoveryStop = max(f.recoveryStop, r)
		}
		// Every client's first success after the return (a client's calls are in order).
		for _, c := range clients {
			j := sort.Search(len(c.calls), func(j int) bool { return !c.calls[j].end.Before(fl.back) })
			for ; j < len(c.calls) && c.calls[j].end.Before(next); j++ {
				if c.calls[j].outcome == chaosOK {
					f.allBack = max(f.allBack, c.calls[j].end.Sub(fl.back))
					break
				}
			}
		}
	}
	return f
}

// chaosLogSummary logs how many times the dispatcher logged each warning or error.
func chaosLogSummary(t *testing.T, p *proxy) {
	counts := map[string]int{}
	for _, e := range p.logs.All() {
		if e.Level >= zapcore.WarnLevel {
			counts[e.Level.String()+" "+e.Message]++
		}
	}
	for _, m := range slices.Sorted(maps.Keys(counts)) {
		t.Logf("  dispatcher logged %d× %q", counts[m], m)
	}
}

// chaosExplain logs the notable failures by the reason the dispatcher logged for their
// client (its last warning about it during the call), then the first few, the first with
// the dispatcher's lines around it.
func chaosExplain(t *testing.T, p *proxy, notable []chaosExample) {
	if len(notable) == 0 {
		return
	}
	byClient := map[string][]observer.LoggedEntry{}
	for _, l := range p.logs.All() {
		if c, ok := l.ContextMap()["client"]; ok && l.Level >= zapcore.WarnLevel {
			byClient[fmt.Sprint(c)] = append(byClient[fmt.Sprint(c)], l)
		}
	}
	addr := regexp.MustCompile(`127\.0\.0\.1:\d+`)
	reasons := map[string]int{}
	for i, e := range notable {
		reason := "nothing logged about its client during the call"
		for _, l := range byClient[e.local] {
			if !l.Time.Before(e.start) && l.Time.Before(e.end.Add(50*time.Millisecond)) {
				reason = fmt.Sprintf("%s: %v", l.Message, l.ContextMap()["error"])
			}
		}
		reasons[addr.ReplaceAllString(reason, "ADDR")]++
		if i < 8 {
			t.Logf("  %s; the dispatcher: %s", e, reason)
		}
		if i == 0 {
			chaosLogAround(t, p, e)
		}
	}
	for _, r := range slices.Sorted(maps.Keys(reasons)) {
		t.Logf("  %d notable failures with the dispatcher's reason %q", reasons[r], r)
	}
}

// chaosLogAround logs the dispatcher's lines (info and up) about the example's client,
// and those about no client from 50 ms before its call to 50 ms after, at most 20.
func chaosLogAround(t *testing.T, p *proxy, e chaosExample) {
	n := 0
	for _, l := range p.logs.All() {
		client, ok := l.ContextMap()["client"]
		switch {
		case l.Level < zapcore.InfoLevel:
			continue
		case ok && (e.local == "" || fmt.Sprint(client) != e.local):
			continue
		case !ok && (l.Time.Before(e.start.Add(-50*time.Millisecond)) || l.Time.After(e.end.Add(50*time.Millisecond))):
			continue
		}
		if n++; n > 20 {
			t.Logf("    ...")
			return
		}
		t.Logf("    %s %s %s %v", l.Time.Format("15:04:05.000000"), l.Level, l.Message, l.ContextMap())
	}
}
