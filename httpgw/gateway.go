// Package httpgw is an HTTP/JSON gateway compatible with Pyro4's pyro4-httpgateway
// (Pyro4.utils.httpgateway, see docs/pyro4-httpgateway.md): it calls Pyro objects found in
// a name server over pooled json-serializer connections and relays reply payloads as
// response bodies untouched.
//
// Differences from pyro4-httpgateway, all deliberate: 503 instead of 500 when the name
// server or a daemon cannot be reached, 504 on Config.Timeout; name-server lookups cached
// for Config.LookupTTL; connections (and their CONNECT handshake) kept in pools; requests
// served concurrently; query and form values decoded as UTF-8 (not latin-1); a JSON body
// {"args": [...], "kwargs": {...}} with Content-Type application/json; a repeated "$key" or
// a multipart body is handled instead of crashing; the gateway key compared in constant
// time; a different home page (below).
//
// The home page, GET /pyro/, is one self-contained page (ui/, embedded; no request to
// the network, unlike Pyro4's, which loads jQuery from a CDN; a Content-Security-Policy
// allows nothing else). It lists the exposed names of the name server and, when no
// gateway key is configured, the methods and attributes of each object (from the
// metadata of the handshake the gateway makes or already made with it, as for a call);
// a form calls a method with keyword arguments, the oneway option and a correlation id,
// and shows the HTTP status, the X-Pyro-Correlation-Id and the JSON answer. Everything
// from the name server or an object is HTML-escaped. As with Pyro4's gateway, the home
// page lists the names even when a gateway key is configured: the key protects calls,
// not the list of names. With a key, though, the page shows no methods or attributes
// until the key is entered in its key field; its script then sends it as
// X-Pyro-Gateway-Key with each $meta and call request.
package httpgw

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
	"github.com/pyro-dispatch/pyro-dispatch/pool"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config configures a Gateway.
type Config struct {
	// NameServer is the Pyro4 name server's HOST:PORT: calls go to the objects it knows.
	// Exactly one of NameServer and Backends is set.
	NameServer string
	// Backends routes calls to backend groups instead: the object in the URL is the Pyro
	// object id, and each call is routed as a pooled listener's would be.
	Backends Backends
	// Objects are the object ids the home page lists when calls are routed (there is no
	// name server to ask): those the routes name literally.
	Objects []string
	// Expose is the regular expression object names must match at their start to be
	// callable, as pyro4-httpgateway's -e (default `http\.`; unlike -e '', an empty
	// string means the default: use `.*` to expose every name).
	Expose string
	// GatewayKey, when set, must be sent in the X-Pyro-Gateway-Key header or the $key
	// parameter, as pyro4-httpgateway's -g.
	GatewayKey string
	// Timeout bounds the Pyro side of one request: lookup, connect and call (0: none but
	// the client's own disconnect). Exceeding it gives 504.
	Timeout time.Duration
	// LookupTTL is how long a name server lookup is reused (default 5s).
	LookupTTL time.Duration
	// PoolSize is the most connections open at once per Pyro object (default 16).
	PoolSize int
	// Name names the listener in the access log and the metrics.
	Name string
	// AccessLog logs one info line per request (else at debug level): client, method,
	// path, status, response bytes, duration and correlation id.
	AccessLog bool
	// Metrics records the requests (nil: not recorded).
	Metrics *metrics.HTTPStats
}

// Backends is where a routing gateway's calls go: a route table's decision per call, and
// connections to the members of its groups (dispatch.Server's, for a listener).
type Backends interface {
	// Decide returns where req goes: a group, or a refusal with its reason.
	Decide(req *routing.Request) routing.Decision
	// Dial connects to a member (with TLS when its group has tls).
	Dial(ctx context.Context, m *routing.Member) (net.Conn, error)
}

// DefaultExpose is the default Config.Expose.
const DefaultExpose = `http\.`

// nameServerObject is the object id of every Pyro4 name server.
const nameServerObject = "Pyro.NameServer"

// maxBody bounds a request body the gateway reads.
const maxBody = 16 << 20

const (
	ctJSON = "application/json; charset=utf-8"
	ctText = "text/plain"
)

var routeRE = regexp.MustCompile(`^(.+)/(.+)`)

// Gateway is an http.Handler serving pyro4-httpgateway's URLs. It is safe for concurrent
// use. Close it to close its Pyro connections.
type Gateway struct {
	cfg    Config
	log    *zap.Logger
	expose *regexp.Regexp
	nsHost string
	nsPort int

	mu      sync.Mutex
	closed  bool
	targets map[targetKey]*target
	lookups map[string]lookupEntry
}

// targetKey identifies a target: a name server's object by address, a routed one by member.
type targetKey struct {
	addr, object string
	member       *routing.Member
}

type lookupEntry struct {
	host, object string
	port         int
	expires      time.Time
}

// New returns a Gateway for cfg; log may be nil. It does not contact the name server.
func New(cfg Config, log *zap.Logger) (*Gateway, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Expose == "" {
		cfg.Expose = DefaultExpose
	}
	if cfg.LookupTTL <= 0 {
		cfg.LookupTTL = 5 * time.Second
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = 16
	}
	expose, err := regexp.Compile(`^(?:` + cfg.Expose + `)`)
	if err != nil {
		return nil, fmt.Errorf("httpgw: bad expose pattern: %w", err)
	}
	g := &Gateway{cfg: cfg, log: log, expose: expose, targets: map[targetKey]*target{}, lookups: map[string]lookupEntry{}}
	switch {
	case cfg.Backends != nil && cfg.NameServer != "":
		return nil, errors.New("httpgw: a name server or backends, not both")
	case cfg.Backends != nil:
		return g, nil
	}
	host, portStr, err := net.SplitHostPort(cfg.NameServer)
	if err != nil {
		return nil, fmt.Errorf("httpgw: bad name server address %q: %w", cfg.NameServer, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("httpgw: bad name server port %q", portStr)
	}
	g.nsHost, g.nsPort = host, port
	return g, nil
}

// Close closes every pooled connection; later requests get 503.
func (g *Gateway) Close() {
	g.mu.Lock()
	g.closed = true
	ts := g.targets
	g.targets = map[targetKey]*target{}
	g.mu.Unlock()
	for _, t := range ts {
		t.pool.Close()
	}
}

var errClosed = errors.New("httpgw: gateway closed")

// target returns the pooled target for object at host:port, creating it.
func (g *Gateway) target(host string, port int, object string) (*target, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	return g.targetFor(targetKey{addr: addr, object: object}, func() *target {
		return &target{host: host, port: port, addr: addr, object: object}
	})
}

// memberTarget returns the pooled target for object on member m of a backend group.
func (g *Gateway) memberTarget(m *routing.Member, object string) (*target, error) {
	return g.targetFor(targetKey{addr: m.Addr, object: object, member: m}, func() *target {
		t := &target{host: m.Address, addr: m.Addr, object: object, member: m, backends: g.cfg.Backends}
		if h, p, err := net.SplitHostPort(m.Address); err == nil && m.Network == "tcp" {
			t.host, t.port = h, atoiPort(p)
		}
		return t
	})
}

func atoiPort(s string) int {
	p, _ := strconv.Atoi(s)
	return p
}

// targetFor returns the target of key, made by mk (and given a pool) when there is none.
// Making one also forgets the targets of members a reload removed.
func (g *Gateway) targetFor(key targetKey, mk func() *target) (*target, error) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, errClosed
	}
	if t := g.targets[key]; t != nil {
		g.mu.Unlock()
		return t, nil
	}
	t := mk()
	t.pool = pool.New(pool.Config{
		Dial:       t.dial,
		Serializer: frame.JSON,
		MaxOpen:    g.cfg.PoolSize,
	})
	g.targets[key] = t
	var retired []*target
	for k, x := range g.targets {
		if k.member != nil && k.member.Retired() {
			delete(g.targets, k)
			retired = append(retired, x)
		}
	}
	g.mu.Unlock()
	for _, x := range retired {
		x.pool.Close()
	}
	return t, nil
}

// drop forgets t (so that the next request dials afresh, without the pool's backoff) and,
// if name is not empty, the cached lookup of name.
func (g *Gateway) drop(t *target, name string) {
	key := targetKey{addr: t.addr, object: t.object, member: t.member}
	g.mu.Lock()
	mine := g.targets[key] == t
	if mine {
		delete(g.targets, key)
	}
	if name != "" {
		delete(g.lookups, name)
	}
	g.mu.Unlock()
	if mine {
		t.pool.Close()
	}
}

// httpError is a finished error response.
type httpError struct {
	status int
	ctype  string
	body   []byte
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s", e.status, e.body) }

func jsonError(status int, class, msg string) *httpError {
	return &httpError{status: status, ctype: ctJSON, body: errorBody(class, msg)}
}

func textError(status int, msg string) *httpError {
	return &httpError{status: status, ctype: ctText, body: []byte(msg)}
}

func (e *httpError) write(w http.ResponseWriter) {
	w.Header().Set("Content-Type", e.ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(e.status)
	w.Write(e.body)
}

// invoke calls t (re-resolved through get after a pool closed under it) and maps
// failures to responses; name is the object's name server name, "" for the name server.
func (g *Gateway) invoke(ctx context.Context, get func() (*target, error), name, method string, params [][]byte, kwargs []kwarg, oneway bool) (*target, *reply, *httpError) {
	var t *target
	var err error
	for range 3 {
		if t, err = get(); err != nil {
			break
		}
		var rep *reply
		rep, err = t.invoke(ctx, method, params, kwargs, oneway)
		if err == nil {
			return t, rep, nil
		}
		if !errors.Is(err, pool.ErrClosed) {
			break
		}
	}
	return t, nil, g.failure(t, name, err)
}

// failure maps a failed call of t to a response.
func (g *Gateway) failure(t *target, name string, err error) *httpError {
	var ce *connectError
	var re *rejectedError
	var te *timeoutError
	ns := t == nil || t.object == nameServerObject && name == ""
	g.log.Debug("pyro call failed", zap.String("name", name), zap.Error(err))
	switch {
	case errors.Is(err, errClosed):
		return jsonError(http.StatusServiceUnavailable, "Pyro4.errors.CommunicationError", "gateway closed")
	case errors.As(err, &te):
		return jsonError(http.StatusGatewayTimeout, "Pyro4.errors.TimeoutError", te.Error())
	case ns:
		if t != nil {
			g.drop(t, "")
		}
		return jsonError(http.StatusServiceUnavailable, "Pyro4.errors.NamingError", "Failed to locate the nameserver")
	case errors.As(err, &ce):
		g.drop(t, name)
		if t.member != nil {
			t.member.Failed(ce.err)
		}
		return jsonError(http.StatusServiceUnavailable, "Pyro4.errors.CommunicationError", ce.Error())
	case errors.As(err, &re):
		g.drop(t, name)
		return jsonError(http.StatusInternalServerError, "Pyro4.errors.CommunicationError", re.Error())
	default:
		return jsonError(http.StatusServiceUnavailable, "Pyro4.errors.CommunicationError", err.Error())
	}
}

// nsCall calls the name server.
func (g *Gateway) nsCall(ctx context.Context, method string, params [][]byte, kwargs []kwarg) ([]byte, *httpError) {
	get := func() (*target, error) { return g.target(g.nsHost, g.nsPort, nameServerObject) }
	_, rep, herr := g.invoke(ctx, get, "", method, params, kwargs, false)
	if herr != nil {
		return nil, herr
	}
	if rep.exception {
		// The gateway re-encodes the name server's exception with ensure_ascii=True.
		return nil, &httpError{status: http.StatusInternalServerError, ctype: ctJSON, body: asciiJSON(rep.payload)}
	}
	return rep.payload, nil
}

// lookup resolves a name through the cache or the name server.
func (g *Gateway) lookup(ctx context.Context, name string) (lookupEntry, *httpError) {
	g.mu.Lock()
	e, ok := g.lookups[name]
	g.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e, nil
	}
	body, herr := g.nsCall(ctx, "lookup", [][]byte{frame.AppendPyJSONString(nil, name, false)}, nil)
	if herr != nil {
		return e, herr
	}
	var u struct {
		Class string            `json:"__class__"`
		State []json.RawMessage `json:"state"`
	}
	bad := func(why string) *httpError {
		return jsonError(http.StatusBadGateway, "Pyro4.errors.ProtocolError", "name server lookup of "+name+": "+why)
	}
	if err := json.Unmarshal(body, &u); err != nil || u.Class != "Pyro4.core.URI" || len(u.State) != 5 {
		return e, bad("unexpected reply " + string(body))
	}
	var protocol, sockname string
	json.Unmarshal(u.State[0], &protocol)
	json.Unmarshal(u.State[2], &sockname)
	if protocol != "PYRO" || sockname != "" {
		return e, bad("only PYRO URIs with host and port are supported")
	}
	if json.Unmarshal(u.State[1], &e.object) != nil || json.Unmarshal(u.State[3], &e.host) != nil ||
		json.Unmarshal(u.State[4], &e.port) != nil {
		return e, bad("malformed URI state")
	}
	e.expires = time.Now().Add(g.cfg.LookupTTL)
	g.mu.Lock()
	g.lookups[name] = e
	g.mu.Unlock()
	return e, nil
}

// request is what an HTTP request asks for, once parsed.
type request struct {
	params []param
	args   [][]byte
	kwargs []kwarg // JSON body kwargs, override params
}

// readRequest gathers the parameters of r as pyro4-httpgateway's cgi.parse does (form
// body first, then the query) plus the JSON body extension.
func readRequest(r *http.Request) (*request, *httpError) {
	req := &request{}
	query := r.URL.RawQuery
	if r.Method != http.MethodPost {
		req.params = parseQS(nil, query)
		return req, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	readBody := func() ([]byte, *httpError) {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return nil, jsonError(http.StatusBadRequest, "builtins.ValueError", "cannot read the request body: "+err.Error())
		}
		if len(b) > maxBody {
			return nil, jsonError(http.StatusRequestEntityTooLarge, "builtins.ValueError", "request body too large")
		}
		return b, nil
	}
	switch ct {
	case "application/x-www-form-urlencoded":
		b, herr := readBody()
		if herr != nil {
			return nil, herr
		}
		req.params = parseQS(parseQS(nil, string(b)), query)
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return nil, jsonError(http.StatusBadRequest, "builtins.ValueError", "bad multipart body: "+err.Error())
		}
		names := make([]string, 0, len(r.MultipartForm.Value))
		for name := range r.MultipartForm.Value {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			for _, v := range r.MultipartForm.Value[name] {
				if v != "" {
					req.params = parseQS(req.params, url.QueryEscape(name)+"="+url.QueryEscape(v))
				}
			}
		}
		req.params = parseQS(req.params, query)
	case "application/json":
		b, herr := readBody()
		if herr != nil {
			return nil, herr
		}
		jc, err := parseJSONCall(b)
		if err != nil {
			return nil, jsonError(http.StatusBadRequest, "builtins.ValueError", err.Error())
		}
		req.params = parseQS(nil, query)
		req.args, req.kwargs = jc.args, jc.kwargs
	default:
		req.params = parseQS(nil, query)
	}
	return req, nil
}

// recorder is a ResponseWriter that remembers the status and the body size written.
type recorder struct {
	http.ResponseWriter
	status, bytes int
}

func (rec *recorder) WriteHeader(status int) {
	rec.status = status
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += n
	return n, err
}

var recorders = sync.Pool{New: func() any { return new(recorder) }}

// ServeHTTP serves pyro4-httpgateway's URLs: / redirects to /pyro/, /pyro/ is the home
// page and /pyro/<object>/<method> calls method on the object registered as <object>.
// Each request is counted in the metrics and logged (access log).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	g.cfg.Metrics.Begin()
	rec := recorders.Get().(*recorder)
	rec.ResponseWriter, rec.status, rec.bytes = w, 0, 0
	g.serve(rec, r)
	d := time.Since(start)
	g.cfg.Metrics.Done(rec.status, d)
	level := zapcore.DebugLevel
	if g.cfg.AccessLog {
		level = zapcore.InfoLevel
	}
	if ce := g.log.Check(level, "http"); ce != nil {
		ce.Write(zap.String("listener", g.cfg.Name), zap.String("client", r.RemoteAddr), zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.String("proto", r.Proto), zap.Int("status", rec.status), zap.Int("bytes", rec.bytes),
			zap.Duration("duration", d), zap.String("corr", w.Header().Get("X-Pyro-Correlation-Id")))
	}
	rec.ResponseWriter = nil
	recorders.Put(rec)
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimLeft(r.URL.Path, "/")
	if path == "" {
		w.Header().Set("Location", "/pyro/")
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusFound)
		return
	}
	if !strings.HasPrefix(path, "pyro/") {
		textError(http.StatusNotFound, "Error 404: Not Found").write(w)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		textError(http.StatusMethodNotAllowed, "Error 405: Method Not Allowed").write(w)
		return
	}
	ctx := r.Context()
	if g.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.cfg.Timeout)
		defer cancel()
	}
	rest := path[len("pyro/"):]
	if rest == "" {
		g.serveHome(ctx, w, r)
		return
	}
	m := routeRE.FindStringSubmatch(rest)
	if m == nil {
		textError(http.StatusNotFound, "Error 404: Not Found").write(w)
		return
	}
	req, herr := readRequest(r)
	if herr != nil {
		herr.write(w)
		return
	}
	if herr := g.call(ctx, w, r, req, m[1], m[2]); herr != nil {
		herr.write(w)
	}
}

// checkKey enforces the gateway key and removes $key from the parameters.
func (g *Gateway) checkKey(r *http.Request, req *request) *httpError {
	if g.cfg.GatewayKey == "" {
		return nil
	}
	key := r.Header.Get("X-Pyro-Gateway-Key")
	i := slices.IndexFunc(req.params, func(p param) bool { return p.name == "$key" })
	if key == "" && i >= 0 && len(req.params[i].values) == 1 {
		key = req.params[i].values[0]
	}
	if i >= 0 {
		req.params = slices.Delete(req.params, i, i+1)
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(g.cfg.GatewayKey)) != 1 {
		return textError(http.StatusForbidden, "403 Forbidden - incorrect gateway api key")
	}
	return nil
}

// connect makes sure that the target of get has a connection (so the handshake, and so
// its metadata, came first, as with Pyro4's proxy) and returns it.
func (g *Gateway) connect(ctx context.Context, get func() (*target, error)) (*target, error) {
	var t *target
	var err error
	for range 3 {
		if t, err = get(); err != nil {
			break
		}
		var lease pool.Lease
		if lease, err = t.pool.Acquire(ctx); err == nil {
			lease.Release()
			break
		}
		var de *pool.DialError
		if errors.As(err, &de) {
			err = de.Err
		} else if isTimeout(ctx, err) || errors.Is(err, pool.ErrWaitTimeout) {
			err = &timeoutError{err}
		}
		if !errors.Is(err, pool.ErrClosed) {
			break
		}
	}
	return t, err
}

// resolve finds the target of a call of method on name and connects it: through the name
// server, or by the route table to a member of the group it chooses (the next member
// when one cannot be reached, each at most once, as a pooled listener does). It returns
// how to get the target again should its pool close under the call.
func (g *Gateway) resolve(ctx context.Context, r *http.Request, name, method string, corr uuid.UUID) (*target, func() (*target, error), *httpError) {
	if g.cfg.Backends == nil {
		loc, herr := g.lookup(ctx, name)
		if herr != nil {
			return nil, nil, herr
		}
		get := func() (*target, error) { return g.target(loc.host, loc.port, loc.object) }
		t, err := g.connect(ctx, get)
		if err != nil {
			return nil, nil, g.failure(t, name, err)
		}
		return t, get, nil
	}
	var client netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client = ap.Addr().Unmap()
	}
	var req routing.Request
	req.ResetCall(client, frame.JSON, name, method, frame.AppendAnnotation(nil, frame.CORR, corr[:]))
	dec := g.cfg.Backends.Decide(&req)
	if dec.Group == nil {
		status := http.StatusForbidden
		if dec.Rule < 0 {
			status = http.StatusNotFound // no rule takes the object: unknown here
		}
		return nil, nil, jsonError(status, "Pyro4.errors.CommunicationError", "pyro-dispatch: "+dec.Deny)
	}
	var tried routing.Tried
	var attempts map[*routing.Member]error // made on the first failure
	for {
		m, err := dec.Group.Pick(&req, tried)
		if err != nil {
			return nil, nil, jsonError(http.StatusServiceUnavailable, "Pyro4.errors.CommunicationError",
				"pyro-dispatch: "+dec.Group.NoHealthy(attempts).Error())
		}
		get := func() (*target, error) { return g.memberTarget(m, name) }
		t, err := g.connect(ctx, get)
		var ce *connectError
		switch {
		case err == nil:
			m.Succeeded()
			return t, get, nil
		case errors.As(err, &ce):
			g.drop(t, "")
			m.Failed(ce.err)
			if attempts == nil {
				attempts = map[*routing.Member]error{}
			}
			attempts[m] = ce.err
			tried = tried.With(dec.Group, m)
		default:
			return nil, nil, g.failure(t, name, err)
		}
	}
}

func (g *Gateway) call(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, name, method string) *httpError {
	if herr := g.checkKey(r, req); herr != nil {
		return herr
	}
	if !g.expose.MatchString(name) {
		return textError(http.StatusForbidden, "403 Forbidden - access to the requested object has been denied")
	}
	if g.cfg.Backends == nil {
		// As Pyro4's gateway: the name first (an unknown one wins over a bad correlation id);
		// resolve finds it in the cache.
		if _, herr := g.lookup(ctx, name); herr != nil {
			return herr
		}
	}
	corr := uuid.Nil
	if h := r.Header.Get("X-Pyro-Correlation-Id"); h != "" {
		id, err := uuid.Parse(h)
		if err != nil {
			return jsonError(http.StatusInternalServerError, "builtins.ValueError", "badly formed hexadecimal UUID string")
		}
		corr = id
	} else {
		corr, _ = uuid.NewRandom()
	}
	ctx = context.WithValue(ctx, corrKey{}, corr)
	w.Header().Set("X-Pyro-Correlation-Id", corr.String()) // on errors too
	t, get, herr := g.resolve(ctx, r, name, method, corr)
	if herr != nil {
		return herr
	}
	if t.member != nil {
		t.member.Begin()
		defer t.member.End()
	}
	md := t.metadata()
	if md == nil || len(md.Methods) == 0 && len(md.Attrs) == 0 {
		return jsonError(http.StatusInternalServerError, "Pyro4.errors.PyroError",
			"remote object doesn't expose any methods or attributes. Did you forget setting @expose on them?")
	}
	optOneway := slices.Contains(strings.Split(r.Header.Get("X-Pyro-Options"), ","), "oneway")
	ok := func(body []byte) {
		w.Header().Set("Content-Type", ctJSON)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	}
	if method == "$meta" {
		methods := slices.Sorted(slices.Values(md.Methods))
		attrs := slices.Sorted(slices.Values(md.Attrs))
		body := []byte(`{"methods": `)
		body = appendPyStringList(body, methods, true)
		body = append(body, `, "attributes": `...)
		body = appendPyStringList(body, attrs, true)
		ok(append(body, '}'))
		return nil
	}
	kwargs := kwargsOf(req.params)
	for _, kw := range req.kwargs {
		kwargs = setKwarg(kwargs, kw.name, kw.value)
	}
	var rep *reply
	var herr2 *httpError
	switch {
	case contains(md.Attrs, method):
		if len(kwargs) != 0 || len(req.args) != 0 {
			return jsonError(http.StatusInternalServerError, "builtins.AssertionError", "attribute lookup can't have query parameters")
		}
		_, rep, herr2 = g.invoke(ctx, get, name, "__getattr__", [][]byte{frame.AppendPyJSONString(nil, method, false)}, nil, false)
	case contains(md.Methods, method):
		oneway := optOneway || contains(md.Oneway, method)
		_, rep, herr2 = g.invoke(ctx, get, name, method, req.args, kwargs, oneway)
	default:
		return jsonError(http.StatusInternalServerError, "builtins.AttributeError",
			"remote object '"+t.uri()+"' has no exposed attribute or method '"+method+"'")
	}
	if herr2 != nil {
		return herr2
	}
	switch {
	case rep == nil || optOneway:
		ok(nil)
	case rep.exception:
		w.Header().Set("Content-Type", ctJSON)
		w.Header().Set("Content-Length", strconv.Itoa(len(rep.payload)))
		w.WriteHeader(http.StatusInternalServerError)
		w.Write(rep.payload)
	default:
		ok(rep.payload)
	}
	return nil
}
