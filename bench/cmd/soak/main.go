// Command soak runs pyro-dispatch for a long time under load and faults, checks what
// its clients saw and what it kept, and writes a report (bench/SOAK.md and its chart):
// `make soak SOAK=30m` (bench/README.md, "Soak").
//
// The dispatcher is the built binary (serve --config, admin listener on) with six
// listeners, session, pooled and pipelined, each plain and with HMAC re-signing, in
// front of three groups of two members: go (Go echo daemons), py and pyhmac (real Pyro4
// daemons: two Python processes, each with a plain and an HMAC daemon). The load is Go
// load generator streams and real Pyro4 clients, every call unique, every reply checked
// (load.go); the faults are in faults.go; the checks in report.go. It reaches nothing
// but 127.0.0.1, and stops only the processes it started, by their PIDs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// callTimeout bounds a call of the load (a client that stops reading can hold up a
// pipelined connection's calls for as long as it holds its reply: up to 14 s here).
const callTimeout = 30 * time.Second

// failingMax bounds how long the load goes on for clients that failed near the end.
const failingMax = 30 * time.Second

// settleMax bounds the wait for the resources to come back after the load: Go returns
// freed memory to the system within a few minutes (its forced GC runs every two).
const settleMax = 4 * time.Minute

type options struct {
	bin, repo, python, work string
	out, chart              string
	duration, warmup        time.Duration
	seed                    uint64
	scale                   float64
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var opt options
	fs := pflag.NewFlagSet("soak", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opt.bin, "bin", "bin/pyro-dispatch", "the pyro-dispatch binary under test (serve, and echo for the Go daemons)")
	fs.StringVar(&opt.repo, "repo", ".", "the repository (its interop/testdata has the Python daemons and clients)")
	fs.StringVar(&opt.python, "python", "/usr/bin/python3", "the Python with Debian's Pyro4")
	fs.StringVar(&opt.work, "work", "", "work directory for configuration, keys, logs and faults.jsonl (default: a new one in $TMPDIR)")
	fs.StringVar(&opt.out, "out", "bench/SOAK.md", "the report")
	fs.StringVar(&opt.chart, "chart", "bench/charts/soak.svg", "the chart of RSS, goroutines, file descriptors and calls over time")
	fs.DurationVar(&opt.duration, "duration", 3*time.Minute, "how long load and faults run")
	fs.DurationVar(&opt.warmup, "warmup", 30*time.Second, "load without faults before the idle baseline is taken")
	fs.Uint64Var(&opt.seed, "seed", 0, "seed of the random choices (0: from the clock); the timing differs anyway")
	fs.Float64Var(&opt.scale, "load", 1, "scale of the Go load's call rates")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if opt.seed == 0 {
		opt.seed = uint64(time.Now().UnixNano())
	}
	var err error
	if opt.work == "" {
		opt.work, err = os.MkdirTemp("", "pyro-soak-")
	} else {
		err = os.MkdirAll(opt.work, 0o755)
	}
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 2
	}
	for _, p := range []*string{&opt.bin, &opt.work} {
		if abs, err := filepath.Abs(*p); err == nil {
			*p = abs
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rng := rand.New(rand.NewPCG(opt.seed, 0))
	w, err := newWorld(opt, rng)
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 2
	}
	defer w.close()
	s := &soak{opt: opt, w: w, seed: opt.seed, out: stdout, watch: newRecoveryWatch(), targets: goTargets(opt.scale),
		probed: map[Path]bool{}, adm: &adminClient{base: "http://" + w.addr("admin"), token: w.adminTok,
			// A connection per request: none of the soak's own is left in the goroutine dumps.
			hc: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}}
	for _, t := range s.targets {
		s.probed[t.path] = s.probed[t.path] || t.probe
	}
	fmt.Fprintf(stdout, "soak: %v of load and faults, seed %d, work directory %s\n", opt.duration, opt.seed, opt.work)
	r, err := s.run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v (logs in %s)\n", err, opt.work)
		return 2
	}
	if err := r.write(opt.out, opt.chart); err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "soak: report %s, chart %s, logs in %s\n", opt.out, opt.chart, opt.work)
	failed := 0
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark, failed = "FAIL", failed+1
		}
		fmt.Fprintf(stdout, "  %s %s: %s\n", mark, c.Name, c.Detail)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// soak is a run: its world, the load's ledgers and the faults.
type soak struct {
	opt     options
	w       *world
	adm     *adminClient
	seed    uint64
	out     io.Writer
	targets []goTarget
	probed  map[Path]bool // paths with a probe stream
	watch   *recoveryWatch

	reloadMu sync.Mutex
	bigOnce  sync.Once
	big      map[string][]byte // bigCall's messages

	mu       sync.Mutex
	seq      int
	faults   []Fault
	faultLog *os.File
	phases   []phaseMark
	samples  []Sample
}

func (s *soak) setPhase(p string) {
	s.mu.Lock()
	s.phases = append(s.phases, phaseMark{time.Now(), p})
	s.mu.Unlock()
	fmt.Fprintf(s.out, "%s %s\n", time.Now().Format("15:04:05.000"), p)
}

// sampler samples the dispatcher's resources every sampleEvery until ctx ends.
func (s *soak) sampler(ctx context.Context) {
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		if sm, err := s.sample(ctx); err == nil {
			s.mu.Lock()
			s.samples = append(s.samples, sm)
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// waitIdle waits until no client is connected to the dispatcher.
func (s *soak) waitIdle(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		sm, err := s.sample(ctx)
		if err == nil && sm.Clients == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still %d clients connected %v after the load stopped (%v)", sm.Clients, d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// run runs the whole soak and returns what the report needs.
func (s *soak) run(ctx context.Context) (*report, error) {
	r := &report{Begin: time.Now(), Opt: s.opt, Version: version(s.opt.repo), Machine: machine(), Config: s.w.configYAML(0)}
	var err error
	if s.faultLog, err = os.Create(filepath.Join(s.opt.work, "faults.jsonl")); err != nil {
		return nil, err
	}
	defer s.faultLog.Close()
	for _, b := range s.w.backends {
		if err := s.w.startBackend(b); err != nil {
			return nil, err
		}
	}
	if err := s.w.startDispatcher(ctx, s.adm); err != nil {
		return nil, err
	}
	sctx, stopSampler := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Go(func() { s.sampler(sctx) })
	defer func() {
		stopSampler()
		sampling.Wait()
	}()

	// Warm-up: the load alone, so that every pool, handshake and buffer the soak needs
	// exists before the idle baseline is taken.
	s.setPhase("warm-up")
	r.Warm = newLedger(nil)
	wctx, cancel := context.WithTimeout(ctx, s.opt.warmup)
	err = s.load(wctx, r.Warm)
	cancel()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.setPhase("idle")
	if err := s.waitIdle(ctx, time.Minute); err != nil {
		return nil, err
	}
	time.Sleep(5 * time.Second) // idle pooled connections retire (pool.max_idle_time 2s)
	if r.Leak.Base, err = s.snapshot(ctx, "baseline"); err != nil {
		return nil, err
	}

	// The soak: load and faults for the duration.
	s.setPhase("soak")
	r.Soak = newLedger(s.watch)
	lctx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan error, 1)
	go func() { loaded <- s.load(lctx, r.Soak) }()
	r.SoakStart = time.Now()
	s.chaos(ctx, r.SoakStart.Add(s.opt.duration))
	s.w.mu.Lock()
	variant := s.w.variant
	s.w.mu.Unlock()
	if variant != 0 && ctx.Err() == nil {
		s.inject(faultKind{name: "final_reload", run: (*soak).reload}, rand.New(rand.NewPCG(s.seed, 3)))
	}
	// The load goes on past the last fault's end, so that its recovery is measured.
	last := r.SoakStart
	for _, f := range s.faults {
		last = latest(last, f.End)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(latest(r.SoakStart.Add(s.opt.duration), last.Add(recoveryBound+time.Second)))):
	}
	// And on while a client that failed has not succeeded since: the slowest streams call
	// every 10 s, so a failure at the end would otherwise have no call to come back with.
	for end := time.Now().Add(failingMax); r.Soak.failingNow() > 0 && time.Now().Before(end) && ctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
	}
	r.SoakEnd = time.Now()
	stopLoad()
	if err := <-loaded; err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Settle: every client gone, the resources back near the baseline.
	s.setPhase("settle")
	if err := s.waitIdle(ctx, time.Minute); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(settleMax); ; {
		sm, err := s.sample(ctx)
		if (err == nil && settled(sm, r.Leak.Base.Sample)) || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if r.Leak.Final, err = s.snapshot(ctx, "final"); err != nil {
		return nil, err
	}
	r.Leak.Settle = r.Leak.Final.At.Sub(r.SoakEnd)
	r.Leak.judge()
	if m, err := s.adm.get(ctx, "/metrics"); err == nil {
		r.Panics, _ = metric(m, "pyro_dispatch_panics_total")
	}
	stopSampler()
	sampling.Wait()
	s.samples = append(s.samples, r.Leak.Final.Sample)

	// The dispatcher drains and exits 0 on SIGTERM.
	t0 := time.Now()
	s.w.disp.stop(30 * time.Second)
	r.Exit = fmt.Sprintf("exited (%v) %v after SIGTERM", s.w.disp.err, time.Since(t0).Round(time.Millisecond))
	r.ExitOK = s.w.disp.err == nil
	if s.w.disp.err == nil {
		r.Exit = fmt.Sprintf("exited 0 %v after SIGTERM", time.Since(t0).Round(time.Millisecond))
	}
	r.End, r.MachineEnd = time.Now(), machine()
	r.Faults, r.Samples, r.Phases, r.Recoveries = s.faults, s.samples, s.phases, s.watch.results()
	r.LogCounts = logCounts(filepath.Join(s.opt.work, "dispatcher.log"))
	r.analyse()
	return r, nil
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// version is `git describe` of the repository, or "unknown".
func version(repo string) string {
	out, err := exec.Command("git", "-C", repo, "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// machine describes the machine: CPUs and load average.
func machine() string {
	load, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(load))
	if len(f) >= 3 {
		return fmt.Sprintf("%d CPUs, load average %s %s %s", runtime.NumCPU(), f[0], f[1], f[2])
	}
	return fmt.Sprintf("%d CPUs", runtime.NumCPU())
}
