package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// This file: the load. Go load generator streams (bench.Run, every call's x unique and
// every reply checked) and real Pyro4 clients (interop/testdata/soak_client.py), all
// recorded in a ledger: each failure with its time and reason, each client's return to
// success, and the probes' successes for the recovery times.

// goTarget is one stream of the Go load generator: one bench.Run with one target, an
// open loop at rate calls/s on conns connections.
type goTarget struct {
	name    string // listener/group/what: unique, and so is the tag in its calls
	path    Path
	object  string
	ser     frame.Serializer
	mode    bench.Mode
	payload int
	rate    float64
	conns   int
	probe   bool // its successes measure how soon its path recovers from a fault
}

func (t goTarget) describe() string {
	what := map[bench.Mode]string{bench.ModeCall: "echo(x)", bench.ModeOneway: "oneway(x)", bench.ModeBlob: "blob(SerializedBlob)"}[t.mode]
	return fmt.Sprintf("%s, x of %s, %s, %s calls/s on %d connections", what, sizeText(int64(t.payload)), t.ser,
		strconv.FormatFloat(t.rate, 'g', 3, 64), t.conns)
}

// goTargets are the Go load's streams, on each plain listener (the load generator does
// not sign HMAC); rates times scale.
func goTargets(scale float64) []goTarget {
	var ts []goTarget
	for _, l := range listenerNames {
		if hmacListener(l) {
			continue
		}
		add := func(group, what string, ser frame.Serializer, mode bench.Mode, payload int, rate float64, conns int, probe bool) {
			object := bench.EchoObject
			if group == groupPy {
				object = "soak.echo"
			}
			ts = append(ts, goTarget{name: l + "/" + group + "/" + what, path: Path{l, group}, object: object, ser: ser,
				mode: mode, payload: payload, rate: rate * scale, conns: conns, probe: probe})
		}
		add(groupGo, "probe", frame.Serpent, bench.ModeCall, 64, 100, 2, true)
		add(groupGo, "blob", frame.JSON, bench.ModeBlob, 1<<10, 60, 2, false)
		add(groupGo, "spliced", frame.Marshal, bench.ModeCall, 256<<10, 10, 2, false)
		add(groupGo, "oneway", frame.Serpent, bench.ModeOneway, 256, 60, 1, false)
		add(groupGo, "8MiB", frame.Marshal, bench.ModeCall, 8<<20, 0.5, 1, false)
		// The probe's handshake is the pool exhaustion's (serpent, soak.echo): they share pools.
		add(groupPy, "probe", frame.Serpent, bench.ModeCall, 200, 40, 2, true)
		add(groupPy, "blob", frame.JSON, bench.ModeBlob, 300, 20, 1, false)
		add(groupPy, "8MiB", frame.Marshal, bench.ModeCall, 8<<20, 0.1, 1, false)
	}
	return ts
}

// pyClient is one real Pyro4 client process of the load.
type pyClient struct {
	name, listener, ser string
}

var pyClients = []pyClient{
	{"session-serpent", "session", "serpent"}, {"session-marshal", "session", "marshal"},
	{"pooled-json", "pooled", "json"}, {"pooled-marshal", "pooled", "marshal"},
	{"pipelined-serpent", "pipelined", "serpent"}, {"pipelined-json", "pipelined", "json"},
	{"session-hmac-json", "session-hmac", "json"}, {"pooled-hmac-marshal", "pooled-hmac", "marshal"},
	{"pipelined-hmac-serpent", "pipelined-hmac", "serpent"},
}

// path is where the client's calls go (all of them to soak.* objects).
func (c pyClient) path() Path {
	if hmacListener(c.listener) {
		return Path{c.listener, groupPyHMAC}
	}
	return Path{c.listener, groupPy}
}

// source is one client of the load as the report counts it.
type source struct {
	Name    string
	Path    string // its listener → group
	What    string
	OK      int64
	Failed  map[Cause]int
	Python  bool
	Summary bool           // a Python client printed its summary
	Ops     map[string]int // a Python client's successful calls by kind
}

// ledger records the calls of one phase of the load.
type ledger struct {
	watch *recoveryWatch // nil: no recovery is measured (the warm-up)

	mu       sync.Mutex
	sources  map[string]*source
	order    []string
	failures []Failure
	backs    []Back
	failing  map[string]bool      // clients whose last call failed
	lastOK   map[string]time.Time // Go clients' last successful call
	okBySlot map[int64]int64      // the Go load's successful calls by sampleEvery slot
}

func newLedger(watch *recoveryWatch) *ledger {
	return &ledger{watch: watch, sources: map[string]*source{}, failing: map[string]bool{},
		lastOK: map[string]time.Time{}, okBySlot: map[int64]int64{}}
}

func (l *ledger) source(name, path, what string, python bool) *source {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &source{Name: name, Path: path, What: what, Failed: map[Cause]int{}, Python: python, Ops: map[string]int{}}
	l.sources[name] = s
	l.order = append(l.order, name)
	return s
}

// slot is the sampleEvery slot t falls in.
func slot(t time.Time) int64 { return t.Unix() / int64(sampleEvery/time.Second) }

// fail records a failure of src.
func (l *ledger) fail(src *source, f Failure) {
	l.mu.Lock()
	defer l.mu.Unlock()
	src.Failed[f.Cause]++
	l.failures = append(l.failures, f)
}

// failingNow reports how many clients have not succeeded since their last failure.
func (l *ledger) failingNow() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.failing)
}

// observe is the Config.Observe of target t.
func (l *ledger) observe(t goTarget, src *source) func(bench.Call) {
	return func(c bench.Call) {
		client := "go:" + t.name + "#" + strconv.Itoa(c.Conn)
		if c.Err != nil {
			l.mu.Lock()
			l.failing[client] = true
			idle := l.lastOK[client]
			l.mu.Unlock()
			l.fail(src, Failure{Client: client, Path: t.path, Op: string(t.mode), Start: c.Start, End: c.End, Idle: idle,
				Cause: classifyGo(c.Err), Reason: c.Err.Error()})
			return
		}
		if t.probe && l.watch != nil {
			l.watch.ok(t.path, c.Start, c.End)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		src.OK++
		l.okBySlot[slot(c.End)]++
		l.lastOK[client] = c.End
		if l.failing[client] {
			delete(l.failing, client)
			l.backs = append(l.backs, Back{Client: client, Start: c.Start, End: c.End})
		}
	}
}

// pyEvent is a line of soak_client.py.
type pyEvent struct {
	Event  string         `json:"event"`
	T0     float64        `json:"t0"`
	T1     float64        `json:"t1"`
	LastOK float64        `json:"last_ok"`
	Op     string         `json:"op"`
	Class  string         `json:"class"`
	Reason string         `json:"reason"`
	OK     int64          `json:"ok"`
	Ops    map[string]int `json:"ops"`
}

// unixTime is a Python time.time().
func unixTime(t float64) time.Time {
	sec, frac := math.Modf(t)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// pyLine records a line that Python client c printed.
func (l *ledger) pyLine(c pyClient, src *source) func(string) {
	client := "py:" + c.name
	return func(line string) {
		var e pyEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			l.fail(src, Failure{Client: client, Path: c.path(), Op: "output", Start: time.Now(), End: time.Now(),
				Cause: CauseOther, Reason: "unreadable output line: " + line})
			return
		}
		switch e.Event {
		case "fail":
			l.mu.Lock()
			l.failing[client] = true
			l.mu.Unlock()
			var idle time.Time
			if e.LastOK > 0 {
				idle = unixTime(e.LastOK)
			}
			l.fail(src, Failure{Client: client, Path: c.path(), Op: e.Op, Start: unixTime(e.T0), End: unixTime(e.T1), Idle: idle,
				Cause: classifyPython(e.Class, e.Reason), Reason: e.Class + ": " + e.Reason})
		case "back":
			l.mu.Lock()
			delete(l.failing, client)
			l.backs = append(l.backs, Back{Client: client, Start: unixTime(e.T0), End: unixTime(e.T1)})
			l.mu.Unlock()
		case "summary":
			l.mu.Lock()
			src.OK, src.Ops, src.Summary = e.OK, e.Ops, true
			l.mu.Unlock()
		}
	}
}

// load runs the Go targets and the Python clients against the dispatcher until ctx
// ends, recording every call in l; it returns once every one of them stopped.
func (s *soak) load(ctx context.Context, l *ledger) error {
	var wg sync.WaitGroup
	for _, t := range s.targets {
		src := l.source("go:"+t.name, t.path.String(), t.describe(), false)
		wg.Go(func() {
			bench.Run(ctx, bench.Config{
				Targets: []bench.Target{{Name: t.name, Addr: s.w.addr(t.path.Listener)}},
				Object:  t.object, Conns: t.conns, Duration: 24 * time.Hour, Payload: t.payload, Serializer: t.ser,
				Mode: t.mode, Rate: t.rate, Timeout: callTimeout, Unique: true, Observe: l.observe(t, src),
			})
		})
	}
	var err error
	for i, c := range pyClients {
		batch := "batch, "
		if c.ser == "marshal" {
			batch = "" // Pyro4 4.82 cannot batch in marshal
		}
		src := l.source("py:"+c.name, c.path().String(), "real Pyro4 client, "+c.ser+": echo, spliced echo, oneway, "+batch+
			"item stream, SerializedBlob, 8 MiB echo every 20 s; connects again every ~50 calls", true)
		argv := []string{s.opt.python, "-u", "interop/testdata/soak_client.py", "--addr", s.w.addr(c.listener),
			"--name", c.name, "--serializer", c.ser, "--duration", "86400", "--pause", "0.02", "--reconnect-every", "50",
			"--seed", strconv.FormatUint(s.seed+uint64(i), 10)}
		if hmacListener(c.listener) {
			argv = append(argv, "--hmac", s.w.clientKey)
		}
		if modeOf(c.listener) == "session" {
			argv = append(argv, "--session")
		}
		p, perr := s.w.start("client-"+c.name, l.pyLine(c, src), argv...)
		if perr != nil {
			err = perr
			break
		}
		wg.Go(func() {
			select {
			case <-ctx.Done():
				p.stop(callTimeout) // SIGTERM: it ends its call and prints its summary
			case <-p.done:
			}
			<-p.done
		})
	}
	wg.Wait()
	return err
}
