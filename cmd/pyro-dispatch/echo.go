package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

func init() {
	commands["echo"] = command{`run a Go Pyro4 echo daemon for capacity tests (object "echo")`, runEcho}
}

// echoOptions are the flags of the echo command.
type echoOptions struct {
	listen       string
	delay        time.Duration
	responseSize config.ByteSize
	maxMessage   config.ByteSize
	quiet        bool
}

func runEcho(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("echo", "", stderr)
	var o echoOptions
	fs.StringVarP(&o.listen, "listen", "l", "127.0.0.1:0", "listen address: HOST:PORT, [::1]:PORT or unix:/path (port 0: any free port)")
	fs.DurationVar(&o.delay, "delay", 0, "wait this long before answering each call (stands in for work)")
	fs.Var(&o.responseSize, "response-size", "answer echo and blob with a str of this many bytes instead of the argument (0: echo it)")
	o.maxMessage = bench.DefaultEchoMaxMessage
	fs.Var(&o.maxMessage, "max-message-size", "largest payload+annotations a client may send")
	fs.BoolVarP(&o.quiet, "quiet", "q", false, "print only the URI")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: pyro-dispatch echo [flags]

Serves one Pyro4 object, "echo", for capacity tests: echo(x) returns x in the caller's
serializer, oneway(x) is a oneway method, blob(b) takes a SerializedBlob and returns the
first item of its data; CONNECT (with metadata) and PING are answered as Pyro4 does.
Prints the object's URI (PYRO:echo@HOST:PORT) on stdout once it listens, and its counters
on stderr when stopped (SIGINT, SIGTERM).

Flags:
%s`, fs.FlagUsages())
	}
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pyro-dispatch echo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if o.responseSize < 0 || o.delay < 0 {
		fmt.Fprintln(stderr, "pyro-dispatch echo: --delay and --response-size must not be negative")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveEcho(ctx, o, stdout, stderr)
}

// serveEcho runs the echo daemon until ctx is done.
func serveEcho(ctx context.Context, o echoOptions, stdout, stderr io.Writer) int {
	s := &bench.EchoServer{
		Delay:        o.delay,
		ResponseSize: int(o.responseSize),
		Limits:       frame.Limits{MaxMessageSize: int64(o.maxMessage)},
	}
	if !o.quiet {
		s.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	if err := s.Listen(o.listen); err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch echo: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, s.URI())
	if !o.quiet {
		what := "echoing arguments"
		if o.responseSize > 0 {
			what = "answering with " + o.responseSize.String() + " strs"
		}
		fmt.Fprintf(stderr, "pyro-dispatch echo: serving %s (%s, delay %v); stop with Ctrl-C\n", s.URI(), what, o.delay)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	var err error
	select {
	case <-ctx.Done():
		s.Close()
		err = <-served
	case err = <-served:
		s.Close()
	}
	if !o.quiet {
		st := s.Stats()
		fmt.Fprintf(stderr, "pyro-dispatch echo: stopped after %d connections: %d calls, %d oneway, %d blob, %d pings, %d exceptions, %d dropped\n",
			st.Connections, st.Calls, st.Oneway, st.Blobs, st.Pings, st.Exceptions, st.Dropped)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch echo: %v\n", err)
		return 1
	}
	return 0
}
