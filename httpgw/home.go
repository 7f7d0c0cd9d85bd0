package httpgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// The home page: ui/index.html with ui/home.css and ui/home.js written into it, so that
// GET /pyro/ is the whole page (no other request but the gateway's own, nothing from the
// network: Pyro4's page loads jQuery from a CDN, this one does not).
//
//go:embed ui/index.html ui/home.css ui/home.js
var ui embed.FS

// homeMetaTimeout bounds the metadata gathering of the home page when Config.Timeout is 0.
const homeMetaTimeout = 5 * time.Second

// homeParallel is the most objects whose metadata the home page asks for at once.
const homeParallel = 8

type homePage struct {
	tmpl   *template.Template
	style  template.CSS
	script template.JS
	csp    string
}

var home = sync.OnceValue(func() *homePage {
	read := func(name string) string {
		b, err := ui.ReadFile("ui/" + name)
		if err != nil {
			panic("httpgw: embedded " + name + ": " + err.Error()) // built in: cannot happen
		}
		return string(b)
	}
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	css, js := read("home.css"), read("home.js")
	return &homePage{
		tmpl:   template.Must(template.New("index.html").Parse(read("index.html"))),
		style:  template.CSS(css),
		script: template.JS(js),
		csp: "default-src 'none'; connect-src 'self'; img-src 'self' data:; script-src " + hash(js) +
			"; style-src " + hash(css) + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
})

// homeObject is one name of the home page.
type homeObject struct {
	Name       string   `json:"name"`
	URI        string   `json:"uri"`
	Methods    []string `json:"methods"`
	Oneway     []string `json:"oneway"`
	Attributes []string `json:"attributes"`
	// Error is why the metadata is missing ("" when it is there or was not asked for).
	Error string `json:"error"`
	// Loaded tells whether Methods and Attributes are known.
	Loaded bool `json:"loaded"`
}

// homeMeta fills in the metadata of o, handshaking with the object if need be.
func (g *Gateway) homeMeta(ctx context.Context, r *http.Request, o *homeObject) {
	md, herr := g.metaOf(ctx, r, o.Name)
	if herr == nil {
		if md == nil || len(md.Methods) == 0 && len(md.Attrs) == 0 {
			o.Error = "the object exposes no methods or attributes"
			return
		}
		o.Methods = slices.Sorted(slices.Values(md.Methods))
		o.Oneway = slices.Sorted(slices.Values(md.Oneway))
		o.Attributes = slices.Sorted(slices.Values(md.Attrs))
		o.Loaded = true
		return
	}
	o.Error = strconv.Itoa(herr.status) + " " + http.StatusText(herr.status)
	var exc struct {
		Class string `json:"__class__"`
		Args  []any  `json:"args"`
	}
	if json.Unmarshal(herr.body, &exc) == nil && exc.Class != "" {
		o.Error += ": " + exc.Class
		if len(exc.Args) > 0 {
			if s, ok := exc.Args[0].(string); ok {
				o.Error += ": " + s
			}
		}
	} else if herr.ctype[0] == ctText {
		o.Error += ": " + string(herr.body)
	}
}

// metaOf returns the metadata of the object name, handshaking with it if need be.
func (g *Gateway) metaOf(ctx context.Context, r *http.Request, name string) (*meta, *httpError) {
	var at where
	if g.cfg.Backends == nil {
		var herr *httpError
		if at, herr = g.lookup(ctx, name); herr != nil {
			return nil, herr
		}
	}
	req := getRequest()
	defer req.release()
	c, herr := g.resolve(withCorr(ctx, newCorr()), r, req, name, "$meta", at)
	if herr != nil {
		return nil, herr
	}
	c.lease.Release()
	return c.t.metadata(), nil
}

// homeNames returns the exposed names and their URIs: from the name server, or, when
// calls are routed, the object ids the routes name (with no URI).
func (g *Gateway) homeNames(ctx context.Context) (map[string]string, *httpError) {
	if g.cfg.Backends != nil {
		names := map[string]string{}
		for _, o := range g.cfg.Objects {
			if g.expose.MatchString(o) {
				names[o] = ""
			}
		}
		return names, nil
	}
	body, herr := g.nsCall(ctx, "list", nil, []kwarg{{name: "regex", value: frame.AppendPyJSONString(nil, g.cfg.Expose, false)}})
	var names map[string]string
	if herr == nil && json.Unmarshal(body, &names) != nil {
		herr = jsonError(http.StatusBadGateway, "Pyro4.errors.ProtocolError", "bad list reply")
	}
	return names, herr
}

// serveHome writes the home page: the exposed names of the name server (or the routed
// object ids) and, without a gateway key, their methods and attributes, with a form to
// call them.
func (g *Gateway) serveHome(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	names, herr := g.homeNames(ctx)
	if herr != nil {
		status := http.StatusInternalServerError
		if herr.status == http.StatusServiceUnavailable || herr.status == http.StatusGatewayTimeout {
			status = herr.status
		}
		textError(status, "Cannot connect to the Pyro name server. Is it running? Refresh page to retry.").write(w)
		return
	}
	objects := make([]homeObject, 0, len(names))
	for name, uri := range names {
		objects = append(objects, homeObject{Name: name, URI: uri, Methods: []string{}, Oneway: []string{}, Attributes: []string{}})
	}
	slices.SortFunc(objects, func(a, b homeObject) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	keyed := g.cfg.GatewayKey != ""
	if !keyed {
		// Without a key, $meta tells anyone the same: gather it here, so that the page
		// needs no request that may fail.
		mctx := ctx
		if g.cfg.Timeout <= 0 {
			var cancel context.CancelFunc
			mctx, cancel = context.WithTimeout(ctx, homeMetaTimeout)
			defer cancel()
		}
		sem := make(chan struct{}, homeParallel)
		var wg sync.WaitGroup
		for i := range objects {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				g.homeMeta(mctx, r, &objects[i])
			})
		}
		wg.Wait()
	}
	p := home()
	var b bytes.Buffer
	err := p.tmpl.Execute(&b, map[string]any{
		"NameServer": g.cfg.NameServer,
		"Routed":     g.cfg.Backends != nil,
		"Expose":     g.cfg.Expose,
		"Keyed":      keyed,
		"Objects":    objects,
		"Style":      p.style,
		"Script":     p.script,
	})
	if err != nil {
		g.log.Error("home page template: " + err.Error())
		textError(http.StatusInternalServerError, "Error 500: home page").write(w)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	h.Set("Content-Security-Policy", p.csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
}
