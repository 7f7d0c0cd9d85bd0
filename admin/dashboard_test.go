package admin_test

import (
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pyro-dispatch/pyro-dispatch/internal/browsertest"
)

// load makes calls through the dispatcher from conns clients until stop is closed:
// echo.echo mostly, a denied method and an unknown one now and then (errors and
// exceptions for the charts and tables). rate, when set, gives the calls per second
// of each client at a time since the start.
func load(t *testing.T, e *env, conns int, rate func(time.Duration) float64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		c := dialPyro(t, e.proxy, "echo")
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				var err error
				switch {
				case n%97 == 0:
					_, err = c.call("echo", "secret", "x")
					err = nil // denied: the call fails, the client stays usable
				case n%31 == 0:
					_, err = c.call("echo", "nope", "x")
					err = nil // an exception
				default:
					_, err = c.call("echo", "echo", "load "+strconv.Itoa(i))
				}
				if err != nil {
					t.Errorf("load: %v", err)
					return
				}
				if rate != nil {
					time.Sleep(time.Duration(float64(time.Second) / rate(time.Since(start))))
				}
			}
		})
	}
	var once sync.Once
	return func() {
		once.Do(func() { close(done) })
		wg.Wait()
	}
}

// The dashboard in a real browser: it loads with no console error (with a token, given
// as ?token=), its charts and figures move while a load runs, and a member drained
// through the API shows as drained within 2 s. With PYRO_DISPATCH_SCREENSHOT=FILE it
// runs the load longer and writes a PNG of the page under load to FILE.
func TestDashboardBrowser(t *testing.T) {
	br := browsertest.Start(t, 1440, 1000)
	bctx := br.Ctx
	shot := os.Getenv("PYRO_DISPATCH_SCREENSHOT")
	const token = "dashboard-token"
	e := start(t, setup{token: token})

	rate := func(time.Duration) float64 { return 400 }
	if shot != "" {
		// A load that changes, for charts worth looking at.
		rate = func(d time.Duration) float64 { return 200 + 100*math.Sin(d.Seconds()/5) + 40*math.Sin(d.Seconds()/1.7) }
	}
	stopLoad := load(t, e, 3, rate)
	defer stopLoad()

	page := e.base + "/?token=" + url.QueryEscape(token)
	if shot != "" {
		page += "&seconds=60"
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	// The first update, then calls in the chart.
	poll := func(what, expr string, timeout time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(timeout))); err != nil {
			t.Fatalf("waiting %v for %s: %v", timeout, what, err)
		}
	}
	poll("the first update", `window.pyroDashboard && window.pyroDashboard.updates > 0`, 5*time.Second)
	nonzero := `window.pyroDashboard.charts.calls.data[1].filter(v => v > 0).length`
	poll("calls in the calls/s chart", nonzero+` > 0`, 5*time.Second)

	type view struct {
		Updates int     `json:"updates"`
		Points  int     `json:"points"`
		Nonzero int     `json:"nonzero"`
		Calls   string  `json:"calls"`
		Total   string  `json:"total"`
		LastT   float64 `json:"lastT"`
		Error   string  `json:"error"`
		Members int     `json:"members"`
	}
	look := func() view {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[view](`(() => { const d = window.pyroDashboard, c = d.charts.calls.data;
			return {updates: d.updates, points: c[0].length, nonzero: `+nonzero+`, lastT: c[0][c[0].length-1],
				calls: document.getElementById("t-calls").textContent, total: document.getElementById("t-total").textContent,
				error: d.error, members: document.querySelectorAll("tr[data-member]").length}; })()`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := look()
	// The charts move: within 2.5 s the page updated at least twice, the chart's last
	// point is a later second, and more of its seconds have calls.
	deadline := time.Now().Add(2500 * time.Millisecond)
	var later view
	for {
		later = look()
		if later.Updates >= first.Updates+2 && later.LastT > first.LastT && later.Nonzero > first.Nonzero {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard did not move under load: %+v, then %+v", first, later)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if (later.Points != 299 && shot == "") || later.Error != "" || later.Members != 3 {
		t.Errorf("dashboard: %+v", later)
	}
	if n, err := strconv.Atoi(later.Calls); err != nil || n <= 0 {
		t.Errorf("calls/s shown: %q", later.Calls)
	}
	t.Logf("dashboard: %+v, then %+v", first, later)

	if shot != "" {
		time.Sleep(50 * time.Second) // history for the charts
	}

	// A member drained through the API shows as drained within 2 s.
	a := e.a.Addr().String()
	if code, _, b := e.do(t, http.MethodPost, "/api/v1/groups/echo/members/"+a+"/drain"); code != http.StatusOK {
		t.Fatalf("drain: %d %s", code, b)
	}
	drainedAt := time.Now()
	badge := `document.querySelector('tr[data-member="` + a + `"] .state .badge')`
	poll("the drained member on the page", badge+` && `+badge+`.textContent === "drained" && document.querySelector('tr[data-member="`+a+`"] button').textContent === "Enable"`, 2*time.Second)
	t.Logf("drained member shown after %v", time.Since(drainedAt).Round(time.Millisecond))

	if shot != "" {
		time.Sleep(3 * time.Second) // the drained member's calls/s falls to 0
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", shot, len(png))
	}

	stopLoad()
	br.Close()
	for _, p := range br.Problems() {
		t.Errorf("console: %s", p)
	}
}
