// Package admin is the admin listener: Prometheus metrics, health, a JSON API with
// actions (drain or enable a member, close a client, reload), and a live dashboard, all
// served over HTTP from a running dispatch.Server.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
)

// Options configure an Admin.
type Options struct {
	// Token is the bearer token every request but /healthz and /readyz must carry
	// (Authorization: Bearer TOKEN); empty: none is asked for. The dashboard page also
	// takes it as ?token=TOKEN and sends it on as the header.
	Token string
	// Reload re-reads the configuration file and puts it in service, as SIGHUP does;
	// nil: POST /api/v1/reload answers 501.
	Reload func() error
	// Log receives one line per action (who asked, what, the result); nil: no log.
	Log *zap.Logger
}

// Timeouts of the admin HTTP server: its clients are scrapers, browsers polling once a
// second and the top command, none of which sends large requests or waits long.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
)

// Admin serves the admin API of one dispatch.Server.
type Admin struct {
	srv     *dispatch.Server
	opt     Options
	log     *zap.Logger
	token   [sha256.Size]byte // of opt.Token
	handler http.Handler
	prom    http.Handler // GET /metrics; nil without metrics
	page    *page

	mu sync.Mutex
	hs *http.Server
}

// New returns the admin API of srv. srv.Metrics() is nil unless srv's configuration has
// admin.listen: then /metrics answers 503 and /api/v1/stats has no figures.
func New(srv *dispatch.Server, opt Options) *Admin {
	a := &Admin{srv: srv, opt: opt, log: opt.Log}
	if a.log == nil {
		a.log = zap.NewNop()
	}
	a.token = sha256.Sum256([]byte(opt.Token))
	a.page = newPage()
	a.prom = a.metricsHandler()
	a.handler = a.routes()
	return a
}

// Handler returns the admin API as an http.Handler, token check included.
func (a *Admin) Handler() http.Handler { return a.handler }

// Serve serves the admin API on ln until Shutdown; it returns nil after Shutdown. It may
// be called for several listeners.
func (a *Admin) Serve(ln net.Listener) error {
	a.mu.Lock()
	if a.hs == nil {
		a.hs = &http.Server{
			Handler:           a.handler,
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       ReadTimeout,
			WriteTimeout:      WriteTimeout,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          zap.NewStdLog(a.log.Named("admin.http")),
		}
	}
	hs := a.hs
	a.mu.Unlock()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the listeners Serve was given, waits for requests under way until ctx
// ends, then closes what is left.
func (a *Admin) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	if a.hs == nil {
		// Nothing served yet: a Serve called later returns at once.
		a.hs = &http.Server{Handler: a.handler}
	}
	hs := a.hs
	a.mu.Unlock()
	err := hs.Shutdown(ctx)
	if err != nil {
		hs.Close()
	}
	return err
}

// Listen opens the admin listener's socket: HOST:PORT, [IPv6]:PORT or unix:/path (as
// admin.listen takes it). A unix socket file left by an earlier run is replaced.
func Listen(addr string) (net.Listener, error) {
	network, address, err := config.ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if fi, err := os.Lstat(address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.DialTimeout("unix", address, time.Second); err == nil {
				c.Close()
				return nil, fmt.Errorf("admin listener: %s is in use", address)
			}
			os.Remove(address)
		}
	}
	return net.Listen(network, address)
}

// ReadToken reads a bearer token from a file (admin.token_file), without surrounding
// white space.
func ReadToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return t, nil
}

// authorized reports whether r carries the token (any request does when there is none),
// in the Authorization header, or for the dashboard page, in ?token=.
func (a *Admin) authorized(r *http.Request, queryToo bool) bool {
	if a.opt.Token == "" {
		return true
	}
	if got, ok := bearer(r); ok && a.tokenEqual(got) {
		return true
	}
	return queryToo && r.URL.Query().Has("token") && a.tokenEqual(r.URL.Query().Get("token"))
}

// tokenEqual compares got with the token in constant time (of the token's hash: the
// lengths are not revealed either).
func (a *Admin) tokenEqual(got string) bool {
	h := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(h[:], a.token[:]) == 1
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// who says who asked for an action, for the logs: the client's address, and "token"
// when a token is configured (the request carried it).
func (a *Admin) who(r *http.Request) string {
	addr := r.RemoteAddr
	if addr == "" || addr == "@" {
		addr = "unix socket"
	}
	w := "admin API from " + addr
	if a.opt.Token != "" {
		w += " (token)"
	}
	return w
}
