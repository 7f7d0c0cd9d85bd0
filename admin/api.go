package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
)

// APIPrefix is where the JSON API lives.
const APIPrefix = "/api/v1/"

// Error is the JSON body of every error answer of the API.
type Error struct {
	Error string `json:"error"`
}

// ActionResult is the JSON answer of a successful action.
type ActionResult struct {
	Action  string               `json:"action"`            // drain, enable, close or reload
	Group   string               `json:"group,omitempty"`   // drain and enable
	Member  *dispatch.MemberInfo `json:"member,omitempty"`  // drain and enable: the member after it
	Session uint64               `json:"session,omitempty"` // close
	By      string               `json:"by"`                // who asked, as logged
}

// routes builds the handler: the mux behind the token check and the cross-origin
// protection that keeps another site's page from posting actions through a browser.
func (a *Admin) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", get(http.HandlerFunc(a.metrics)))
	mux.Handle("/healthz", get(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "ok")
	})))
	mux.Handle("/readyz", get(http.HandlerFunc(a.readyz)))
	mux.Handle("/{$}", get(http.HandlerFunc(a.dashboard)))
	mux.Handle("/debug/pprof/goroutine", get(http.HandlerFunc(goroutines)))

	api := func(name string, f func(*http.Request) (any, error)) {
		mux.Handle(APIPrefix+name, get(jsonHandler(f)))
	}
	api("config", a.config)
	api("listeners", func(*http.Request) (any, error) { return nonNil(a.srv.Listeners()), nil })
	api("routes", func(*http.Request) (any, error) { return nonNil(a.srv.Routes()), nil })
	api("groups", func(*http.Request) (any, error) { return nonNil(a.srv.Groups()), nil })
	api("pools", func(*http.Request) (any, error) { return nonNil(a.srv.Pools()), nil })
	api("sessions", func(*http.Request) (any, error) { return nonNil(a.srv.SessionList()), nil })
	api("learned", func(*http.Request) (any, error) { return a.srv.LearnedIDs(), nil })
	api("errors", a.errors)
	api("stats", a.stats)

	mux.Handle(APIPrefix+"groups/", post(http.HandlerFunc(a.memberAction)))
	mux.Handle(APIPrefix+"sessions/{id}/close", post(http.HandlerFunc(a.closeSession)))
	mux.Handle(APIPrefix+"reload", post(http.HandlerFunc(a.reload)))
	mux.HandleFunc(APIPrefix, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, Error{"no such API endpoint: " + r.URL.Path})
	})

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, Error{"cross-origin request refused"})
	}))
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz":
		default:
			if !a.authorized(r, r.URL.Path == "/") {
				w.Header().Set("WWW-Authenticate", `Bearer realm="pyro-dispatch admin"`)
				if strings.HasPrefix(r.URL.Path, APIPrefix) {
					writeJSON(w, http.StatusUnauthorized, Error{"missing or wrong bearer token"})
				} else {
					text(w, http.StatusUnauthorized, "missing or wrong bearer token (the dashboard takes ?token=TOKEN)")
				}
				return
			}
		}
		mux.ServeHTTP(w, r)
	}))
}

// goroutines answers the stack of every goroutine, as net/http/pprof's goroutine profile
// does (without registering pprof on http.DefaultServeMux): ?debug=1 counts goroutines
// by stack, ?debug=2 shows each in full (as an unrecovered panic prints them), otherwise
// the gzipped protobuf that `go tool pprof` reads.
func goroutines(w http.ResponseWriter, r *http.Request) {
	debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="goroutine"`)
	}
	pprof.Lookup("goroutine").WriteTo(w, debug)
}

// get lets GET and HEAD requests through to h, and answers others 405.
func get(h http.Handler) http.Handler { return only(h, http.MethodGet, http.MethodHead) }

// post lets POST requests through to h, and answers others 405.
func post(h http.Handler) http.Handler { return only(h, http.MethodPost) }

func only(h http.Handler, methods ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if r.Method == m {
				h.ServeHTTP(w, r)
				return
			}
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, Error{r.Method + " not allowed: use " + strings.Join(methods, " or ")})
	})
}

// statusError is an error with the HTTP status to answer it with.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// jsonHandler answers with f's value as JSON, or its error (a *statusError, else 500).
func jsonHandler(f func(*http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		if err != nil {
			code := http.StatusInternalServerError
			var se *statusError
			if errors.As(err, &se) {
				code = se.code
			}
			writeJSON(w, code, Error{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func text(w http.ResponseWriter, code int, s string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write([]byte(s + "\n"))
}

// nonNil makes a nil slice an empty one, so that lists are [] in JSON, never null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// metricsHandler serves the server's registry; nil when it keeps no metrics.
func (a *Admin) metricsHandler() http.Handler {
	m := a.srv.Metrics()
	if m == nil {
		return nil
	}
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		ErrorLog:            zap.NewStdLog(a.log.Named("admin.metrics")),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	})
}

func (a *Admin) metrics(w http.ResponseWriter, r *http.Request) {
	if a.prom == nil {
		text(w, http.StatusServiceUnavailable, "metrics are off: the configuration has no admin.listen")
		return
	}
	a.prom.ServeHTTP(w, r)
}

func (a *Admin) readyz(w http.ResponseWriter, r *http.Request) {
	if ok, why := a.srv.Ready(); !ok {
		text(w, http.StatusServiceUnavailable, why)
		return
	}
	text(w, http.StatusOK, "ready")
}

// config answers the configuration in effect, with the names and units of the YAML file
// (as `pyro-dispatch check` prints it). It names files (certificates, keys, tokens) but
// holds no key material.
func (a *Admin) config(*http.Request) (any, error) {
	y, err := yaml.Marshal(a.srv.Config())
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// errors answers the recent warnings and errors the dispatcher logged, oldest first.
func (a *Admin) errors(*http.Request) (any, error) {
	m := a.srv.Metrics()
	if m == nil {
		return []metrics.LogEntry{}, nil
	}
	return nonNil(m.Errors().Entries()), nil
}

// memberAction serves POST /api/v1/groups/{group}/members/{addr}/{drain|enable}. The
// address may hold ':' and '/' (unix:/path), as is or escaped (%2F).
func (a *Admin) memberAction(w http.ResponseWriter, r *http.Request) {
	group, addr, action, ok := parseMemberPath(r.URL.EscapedPath())
	if !ok {
		writeJSON(w, http.StatusNotFound, Error{"want POST " + APIPrefix + "groups/{group}/members/{addr}/drain or .../enable"})
		return
	}
	who := a.who(r)
	do := a.srv.DrainMember
	if action == "enable" {
		do = a.srv.EnableMember
	}
	log := a.log.With(zap.String("action", action), zap.String("group", group), zap.String("member", addr), zap.String("by", who))
	if err := do(group, addr, who); err != nil {
		log.Warn("admin action failed", zap.Error(err))
		code := http.StatusInternalServerError
		if errors.Is(err, dispatch.ErrNoMember) {
			code = http.StatusNotFound
		}
		writeJSON(w, code, Error{err.Error()})
		return
	}
	log.Info("admin action")
	res := ActionResult{Action: action, Group: group, By: who}
	for _, g := range a.srv.Groups() {
		if g.Name != group {
			continue
		}
		for _, m := range g.Members {
			if m.Address == addr {
				res.Member = &m
			}
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// parseMemberPath splits the escaped path of a member action.
func parseMemberPath(p string) (group, addr, action string, ok bool) {
	rest, ok := strings.CutPrefix(p, APIPrefix+"groups/")
	if !ok {
		return "", "", "", false
	}
	seg := strings.Split(rest, "/")
	if len(seg) < 4 || seg[1] != "members" {
		return "", "", "", false
	}
	action = seg[len(seg)-1]
	if action != "drain" && action != "enable" {
		return "", "", "", false
	}
	var err error
	if group, err = url.PathUnescape(seg[0]); err != nil || group == "" {
		return "", "", "", false
	}
	parts := seg[2 : len(seg)-1]
	for i, s := range parts {
		// PathUnescape leaves '+' alone: no address means a space by it.
		if parts[i], err = url.PathUnescape(s); err != nil {
			return "", "", "", false
		}
	}
	addr = strings.Join(parts, "/")
	return group, addr, action, addr != ""
}

func (a *Admin) closeSession(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, Error{"bad session id " + strconv.Quote(r.PathValue("id"))})
		return
	}
	who := a.who(r)
	log := a.log.With(zap.String("action", "close"), zap.Uint64("session", id), zap.String("by", who))
	if !a.srv.CloseSession(id, who) {
		log.Warn("admin action failed: no such session")
		writeJSON(w, http.StatusNotFound, Error{"no session " + strconv.FormatUint(id, 10)})
		return
	}
	log.Info("admin action")
	writeJSON(w, http.StatusOK, ActionResult{Action: "close", Session: id, By: who})
}

func (a *Admin) reload(w http.ResponseWriter, r *http.Request) {
	who := a.who(r)
	log := a.log.With(zap.String("action", "reload"), zap.String("by", who))
	if a.opt.Reload == nil {
		log.Warn("admin action failed: reload is not available")
		writeJSON(w, http.StatusNotImplemented, Error{"reload is not available: the dispatcher has no configuration file to re-read"})
		return
	}
	if err := a.opt.Reload(); err != nil {
		log.Error("admin action failed: the running configuration stays", zap.Error(err))
		writeJSON(w, http.StatusUnprocessableEntity, Error{"reload failed, the running configuration stays: " + err.Error()})
		return
	}
	log.Info("admin action")
	writeJSON(w, http.StatusOK, ActionResult{Action: "reload", By: who})
}
