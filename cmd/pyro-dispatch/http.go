package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/admin"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/httpgw"
	"github.com/pyro-dispatch/pyro-dispatch/tlsfiles"
)

func init() {
	commands["http"] = command{"serve Pyro objects over HTTP and JSON, as pyro4-httpgateway does (a drop-in replacement)", runHTTP}
}

// httpOptions are the flags of the http command.
type httpOptions struct {
	listen, ns, expose, keyFile string
	timeout, lookupTTL          time.Duration
	poolSize                    int
	tlsCert, tlsKey             string
	logLevel                    string
}

func runHTTP(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("http", "", stderr)
	var o httpOptions
	fs.StringVarP(&o.listen, "listen", "l", "127.0.0.1:8080", "HTTP listen address: HOST:PORT or unix:/path")
	fs.StringVar(&o.ns, "ns", "", "the Pyro4 name server, HOST:PORT (required)")
	fs.StringVarP(&o.expose, "expose", "e", httpgw.DefaultExpose, `regular expression object names must match at their start to be callable (".*": all)`)
	fs.StringVar(&o.keyFile, "gateway-key-file", "", "a file holding the gateway key clients must send (X-Pyro-Gateway-Key or $key); PYRO_HTTPGATEWAY_KEY works too")
	fs.DurationVarP(&o.timeout, "timeout", "t", 30*time.Second, "time for the Pyro side of one request (lookup, connect, call); past it: 504")
	fs.DurationVar(&o.lookupTTL, "lookup-ttl", 5*time.Second, "how long a name server lookup is reused")
	fs.IntVar(&o.poolSize, "pool-size", 16, "most connections open at once per Pyro object")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "serve HTTPS (and HTTP/2) with this PEM certificate file")
	fs.StringVar(&o.tlsKey, "tls-key", "", "the PEM key of --tls-cert (default: in that file)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: pyro-dispatch http --ns HOST:PORT [flags]

Serves the URLs of Pyro4's HTTP gateway (pyro4-httpgateway): GET or POST
/pyro/<object>/<method>?name=value calls method(name="value") on the object the name server
knows as <object> (if it matches --expose) and answers with the reply's JSON as it came;
/pyro/<object>/$meta lists its methods and attributes; X-Pyro-Options: oneway,
X-Pyro-Correlation-Id and X-Pyro-Gateway-Key as Pyro4's gateway has them. Beyond it:
concurrent requests on pooled connections, lookups cached, a JSON body
{"args": [...], "kwargs": {...}}, 503 when the name server or a daemon cannot be reached,
504 past --timeout, HTTP/1.1 keep-alive and HTTP/2 (h2c, or over TLS).

Flags:
%s`, fs.FlagUsages())
	}
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 || o.ns == "" {
		fmt.Fprintln(stderr, "pyro-dispatch http: give --ns HOST:PORT, and no arguments")
		return 2
	}
	key, err := gatewayKey(o.keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch http: %v\n", err)
		return 2
	}
	log, err := newLogger(config.Log{Level: o.logLevel, Format: "console"}, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch http: %v\n", err)
		return 2
	}
	defer log.Sync()
	gw, err := httpgw.New(httpgw.Config{NameServer: o.ns, Expose: o.expose, GatewayKey: key, Timeout: o.timeout,
		LookupTTL: o.lookupTTL, PoolSize: o.poolSize}, log)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch http: %v\n", err)
		return 2
	}
	defer gw.Close()
	ln, err := admin.Listen(o.listen)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch http: %v\n", err)
		return 1
	}
	hs := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10, IdleTimeout: 2 * time.Minute,
		Protocols: new(http.Protocols)}
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetHTTP2(true)
	hs.Protocols.SetUnencryptedHTTP2(true) // h2c
	if o.tlsCert != "" {
		ts, err := tlsfiles.NewServer(tlsfiles.ServerFiles{Cert: o.tlsCert, Key: o.tlsKey})
		if err != nil {
			fmt.Fprintf(stderr, "pyro-dispatch http: %v\n", err)
			return 1
		}
		hs.TLSConfig = ts.Config()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() {
		if hs.TLSConfig != nil {
			served <- hs.ServeTLS(ln, "", "")
		} else {
			served <- hs.Serve(ln)
		}
	}()
	log.Info("http gateway ready", zap.String("listen", ln.Addr().Network()+":"+ln.Addr().String()),
		zap.String("name_server", o.ns), zap.String("expose", o.expose), zap.Bool("tls", hs.TLSConfig != nil))
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("http gateway stopped", zap.Error(err))
			return 1
		}
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	hs.Shutdown(sctx) // requests in flight finish
	log.Info("stopped")
	return 0
}

// gatewayKey reads the gateway key from a file, else PYRO_HTTPGATEWAY_KEY, as
// pyro4-httpgateway (never from the command line).
func gatewayKey(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		k := strings.TrimRight(string(b), "\r\n")
		if k == "" {
			return "", fmt.Errorf("%s is empty", file)
		}
		return k, nil
	}
	return os.Getenv("PYRO_HTTPGATEWAY_KEY"), nil
}
