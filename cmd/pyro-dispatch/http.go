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
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/httpgw"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
	"github.com/pyro-dispatch/pyro-dispatch/tlsfiles"
)

func init() {
	commands["http"] = command{"serve Pyro objects over HTTP and JSON, as pyro4-httpgateway does (a drop-in replacement)", runHTTP}
}

func runHTTP(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("http", "", stderr)
	var hl config.HTTPListener
	var logLevel string
	fs.StringVarP(&hl.Listen, "listen", "l", "127.0.0.1:8080", "HTTP listen address: HOST:PORT or unix:/path")
	fs.StringVar(&hl.NameServer, "ns", "", "the Pyro4 name server, HOST:PORT (required)")
	fs.StringVarP(&hl.Expose, "expose", "e", config.DefaultHTTPExpose, `regular expression object names must match at their start to be callable (".*": all)`)
	fs.StringVar(&hl.GatewayKeyFile, "gateway-key-file", "", "a file holding the gateway key clients must send (X-Pyro-Gateway-Key or $key); PYRO_HTTPGATEWAY_KEY works too")
	fs.DurationVarP(&hl.Timeout, "timeout", "t", config.DefaultHTTPTimeout, "time for the Pyro side of one request (lookup, connect, call); past it: 504")
	fs.DurationVar(&hl.LookupTTL, "lookup-ttl", config.DefaultHTTPLookupTTL, "how long a name server lookup is reused")
	fs.IntVar(&hl.PoolSize, "pool-size", config.DefaultHTTPPoolSize, "most connections open at once per Pyro object")
	var tlsIn config.ListenerTLS
	fs.StringVar(&tlsIn.Cert, "tls-cert", "", "serve HTTPS (and HTTP/2) with this PEM certificate file")
	fs.StringVar(&tlsIn.Key, "tls-key", "", "the PEM key of --tls-cert (default: in that file)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	accessLog := fs.Bool("access-log", false, "log one line per request (client, method, path, status, bytes, duration, correlation id)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: pyro-dispatch http --ns HOST:PORT [flags]

Serves the URLs of Pyro4's HTTP gateway (pyro4-httpgateway): GET or POST
/pyro/<object>/<method>?name=value calls method(name="value") on the object the name server
knows as <object> (if it matches --expose) and answers with the reply's JSON as it came;
/pyro/<object>/$meta lists its methods and attributes; X-Pyro-Options: oneway,
X-Pyro-Correlation-Id and X-Pyro-Gateway-Key as Pyro4's gateway has them. Beyond it:
concurrent requests on pooled connections, lookups cached, a JSON body
{"args": [...], "kwargs": {...}}, 503 when the name server or a daemon cannot be reached,
504 past --timeout, HTTP/1.1 keep-alive and HTTP/2 (h2c, or over TLS). The same gateway
runs beside the Pyro listeners of serve --config with http: listeners in the file.

Flags:
%s`, fs.FlagUsages())
	}
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 || hl.NameServer == "" {
		fmt.Fprintln(stderr, "pyro-dispatch http: give --ns HOST:PORT, and no arguments")
		return 2
	}
	if tlsIn.Cert != "" {
		hl.TLS = &tlsIn
	}
	cfg := config.Config{HTTP: []config.HTTPListener{hl}}
	if err := cfg.HTTP[0].Validate(); err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch http: %v\n", err)
		return 2
	}
	log, err := newLogger(config.Log{Level: logLevel, Format: "console"}, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch http: %v\n", err)
		return 2
	}
	defer log.Sync()
	gw, err := startHTTPGateway(cfg.HTTP[0], gatewayEnv{access: *accessLog}, log)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch http: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-gw.served: // logged
		gw.stop()
		return 1
	case <-ctx.Done():
	}
	gw.stop()
	log.Info("stopped")
	return 0
}

// httpGateway is one running HTTP gateway listener.
type httpGateway struct {
	gw     *httpgw.Gateway
	hs     *http.Server
	served chan error // an error when it stops serving on its own
}

// gatewayEnv is what an HTTP gateway listener gets from the process it runs in.
type gatewayEnv struct {
	srv     *dispatch.Server // routes the calls of a listener with backend or routes (serve)
	metrics *metrics.HTTP    // nil: no metrics (no admin listener)
	access  bool             // the access log
}

// startHTTPGateway starts the gateway of hl (validated) in the background.
func startHTTPGateway(hl config.HTTPListener, env gatewayEnv, log *zap.Logger) (*httpGateway, error) {
	key, err := gatewayKey(hl.GatewayKeyFile)
	if err != nil {
		return nil, err
	}
	gc := httpgw.Config{NameServer: hl.NameServer, Expose: hl.Expose, GatewayKey: key, Timeout: hl.Timeout,
		LookupTTL: hl.LookupTTL, PoolSize: hl.PoolSize, Name: hl.Name, AccessLog: env.access}
	if env.metrics != nil {
		gc.Metrics = env.metrics.Listener(hl.Name)
	}
	if hl.Routed() {
		gc.Backends, gc.Objects = env.srv.RoutedCalls(hl.Name), hl.NamedObjects()
	}
	gw, err := httpgw.New(gc, log)
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10, IdleTimeout: 2 * time.Minute,
		Protocols: new(http.Protocols)}
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetHTTP2(true)
	hs.Protocols.SetUnencryptedHTTP2(true) // h2c
	if hl.TLS != nil {
		ts, err := tlsfiles.NewServer(tlsfiles.ServerFiles{Cert: hl.TLS.Cert, Key: hl.TLS.Key, ClientCA: hl.TLS.ClientCA, MinVersion: hl.TLS.MinVersion})
		if err != nil {
			gw.Close()
			return nil, err
		}
		hs.TLSConfig = ts.Config()
	}
	ln, err := admin.Listen(hl.Listen)
	if err != nil {
		gw.Close()
		return nil, err
	}
	g := &httpGateway{gw: gw, hs: hs, served: make(chan error, 1)}
	go func() {
		var err error
		if hs.TLSConfig != nil {
			err = hs.ServeTLS(ln, "", "")
		} else {
			err = hs.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("http gateway stopped serving", zap.String("name", hl.Name), zap.Error(err))
			g.served <- err
		}
	}()
	log.Info("http gateway ready", zap.String("name", hl.Name), zap.String("listen", ln.Addr().Network()+":"+ln.Addr().String()),
		zap.String("name_server", hl.NameServer), zap.Bool("routed", hl.Routed()), zap.String("expose", hl.Expose), zap.Bool("tls", hs.TLSConfig != nil))
	return g, nil
}

// stop lets requests in flight finish (at most 15 s) and closes the gateway's pools.
func (g *httpGateway) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	g.hs.Shutdown(ctx)
	g.gw.Close()
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
