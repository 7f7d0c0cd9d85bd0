// Package config is the dispatcher's configuration: the YAML schema, its defaults and its
// validation, with errors that name the line and key. It is loaded by cmd and handed to
// dispatch and routing; it opens no socket and starts nothing.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of a dispatcher, as read from YAML or flags.
type Config struct {
	Backends  []Backend  `yaml:"backends,omitempty"`
	Listeners []Listener `yaml:"listeners"`
	Limits    Limits     `yaml:"limits"`
	Timeouts  Timeouts   `yaml:"timeouts"`
	Log       Log        `yaml:"log"`
	Admin     Admin      `yaml:"admin,omitempty"`
	Metrics   Metrics    `yaml:"metrics,omitempty"`
	// HTTP are HTTP/JSON gateway listeners (pyro-dispatch http, from the file).
	HTTP []HTTPListener `yaml:"http,omitempty"`
}

// HTTPListener serves Pyro objects over HTTP and JSON with the URLs of Pyro4's
// pyro4-httpgateway. Calls go to the objects a name server knows (ns), or, with backend
// or routes (exactly as on a Pyro listener), to backend groups: the object in the URL is
// then the Pyro object id, and each call is routed like a pooled listener's.
type HTTPListener struct {
	Name       string `yaml:"name,omitempty"`
	Listen     string `yaml:"listen"`       // HOST:PORT or unix:/path
	NameServer string `yaml:"ns,omitempty"` // the Pyro4 name server, HOST:PORT
	// Backend, Balance, BackendTLS and Routes route calls to backend groups instead of
	// looking objects up in a name server (see Listener).
	Backend    StringList  `yaml:"backend,omitempty"`
	Balance    string      `yaml:"balance,omitempty"`
	BackendTLS *BackendTLS `yaml:"backend_tls,omitempty"`
	Routes     []Route     `yaml:"routes,omitempty"`
	// Expose is the regular expression object names must match at their start
	// (default `http\.`, as pyro4-httpgateway's -e).
	Expose string `yaml:"expose,omitempty"`
	// GatewayKeyFile holds the key clients must send (X-Pyro-Gateway-Key or $key).
	GatewayKeyFile string        `yaml:"gateway_key_file,omitempty"`
	Timeout        time.Duration `yaml:"timeout,omitempty"`    // the Pyro side of a request (default 30s; past it 504)
	LookupTTL      time.Duration `yaml:"lookup_ttl,omitempty"` // name server lookups reused this long (default 5s)
	PoolSize       int           `yaml:"pool_size,omitempty"`  // connections per Pyro object (default 16)
	TLS            *ListenerTLS  `yaml:"tls,omitempty"`        // HTTPS (and HTTP/2)
}

// Routed reports whether h's calls go to backend groups rather than a name server.
func (h *HTTPListener) Routed() bool { return len(h.Backend) > 0 || len(h.Routes) > 0 }

// NamedObjects are the object ids h's routes name literally (no pattern), in order.
func (h *HTTPListener) NamedObjects() []string {
	var out []string
	for _, r := range h.Routes {
		for _, o := range r.Match.Object {
			if r.To != "" && !strings.HasPrefix(o, "~") && !strings.ContainsAny(o, `*?[\`) && !slices.Contains(out, o) {
				out = append(out, o)
			}
		}
	}
	return out
}

// RoutingListener is h's routing seen as a pooled Pyro listener's: what routing.Compile
// builds h's router from (under h's name).
func (h *HTTPListener) RoutingListener() Listener {
	return Listener{Name: h.Name, Backend: h.Backend, Balance: h.Balance, BackendTLS: h.BackendTLS, Routes: h.Routes, Mode: ModePooled}
}

// Defaults of HTTP gateway listeners.
const (
	DefaultHTTPTimeout   = 30 * time.Second
	DefaultHTTPLookupTTL = 5 * time.Second
	DefaultHTTPPoolSize  = 16
	DefaultHTTPExpose    = `http\.`
)

// Admin is the admin listener: Prometheus metrics, health, the JSON API and the
// dashboard. Off unless Listen is set; metrics are kept only then.
type Admin struct {
	Listen string `yaml:"listen,omitempty"` // HOST:PORT or unix:/path; loopback unless you mean it
	// TokenFile holds a bearer token every request but /healthz and /readyz must carry
	// (Authorization: Bearer TOKEN); without it, anyone who reaches the address may act.
	TokenFile string `yaml:"token_file,omitempty"`
}

// Metrics configures what the metrics break down.
type Metrics struct {
	// Objects are the object ids (patterns as in routes) whose calls are counted per
	// object and method in pyro_dispatch_object_calls_total; the rest count as "other",
	// so that labels stay bounded.
	Objects StringList `yaml:"objects,omitempty"`
}

// Listener is one set of listening addresses and where their clients go.
type Listener struct {
	Name   string     `yaml:"name"`
	Listen StringList `yaml:"listen"` // "HOST:PORT", "[::1]:PORT" or "unix:/path"
	// Backend is a group of one or more daemons (same address forms) that takes every
	// client no route takes: the whole configuration of a sidecar. Balance applies to it.
	Backend StringList `yaml:"backend,omitempty"`
	Balance string     `yaml:"balance,omitempty"`
	// Routes send each client (session mode, at its CONNECT) or call (pooled mode) to a
	// backend group: the first rule that matches wins.
	Routes []Route `yaml:"routes,omitempty"`
	Mode   string  `yaml:"mode"` // "session" (the default) or "pooled"
	// Affinity lists object ids (path.Match patterns such as "session.*") whose clients
	// keep one upstream connection for their whole life in pooled mode.
	Affinity []string `yaml:"affinity,omitempty"`
	Pool     Pool     `yaml:"pool"`
	// Serializers is the listener's serializer policy: a CONNECT in another serializer
	// gets a CONNECTFAIL, any later message in one a SerializeError; the backend never
	// sees them. Empty: every serializer passes (pickle, dill and cloudpickle included).
	Serializers StringList `yaml:"serializers,omitempty"`
	// TLS terminates TLS for the listener's clients.
	TLS *ListenerTLS `yaml:"tls,omitempty"`
	// BackendTLS dials the daemons of the listener's backend key with TLS (groups named
	// in routes have their own tls).
	BackendTLS *BackendTLS `yaml:"backend_tls,omitempty"`
	// HMAC verifies and re-signs Pyro4 HMAC signatures (see HMAC).
	HMAC *HMAC `yaml:"hmac,omitempty"`

	// The name-server view, for an edge across NAT (on when any of these is set):
	// Advertise is the HOST:PORT clients outside use (default: the first listen address);
	// URIs in the name server's replies that point at members are rewritten to it.
	Advertise string `yaml:"advertise,omitempty"`
	// NameServer is the backend group that is the Pyro4 name server (default: the group
	// the routes send Pyro.NameServer to, or the listener's backend).
	NameServer string `yaml:"nameserver,omitempty"`
	// Learn polls the name server's list() for object ids to route (lookups through the
	// listener are learned from anyway).
	Learn *Learn `yaml:"learn,omitempty"`
	// Broadcast answers Pyro4's name server broadcast lookup (UDP) with the advertised
	// name server URI, on BroadcastListen (default 0.0.0.0:9091, Pyro4's NS_BCPORT).
	Broadcast       bool   `yaml:"broadcast,omitempty"`
	BroadcastListen string `yaml:"broadcast_listen,omitempty"`
	// Publish registers objects in a name server outside with the advertised URIs.
	Publish *Publish `yaml:"publish,omitempty"`
}

// Pool sizes the upstream connection pools of a pooled listener. There is one pool
// per distinct handshake (serializer, flags, CONNECT payload and annotations).
type Pool struct {
	MaxOpen     int           `yaml:"max_open"`     // connections per pool
	MaxIdle     int           `yaml:"max_idle"`     // idle connections kept per pool
	Warm        int           `yaml:"warm"`         // idle connections kept ready per pool
	MaxWaiters  int           `yaml:"max_waiters"`  // calls queued for a connection
	WaitTimeout time.Duration `yaml:"wait_timeout"` // a call waits this long for a connection
	IdleTimeout time.Duration `yaml:"idle_timeout"` // idle upstream connections closed after this
	// MaxIdleTime retires an upstream connection unused this long, kept-warm ones too,
	// before the daemon's own idle timeout (Pyro4's COMMTIMEOUT) can close it under a call.
	MaxIdleTime    time.Duration `yaml:"max_idle_time"`
	MaxLifetime    time.Duration `yaml:"max_lifetime"`    // upstream connections closed at this age (0: never)
	HealthInterval time.Duration `yaml:"health_interval"` // idle connections PINGed after this long unused
	Handshakes     int           `yaml:"handshakes"`      // distinct handshakes (and pools) remembered
	// BackoffMax is the longest wait between dials to a backend that refused the last
	// one: once it accepts connections again, calls succeed within this (plus a dial).
	BackoffMax time.Duration `yaml:"backoff_max"`
	// Pipeline is how many calls of different clients may be in flight at once on one
	// upstream connection (1: a connection serves one call at a time). Above 1, requests
	// are written back to back, several in one write, and replies matched in order.
	Pipeline int `yaml:"pipeline"`
	// ParkAfter parks a client connection idle this long: its goroutine ends and its
	// buffers are freed until its next request, which the server's epoll watch hands to
	// a new one (Linux; invisible to the client). Idle clients then cost a socket and a
	// few hundred bytes each.
	ParkAfter time.Duration `yaml:"park_after"`
}

// Limits bounds what clients may do.
type Limits struct {
	MaxMessageSize    ByteSize `yaml:"max_message_size"`       // payload + annotations
	MaxAnnotations    ByteSize `yaml:"max_annotations"`        // annotation bytes per message
	MaxConnections    int      `yaml:"max_connections"`        // client connections in total
	MaxConnectionsPer int      `yaml:"max_connections_per_ip"` // per client IP, 0 = no limit
	BufferedPayload   ByteSize `yaml:"buffered_payload"`       // larger payloads are spliced
	// CallsPerSecondPerIP limits the calls of all connections of one client IP (a token
	// bucket of Burst); a call over it gets a CommunicationError, the client stays
	// connected. 0: no limit.
	CallsPerSecondPerIP float64 `yaml:"calls_per_second_per_ip"`
	Burst               int     `yaml:"burst"` // calls over the rate at once (default: the rate, at least 1)
	// ConnectionsPerSecondPerIP limits new connections of one client IP; one over it gets
	// a CONNECTFAIL. 0: no limit.
	ConnectionsPerSecondPerIP float64 `yaml:"connections_per_second_per_ip"`
	ConnectionBurst           int     `yaml:"connection_burst"` // default: the rate, at least 1
}

// Timeouts holds the timeouts of the data path; zero disables one.
type Timeouts struct {
	Header time.Duration `yaml:"header"` // to read a message once its first byte arrived
	Idle   time.Duration `yaml:"idle"`   // a client connection with no request for this long is closed
	Dial   time.Duration `yaml:"dial"`   // to connect to a backend
	Call   time.Duration `yaml:"call"`   // for a backend to answer a call
	Drain  time.Duration `yaml:"drain"`  // for in-flight calls on shutdown
}

// Log selects the log output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // console or json
	Access bool   `yaml:"access"` // one info line per call
}

// Default limits and timeouts, chosen so a sidecar is safe without tuning.
const (
	DefaultMaxMessageSize  = 1 << 30
	DefaultMaxConnections  = 16384
	DefaultBufferedPayload = 64 << 10
	DefaultHeaderTimeout   = 10 * time.Second
	DefaultDialTimeout     = 5 * time.Second
	DefaultDrainTimeout    = 15 * time.Second
	DefaultPoolMaxOpen     = 16
	DefaultPoolWait        = 5 * time.Second
	DefaultPoolIdle        = 5 * time.Minute
	DefaultPoolHealth      = 30 * time.Second
	DefaultHandshakes      = 1024
	DefaultPoolBackoffMax  = 250 * time.Millisecond
	DefaultPoolMaxIdleTime = 2 * time.Second
	DefaultPoolParkAfter   = time.Second
	MaxPipeline            = 1024
)

// DefaultPool returns the pool settings used where a listener gives none.
func DefaultPool() Pool {
	return Pool{MaxOpen: DefaultPoolMaxOpen, MaxIdle: DefaultPoolMaxOpen, MaxWaiters: 1024,
		WaitTimeout: DefaultPoolWait, IdleTimeout: DefaultPoolIdle, HealthInterval: DefaultPoolHealth, Handshakes: DefaultHandshakes,
		BackoffMax: DefaultPoolBackoffMax, MaxIdleTime: DefaultPoolMaxIdleTime,
		Pipeline: 1, ParkAfter: DefaultPoolParkAfter}
}

// Mode names.
const (
	ModeSession = "session" // one upstream connection per client connection
	ModePooled  = "pooled"  // shared upstream connections, leased per call
)

// Defaults returns a configuration with every default filled in and no listeners.
func Defaults() Config {
	return Config{
		Limits: Limits{
			MaxMessageSize:  DefaultMaxMessageSize,
			MaxAnnotations:  65535,
			MaxConnections:  DefaultMaxConnections,
			BufferedPayload: DefaultBufferedPayload,
		},
		Timeouts: Timeouts{Header: DefaultHeaderTimeout, Dial: DefaultDialTimeout, Drain: DefaultDrainTimeout},
		Log:      Log{Level: "info", Format: "console"},
	}
}

// LoadConfig reads a YAML configuration over the defaults. Unknown keys and bad values
// are errors that name the file, line and key.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and validates YAML configuration bytes over the defaults.
func ParseConfig(data []byte) (Config, error) {
	cfg := Defaults()
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, yamlError(err, nil)
	}
	if root.Kind != 0 {
		strict := yaml.NewDecoder(bytes.NewReader(data))
		strict.KnownFields(true)
		if err := strict.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return Config{}, yamlError(err, &root)
		}
	}
	if err := cfg.Validate(); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			fe.Line = lineOf(&root, fe.Key)
		}
		return Config{}, err
	}
	return cfg, nil
}

// yamlError shortens yaml.v3's messages ("yaml: unmarshal errors:\n  line 3: ...") and,
// given the document's tree, names the key of a bad value as FieldError does
// ("line 3: timeouts.idle: cannot unmarshal ..."): yaml.v3 gives only the line.
func yamlError(err error, root *yaml.Node) error {
	msgs := []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = append([]string(nil), te.Errors...)
	}
	for i, m := range msgs {
		m = strings.Join(strings.Fields(m), " ")
		if rest, ok := strings.CutPrefix(m, "line "); ok && root != nil {
			num, msg, _ := strings.Cut(rest, ": ")
			// "field x not found" already names the key.
			if line, err := strconv.Atoi(num); err == nil && !strings.HasPrefix(msg, "field ") {
				if key := keyAtLine(root, line); key != "" {
					m = fmt.Sprintf("line %d: %s: %s", line, key, msg)
				}
			}
		}
		msgs[i] = m
	}
	return errors.New(strings.Join(msgs, "; "))
}

// keyAtLine returns the dotted key (as in FieldError) of the one scalar value on a line
// of a YAML tree, or "" when there is none or more than one.
func keyAtLine(root *yaml.Node, line int) string {
	var found []string
	var walk func(n *yaml.Node, key string)
	walk = func(n *yaml.Node, key string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, key)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if key != "" {
					k = key + "." + k
				}
				walk(n.Content[i+1], k)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, key+"["+strconv.Itoa(i)+"]")
			}
		case yaml.ScalarNode:
			if n.Line == line && key != "" {
				found = append(found, key)
			}
		}
	}
	walk(root, "")
	if len(found) == 1 {
		return found[0]
	}
	return ""
}

// FieldError is a configuration value that failed validation.
type FieldError struct {
	Key  string // dotted path such as "listeners[0].backend"
	Line int    // line in the YAML file, 0 when unknown (flags)
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

func fieldErr(key, format string, args ...any) error {
	return &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks the configuration and fills in listener names and modes.
func (c *Config) Validate() error {
	if len(c.Listeners) == 0 {
		return fieldErr("listeners", "at least one listener is needed (--listen and --backend, or a config file)")
	}
	groups, err := c.validateBackends()
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for i := range c.HTTP {
		h := &c.HTTP[i]
		key := fmt.Sprintf("http[%d]", i)
		if h.Name == "" && i > 0 {
			h.Name = "http" + strconv.Itoa(i)
		}
		if err := h.fill(key); err != nil {
			return err
		}
		if names[h.Name] {
			return fieldErr(key+".name", "duplicate listener name %q", h.Name)
		}
		names[h.Name] = true
		if h.Routed() {
			l := h.RoutingListener()
			if err := c.validateRoutes(&l, key, groups); err != nil {
				return err
			}
		}
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		key := fmt.Sprintf("listeners[%d]", i)
		if l.Name == "" {
			l.Name = "listener" + strconv.Itoa(i)
		}
		if names[l.Name] {
			return fieldErr(key+".name", "duplicate listener name %q", l.Name)
		}
		names[l.Name] = true
		if len(l.Listen) == 0 {
			return fieldErr(key+".listen", "no listen address")
		}
		for j, a := range l.Listen {
			if _, _, err := ParseAddress(a); err != nil {
				return fieldErr(fmt.Sprintf("%s.listen[%d]", key, j), "%v", err)
			}
		}
		switch l.Mode {
		case "":
			l.Mode = ModeSession
		case ModeSession, ModePooled:
		default:
			return fieldErr(key+".mode", "unknown mode %q (want %q or %q)", l.Mode, ModeSession, ModePooled)
		}
		if err := c.validateRoutes(l, key, groups); err != nil {
			return err
		}
		if err := l.validateNAT(key, groups); err != nil {
			return err
		}
		for j, pat := range l.Affinity {
			if _, err := path.Match(pat, ""); err != nil {
				return fieldErr(fmt.Sprintf("%s.affinity[%d]", key, j), "bad pattern %q: %v", pat, err)
			}
		}
		if err := l.Pool.fill(key + ".pool"); err != nil {
			return err
		}
		if _, err := ParseSerializers(key+".serializers", l.Serializers); err != nil {
			return err
		}
		if err := l.TLS.validate(key + ".tls"); err != nil {
			return err
		}
		if err := l.HMAC.validate(key + ".hmac"); err != nil {
			return err
		}
	}
	lim := c.Limits
	switch {
	case lim.MaxMessageSize < 0:
		return fieldErr("limits.max_message_size", "must not be negative")
	case lim.MaxAnnotations < 0 || lim.MaxAnnotations > 65535:
		return fieldErr("limits.max_annotations", "must be within 0..65535")
	case lim.MaxConnections < 0:
		return fieldErr("limits.max_connections", "must not be negative")
	case lim.MaxConnectionsPer < 0:
		return fieldErr("limits.max_connections_per_ip", "must not be negative")
	case lim.BufferedPayload < 0 || lim.BufferedPayload > 16<<20:
		return fieldErr("limits.buffered_payload", "must be within 0..16MiB")
	case lim.CallsPerSecondPerIP < 0:
		return fieldErr("limits.calls_per_second_per_ip", "must not be negative")
	case lim.Burst < 0:
		return fieldErr("limits.burst", "must not be negative")
	case lim.ConnectionsPerSecondPerIP < 0:
		return fieldErr("limits.connections_per_second_per_ip", "must not be negative")
	case lim.ConnectionBurst < 0:
		return fieldErr("limits.connection_burst", "must not be negative")
	}
	c.Limits.Burst = defaultBurst(lim.Burst, lim.CallsPerSecondPerIP)
	c.Limits.ConnectionBurst = defaultBurst(lim.ConnectionBurst, lim.ConnectionsPerSecondPerIP)
	for key, d := range map[string]time.Duration{"timeouts.header": c.Timeouts.Header, "timeouts.idle": c.Timeouts.Idle,
		"timeouts.dial": c.Timeouts.Dial, "timeouts.call": c.Timeouts.Call, "timeouts.drain": c.Timeouts.Drain} {
		if d < 0 {
			return fieldErr(key, "must not be negative")
		}
	}
	if c.Admin.Listen != "" {
		if _, _, err := ParseAddress(c.Admin.Listen); err != nil {
			return fieldErr("admin.listen", "%v", err)
		}
	} else if c.Admin.TokenFile != "" {
		return fieldErr("admin.token_file", "only with admin.listen")
	}
	if c.Admin.TokenFile != "" {
		if b, err := os.ReadFile(c.Admin.TokenFile); err != nil {
			return fieldErr("admin.token_file", "%v", err)
		} else if strings.TrimSpace(string(b)) == "" {
			return fieldErr("admin.token_file", "%s is empty", c.Admin.TokenFile)
		}
	}
	for i, p := range c.Metrics.Objects {
		if _, err := CompilePattern(p); err != nil {
			return fieldErr(fmt.Sprintf("metrics.objects[%d]", i), "%v", err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fieldErr("log.level", "unknown level %q (want debug, info, warn or error)", c.Log.Level)
	}
	if c.Log.Format != "console" && c.Log.Format != "json" {
		return fieldErr("log.format", "unknown format %q (want console or json)", c.Log.Format)
	}
	return nil
}

// fill puts defaults into unset pool fields and checks the others.
func (p *Pool) fill(key string) error {
	d := DefaultPool()
	for name, v := range map[string]*int{"max_open": &p.MaxOpen, "max_idle": &p.MaxIdle, "max_waiters": &p.MaxWaiters, "handshakes": &p.Handshakes, "warm": &p.Warm, "pipeline": &p.Pipeline} {
		if *v < 0 {
			return fieldErr(key+"."+name, "must not be negative")
		}
	}
	for name, v := range map[string]*time.Duration{"wait_timeout": &p.WaitTimeout, "idle_timeout": &p.IdleTimeout, "max_lifetime": &p.MaxLifetime, "health_interval": &p.HealthInterval, "backoff_max": &p.BackoffMax, "max_idle_time": &p.MaxIdleTime, "park_after": &p.ParkAfter} {
		if *v < 0 {
			return fieldErr(key+"."+name, "must not be negative")
		}
	}
	if p.MaxOpen == 0 {
		p.MaxOpen = d.MaxOpen
	}
	if p.Pipeline == 0 {
		p.Pipeline = d.Pipeline
	}
	if p.Pipeline > MaxPipeline {
		return fieldErr(key+".pipeline", "%d is more than %d", p.Pipeline, MaxPipeline)
	}
	if p.MaxIdle == 0 || p.MaxIdle > p.MaxOpen {
		p.MaxIdle = p.MaxOpen
	}
	if p.Warm > p.MaxIdle {
		return fieldErr(key+".warm", "%d is more than max_idle %d", p.Warm, p.MaxIdle)
	}
	orDefault(&p.MaxWaiters, d.MaxWaiters)
	orDefault(&p.Handshakes, d.Handshakes)
	for _, v := range []struct{ v, d *time.Duration }{{&p.WaitTimeout, &d.WaitTimeout}, {&p.IdleTimeout, &d.IdleTimeout},
		{&p.HealthInterval, &d.HealthInterval}, {&p.BackoffMax, &d.BackoffMax}, {&p.MaxIdleTime, &d.MaxIdleTime}, {&p.ParkAfter, &d.ParkAfter}} {
		orDefault(v.v, *v.d)
	}
	return nil
}

// orDefault sets *v to d when it is unset (zero).
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// lineOf finds the line of a dotted key such as "listeners[0].backend" in a YAML tree.
func lineOf(root *yaml.Node, key string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(key, ".") {
		name, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
			idx, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
		}
		next := (*yaml.Node)(nil)
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == name {
					line, next = n.Content[i].Line, n.Content[i+1]
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
		}
	}
	return line
}

// ParseAddress splits an address of the forms "HOST:PORT", "[::1]:PORT" and "unix:/path"
// into a network ("tcp" or "unix") and an address for net.Dial / net.Listen.
func ParseAddress(a string) (network, address string, err error) {
	if path, ok := strings.CutPrefix(a, "unix:"); ok {
		if path == "" {
			return "", "", fmt.Errorf("bad address %q: empty unix socket path", a)
		}
		return "unix", path, nil
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return "", "", fmt.Errorf("bad address %q: want HOST:PORT, [IPv6]:PORT or unix:/path", a)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", "", fmt.Errorf("bad address %q: bad port %q", a, port)
	}
	return "tcp", a, nil
}

// StringList is a YAML value that may be one string or a list of strings.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = StringList{n.Value}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*s = list
	return nil
}

// MarshalYAML writes one string as a scalar, several as a list.
func (s StringList) MarshalYAML() (any, error) {
	if len(s) == 1 {
		return s[0], nil
	}
	return []string(s), nil
}

// ByteSize is a size in bytes written as a number or with a unit: 512, 64KiB, 32MiB, 1GiB
// (KB, MB and GB are taken as the same powers of two).
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}

// ParseByteSize parses a ByteSize from text.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: want a number of bytes such as 65536 or 64KiB", s)
	}
	return ByteSize(n * mult), nil
}

// UnmarshalYAML accepts a number of bytes or a size with a unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*b = v
	return nil
}

// String formats the size with the largest exact binary unit.
func (b ByteSize) String() string {
	for i := 2; i >= 0; i-- {
		if u := sizeUnits[i]; b >= ByteSize(u.mult) && int64(b)%u.mult == 0 {
			return strconv.FormatInt(int64(b)/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Set parses a flag value (pflag.Value).
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Type names the flag value type (pflag.Value).
func (b *ByteSize) Type() string { return "size" }

// MarshalYAML writes the size with its unit, so `check` prints what a user would write.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }
