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
	"bytes"
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

// The Content-Type header values of the gateway's answers, shared: header values are
// replaced, never changed in place.
var (
	ctJSONValues = []string{ctJSON}
	ctTextValues = []string{ctText}
)

// autoContentLength is the longest body net/http sends with a Content-Length it adds
// itself when the handler wrote the whole body and returned (HTTP/1.1 buffers 2 KiB
// before it starts a chunked body, HTTP/2 4 KiB). pyro4-httpgateway sends one with every
// answer: a longer body gets it from the gateway.
const autoContentLength = 2048

// Gateway is an http.Handler serving pyro4-httpgateway's URLs. It is safe for concurrent
// use. Close it to close its Pyro connections.
type Gateway struct {
	cfg    Config
	log    *zap.Logger
	expose *regexp.Regexp
	ns     where // the name server

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

// lookupEntry is a name server lookup, cached.
type lookupEntry struct {
	at      where
	expires time.Time
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
	g.ns = where{host: host, port: port, addr: net.JoinHostPort(host, strconv.Itoa(port)), object: nameServerObject}
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

// target returns the pooled target at, creating it. Creating one also forgets the targets
// of members a reload removed.
func (g *Gateway) target(at where) (*target, error) {
	key := targetKey{addr: at.addr, object: at.object, member: at.member}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, errClosed
	}
	if t := g.targets[key]; t != nil {
		g.mu.Unlock()
		return t, nil
	}
	t := &target{where: at}
	if m := at.member; m != nil {
		t.backends, t.host = g.cfg.Backends, m.Address
		if h, p, err := net.SplitHostPort(m.Address); err == nil && m.Network == "tcp" {
			t.host, t.port = h, atoiPort(p)
		}
	}
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

func atoiPort(s string) int {
	p, _ := strconv.Atoi(s)
	return p
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
	ctype  []string // ctJSONValues or ctTextValues
	body   []byte
}

func (e *httpError) Error() string { return fmt.Sprintf("%d %s", e.status, e.body) }

func jsonError(status int, class, msg string) *httpError {
	return &httpError{status: status, ctype: ctJSONValues, body: errorBody(class, msg)}
}

func textError(status int, msg string) *httpError {
	return &httpError{status: status, ctype: ctTextValues, body: []byte(msg)}
}

func (e *httpError) write(w http.ResponseWriter) { writeBody(w, e.status, e.ctype, e.body) }

// writeBody writes a whole answer: status, Content-Type ctype (ctJSONValues or
// ctTextValues) and body, with its Content-Length (from net/http for a short body).
func writeBody(w http.ResponseWriter, status int, ctype []string, body []byte) {
	h := w.Header()
	h["Content-Type"] = ctype
	if len(body) > autoContentLength {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.WriteHeader(status)
	w.Write(body)
}

// leased is a call's target, where it is (to find it again should its pool close under
// the call) and, once connected, a lease of one of its connections.
type leased struct {
	t     *target
	at    where
	lease pool.Lease
}

// connect leases a connection to the target at (so that the handshake, and so its
// metadata, came first, as with Pyro4's proxy), finding the target again when its pool
// closed under it.
func (g *Gateway) connect(ctx context.Context, at where) (leased, error) {
	c := leased{at: at}
	var err error
	for range 3 {
		if c.t, err = g.target(at); err != nil {
			break
		}
		if c.lease, err = c.t.acquire(ctx); !errors.Is(err, pool.ErrClosed) {
			break
		}
	}
	return c, err
}

// invoke makes call pc over c's lease, or over a new one when c has none, and maps
// failures to responses; name is the object's name server name, "" for the name server.
// The reply goes to result as with target.invoke.
func (g *Gateway) invoke(ctx context.Context, c leased, name string, pc *pyroCall, result func(exception bool, payload []byte)) *httpError {
	var err error
	if c.lease.Conn == nil {
		c, err = g.connect(ctx, c.at)
	}
	if err == nil {
		err = c.t.invoke(ctx, c.lease, pc, result)
	}
	if err != nil {
		return g.failure(c.t, name, err)
	}
	return nil
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

// nsCall calls the name server and returns its answer.
func (g *Gateway) nsCall(ctx context.Context, method string, params [][]byte, kwargs []kwarg) ([]byte, *httpError) {
	var body []byte
	var exception bool
	pc := pyroCall{corr: corrOf(ctx), method: method, params: params, kwargs: kwargs}
	herr := g.invoke(ctx, leased{at: g.ns}, "", &pc, func(exc bool, payload []byte) {
		exception, body = exc, bytes.Clone(payload)
	})
	if herr != nil {
		return nil, herr
	}
	if exception {
		// The gateway re-encodes the name server's exception with ensure_ascii=True.
		return nil, &httpError{status: http.StatusInternalServerError, ctype: ctJSONValues, body: asciiJSON(body)}
	}
	return body, nil
}

// lookup resolves a name through the cache or the name server.
func (g *Gateway) lookup(ctx context.Context, name string) (where, *httpError) {
	g.mu.Lock()
	e, ok := g.lookups[name]
	g.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.at, nil
	}
	body, herr := g.nsCall(ctx, "lookup", [][]byte{frame.AppendPyJSONString(nil, name, false)}, nil)
	if herr != nil {
		return where{}, herr
	}
	var u struct {
		Class string            `json:"__class__"`
		State []json.RawMessage `json:"state"`
	}
	bad := func(why string) (where, *httpError) {
		return where{}, jsonError(http.StatusBadGateway, "Pyro4.errors.ProtocolError", "name server lookup of "+name+": "+why)
	}
	if err := json.Unmarshal(body, &u); err != nil || u.Class != "Pyro4.core.URI" || len(u.State) != 5 {
		return bad("unexpected reply " + string(body))
	}
	var protocol, sockname string
	json.Unmarshal(u.State[0], &protocol)
	json.Unmarshal(u.State[2], &sockname)
	if protocol != "PYRO" || sockname != "" {
		return bad("only PYRO URIs with host and port are supported")
	}
	var at where
	if json.Unmarshal(u.State[1], &at.object) != nil || json.Unmarshal(u.State[3], &at.host) != nil ||
		json.Unmarshal(u.State[4], &at.port) != nil {
		return bad("malformed URI state")
	}
	at.addr = net.JoinHostPort(at.host, strconv.Itoa(at.port))
	g.mu.Lock()
	g.lookups[name] = lookupEntry{at: at, expires: time.Now().Add(g.cfg.LookupTTL)}
	g.mu.Unlock()
	return at, nil
}

// request is what an HTTP request asks for, once parsed, and the memory of serving it:
// requests are pooled (getRequest, release), and their slices reused.
type request struct {
	params []param
	args   [][]byte
	kwargs []kwarg // JSON body kwargs, override params

	callKwargs []kwarg   // the call's keyword arguments (callArgs)
	text       []byte    // their JSON texts, and an attribute's name
	attr       [1][]byte // the parameter of __getattr__
	route      routing.Request
	ann        []byte // the CORR annotation of route
}

// maxPooledParams is the most parameters (and values of one) whose slices a pooled
// request keeps.
const maxPooledParams = 64

var requests = sync.Pool{New: func() any { return new(request) }}

func getRequest() *request { return requests.Get().(*request) }

// release returns req to the pool, holding nothing of the HTTP request it served.
func (req *request) release() {
	for i := range req.params {
		p := &req.params[i]
		clear(p.values)
		p.name, p.values = "", p.values[:0]
		if cap(p.values) > maxPooledParams {
			p.values = nil
		}
	}
	req.params = req.params[:0]
	if cap(req.params) > maxPooledParams {
		req.params = nil
	}
	clear(req.callKwargs)
	req.callKwargs = req.callKwargs[:0]
	req.args, req.kwargs, req.attr[0] = nil, nil, nil
	req.text = req.text[:0]
	if cap(req.text) > maxScratch {
		req.text = nil
	}
	requests.Put(req)
}

// read gathers the parameters of r as pyro4-httpgateway's cgi.parse does (form body
// first, then the query) plus the JSON body extension.
func (req *request) read(r *http.Request) *httpError {
	query := r.URL.RawQuery
	if r.Method != http.MethodPost {
		req.params = parseQS(req.params, query)
		return nil
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
			return herr
		}
		req.params = parseQS(parseQS(req.params, string(b)), query)
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return jsonError(http.StatusBadRequest, "builtins.ValueError", "bad multipart body: "+err.Error())
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
			return herr
		}
		jc, err := parseJSONCall(b)
		if err != nil {
			return jsonError(http.StatusBadRequest, "builtins.ValueError", err.Error())
		}
		req.params = parseQS(req.params, query)
		req.args, req.kwargs = jc.args, jc.kwargs
	default:
		req.params = parseQS(req.params, query)
	}
	return nil
}

// callArgs returns the keyword arguments of the call: the parameters (a single value is a
// str, repeated values a list of str) overridden by the JSON body's kwargs.
func (req *request) callArgs() []kwarg {
	kw := req.callKwargs[:0]
	for _, p := range req.params {
		start := len(req.text)
		if len(p.values) == 1 {
			req.text = frame.AppendPyJSONString(req.text, p.values[0], false)
		} else {
			req.text = appendPyStringList(req.text, p.values, false)
		}
		end := len(req.text)
		kw = append(kw, kwarg{name: p.name, value: req.text[start:end:end]})
	}
	for _, x := range req.kwargs {
		kw = setKwarg(kw, x.name, x.value)
	}
	req.callKwargs = kw
	return kw
}

// attrArgs returns the parameters of a __getattr__ of name.
func (req *request) attrArgs(name string) [][]byte {
	start := len(req.text)
	req.text = frame.AppendPyJSONString(req.text, name, false)
	end := len(req.text)
	req.attr[0] = req.text[start:end:end]
	return req.attr[:]
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
	object, method, ok := splitRoute(rest)
	if !ok {
		textError(http.StatusNotFound, "Error 404: Not Found").write(w)
		return
	}
	req := getRequest()
	defer req.release()
	if herr := req.read(r); herr != nil {
		herr.write(w)
		return
	}
	if herr := g.call(ctx, w, r, req, object, method); herr != nil {
		herr.write(w)
	}
}

// splitRoute splits the path after "pyro/" into object and method as pyro4-httpgateway's
// regular expression ^(.+)/(.+) does: . does not match a newline, so the match is within
// the first line; the first group is greedy, so the split is at the last slash of that
// line with something on both sides.
func splitRoute(rest string) (object, method string, ok bool) {
	line := rest
	if i := strings.IndexByte(rest, '\n'); i >= 0 {
		line = rest[:i]
	}
	if len(line) < 3 {
		return "", "", false
	}
	i := strings.LastIndexByte(line[:len(line)-1], '/')
	if i < 1 {
		return "", "", false
	}
	return line[:i], line[i+1:], true
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

// resolve finds the target of a call of method on name and leases a connection to it:
// at, from the name server, or by the route table a member of the group it chooses (the
// next member when one cannot be reached, each at most once, as a pooled listener does).
// ctx carries the call's correlation id; req lends its memory to the routing decision.
func (g *Gateway) resolve(ctx *callCtx, r *http.Request, req *request, name, method string, at where) (leased, *httpError) {
	if g.cfg.Backends == nil {
		c, err := g.connect(ctx, at)
		if err != nil {
			return c, g.failure(c.t, name, err)
		}
		return c, nil
	}
	var client netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client = ap.Addr().Unmap()
	}
	rr := &req.route
	req.ann = frame.AppendAnnotation(req.ann[:0], frame.CORR, ctx.corr[:])
	rr.ResetCall(client, frame.JSON, name, method, req.ann)
	dec := g.cfg.Backends.Decide(rr)
	if dec.Group == nil {
		status := http.StatusForbidden
		if dec.Rule < 0 {
			status = http.StatusNotFound // no rule takes the object: unknown here
		}
		return leased{}, jsonError(status, "Pyro4.errors.CommunicationError", "pyro-dispatch: "+dec.Deny)
	}
	var tried routing.Tried
	var attempts map[*routing.Member]error // made on the first failure
	for {
		m, err := dec.Group.Pick(rr, tried)
		if err != nil {
			return leased{}, jsonError(http.StatusServiceUnavailable, "Pyro4.errors.CommunicationError",
				"pyro-dispatch: "+dec.Group.NoHealthy(attempts).Error())
		}
		c, err := g.connect(ctx, where{addr: m.Addr, object: name, member: m})
		if err == nil {
			m.Succeeded()
			return c, nil
		}
		var ce *connectError
		if !errors.As(err, &ce) {
			return c, g.failure(c.t, name, err)
		}
		g.drop(c.t, "")
		m.Failed(ce.err)
		if attempts == nil {
			attempts = map[*routing.Member]error{}
		}
		attempts[m] = ce.err
		tried = tried.With(dec.Group, m)
	}
}

// hasOption reports whether the X-Pyro-Options list opts has option o.
func hasOption(opts, o string) bool {
	for x := range strings.SplitSeq(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// call serves a call of method on the object name; its answer is written to w, but for an
// error returned.
func (g *Gateway) call(ctx context.Context, w http.ResponseWriter, r *http.Request, req *request, name, method string) *httpError {
	if herr := g.checkKey(r, req); herr != nil {
		return herr
	}
	if !g.expose.MatchString(name) {
		return textError(http.StatusForbidden, "403 Forbidden - access to the requested object has been denied")
	}
	var at where
	if g.cfg.Backends == nil {
		// As Pyro4's gateway: the name first (an unknown one wins over a bad correlation id).
		var herr *httpError
		if at, herr = g.lookup(ctx, name); herr != nil {
			return herr
		}
	}
	var corr uuid.UUID
	if h := r.Header.Get("X-Pyro-Correlation-Id"); h != "" {
		id, err := uuid.Parse(h)
		if err != nil {
			return jsonError(http.StatusInternalServerError, "builtins.ValueError", "badly formed hexadecimal UUID string")
		}
		corr = id
	} else {
		corr = newCorr()
	}
	cc := withCorr(ctx, corr)
	w.Header()["X-Pyro-Correlation-Id"] = cc.header[:] // on errors too
	c, herr := g.resolve(cc, r, req, name, method, at)
	if herr != nil {
		return herr
	}
	defer c.lease.Release() // when the call did not take it
	t := c.t
	if t.member != nil {
		t.member.Begin()
		defer t.member.End()
	}
	md := t.metadata()
	if md == nil || len(md.Methods) == 0 && len(md.Attrs) == 0 {
		return jsonError(http.StatusInternalServerError, "Pyro4.errors.PyroError",
			"remote object doesn't expose any methods or attributes. Did you forget setting @expose on them?")
	}
	optOneway := hasOption(r.Header.Get("X-Pyro-Options"), "oneway")
	if method == "$meta" {
		methods := slices.Sorted(slices.Values(md.Methods))
		attrs := slices.Sorted(slices.Values(md.Attrs))
		body := []byte(`{"methods": `)
		body = appendPyStringList(body, methods, true)
		body = append(body, `, "attributes": `...)
		body = appendPyStringList(body, attrs, true)
		writeBody(w, http.StatusOK, ctJSONValues, append(body, '}'))
		return nil
	}
	kwargs := req.callArgs()
	pc := pyroCall{corr: corr, method: method, until: r.Context()}
	switch {
	case contains(md.Attrs, method):
		if len(kwargs) != 0 || len(req.args) != 0 {
			return jsonError(http.StatusInternalServerError, "builtins.AssertionError", "attribute lookup can't have query parameters")
		}
		pc.method, pc.params = "__getattr__", req.attrArgs(method)
	case contains(md.Methods, method):
		pc.params, pc.kwargs = req.args, kwargs
		pc.oneway = optOneway || contains(md.Oneway, method)
	default:
		return jsonError(http.StatusInternalServerError, "builtins.AttributeError",
			"remote object '"+t.uri()+"' has no exposed attribute or method '"+method+"'")
	}
	answered := false
	herr = g.invoke(cc, c, name, &pc, func(exception bool, payload []byte) {
		if optOneway {
			return // an attribute asked for as oneway: the answer is dropped
		}
		answered = true
		status := http.StatusOK
		if exception {
			status = http.StatusInternalServerError
		}
		writeBody(w, status, ctJSONValues, payload)
	})
	if herr != nil {
		return herr
	}
	if !answered { // oneway: an empty answer
		writeBody(w, http.StatusOK, ctJSONValues, nil)
	}
	return nil
}
