package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// Mode is what each call of the load generator is.
type Mode string

// Modes of the load generator.
const (
	// ModeCall calls echo(x) and waits for the reply.
	ModeCall Mode = "call"
	// ModeOneway calls oneway(x) with the oneway flag: no reply. Latency is the time to
	// write the call; each connection ends with one echo call to confirm delivery.
	ModeOneway Mode = "oneway"
	// ModeBlob calls blob(b) with a SerializedBlob: KEEPSERIALIZED and a BLBI annotation
	// (BlobTopic, object, "blob"); the payload is the call of blob(x).
	ModeBlob Mode = "blob"
)

// ParseMode returns the mode named s.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeCall, ModeOneway, ModeBlob:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q: want call, oneway or blob", s)
}

// Target is one server to measure: a Pyro4 daemon, or a dispatcher in front of one.
type Target struct {
	Name string `json:"name"`
	Addr string `json:"addr"` // HOST:PORT, [::1]:PORT or unix:/path
}

// ParseTarget parses NAME=ADDR, or a bare ADDR that then also names the target.
func ParseTarget(s string) (Target, error) {
	name, addr, ok := strings.Cut(s, "=")
	if !ok {
		name, addr = s, s
	}
	if name == "" || addr == "" {
		return Target{}, fmt.Errorf("bad target %q: want NAME=HOST:PORT or NAME=unix:/path", s)
	}
	return Target{Name: name, Addr: addr}, nil
}

// Config is a load generator run. Zero fields take the defaults named on them.
type Config struct {
	Targets []Target // measured in this order; ratios are to the first
	Object  string   // object id to call; default EchoObject
	// Conns is the number of connections per target, each with its own handshake and
	// strictly sequential calls, as a Pyro4 proxy makes them; default 1.
	Conns int
	// Duration is the measured time of one round of one target (after Warmup); default
	// 10s unless Calls is set.
	Duration time.Duration
	// Calls, when set, ends a round after that many measured calls (over all its
	// connections) instead of after Duration.
	Calls int64
	// Payload is the length of the str argument x, in bytes (ASCII 'x's; 0: empty).
	Payload    int
	Serializer frame.Serializer // serpent (default), json or marshal
	Mode       Mode             // default ModeCall
	// Rate, when above zero, runs an open loop: this many calls per second per target,
	// spread evenly over the connections, each call's latency counted from the time it
	// was due, so a stall shows in the latencies instead of slowing the load down
	// (no coordinated omission). Zero is a closed loop: each connection calls again
	// as soon as it has its reply.
	Rate float64
	// Warmup is run, unmeasured, at the start of every round of every target, on the
	// round's connections; default 0.
	Warmup time.Duration
	// Rounds is the number of rounds; with several targets the rounds interleave
	// (A B A B ...) so that drift on a shared machine hits every target alike. Default 1.
	Rounds int
	// Timeout bounds a dial, a handshake and one call; default 10s.
	Timeout time.Duration
	// TLS is the client side for targets whose address starts with "tls:" (a Pyro4
	// client with SSL=True); nil: such targets are refused.
	TLS *tls.Config `json:"-"`
	// CPU names, per target name, processes whose CPU time (user + system, theirs and
	// their descendants', from /proc; Linux only) is sampled at the start and at the end
	// of the measured part of every round of that target: the CPU per call of a
	// dispatcher or proxy under test. See ProcessCPU.
	CPU map[string][]int
	// Description, when set, replaces the description Describe makes up for reports and
	// charts (for results of another load generator, see NewRoundResult).
	Description string
	// Progress, when set, is called about every ProgressInterval while a round runs, from
	// another goroutine.
	Progress func(Progress) `json:"-"`
	// Unique makes x unique to each call: it starts with a tag of UniqueTagLen bytes (a
	// hash of the target's name, the connection, the call's number), repeated every KiB,
	// 'x's between; and each reply must carry exactly its call's x, as echo and blob
	// return it (at most UniqueSlack bytes of encoding around it). A reply that does not
	// is an error of kind "payload". Payload must be at least UniqueTagLen.
	Unique bool
	// Observe, when set, is told of every call as it ends, and of every failed dial or
	// handshake (warmup included, not the errors a cancelled ctx causes), from the
	// connection's goroutine.
	Observe func(Call) `json:"-"`
}

// Call is one call (or failed dial or handshake) as Config.Observe is told of it.
type Call struct {
	Target     string
	Conn       int // the connection's index in its round
	Start, End time.Time
	Err        error // nil: it succeeded
}

// UniqueTagLen is the length of the tag of a Config.Unique call: "TTTTTTTT-CCCC-NNNNNNNNNN-"
// (hex hash of the target's name, hex connection, decimal call number).
const UniqueTagLen = 25

// UniqueSlack is the most bytes a reply's payload of a Config.Unique call may have
// besides x (its serializer's encoding of a str).
const UniqueSlack = 64

// ProgressInterval is how often Config.Progress is called.
const ProgressInterval = 250 * time.Millisecond

// Progress is a look at a running round.
type Progress struct {
	Target       string
	Round        int           // 1-based
	Rounds       int           // of the run
	Warmup       bool          // still warming up
	Elapsed      time.Duration // since the run started
	RoundElapsed time.Duration // since this round started, warmup included
	RoundLength  time.Duration // warmup plus duration; 0 when the round ends after Calls
	Calls        int64         // calls done in this round, warmup included
	CallsPerSec  float64       // this round so far
	Errors       int64         // in the whole run so far
}

func (c *Config) setDefaults() {
	if c.Object == "" {
		c.Object = EchoObject
	}
	if c.Conns == 0 {
		c.Conns = 1
	}
	if c.Duration == 0 && c.Calls == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Serializer == 0 {
		c.Serializer = frame.Serpent
	}
	if c.Mode == "" {
		c.Mode = ModeCall
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
}

// Validate reports the first problem with c (after defaults are applied).
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case len(c.Targets) == 0:
		return errors.New("no target")
	case c.Conns < 0:
		return fmt.Errorf("conns %d < 0", c.Conns)
	case c.Duration < 0 || c.Calls < 0 || c.Warmup < 0 || c.Timeout < 0:
		return errors.New("durations and calls must not be negative")
	case c.Duration > 0 && c.Calls > 0:
		return errors.New("duration and calls are exclusive: a round ends after one of them")
	case c.Payload < 0 || c.Payload > frame.MaxDataLen/2:
		return fmt.Errorf("payload %d out of range", c.Payload)
	case c.Unique && c.Payload < UniqueTagLen:
		return fmt.Errorf("payload %d: unique calls need at least %d bytes", c.Payload, UniqueTagLen)
	case c.Serializer != frame.Serpent && c.Serializer != frame.JSON && c.Serializer != frame.Marshal:
		return fmt.Errorf("serializer %v: want serpent, json or marshal", c.Serializer)
	case c.Rate < 0:
		return fmt.Errorf("rate %v < 0", c.Rate)
	case c.Rounds < 0:
		return fmt.Errorf("rounds %d < 0", c.Rounds)
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, t := range c.Targets {
		if t.Name == "" || t.Addr == "" {
			return fmt.Errorf("target %+v needs a name and an address", t)
		}
		if seen[t.Name] {
			return fmt.Errorf("two targets named %q", t.Name)
		}
		seen[t.Name] = true
	}
	for name, pids := range c.CPU {
		if !seen[name] {
			return fmt.Errorf("CPU sampling for %q, which is not a target", name)
		}
		if len(pids) == 0 {
			return fmt.Errorf("CPU sampling for %q names no process", name)
		}
		for _, pid := range pids {
			if pid <= 0 {
				return fmt.Errorf("CPU sampling for %q: bad PID %d", name, pid)
			}
		}
	}
	return nil
}

// Result is what Run measured.
type Result struct {
	Config  Config
	Start   time.Time
	Elapsed time.Duration
	// Targets in the order of Config.Targets, each with its rounds and their medians.
	Targets []*TargetResult
	// Order lists the rounds in the order they ran.
	Order []RoundRef
}

// RoundRef names one round of one target.
type RoundRef struct {
	Target string `json:"target"`
	Round  int    `json:"round"` // 1-based
}

// TargetResult is one target's rounds and their summary.
type TargetResult struct {
	Target
	Rounds []*RoundResult
	// Median holds the median over rounds of every rate and percentile; its Calls,
	// Bytes, Errors and ErrorsByKind are totals over the rounds.
	Median Stats
	// Latency merges every round's histogram (latencies in nanoseconds).
	Latency *hdrhistogram.Histogram
	// Ratio compares Median with the first target's (1 for the first target).
	Ratio Ratio
	// CPUSampled tells whether Config.CPU names processes for this target, so that the
	// CPU fields of its Stats are meaningful.
	CPUSampled bool
}

// Ratio is a target's median over the first target's.
type Ratio struct {
	CallsPerSec float64 // above 1: more throughput than the first target
	P50, P99    float64 // above 1: slower than the first target
}

// RoundResult is one round of one target.
type RoundResult struct {
	Round int       // 1-based
	Start time.Time // start of the measured part, after warmup
	Stats
	// Latency holds this round's latencies in nanoseconds.
	Latency *hdrhistogram.Histogram
}

// Stats are the numbers of a round, or their medians over rounds.
type Stats struct {
	Calls        int64            // measured calls that succeeded
	Bytes        int64            // wire bytes of those calls, requests and replies
	Errors       int64            // failed calls, dials and handshakes, warmup included
	ErrorsByKind map[string]int64 // by ErrorKinds
	// ErrorSamples holds the first message seen of each kind.
	ErrorSamples                   map[string]string
	Elapsed                        time.Duration // measured time: from the end of warmup to the last reply
	CallsPerSec                    float64
	MBPerSec                       float64 // Bytes per second, in 10^6 bytes
	P50, P90, P99, P999, Max, Mean time.Duration
	// CPU is the CPU time of the target's processes in Config.CPU during the measured
	// part (total over rounds in a median), and CPUPerCall that over Calls (the median
	// over rounds in a median). Both are -1 for a round whose sample failed, and 0 when
	// the target is not sampled.
	CPU, CPUPerCall time.Duration
}

// ErrorKinds are the kinds of error the load generator counts.
var ErrorKinds = []string{
	"dial",       // could not connect
	"handshake",  // CONNECTFAIL, or an unexpected answer to CONNECT
	"timeout",    // no reply within Config.Timeout
	"closed",     // the server closed or reset the connection
	"protocol",   // a reply that is not a valid Pyro4 message
	"type",       // a reply of the wrong message type
	"seq",        // a reply whose seq is not the request's
	"serializer", // a reply in another serializer than the request's
	"exception",  // a reply with the EXCEPTION flag
	"payload",    // a reply that does not carry its call's x (Config.Unique)
	"io",         // any other error
}

// latencyMax is the largest latency recorded; longer ones are recorded as this.
const latencyMax = int64(time.Hour)

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1, latencyMax, 3) }

// Run measures every target of cfg, round after round, and returns what it measured.
// When ctx is cancelled it stops at once and returns the rounds so far with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := newPlan(cfg)
	res := &Result{Config: cfg, Start: time.Now()}
	for _, t := range cfg.Targets {
		_, sampled := cfg.CPU[t.Name]
		res.Targets = append(res.Targets, &TargetResult{Target: t, CPUSampled: sampled})
	}
	var errs atomic.Int64
	for round := 1; round <= cfg.Rounds && ctx.Err() == nil; round++ {
		for _, tr := range res.Targets {
			if ctx.Err() != nil {
				break
			}
			rr := p.runRound(ctx, tr.Target, round, res.Start, &errs)
			if ctx.Err() != nil && rr.Calls == 0 {
				break
			}
			tr.Rounds = append(tr.Rounds, rr)
			res.Order = append(res.Order, RoundRef{Target: tr.Name, Round: round})
		}
	}
	res.Elapsed = time.Since(res.Start)
	res.summarize()
	return res, ctx.Err()
}

// plan holds what every round sends.
type plan struct {
	cfg       Config
	handshake []byte       // the CONNECT message, seq 0
	req       []byte       // the call message; each worker copies it and rewrites its seq
	reqHeader frame.Header // the call's header, DataLen and AnnLen set
	confirm   []byte       // oneway mode: the closing echo call
	confirmH  frame.Header
	xOff      int // where x starts in req
}

func newPlan(cfg Config) *plan {
	p := &plan{cfg: cfg}
	ser := cfg.Serializer
	p.handshake = HandshakeMessage(ser, cfg.Object)
	x := strings.Repeat("x", cfg.Payload)
	var ann frame.Annotations
	var flags frame.Flags
	method := MethodEcho
	switch cfg.Mode {
	case ModeOneway:
		method, flags = MethodOneway, frame.FlagOneway
	case ModeBlob:
		method, flags = MethodBlob, frame.FlagKeepSerialized
		ann = blobAnnotation(nil, cfg.Object)
	}
	payload := callPayload(nil, ser, cfg.Object, method, x)
	p.reqHeader = frame.Header{Type: frame.Invoke, Flags: flags, Serializer: ser, DataLen: len(payload), AnnLen: len(ann)}
	p.req = frame.AppendMessage(nil, p.reqHeader, ann, payload)
	p.xOff = len(p.req) - len(payload) + bytes.LastIndex(payload, []byte(x))
	confirm := callPayload(nil, ser, cfg.Object, MethodEcho, "confirm")
	p.confirmH = frame.Header{Type: frame.Invoke, Serializer: ser, DataLen: len(confirm)}
	p.confirm = frame.AppendMessage(nil, p.confirmH, nil, confirm)
	return p
}

// round is one round of one target while it runs.
type round struct {
	p       *plan
	ctx     context.Context
	target  Target
	start   time.Time // warmup starts
	measure time.Time // measurement starts
	end     time.Time // no call starts at or after end (zero: ends after Calls)
	left    atomic.Int64
	runErrs *atomic.Int64 // errors of the whole run, for progress
	hash    uint32        // Unique: of the target's name, in every tag

	mu      sync.Mutex
	hist    *hdrhistogram.Histogram
	kinds   map[string]int64
	samples map[string]string
	errors  int64
	calls   int64
	bytes   int64
	last    time.Time // last measured completion
}

func (p *plan) runRound(ctx context.Context, t Target, index int, runStart time.Time, runErrs *atomic.Int64) *RoundResult {
	cfg := &p.cfg
	rd := &round{p: p, ctx: ctx, target: t, runErrs: runErrs, hist: newHistogram(),
		kinds: map[string]int64{}, samples: map[string]string{}}
	rd.left.Store(cfg.Calls)
	h := fnv.New32a()
	h.Write([]byte(t.Name))
	rd.hash = h.Sum32()

	// Connections and handshakes first, in parallel and unmeasured.
	workers := make([]*worker, cfg.Conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{rd: rd, id: i, lat: make([]int64, 0, 512),
			req: append([]byte(nil), p.req...), confirm: append([]byte(nil), p.confirm...)}
		workers[i] = w
		wg.Go(func() {
			start := w.now()
			if err := w.connect(); err != nil {
				w.fail(err)
				w.observe(start, err)
			}
		})
	}
	wg.Wait()

	rd.start = time.Now()
	rd.measure = rd.start.Add(cfg.Warmup)
	if cfg.Calls == 0 {
		rd.end = rd.measure.Add(cfg.Duration)
	}
	stop := context.AfterFunc(ctx, func() {
		for _, w := range workers {
			w.abort()
		}
	})
	defer stop()

	var calls atomic.Int64
	for _, w := range workers {
		w.progress = &calls
		wg.Go(w.run)
	}
	pids, sampleCPU := cfg.CPU[t.Name]
	var cpu0 time.Duration
	var cpuErr error
	if sampleCPU {
		// The main goroutine waits for the end of the warmup to take the first sample.
		if wait := time.Until(rd.measure); wait > 0 {
			tm := time.NewTimer(wait)
			select {
			case <-tm.C:
			case <-ctx.Done():
				tm.Stop()
			}
		}
		cpu0, cpuErr = ProcessCPU(pids)
	}
	done := make(chan struct{})
	var pwg sync.WaitGroup
	if cfg.Progress != nil {
		pwg.Go(func() {
			tick := time.NewTicker(ProgressInterval)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case now := <-tick.C:
					n := calls.Load()
					pr := Progress{Target: t.Name, Round: index, Rounds: cfg.Rounds, Warmup: now.Before(rd.measure),
						Elapsed: now.Sub(runStart), RoundElapsed: now.Sub(rd.start), Calls: n, Errors: runErrs.Load()}
					if !rd.end.IsZero() {
						pr.RoundLength = rd.end.Sub(rd.start)
					}
					if s := pr.RoundElapsed.Seconds(); s > 0 {
						pr.CallsPerSec = float64(n) / s
					}
					cfg.Progress(pr)
				}
			}
		})
	}
	wg.Wait()
	var cpu1 time.Duration
	if sampleCPU && cpuErr == nil {
		cpu1, cpuErr = ProcessCPU(pids)
	}
	close(done)
	pwg.Wait()

	rr := &RoundResult{Round: index, Start: rd.measure, Latency: rd.hist}
	if sampleCPU {
		rr.CPU, rr.CPUPerCall = -1, -1
		if cpuErr == nil && cpu1 >= cpu0 {
			rr.CPU = cpu1 - cpu0
			if rd.calls > 0 {
				rr.CPUPerCall = rr.CPU / time.Duration(rd.calls)
			}
		}
	}
	rr.Calls, rr.Bytes, rr.Errors = rd.calls, rd.bytes, rd.errors
	rr.ErrorsByKind, rr.ErrorSamples = rd.kinds, rd.samples
	if rd.calls > 0 && rd.last.After(rd.measure) {
		rr.Elapsed = rd.last.Sub(rd.measure)
	}
	rr.Stats.fill(rd.hist)
	return rr
}

// fill sets the rates from Calls, Bytes and Elapsed, and the percentiles from h.
func (s *Stats) fill(h *hdrhistogram.Histogram) {
	if sec := s.Elapsed.Seconds(); sec > 0 {
		s.CallsPerSec = float64(s.Calls) / sec
		s.MBPerSec = float64(s.Bytes) / sec / 1e6
	}
	if h.TotalCount() == 0 {
		return
	}
	s.P50 = time.Duration(h.ValueAtQuantile(50))
	s.P90 = time.Duration(h.ValueAtQuantile(90))
	s.P99 = time.Duration(h.ValueAtQuantile(99))
	s.P999 = time.Duration(h.ValueAtQuantile(99.9))
	s.Max = time.Duration(h.Max())
	s.Mean = time.Duration(h.Mean())
}

// worker is one connection of a round.
type worker struct {
	rd       *round
	id       int
	conn     net.Conn   // used by the worker's goroutine only
	connMu   sync.Mutex // guards live
	live     net.Conn   // conn, for abort to close from another goroutine
	r        *frame.Reader
	req      []byte // the worker's copy of plan.req, whose seq it rewrites
	confirm  []byte // and of plan.confirm
	seq      uint16
	renew    time.Time // when the connection's deadline must be pushed back
	lat      []int64   // latencies not yet in the round's histogram
	calls    int64
	bytes    int64
	last     time.Time
	progress *atomic.Int64
	tag      []byte // Unique: the tag of the call in req
	n        int64  // Unique: calls made
}

// callError is a failed call of a known kind.
type callError struct {
	kind string
	msg  string
}

func (e *callError) Error() string { return e.kind + ": " + e.msg }

func (w *worker) connect() error {
	cfg := &w.rd.p.cfg
	addr, useTLS := strings.CutPrefix(w.rd.target.Addr, "tls:")
	network, address := SplitAddr(addr)
	d := net.Dialer{Timeout: cfg.Timeout}
	var c net.Conn
	var err error
	if useTLS {
		if cfg.TLS == nil {
			return &callError{kind: "dial", msg: "a tls: target needs a TLS configuration (--tls-ca)"}
		}
		c, err = (&tls.Dialer{NetDialer: &d, Config: cfg.TLS}).DialContext(w.rd.ctx, network, address)
	} else {
		c, err = d.DialContext(w.rd.ctx, network, address)
	}
	if err != nil {
		return &callError{kind: "dial", msg: err.Error()}
	}
	w.conn = c
	w.connMu.Lock()
	w.live = c
	w.connMu.Unlock()
	if w.r == nil {
		w.r = frame.NewReader(c, 0, frame.Limits{MaxMessageSize: DefaultEchoMaxMessage + int64(cfg.Payload)*2})
	} else {
		w.r.Reset(c)
	}
	w.seq = 0
	w.renew = time.Time{}
	w.deadline(time.Now())
	if _, err := c.Write(w.rd.p.handshake); err != nil {
		w.closeConn()
		return &callError{kind: "handshake", msg: err.Error()}
	}
	m, err := w.r.Next()
	if err == nil {
		err = w.r.ReadRest(&m)
	}
	switch {
	case err != nil:
	case m.Header.Type == frame.ConnectFail:
		err = &callError{kind: "handshake", msg: "CONNECTFAIL: " + printable(m.Payload)}
	case m.Header.Type != frame.ConnectOK || m.Header.Seq != 0:
		err = &callError{kind: "handshake", msg: fmt.Sprintf("answered with %v seq %d", m.Header.Type, m.Header.Seq)}
	}
	if err != nil {
		w.closeConn()
		if _, ok := err.(*callError); !ok {
			err = &callError{kind: "handshake", msg: err.Error()}
		}
		return err
	}
	return nil
}

// closeConn closes the worker's connection; only the worker's goroutine calls it.
func (w *worker) closeConn() {
	if w.conn == nil {
		return
	}
	w.connMu.Lock()
	w.live = nil
	w.connMu.Unlock()
	w.conn.Close()
	w.conn = nil
}

// abort closes the connection from another goroutine, to unblock the worker.
func (w *worker) abort() {
	w.connMu.Lock()
	if w.live != nil {
		w.live.Close()
	}
	w.connMu.Unlock()
}

// deadline pushes the connection's deadline back to now+Timeout when a quarter of it has
// gone by, so a call is given between 3/4 and all of Timeout at the price of one timer
// update per Timeout/4 rather than per call.
func (w *worker) deadline(now time.Time) {
	if now.Before(w.renew) {
		return
	}
	to := w.rd.p.cfg.Timeout
	w.renew = now.Add(to / 4)
	w.conn.SetDeadline(now.Add(to))
}

func (w *worker) run() {
	rd := w.rd
	cfg := &rd.p.cfg
	defer func() {
		w.flush()
		w.closeConn()
	}()
	var interval time.Duration
	var next time.Time
	var timer *time.Timer
	if cfg.Rate > 0 {
		// Call k of the target is due at start + k/Rate; this connection makes the calls
		// k ≡ id (mod Conns).
		interval = time.Duration(float64(time.Second) * float64(cfg.Conns) / cfg.Rate)
		next = rd.start.Add(time.Duration(float64(time.Second) * float64(w.id) / cfg.Rate))
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	dialFails := 0
	for rd.ctx.Err() == nil {
		var due time.Time
		if cfg.Rate > 0 {
			due, next = next, next.Add(interval)
			if !rd.end.IsZero() && !due.Before(rd.end) {
				break
			}
			if !sleepUntil(rd.ctx, due, timer) {
				return
			}
		} else {
			due = time.Now()
			if !rd.end.IsZero() && !due.Before(rd.end) {
				break
			}
		}
		measured := !due.Before(rd.measure)
		if measured && rd.end.IsZero() && rd.left.Add(-1) < 0 {
			break
		}
		start := w.now()
		if w.conn == nil {
			if err := w.connect(); err != nil {
				w.fail(err)
				w.observe(start, err)
				dialFails++
				if rd.end.IsZero() && dialFails >= 5 {
					return // a round that ends after Calls would never end
				}
				w.pause()
				continue
			}
		}
		dialFails = 0
		var x []byte // the x the reply must carry
		if cfg.Unique {
			x = w.stamp()
		}
		n, err := w.call(w.req, rd.p.reqHeader, cfg.Mode == ModeOneway, x)
		w.observe(start, err)
		if err != nil {
			w.fail(err)
			continue
		}
		now := time.Now()
		w.progress.Add(1)
		if measured {
			w.record(now.Sub(due), n, now)
		}
	}
	if cfg.Mode == ModeOneway && w.conn != nil && rd.ctx.Err() == nil {
		// One normal call: its reply means every oneway call before it was read.
		if _, err := w.call(w.confirm, rd.p.confirmH, false, nil); err != nil {
			w.fail(err)
		} else if w.calls > 0 {
			w.last = time.Now()
		}
	}
}

// pause waits a little before the next dial, less at the end of the round.
func (w *worker) pause() {
	d := 50 * time.Millisecond
	if end := w.rd.end; !end.IsZero() {
		d = min(d, max(time.Until(end), 0))
	}
	select {
	case <-time.After(d):
	case <-w.rd.ctx.Done():
	}
}

// stamp writes the next call's tag into x in the worker's req, at its start and every
// KiB, and returns x.
func (w *worker) stamp() []byte {
	p := w.rd.p
	x := w.req[p.xOff : p.xOff+p.cfg.Payload]
	w.n++
	w.tag = fmt.Appendf(w.tag[:0], "%08x-%04x-%010d-", w.rd.hash, w.id&0xffff, w.n%1e10)
	for k := 0; k+UniqueTagLen <= len(x); k += 1 << 10 {
		copy(x[k:], w.tag)
	}
	return x
}

// carries reports whether payload is x as a serializer encodes a str: x whole, with at
// most UniqueSlack bytes around it.
func carries(payload, x []byte) bool {
	if len(payload) < len(x) || len(payload)-len(x) > UniqueSlack {
		return false
	}
	i := bytes.Index(payload[:len(payload)-len(x)+UniqueTagLen], x[:UniqueTagLen])
	return i >= 0 && bytes.Equal(payload[i:i+len(x)], x)
}

// now is the time a call starts, for Config.Observe (zero without it: no clock read).
func (w *worker) now() time.Time {
	if w.rd.p.cfg.Observe == nil {
		return time.Time{}
	}
	return time.Now()
}

// observe tells Config.Observe of a call (or dial) that started at start and ends now.
func (w *worker) observe(start time.Time, err error) {
	if f := w.rd.p.cfg.Observe; f != nil && (err == nil || w.rd.ctx.Err() == nil) {
		f(Call{Target: w.rd.target.Name, Conn: w.id, Start: start, End: time.Now(), Err: err})
	}
}

// call sends msg (its header rewritten with the next seq) and, unless oneway, reads and
// checks the reply, which must carry x unless x is nil. It returns the wire bytes of
// request and reply.
func (w *worker) call(msg []byte, h frame.Header, oneway bool, x []byte) (int, error) {
	w.seq++
	h.Seq = w.seq
	h.Put(msg)
	w.deadline(time.Now())
	if _, err := w.conn.Write(msg); err != nil {
		return 0, err
	}
	if oneway {
		return len(msg), nil
	}
	m, err := w.r.Next()
	if err != nil {
		return 0, err
	}
	rh := m.Header
	var bad *callError
	switch {
	case rh.Type != frame.Result:
		bad = &callError{kind: "type", msg: fmt.Sprintf("reply is %v, want RESULT", rh.Type)}
	case rh.Seq != w.seq:
		bad = &callError{kind: "seq", msg: fmt.Sprintf("reply seq %d to request seq %d", rh.Seq, w.seq)}
	case rh.Serializer != h.Serializer:
		bad = &callError{kind: "serializer", msg: fmt.Sprintf("reply in %v to a %v call", rh.Serializer, h.Serializer)}
	case rh.Flags.Has(frame.FlagException):
		// The stream is still in step: read the exception for the report and go on.
		if rh.DataLen <= 64<<10 {
			if err := w.r.ReadRest(&m); err != nil {
				return 0, err
			}
			return 0, &callError{kind: "exception", msg: printable(m.Payload)}
		}
		if err := w.r.Discard(&m); err != nil {
			return 0, err
		}
		return 0, &callError{kind: "exception", msg: "(large exception payload)"}
	}
	if bad != nil {
		return 0, bad
	}
	if x == nil {
		err = w.r.Discard(&m)
	} else if err = w.r.ReadRest(&m); err == nil && !carries(m.Payload, x) {
		err = &callError{kind: "payload", msg: fmt.Sprintf("reply to call %s (x of %d bytes) is %s (%d bytes)",
			x[:UniqueTagLen], len(x), printable(m.Payload[:min(len(m.Payload), 80)]), len(m.Payload))}
	}
	if err != nil {
		return 0, err
	}
	return len(msg) + frame.HeaderSize + rh.AnnLen + rh.DataLen, nil
}

// record adds a measured call.
func (w *worker) record(lat time.Duration, n int, now time.Time) {
	w.calls++
	w.bytes += int64(n)
	w.last = now
	w.lat = append(w.lat, int64(lat))
	if len(w.lat) == cap(w.lat) {
		w.flush()
	}
}

// flush moves the worker's latencies and counts into the round.
func (w *worker) flush() {
	rd := w.rd
	rd.mu.Lock()
	defer rd.mu.Unlock()
	for _, v := range w.lat {
		rd.hist.RecordValue(min(max(v, 1), latencyMax))
	}
	w.lat = w.lat[:0]
	rd.calls += w.calls
	rd.bytes += w.bytes
	w.calls, w.bytes = 0, 0
	if w.last.After(rd.last) {
		rd.last = w.last
	}
}

// fail counts err, and drops the connection unless the stream is still in step.
func (w *worker) fail(err error) {
	rd := w.rd
	if rd.ctx.Err() != nil {
		return // errors caused by the cancellation itself
	}
	kind := ErrorKind(err)
	if kind != "exception" {
		w.closeConn()
	}
	rd.runErrs.Add(1)
	rd.mu.Lock()
	rd.errors++
	rd.kinds[kind]++
	if _, ok := rd.samples[kind]; !ok {
		rd.samples[kind] = err.Error()
	}
	rd.mu.Unlock()
}

// ErrorKind classifies an error of the load generator into one of ErrorKinds.
func ErrorKind(err error) string {
	var ce *callError
	var ne net.Error
	switch {
	case errors.As(err, &ce):
		return ce.kind
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case frame.IsProtocolError(err):
		return "protocol"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "closed"
	}
	return "io"
}

// printable shortens a payload to a readable sample for a report.
func printable(b []byte) string {
	b = b[:min(len(b), 300)]
	var sb strings.Builder
	for _, r := range string(b) {
		switch {
		case r == '\n':
			sb.WriteString(" ")
		case r < 0x20 || r == 0x7f || r == 0xfffd:
			sb.WriteString(".")
		default:
			sb.WriteRune(r)
		}
	}
	return strings.TrimPrefix(sb.String(), strings.TrimSuffix(serpentHeader, "\n")+" ")
}
