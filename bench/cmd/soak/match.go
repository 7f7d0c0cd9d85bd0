package main

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
)

// This file: how a failed call is classified, which fault explains it, and how soon
// calls succeed again after each fault.

// recoveryBound is how soon after a fault's end calls must succeed again; a failure
// later than this after every fault that could cause it is unexplained.
const recoveryBound = 2 * time.Second

// Cause is how a call failed.
type Cause string

// The causes. Only refused and closed are failures the dispatcher may cause, and only
// while a fault explains them.
const (
	// CauseRefused is a Pyro4 exception (or CONNECTFAIL) whose reason starts with
	// "pyro-dispatch:": the dispatcher refused the call before any daemon saw it.
	CauseRefused Cause = "refused"
	// CauseClosed is the client's connection closed under the call, as a lost daemon
	// closes it.
	CauseClosed Cause = "closed"
	// CauseWrong is a reply that is not the call's own: another call's payload, seq or
	// message type. Never allowed.
	CauseWrong Cause = "wrong"
	// CauseTimeout is a call that got no answer in the client's time: a hang.
	CauseTimeout Cause = "timeout"
	// CauseOther is any other failure.
	CauseOther Cause = "other"
)

// causes in the order reports list them.
var causes = []Cause{CauseRefused, CauseClosed, CauseWrong, CauseTimeout, CauseOther}

// refusedReason reports whether reason is the dispatcher's own: it starts with
// "pyro-dispatch:", or is a CONNECTFAIL with such a reason as Pyro4 words it.
func refusedReason(reason string) bool {
	return strings.HasPrefix(reason, "pyro-dispatch:") || strings.Contains(reason, "rejected: pyro-dispatch:")
}

// classifyPython classifies a Python client's failure by its exception class and text.
func classifyPython(class, reason string) Cause {
	switch {
	case class == "__main__.Mismatch" || class == "Pyro4.errors.ProtocolError":
		return CauseWrong
	case class == "Pyro4.errors.TimeoutError":
		return CauseTimeout
	case refusedReason(reason):
		return CauseRefused
	case class == "Pyro4.errors.ConnectionClosedError":
		return CauseClosed
	}
	return CauseOther
}

// classifyGo classifies a failed call of the Go load generator.
func classifyGo(err error) Cause {
	msg := err.Error()
	switch kind := bench.ErrorKind(err); kind {
	case "closed":
		return CauseClosed
	case "timeout":
		return CauseTimeout
	case "protocol", "type", "seq", "serializer", "payload":
		return CauseWrong
	case "exception", "handshake":
		// The reason sits in the exception's args or the CONNECTFAIL's payload, after
		// a serializer's quote or length (the soak's daemons never say pyro-dispatch:).
		if strings.Contains(msg, "pyro-dispatch:") {
			return CauseRefused
		}
		// A handshake the dispatcher cut: the connection closed before the CONNECTOK.
		if kind == "handshake" && (strings.HasSuffix(msg, ": EOF") || strings.Contains(msg, "connection reset")) {
			return CauseClosed
		}
	case "io":
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
			return CauseClosed
		}
	}
	return CauseOther
}

// Failure is a call that failed, as its client saw it.
type Failure struct {
	Client     string // go:TARGET#CONN or py:NAME
	Path       Path
	Op         string
	Start, End time.Time
	// Idle is when the client's previous call succeeded (zero: none did): a connection
	// closed in a fault while idle is found closed at the next call.
	Idle   time.Time
	Cause  Cause
	Reason string
	Fault  int // the fault that explains it (its Seq); 0: none
}

// Back is a client's first success after it failed.
type Back struct {
	Client     string
	Start, End time.Time
}

// Fault is one fault the chaos driver injected, as its log line has it.
type Fault struct {
	Seq    int       `json:"seq"`
	Kind   string    `json:"kind"`
	Target string    `json:"target"` // what it hit: a backend, a listener
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"` // the fault is over: the backend listens again, the client left…
	Detail string    `json:"detail"`
	// Paths are the paths whose calls it may fail (Causes) or that it disturbs; calls
	// must succeed on them within recoveryBound of End.
	Paths  []Path  `json:"paths"`
	Causes []Cause `json:"causes,omitempty"` // how calls on Paths may fail because of it; none for most
	// Problem says what the dispatcher did wrong during the fault (a bad connection it
	// did not close, …); empty when nothing.
	Problem string `json:"problem,omitempty"`
}

// explains reports whether f can explain failure x: x's call overlaps f's window (start
// to end plus recoveryBound), goes over one of f's paths, and failed in a way f causes.
// A connection found closed may have been closed while idle: from its client's
// previous success on.
func (f *Fault) explains(x *Failure) bool {
	from := x.Start
	if x.Cause == CauseClosed && !x.Idle.IsZero() && x.Idle.Before(from) {
		from = x.Idle
	}
	return !x.End.Before(f.Start) && !from.After(f.End.Add(recoveryBound)) &&
		slices.Contains(f.Paths, x.Path) && slices.Contains(f.Causes, x.Cause)
}

// explain sets each failure's Fault to the latest-starting fault that explains it (0
// when none does); faults must be in order of Start.
func explain(failures []Failure, faults []Fault) {
	for i := range failures {
		x := &failures[i]
		x.Fault = 0
		for k := len(faults) - 1; k >= 0; k-- {
			if faults[k].explains(x) {
				x.Fault = faults[k].Seq
				break
			}
		}
	}
}

// Recovery is how soon after a fault's end a call on one of its paths succeeded: the
// first call that started at or after the end (a probe of the Go load generator).
type Recovery struct {
	Fault int
	Path  Path
	End   time.Time     // the fault's
	After time.Duration // from End to that call's success; -1 while none
	// Overlap is a later fault that held calls on Path from before that success on (0:
	// none): the recovery is measured with that one's instead.
	Overlap int
}

// overlaps sets the Overlap of each recovery measured: the first fault (other than its
// own) that holds calls on its path, began before the recovery's success and ended after
// its fault; faults must be in order of Start.
func overlaps(rs []Recovery, faults []Fault, holds func(kind string) bool) {
	for i := range rs {
		r := &rs[i]
		r.Overlap = 0
		if r.After < 0 {
			continue
		}
		done := r.End.Add(r.After)
		for _, g := range faults {
			if g.Seq != r.Fault && holds(g.Kind) && slices.Contains(g.Paths, r.Path) && !g.Start.After(done) && g.End.After(r.End) {
				r.Overlap = g.Seq
				break
			}
		}
	}
}

// okCall is a successful call, kept for a little while.
type okCall struct{ start, end time.Time }

// recentOK is how many of a path's latest successful calls are kept, for faults that
// end while calls that started after their end are already back.
const recentOK = 64

// recoveryWatch follows the probes' successful calls and measures Recoveries.
type recoveryWatch struct {
	mu      sync.Mutex
	pending map[Path][]*Recovery
	recent  map[Path][]okCall // ring of recentOK
	next    map[Path]int      // where the ring's next entry goes
	all     []*Recovery
}

func newRecoveryWatch() *recoveryWatch {
	return &recoveryWatch{pending: map[Path][]*Recovery{}, recent: map[Path][]okCall{}, next: map[Path]int{}}
}

// expect starts measuring fault's recovery on each of paths from end.
func (w *recoveryWatch) expect(fault int, paths []Path, end time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range paths {
		r := &Recovery{Fault: fault, Path: p, End: end, After: -1}
		w.all = append(w.all, r)
		for _, c := range w.recent[p] {
			if !c.start.Before(end) && (r.After < 0 || c.end.Sub(end) < r.After) {
				r.After = c.end.Sub(end)
			}
		}
		if r.After < 0 {
			w.pending[p] = append(w.pending[p], r)
		}
	}
}

// ok records a successful probe call on p.
func (w *recoveryWatch) ok(p Path, start, end time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ring := w.recent[p]
	if len(ring) < recentOK {
		w.recent[p] = append(ring, okCall{start, end})
	} else {
		ring[w.next[p]] = okCall{start, end}
		w.next[p] = (w.next[p] + 1) % recentOK
	}
	rs := w.pending[p]
	kept := rs[:0]
	for _, r := range rs {
		if start.Before(r.End) {
			kept = append(kept, r)
			continue
		}
		r.After = end.Sub(r.End)
	}
	w.pending[p] = kept
}

// results returns every Recovery measured or still waiting (After -1).
func (w *recoveryWatch) results() []Recovery {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Recovery, len(w.all))
	for i, r := range w.all {
		out[i] = *r
	}
	return out
}
