package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/tlsfiles"
)

func init() {
	commands["bench"] = command{"measure Pyro4 servers: calls/s and latency percentiles, several targets compared", runBench}
}

// benchOptions are the flags of the bench command.
type benchOptions struct {
	targets    []string
	object     string
	conns      int
	duration   time.Duration
	calls      int64
	payload    config.ByteSize
	serializer string
	mode       string
	rate       float64
	warmup     time.Duration
	rounds     int
	timeout    time.Duration
	jsonFile   string
	chartFile  string
	quiet      bool
	cpu        []string
	tlsCA      string
}

func runBench(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", "", stderr)
	var o benchOptions
	fs.StringArrayVarP(&o.targets, "target", "t", nil, "server to measure, NAME=ADDR (ADDR: HOST:PORT, unix:/path, or tls:HOST:PORT for a TLS listener); repeat to compare, ratios are to the first")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA file the certificates of tls: targets must chain to")
	fs.StringVar(&o.object, "object", bench.EchoObject, "object id to call")
	fs.IntVarP(&o.conns, "conns", "c", 4, "connections per target, each a Pyro4 proxy making sequential calls")
	fs.DurationVarP(&o.duration, "duration", "d", 10*time.Second, "measured time of each round of each target")
	fs.Int64Var(&o.calls, "calls", 0, "end each round after this many calls instead of after --duration")
	o.payload = 16
	fs.Var(&o.payload, "payload", "size of the str argument of each call, e.g. 16, 4KiB, 1MiB")
	fs.StringVarP(&o.serializer, "serializer", "s", "serpent", "serpent, json or marshal")
	fs.StringVarP(&o.mode, "mode", "m", "call", "call: echo(x); oneway: oneway(x), no reply; blob: blob(SerializedBlob)")
	fs.Float64Var(&o.rate, "rate", 0, "open loop: calls per second per target, latency counted from when each call was due (0: closed loop)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load at the start of each round")
	fs.IntVar(&o.rounds, "rounds", 1, "rounds; with several targets they interleave (A B A B ...) and the report gives medians")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "time allowed for a dial, a handshake or a call")
	fs.StringVar(&o.jsonFile, "json", "", `write the full result as JSON to this file ("-": stdout, the table then goes to stderr)`)
	fs.StringVar(&o.chartFile, "chart", "", "draw latency percentiles and throughput per target to this file: .svg, or .png via rsvg-convert")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "no progress line on stderr")
	fs.StringArrayVar(&o.cpu, "cpu", nil, "NAME=PID[,PID...]: sample the CPU time of these processes and their children (/proc, Linux) around each round of target NAME, and report CPU per call (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: pyro-dispatch bench --target NAME=ADDR [--target ...] [flags]

Opens --conns connections to each target, does the Pyro4 handshake on each, then makes
sequential calls of echo(x) (or oneway / blob), x being a str of --payload bytes, and
checks every reply (type, seq, serializer, no exception). Prints calls/s, MB/s and latency
percentiles per target (medians over rounds), ratios to the first target, and errors by
kind. Exits 1 when any call failed.

Example, the dispatcher against the daemon behind it:
  pyro-dispatch echo --listen 127.0.0.1:9101 &
  pyro-dispatch serve --listen 127.0.0.1:9102 --backend 127.0.0.1:9101 &
  pyro-dispatch bench -t direct=127.0.0.1:9101 -t proxy=127.0.0.1:9102 --rounds 5 --chart bench.svg

Flags:
%s`, fs.FlagUsages())
	}
	if code, done := parse(fs, args); done {
		return code
	}
	cfg, err := o.config(fs.Changed("duration"))
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch bench: %v\n", err)
		return 2
	}

	table := stdout
	if o.jsonFile == "-" {
		table = stderr
	}
	var prog *progressLine
	if !o.quiet && isTerminal(stderr) {
		prog = &progressLine{w: stderr}
		cfg.Progress = prog.show
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg)
	if prog != nil {
		prog.clear()
	}
	if res == nil {
		fmt.Fprintf(stderr, "pyro-dispatch bench: %v\n", err)
		return 2
	}
	code := 0
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch bench: interrupted (%v); results so far:\n", err)
		code = 1
	}
	if werr := res.WriteTable(table); werr != nil {
		fmt.Fprintf(stderr, "pyro-dispatch bench: %v\n", werr)
		code = 1
	}
	if o.jsonFile != "" {
		if werr := writeOutput(o.jsonFile, stdout, res.WriteJSON); werr != nil {
			fmt.Fprintf(stderr, "pyro-dispatch bench: json: %v\n", werr)
			code = 1
		}
	}
	if o.chartFile != "" {
		if werr := writeChart(o.chartFile, res); werr != nil {
			fmt.Fprintf(stderr, "pyro-dispatch bench: chart: %v\n", werr)
			code = 1
		}
	}
	for _, t := range res.Targets {
		if t.Median.Errors > 0 {
			code = 1
		}
	}
	return code
}

// config turns the flags into a bench.Config.
func (o *benchOptions) config(durationSet bool) (bench.Config, error) {
	var cfg bench.Config
	if len(o.targets) == 0 {
		return cfg, errors.New("no --target: give at least one NAME=ADDR")
	}
	for _, s := range o.targets {
		t, err := bench.ParseTarget(s)
		if err != nil {
			return cfg, err
		}
		cfg.Targets = append(cfg.Targets, t)
	}
	ser, ok := frame.ParseSerializer(o.serializer)
	if !ok {
		return cfg, fmt.Errorf("unknown serializer %q: want serpent, json or marshal", o.serializer)
	}
	mode, err := bench.ParseMode(o.mode)
	if err != nil {
		return cfg, err
	}
	if o.calls > 0 && durationSet {
		return cfg, errors.New("--duration and --calls are exclusive")
	}
	if o.conns < 1 || o.rounds < 1 {
		return cfg, errors.New("--conns and --rounds must be at least 1")
	}
	if o.payload < 0 {
		return cfg, errors.New("--payload must not be negative")
	}
	for _, c := range o.cpu {
		name, list, ok := strings.Cut(c, "=")
		if !ok || name == "" || list == "" {
			return cfg, fmt.Errorf("bad --cpu %q: want NAME=PID[,PID...]", c)
		}
		if cfg.CPU == nil {
			cfg.CPU = map[string][]int{}
		}
		for _, f := range strings.Split(list, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || pid <= 0 {
				return cfg, fmt.Errorf("bad --cpu %q: %q is not a PID", c, f)
			}
			cfg.CPU[name] = append(cfg.CPU[name], pid)
		}
		if _, err := bench.ProcessCPU(cfg.CPU[name]); err != nil {
			return cfg, fmt.Errorf("--cpu %s: %v", c, err)
		}
	}
	cfg.Object, cfg.Conns, cfg.Payload, cfg.Serializer, cfg.Mode = o.object, o.conns, int(o.payload), ser, mode
	cfg.Rate, cfg.Warmup, cfg.Rounds, cfg.Timeout = o.rate, o.warmup, o.rounds, o.timeout
	if o.tlsCA != "" {
		cli, err := tlsfiles.NewClient(tlsfiles.ClientFiles{CA: o.tlsCA})
		if err != nil {
			return cfg, err
		}
		cfg.TLS = cli.Config()
	}
	if o.calls > 0 {
		cfg.Calls = o.calls
	} else {
		cfg.Duration = o.duration
	}
	return cfg, cfg.Validate()
}

// writeOutput writes with write to the file name, or to stdout for "-".
func writeOutput(name string, stdout io.Writer, write func(io.Writer) error) error {
	if name == "-" {
		return write(stdout)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeChart writes the SVG chart, converted to PNG with rsvg-convert for a .png name.
func writeChart(name string, res *bench.Result) error {
	if !strings.EqualFold(filepath.Ext(name), ".png") {
		return writeOutput(name, nil, res.WriteChart)
	}
	conv, err := exec.LookPath("rsvg-convert")
	if err != nil {
		return fmt.Errorf("PNG needs rsvg-convert (Debian: librsvg2-bin); or write an .svg: %w", err)
	}
	cmd := exec.Command(conv, "--format", "png", "--zoom", "1.5", "--output", name)
	pr, pw := io.Pipe()
	cmd.Stdin = pr
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return err
	}
	werr := res.WriteChart(pw)
	pw.CloseWithError(werr)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("rsvg-convert: %v: %s", err, strings.TrimSpace(out.String()))
	}
	return werr
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressLine redraws one status line on a terminal.
type progressLine struct {
	w     io.Writer
	shown bool
}

func (p *progressLine) show(pr bench.Progress) {
	phase := "warmup"
	if !pr.Warmup {
		phase = "measuring"
	}
	span := fmt.Sprintf("%.1fs", pr.RoundElapsed.Seconds())
	if pr.RoundLength > 0 {
		span += "/" + strconv.FormatFloat(pr.RoundLength.Seconds(), 'f', -1, 64) + "s"
	}
	fmt.Fprintf(p.w, "\r\x1b[K%6.1fs  round %d/%d  %s  %s %s  %.0f calls/s  %d errors",
		pr.Elapsed.Seconds(), pr.Round, pr.Rounds, pr.Target, phase, span, pr.CallsPerSec, pr.Errors)
	p.shown = true
}

func (p *progressLine) clear() {
	if p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
