package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"

	"github.com/pyro-dispatch/pyro-dispatch/admin"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

func init() {
	commands["serve"] = command{"run the dispatcher (--listen ADDR --backend ADDR, or --config FILE)", runServe}
	commands["check"] = command{"validate a configuration and print it as it takes effect", runCheck}
}

// configFlags are the flags shared by serve and check; set ones override the file.
type configFlags struct {
	file      string
	listen    []string
	backend   []string
	balance   string
	mode      string
	affinity  []string
	poolOpen  int
	poolWait  time.Duration
	pipeline  int
	maxIdle   time.Duration
	parkAfter time.Duration
	logLevel  string
	logFormat string
	access    bool
	maxMsg    config.ByteSize
	maxConns  int
	maxPerIP  int
	callRate  float64
	burst     int
	connRate  float64
	sers      []string
	admin     string
	adminTok  string
	tlsIn     config.ListenerTLS
	tlsOut    config.BackendTLS
	header    time.Duration
	idle      time.Duration
	dial      time.Duration
	call      time.Duration
	drain     time.Duration
	cpuprof   string
	procs     int
	fs        *pflag.FlagSet // as parsed, for reloads
}

func (c *configFlags) register(fs *pflag.FlagSet) {
	d := config.Defaults()
	fs.StringVarP(&c.file, "config", "c", "", "YAML configuration file")
	fs.StringArrayVarP(&c.listen, "listen", "l", nil, "listen address: HOST:PORT, [::1]:PORT or unix:/path (repeatable)")
	fs.StringArrayVarP(&c.backend, "backend", "b", nil, "backend Pyro4 daemon address: HOST:PORT, [::1]:PORT or unix:/path (repeat for a group of several; routes need --config)")
	fs.StringVar(&c.balance, "balance", "", "with several --backend: round_robin (default), least_inflight or hash (on the client IP)")
	fs.StringVar(&c.mode, "mode", "", "listener mode: session (one backend connection per client) or pooled (shared)")
	fs.StringArrayVar(&c.affinity, "affinity", nil, "pooled mode: object id pattern whose clients keep one backend connection (repeatable)")
	fs.IntVar(&c.poolOpen, "pool-max-open", config.DefaultPoolMaxOpen, "pooled mode: most backend connections per handshake")
	fs.DurationVar(&c.poolWait, "pool-wait-timeout", config.DefaultPoolWait, "pooled mode: how long a call waits for a free backend connection")
	fs.DurationVar(&c.parkAfter, "pool-park-after", config.DefaultPoolParkAfter, "pooled mode: a client idle this long costs no goroutine or buffers until its next request")
	fs.DurationVar(&c.maxIdle, "pool-max-idle-time", config.DefaultPoolMaxIdleTime, "pooled mode: retire a backend connection unused this long, before the daemon's COMMTIMEOUT can close it under a call")
	fs.IntVar(&c.pipeline, "pool-pipeline", 1, "pooled mode: calls of different clients in flight at once on one backend connection (1: one at a time)")
	fs.StringVar(&c.logLevel, "log-level", d.Log.Level, "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", d.Log.Format, "log format: console or json")
	fs.BoolVar(&c.access, "access-log", false, "log every call (correlation id, object, method, bytes, latency, outcome)")
	c.maxMsg = d.Limits.MaxMessageSize
	fs.Var(&c.maxMsg, "max-message-size", "largest payload+annotations a client may send (e.g. 64MiB)")
	fs.IntVar(&c.maxConns, "max-conns", d.Limits.MaxConnections, "most client connections at once (0: no limit)")
	fs.IntVar(&c.maxPerIP, "max-conns-per-ip", 0, "most client connections from one IP (0: no limit)")
	fs.Float64Var(&c.callRate, "calls-per-second-per-ip", 0, "calls per second of all connections of one client IP; over it a call gets a CommunicationError (0: no limit)")
	fs.IntVar(&c.burst, "burst", 0, "calls over --calls-per-second-per-ip one IP may make at once (0: the rate)")
	fs.Float64Var(&c.connRate, "connections-per-second-per-ip", 0, "new connections per second of one client IP; over it a CONNECT gets a CONNECTFAIL (0: no limit)")
	fs.StringVar(&c.admin, "admin", "", "admin listener: Prometheus /metrics, /healthz, /readyz, the JSON API and the dashboard, on HOST:PORT or unix:/path (a bare :PORT binds 127.0.0.1; off by default)")
	fs.StringVar(&c.adminTok, "admin-token-file", "", "a file holding the bearer token the admin listener requires (all but /healthz and /readyz)")
	fs.StringVar(&c.tlsIn.Cert, "tls-cert", "", "terminate TLS for clients (Pyro4 SSL=True) with this PEM certificate (chain) file")
	fs.StringVar(&c.tlsIn.Key, "tls-key", "", "the PEM key of --tls-cert (default: in that file)")
	fs.StringVar(&c.tlsIn.ClientCA, "tls-client-ca", "", "require client certificates signed by a CA in this PEM file (Pyro4 SSL_REQUIRECLIENTCERT)")
	fs.StringVar(&c.tlsIn.MinVersion, "tls-min-version", "", "lowest TLS version clients may use: 1.2 (default) or 1.3")
	fs.StringVar(&c.tlsOut.CA, "backend-tls-ca", "", "dial --backend daemons with TLS, trusting the CAs in this PEM file (daemons with SSL=True)")
	fs.StringVar(&c.tlsOut.Cert, "backend-tls-cert", "", "with backend TLS: present this client certificate (daemons with SSL_REQUIRECLIENTCERT)")
	fs.StringVar(&c.tlsOut.Key, "backend-tls-key", "", "the PEM key of --backend-tls-cert (default: in that file)")
	fs.StringVar(&c.tlsOut.ServerName, "backend-tls-server-name", "", "with backend TLS: the name the daemons' certificates must be valid for (default: the host dialed)")
	fs.StringSliceVar(&c.sers, "serializers", nil, "serializer policy of every listener, e.g. serpent,json,marshal: other serializers are refused before any daemon sees them (default: all pass)")
	fs.DurationVar(&c.header, "header-timeout", d.Timeouts.Header, "time to read a message once it started (0: none)")
	fs.DurationVar(&c.idle, "idle-timeout", 0, "close a client with no request for this long (0: never, like Pyro4's COMMTIMEOUT)")
	fs.DurationVar(&c.dial, "dial-timeout", d.Timeouts.Dial, "time to connect to a backend")
	fs.DurationVar(&c.call, "call-timeout", 0, "time for a backend to answer a call (0: none)")
	fs.DurationVar(&c.drain, "drain-timeout", d.Timeouts.Drain, "time for in-flight calls to finish on shutdown")
	fs.IntVar(&c.procs, "procs", 0, "serve: OS threads running Go code at once (GOMAXPROCS; 0: one per core). A sidecar sharing few cores with its backend often does best with 1")
	fs.StringVar(&c.cpuprof, "cpuprofile", "", "serve: write a pprof CPU profile of the whole run to this file")
}

// config builds the effective configuration: defaults, then the file, then set flags.
func (c *configFlags) config(fs *pflag.FlagSet) (config.Config, error) {
	cfg := config.Defaults()
	if c.file != "" {
		var err error
		if cfg, err = config.LoadConfig(c.file); err != nil {
			return cfg, err
		}
	}
	if fs.Changed("listen") {
		backend := config.StringList(c.backend)
		if len(backend) == 0 && len(cfg.Listeners) == 1 {
			backend = cfg.Listeners[0].Backend
		}
		cfg.Listeners = []config.Listener{{Name: "main", Listen: c.listen, Backend: backend}}
	} else if c.file == "" {
		return cfg, fmt.Errorf("give --listen ADDR --backend ADDR, or --config FILE")
	}
	if !fs.Changed("tls-cert") && anyChanged(fs, "tls-key", "tls-client-ca", "tls-min-version") {
		return cfg, fmt.Errorf("--tls-key, --tls-client-ca and --tls-min-version go with --tls-cert")
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		if fs.Changed("backend") {
			l.Backend = c.backend
		}
		if fs.Changed("balance") {
			l.Balance = c.balance
		}
		if fs.Changed("mode") {
			l.Mode = c.mode
		}
		if fs.Changed("affinity") {
			l.Affinity = c.affinity
		}
		if fs.Changed("pool-max-open") {
			l.Pool.MaxOpen = c.poolOpen
		}
		if fs.Changed("pool-wait-timeout") {
			l.Pool.WaitTimeout = c.poolWait
		}
		if fs.Changed("pool-pipeline") {
			l.Pool.Pipeline = c.pipeline
		}
		if fs.Changed("pool-park-after") {
			l.Pool.ParkAfter = c.parkAfter
		}
		if fs.Changed("pool-max-idle-time") {
			l.Pool.MaxIdleTime = c.maxIdle
		}
		if fs.Changed("serializers") {
			l.Serializers = c.sers
		}
		if fs.Changed("tls-cert") {
			t := c.tlsIn
			l.TLS = &t
		}
		if anyChanged(fs, "backend-tls-ca", "backend-tls-cert", "backend-tls-server-name") {
			t := c.tlsOut
			l.BackendTLS = &t
		}
	}
	set := func(name string, apply func()) {
		if fs.Changed(name) {
			apply()
		}
	}
	set("admin", func() {
		cfg.Admin.Listen = c.admin
		if strings.HasPrefix(c.admin, ":") {
			cfg.Admin.Listen = "127.0.0.1" + c.admin
		}
	})
	set("admin-token-file", func() { cfg.Admin.TokenFile = c.adminTok })
	set("log-level", func() { cfg.Log.Level = c.logLevel })
	set("log-format", func() { cfg.Log.Format = c.logFormat })
	set("access-log", func() { cfg.Log.Access = c.access })
	set("max-message-size", func() { cfg.Limits.MaxMessageSize = c.maxMsg })
	set("max-conns", func() { cfg.Limits.MaxConnections = c.maxConns })
	set("max-conns-per-ip", func() { cfg.Limits.MaxConnectionsPer = c.maxPerIP })
	set("calls-per-second-per-ip", func() { cfg.Limits.CallsPerSecondPerIP = c.callRate })
	set("burst", func() { cfg.Limits.Burst = c.burst })
	set("connections-per-second-per-ip", func() { cfg.Limits.ConnectionsPerSecondPerIP = c.connRate })
	set("header-timeout", func() { cfg.Timeouts.Header = c.header })
	set("idle-timeout", func() { cfg.Timeouts.Idle = c.idle })
	set("dial-timeout", func() { cfg.Timeouts.Dial = c.dial })
	set("call-timeout", func() { cfg.Timeouts.Call = c.call })
	set("drain-timeout", func() { cfg.Timeouts.Drain = c.drain })
	return cfg, cfg.Validate()
}

// loadConfig parses the flags of serve or check and builds the effective configuration.
// done is true when the command must return code at once (help, a flag error, or an
// invalid configuration, reported as exit code bad).
func loadConfig(name string, args []string, stderr io.Writer, bad int) (cfg config.Config, cf configFlags, code int, done bool) {
	fs := newFlagSet(name, "", stderr)
	cf.register(fs)
	if code, done := parse(fs, args); done {
		return cfg, cf, code, true
	}
	cf.fs = fs
	cfg, err := cf.config(fs)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch %s: invalid configuration: %v\n", name, err)
		return cfg, cf, bad, true
	}
	return cfg, cf, 0, false
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	cfg, _, code, done := loadConfig("check", args, stderr, 1)
	if done {
		return code
	}
	t, err := routing.Compile(&cfg, nil, nil)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch check: invalid configuration: %v\n", err)
		return 1
	}
	shown := cfg // the groups that listeners' backend keys form are shown as those keys
	shown.Backends = nil
	for _, b := range cfg.Backends {
		if !b.Implicit {
			shown.Backends = append(shown.Backends, b)
		}
	}
	out, err := yaml.Marshal(shown)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch check: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# configuration is valid; as it takes effect:\n%s", out)
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "pyro-dispatch check: warning: %s\n", w)
	}
	t.Describe(stdout, &cfg)
	return 0
}

func runServe(args []string, stdout, stderr io.Writer) int {
	cfg, cf, code, done := loadConfig("serve", args, stderr, 2)
	if done {
		return code
	}
	if cf.procs > 0 {
		runtime.GOMAXPROCS(cf.procs)
	}
	if cf.cpuprof != "" {
		f, err := os.Create(cf.cpuprof)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "pyro-dispatch serve: cpu profile: %v\n", err)
			return 2
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch serve: %v\n", err)
		return 2
	}
	defer log.Sync()
	srv, err := dispatch.NewServer(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch serve: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := srv.Start(); err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch serve: %v\n", err)
		return 1
	}
	fields := append([]zap.Field{zap.String("version", versionString())}, serving(srv, cfg)...)
	if cfg.Admin.Listen != "" {
		var reload func() error // none without a file to read again
		if cf.file != "" {
			reload = func() error { return cf.reload(srv, log) }
		}
		adm, addr, err := startAdmin(srv, cfg.Admin, reload, log)
		if err != nil {
			fmt.Fprintf(stderr, "pyro-dispatch serve: admin: %v\n", err)
			srv.Shutdown(context.Background())
			return 1
		}
		defer func() {
			actx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			adm.Shutdown(actx)
		}()
		fields = append(fields, zap.String("admin", addr))
	}
	env := gatewayEnv{srv: srv, access: cfg.Log.Access}
	if m := srv.Metrics(); m != nil && len(cfg.HTTP) > 0 {
		if env.metrics, err = metrics.NewHTTP(m.Registry); err != nil {
			fmt.Fprintf(stderr, "pyro-dispatch serve: http metrics: %v\n", err)
			srv.Shutdown(context.Background())
			return 1
		}
	}
	for _, hl := range cfg.HTTP {
		g, err := startHTTPGateway(hl, env, log)
		if err != nil {
			fmt.Fprintf(stderr, "pyro-dispatch serve: http listener %s: %v\n", hl.Name, err)
			srv.Shutdown(context.Background())
			return 1
		}
		defer g.stop()
	}
	log.Info("ready", fields...)
	for {
		select {
		case <-hup:
			cf.reload(srv, log)
			continue
		case <-ctx.Done():
		}
		break
	}
	stop()
	log.Info("shutting down: draining in-flight calls", zap.Int("clients", srv.Sessions()), zap.Duration("drain_timeout", cfg.Timeouts.Drain))
	dctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Drain)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		log.Warn("drain timed out: closed the remaining connections", zap.Error(err))
	}
	log.Info("stopped")
	return 0
}

// reloadMu serializes reloads: SIGHUP and the admin API's.
var reloadMu sync.Mutex

// reload reads the configuration again (file, then the same flags) and puts it in
// service; an invalid one is logged with its line numbers and the running one stays (and
// is the error, for the admin API).
func (c *configFlags) reload(srv *dispatch.Server, log *zap.Logger) error {
	reloadMu.Lock()
	defer reloadMu.Unlock()
	if c.file == "" {
		log.Warn("reload ignored: no --config file to reload")
		return errors.New("no --config file to reload")
	}
	cfg, err := c.config(c.fs)
	if err == nil {
		err = srv.Reload(cfg)
	}
	if err != nil {
		log.Error("reload failed: the running configuration stays", zap.String("config", c.file), zap.Error(err))
		return err
	}
	fields := serving(srv, cfg)
	if changed := srv.Changed(cfg); len(changed) > 0 {
		fields = append(fields, zap.Strings("not_reloaded_need_restart", changed))
	}
	log.Info("reloaded", fields...)
	return nil
}

// startAdmin opens the admin listener and serves it in the background until Shutdown.
func startAdmin(srv *dispatch.Server, ac config.Admin, reload func() error, log *zap.Logger) (*admin.Admin, string, error) {
	var token string
	if ac.TokenFile != "" {
		var err error
		if token, err = admin.ReadToken(ac.TokenFile); err != nil {
			return nil, "", err
		}
	}
	ln, err := admin.Listen(ac.Listen)
	if err != nil {
		return nil, "", err
	}
	adm := admin.New(srv, admin.Options{Token: token, Reload: reload, Log: log})
	go func() {
		if err := adm.Serve(ln); err != nil {
			log.Error("admin listener stopped", zap.Error(err))
		}
	}()
	return adm, ln.Addr().Network() + ":" + ln.Addr().String(), nil
}

// serving describes the listeners in service for the ready and reloaded lines: each
// listener as NAME=GROUPS (MODE), the groups its routes name and its own backend key.
func serving(srv *dispatch.Server, cfg config.Config) []zap.Field {
	var listening, routes []string
	for _, a := range srv.Addrs() {
		listening = append(listening, a.Network()+":"+a.String())
	}
	for _, l := range cfg.Listeners {
		groups := make([]string, 0, len(l.Routes)+1)
		for _, r := range l.Routes {
			if r.To != "" {
				groups = append(groups, r.To)
			}
		}
		if len(l.Backend) > 0 {
			groups = append(groups, strings.Join(l.Backend, "+"))
		}
		routes = append(routes, fmt.Sprintf("%s=%s (%s)", l.Name, strings.Join(groups, "|"), l.Mode))
	}
	return []zap.Field{zap.String("listen", strings.Join(listening, ",")), zap.String("backends", strings.Join(routes, "; "))}
}

// newLogger builds the zap logger the configuration asks for, writing to w.
func newLogger(lc config.Log, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(lc.Level)
	if err != nil {
		return nil, err
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if lc.Format == "json" {
		enc = zapcore.NewJSONEncoder(ec)
	} else {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	}
	ws := zapcore.AddSync(w)
	if f, ok := w.(*os.File); ok {
		ws = zapcore.Lock(f)
	}
	return zap.New(zapcore.NewCore(enc, ws, level)), nil
}

// anyChanged reports whether any of the named flags was set.
func anyChanged(fs *pflag.FlagSet, names ...string) bool {
	for _, n := range names {
		if fs.Changed(n) {
			return true
		}
	}
	return false
}
