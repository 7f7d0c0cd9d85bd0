package admin

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"strings"
)

// The dashboard: ui/index.html with its style sheets and scripts written into it, so
// that GET / is the whole page (no other request but the API's, nothing from the
// network). ui/uPlot.* is uPlot 1.6.32 from npm (MIT, ui/uPlot.LICENSE).
//
//go:embed ui/index.html ui/dashboard.css ui/dashboard.js ui/uPlot.iife.min.js ui/uPlot.min.css
var ui embed.FS

// page is the dashboard as served, and the Content-Security-Policy that allows its
// inline scripts and style sheets (by hash) and nothing else but the API.
type page struct {
	html []byte
	csp  string
}

func newPage() *page {
	read := func(name string) string {
		b, err := ui.ReadFile("ui/" + name)
		if err != nil {
			panic("admin: embedded " + name + ": " + err.Error()) // built in: cannot happen
		}
		return string(b)
	}
	var hashes []string
	inline := func(tag, content string) string {
		sum := sha256.Sum256([]byte(content))
		hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		return "<" + tag + ">" + content + "</" + tag + ">"
	}
	styles := inline("style", read("uPlot.min.css")) + inline("style", read("dashboard.css"))
	styleHashes := strings.Join(hashes, " ")
	hashes = nil
	scripts := inline("script", read("uPlot.iife.min.js")) + inline("script", read("dashboard.js"))
	html := strings.NewReplacer("<!--STYLES-->", styles, "<!--SCRIPTS-->", scripts).Replace(read("index.html"))
	return &page{
		html: []byte(html),
		csp: "default-src 'none'; connect-src 'self'; img-src 'self' data:; " +
			"script-src " + strings.Join(hashes, " ") + "; style-src " + styleHashes + "; " +
			"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
}

// dashboard serves the page. With a token, it is opened as /?token=TOKEN: the page's
// script reads it from its address and sends it as the bearer token of its requests.
func (a *Admin) dashboard(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", a.page.csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.Write(a.page.html)
}
