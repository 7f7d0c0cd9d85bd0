package httpgw

import (
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pyro-dispatch/pyro-dispatch/internal/browsertest"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// evilName is an exposed name that would run a script if the page did not escape it.
const evilName = `http.<img src=x onerror="window.pwned=1">&amp;"'`

// registerScript registers argv[2] in the name server at port argv[1] as http.echo's URI.
const registerScript = `
import sys
import Pyro4
ns = Pyro4.locateNS("127.0.0.1", int(sys.argv[1]))
ns.register(sys.argv[2], ns.lookup("http.echo"))
`

func registerEvil(t *testing.T, w *world) {
	t.Helper()
	_, nsPort, _ := net.SplitHostPort(w.ns)
	pyro4test.RunPython(t, registerScript, nil, nsPort, evilName)
}

// The home page over plain HTTP: HTML, escaped, self-contained, with the methods of the
// objects without a key and only the names with one.
func TestHomePage(t *testing.T) {
	w := startWorld(t)
	registerEvil(t, w)
	base := newGateway(t, Config{NameServer: w.ns, Timeout: 20 * time.Second})
	keyed := newGateway(t, Config{NameServer: w.ns, GatewayKey: "s3cr3t", Timeout: 20 * time.Second})

	got := do(t, base, call{path: "/pyro/"})
	body := string(got.body)
	if got.status != 200 || got.header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("home: %d %q", got.status, got.header.Get("Content-Type"))
	}
	if csp := got.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, want := range []string{`data-object="http.echo"`, `data-object="http.echoXYZ"`, "<code>echo</code>", "<code>value</code>", "<code>fire</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("home page lacks %q", want)
		}
	}
	for _, bad := range []string{"private.echo", "<img", `onerror="`, "http://", "https://", "//cdn"} {
		if strings.Contains(body, bad) {
			t.Errorf("home page has %q", bad)
		}
	}
	if !strings.Contains(body, "http.&lt;img") {
		t.Errorf("the evil name is not on the page, escaped")
	}
	// http.hidden exposes nothing: the page says so instead of listing methods
	if i := strings.Index(body, `data-object="http.hidden"`); i < 0 || !strings.Contains(body[i:i+400], `class="error"`) {
		t.Errorf("http.hidden row: %q", body[max(i, 0):max(i, 0)+400])
	}

	got = do(t, keyed, call{path: "/pyro/"})
	body = string(got.body)
	if got.status != 200 || !strings.Contains(body, `data-object="http.echo"`) || strings.Contains(body, "<code>echo</code>") ||
		!strings.Contains(body, `id="key"`) {
		t.Errorf("keyed home: %d %s", got.status, body)
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// The home page in a real browser, against a real Pyro4 name server and daemon: it loads
// with no console error or exception, lists the exposed http.* objects (escaped, and not
// the unexposed one), and calls http.echo's echo with message=hello from its form,
// showing the answer, the status and a correlation id; then with a gateway key entered
// in its field. With PYRO_DISPATCH_SCREENSHOT=FILE it writes a PNG of the page after the
// calls without a key to FILE.
func TestHomePageBrowser(t *testing.T) {
	br := browsertest.Start(t, 1280, 900)
	bctx := br.Ctx
	w := startWorld(t)
	registerEvil(t, w)
	base := newGateway(t, Config{NameServer: w.ns, Timeout: 20 * time.Second})
	keyed := newGateway(t, Config{NameServer: w.ns, GatewayKey: "s3cr3t", Timeout: 20 * time.Second})

	takeProblems := br.Problems

	run := func(actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for i, a := range actions {
			if err := chromedp.Do(bctx, a); err != nil {
				t.Fatalf("step %d: %v", i+1, err)
			}
		}
	}
	poll := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	type row struct {
		Name       string `json:"name"`
		Methods    string `json:"methods"`
		Attributes string `json:"attributes"`
		Error      string `json:"error"`
	}
	rows := func() []row {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[[]row](`[...document.querySelectorAll("tr[data-object]")].map(r => ({
			name: r.dataset.object,
			methods: r.querySelector(".methods") ? r.querySelector(".methods").textContent.trim() : "",
			attributes: r.querySelector(".attributes") ? r.querySelector(".attributes").textContent.trim() : "",
			error: r.querySelector(".error") ? r.querySelector(".error").textContent : ""}))`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	type result struct {
		Status string `json:"status"`
		Corr   string `json:"corr"`
		Body   string `json:"body"`
		Calls  int    `json:"calls"`
	}
	// callEcho fills in the form and presses Call, as a person would.
	callEcho := func(message, corr string) result {
		t.Helper()
		before, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.pyroGateway.calls`))
		if err != nil {
			t.Fatal(err)
		}
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.SetValue(chromedp.CSS(`#object`), "http.echo"),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("object").dispatchEvent(new Event("change"))`),
			chromedp.SetValue(chromedp.CSS(`#method`), "echo"),
			// empty the fields (SetValue cannot set "")
			chromedp.Evaluate[chromedp.Void](`for (const e of document.querySelectorAll("#kwarg-rows input, #corr")) e.value = ""`),
			chromedp.SendKeys(chromedp.CSS(`#kwarg-rows .kwarg .kw-name`), "message"),
			chromedp.SendKeys(chromedp.CSS(`#kwarg-rows .kwarg .kw-value`), message),
		}
		if corr != "" {
			steps = append(steps, chromedp.SendKeys(chromedp.CSS(`#corr`), corr))
		}
		run(append(steps, chromedp.Click(chromedp.CSS(`#call`)))...)
		poll("the answer", `window.pyroGateway.calls > `+strconv.Itoa(before))
		r, err := chromedp.Run(bctx, chromedp.Evaluate[result](`({status: document.getElementById("resp-status").textContent,
			corr: document.getElementById("resp-corr").textContent, body: document.getElementById("resp-body").textContent,
			calls: window.pyroGateway.calls})`))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("call shown: %+v", r)
		return r
	}
	checkClean := func(phase string) {
		t.Helper()
		pwned, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`window.pwned === 1 || document.querySelector("img") !== null`))
		if err != nil {
			t.Fatal(err)
		}
		if pwned {
			t.Errorf("%s: the evil name became markup", phase)
		}
	}

	// Without a key.
	run(chromedp.Navigate(base + "/pyro/"))
	poll("the page script", `window.pyroGateway && window.pyroGateway.ready === true`)
	got := rows()
	var names []string
	for _, r := range got {
		names = append(names, r.Name)
	}
	t.Logf("objects: %q", names)
	for _, want := range []string{"http.echo", "http.echoXYZ", "http.hidden", "http.down", "http.gone", evilName} {
		if !slices.Contains(names, want) {
			t.Errorf("object %q not listed", want)
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "http.") {
			t.Errorf("unexposed object %q listed", n)
		}
	}
	for _, r := range got {
		switch r.Name {
		case "http.echo":
			if !strings.Contains(r.Methods, "echo") || !strings.Contains(r.Methods, "sleep") || r.Attributes != "value" {
				t.Errorf("http.echo row: %+v", r)
			}
		case "http.hidden", "http.down", "http.gone":
			if r.Error == "" || r.Methods != "" {
				t.Errorf("%s row: %+v", r.Name, r)
			}
		}
	}
	checkClean("no key")
	res := callEcho("hello", "")
	if res.Status != "200" || res.Body != `"hello"` || !uuidRE.MatchString(res.Corr) {
		t.Errorf("echo from the page: %+v", res)
	}
	const corr = "8399a042-aaeb-40dd-877e-e5c1075f784d"
	res = callEcho("again", corr)
	if res.Status != "200" || res.Body != `"again"` || res.Corr != corr {
		t.Errorf("echo with a correlation id from the page: %+v", res)
	}
	for _, p := range takeProblems() {
		t.Errorf("console (no key): %s at %s:%d", p, p.URL, p.Line)
	}
	if shot := os.Getenv("PYRO_DISPATCH_SCREENSHOT"); shot != "" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", shot, len(png))
	}

	// With a key: the names without methods, until the key is entered.
	run(chromedp.Navigate(keyed + "/pyro/"))
	poll("the page script", `window.pyroGateway && window.pyroGateway.ready === true`)
	if r := rows(); !slices.ContainsFunc(r, func(r row) bool { return r.Name == "http.echo" && r.Methods == "" }) {
		t.Errorf("keyed page rows: %+v", r)
	}
	for _, p := range takeProblems() {
		t.Errorf("console (key, page load): %s at %s:%d", p, p.URL, p.Line)
	}
	run(chromedp.SendKeys(chromedp.CSS(`#key`), "s3cr3t"), chromedp.Click(chromedp.CSS(`#load-meta`)))
	poll("the methods through the key", `!document.getElementById("method").disabled`)
	checkClean("key")
	res = callEcho("keyed", "")
	if res.Status != "200" || res.Body != `"keyed"` || !uuidRE.MatchString(res.Corr) {
		t.Errorf("echo with the key from the page: %+v", res)
	}
	// Loading the metadata of objects that have none (http.hidden, http.down, ...) makes
	// the browser log their failed requests; nothing else may be logged.
	br.Close()
	for _, p := range takeProblems() {
		if p.Source != "network" || !strings.HasSuffix(p.URL, "/%24meta") {
			t.Errorf("console (key): %s at %s:%d", p, p.URL, p.Line)
		}
	}
}
