package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/admin"
	"github.com/pyro-dispatch/pyro-dispatch/bench"
	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/dispatch"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
)

func init() {
	commands["top"] = command{"show a running dispatcher's calls, latency, members and pools live, from its admin API", runTop}
}

// topOptions are the flags of the top command.
type topOptions struct {
	admin     string
	tokenFile string
	once      bool
	interval  time.Duration // between frames (1s; tests shorten it)
}

// defaultAdmin is where top looks for the admin listener by default.
const defaultAdmin = "127.0.0.1:9901"

func runTop(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("top", "", stderr)
	o := topOptions{interval: time.Second}
	fs.StringVar(&o.admin, "admin", defaultAdmin, "admin listener of the dispatcher (admin.listen): HOST:PORT, unix:/path or an http(s):// URL")
	fs.StringVar(&o.tokenFile, "token-file", "", "file holding the admin bearer token (admin.token_file)")
	fs.BoolVar(&o.once, "once", false, "print one frame and exit (no screen clearing; for scripts)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: pyro-dispatch top [--admin ADDR] [--token-file F] [--once]

Shows what the dashboard of the admin listener shows, in the terminal, redrawn every
second: calls/s, error rate, p50/p99, client sessions, the members of each backend group
(state, calls in flight, calls/s), pools, the busiest objects, the slowest recent calls
and the latest warnings. Reads the JSON API (/api/v1/), so the dispatcher's configuration
needs admin.listen. Stop with Ctrl-C.

Flags:
%s`, fs.FlagUsages())
	}
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pyro-dispatch top: unexpected arguments %q\n", fs.Args())
		return 2
	}
	c, err := newTopClient(o)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch top: %v\n", err)
		return 2
	}
	defer c.http.CloseIdleConnections()
	if o.once {
		f, err := c.fetch(context.Background(), true)
		if err != nil {
			fmt.Fprintf(stderr, "pyro-dispatch top: %v\n", err)
			return 1
		}
		renderTop(stdout, f, nil, false)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.loop(ctx, stdout, isTerminal(stdout))
}

// topClient reads the admin API.
type topClient struct {
	http     *http.Client
	base     string // URL the API paths are appended to, ending in "/"
	token    string
	shown    string // the address as the user gave it
	interval time.Duration
	ticks    int
}

func newTopClient(o topOptions) (*topClient, error) {
	c := &topClient{shown: o.admin, interval: o.interval}
	if o.tokenFile != "" {
		tok, err := admin.ReadToken(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %v", err)
		}
		c.token = tok
	}
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	switch {
	case strings.HasPrefix(o.admin, "http://") || strings.HasPrefix(o.admin, "https://"):
		c.base = strings.TrimSuffix(o.admin, "/") + "/"
	default:
		network, address, err := config.ParseAddress(o.admin)
		if err != nil {
			return nil, fmt.Errorf("--admin: %v", err)
		}
		c.base = "http://" + address + "/"
		if network == "unix" {
			c.base = "http://admin/"
			d := net.Dialer{}
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", address)
			}
		}
	}
	c.http = &http.Client{Transport: tr, Timeout: 5 * time.Second}
	return c, nil
}

// topFrame is what one frame shows.
type topFrame struct {
	admin     string // the address it came from, as --admin gives it
	at        time.Time
	ready     string // "ready", or why not
	stats     admin.Stats
	groups    []dispatch.GroupInfo
	pools     []dispatch.PoolInfo
	listeners []dispatch.ListenerInfo
	errors    []metrics.LogEntry
}

// topHistory is the seconds of history a frame shows as a sparkline.
const topHistory = 60

// fetch reads a frame; all includes the listeners and the recent errors, which top
// reads every few frames only.
func (c *topClient) fetch(ctx context.Context, all bool) (*topFrame, error) {
	f := &topFrame{admin: c.shown, at: time.Now()}
	gets := []struct {
		path string
		v    any
	}{
		{"api/v1/stats?seconds=" + strconv.Itoa(topHistory), &f.stats},
		{"api/v1/groups", &f.groups},
		{"api/v1/pools", &f.pools},
	}
	if all {
		gets = append(gets, struct {
			path string
			v    any
		}{"api/v1/listeners", &f.listeners}, struct {
			path string
			v    any
		}{"api/v1/errors", &f.errors})
	}
	for _, g := range gets {
		if err := c.get(ctx, g.path, g.v); err != nil {
			return nil, err
		}
	}
	var ready string
	if err := c.get(ctx, "readyz", &ready); err != nil {
		var se *statusErr
		if !errors.As(err, &se) || se.code != http.StatusServiceUnavailable {
			return nil, err
		}
		ready = "not ready: " + se.msg
	}
	f.ready = ready
	return f, nil
}

// statusErr is an answer other than 200.
type statusErr struct {
	code int
	msg  string
}

func (e *statusErr) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

// get GETs path and decodes its JSON answer into v (a *string takes a text answer).
func (c *topClient) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.shown, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.shown, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(b))
		var e admin.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		se := &statusErr{resp.StatusCode, msg}
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("admin API at %s: %w (give the token with --token-file)", c.shown, se)
		}
		if s, ok := v.(*string); ok && resp.StatusCode == http.StatusServiceUnavailable {
			*s = msg
		}
		return se
	}
	if s, ok := v.(*string); ok {
		*s = strings.TrimSpace(string(b))
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("admin API at %s: %s: %v", c.shown, path, err)
	}
	return nil
}

// loop redraws a frame every interval until ctx ends. On a terminal it hides the cursor
// and redraws in place; elsewhere frames follow each other.
func (c *topClient) loop(ctx context.Context, w io.Writer, tty bool) int {
	interval := c.interval
	if tty {
		fmt.Fprint(w, "\x1b[?25l\x1b[H\x1b[2J") // hide the cursor, clear
		defer fmt.Fprint(w, "\x1b[?25h\n")
	}
	var prev, keep *topFrame
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		all := c.ticks%5 == 0
		c.ticks++
		f, err := c.fetch(ctx, all)
		if ctx.Err() != nil {
			return 0
		}
		var sb strings.Builder
		if err != nil {
			fmt.Fprintf(&sb, "pyro-dispatch top: %v (retrying every %v)\n", err, interval)
			prev = nil
		} else {
			if !all && keep != nil { // listeners and errors from the last full read
				f.listeners, f.errors = keep.listeners, keep.errors
			}
			keep = f
			renderTop(&sb, f, prev, tty)
			prev = f
		}
		if tty {
			// Home, then each line cleared to its end, then the rest of the screen.
			out := strings.ReplaceAll(sb.String(), "\n", "\x1b[K\n")
			fmt.Fprint(w, "\x1b[H"+out+"\x1b[J")
		} else {
			fmt.Fprint(w, sb.String()+"\n")
		}
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
	}
}

// ANSI colors, used on a terminal only.
const (
	ansiReset   = "\x1b[0m"
	ansiBold    = "\x1b[1m"
	ansiDim     = "\x1b[2m"
	ansiRed     = "\x1b[31m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiDefault = "\x1b[39m" // the default color: as long as the others
)

// renderTop writes frame f; prev (nil for none) gives per-member and per-object rates.
func renderTop(w io.Writer, f *topFrame, prev *topFrame, color bool) {
	paint := func(code, s string) string {
		if !color || code == "" {
			return s
		}
		return code + s + ansiReset
	}
	st := &f.stats
	readyColor := ansiGreen
	if f.ready != "ready" {
		readyColor = ansiRed
	}
	fmt.Fprintf(w, "%s  %s  %s  %s\n", paint(ansiBold, "pyro-dispatch top"), f.at.Format("15:04:05"), paint(readyColor, f.ready),
		paint(ansiDim, "admin API "+f.admin))
	if !st.Metrics {
		fmt.Fprintln(w, "metrics are off: the dispatcher's configuration has no admin.listen")
	}
	p := st.Last
	fmt.Fprintf(w, "calls/s %s (%s avg over %d s)   errors %s (%s/s)   p50 %s   p99 %s   sessions %d\n",
		paint(ansiBold, strconv.FormatUint(p.Calls, 10)), bench.FormatFigure(st.Recent.CallsPerSecond), st.Recent.Seconds,
		paint(errColor(st.Recent.ErrorRatio), fmtPct(st.Recent.ErrorRatio)), bench.FormatFigure(st.Recent.ErrorsPerSecond),
		fmtLatency(p.P50, p.Calls), fmtLatency(p.P99, p.Calls), st.Sessions)
	fmt.Fprintf(w, "calls since start %s%s   request bytes %s   reply bytes %s   connections accepted %s%s\n",
		fmtCount(st.Totals.Calls), fmtMap(st.Totals.Outcomes), fmtBytes(st.Totals.RequestBytes), fmtBytes(st.Totals.ReplyBytes),
		fmtCount(st.Totals.Accepted), fmtMap(st.Totals.Refused))
	calls, p99 := make([]float64, len(st.History)), make([]float64, len(st.History))
	var maxCalls, maxP99 float64
	for i, h := range st.History {
		calls[i], p99[i] = float64(h.Calls), h.P99
		maxCalls, maxP99 = math.Max(maxCalls, calls[i]), math.Max(maxP99, p99[i])
	}
	fmt.Fprintf(w, "calls/s, last %d s  %s  max %s\n", len(st.History), sparkline(calls), bench.FormatFigure(maxCalls))
	fmt.Fprintf(w, "p99, last %d s      %s  max %s\n", len(st.History), sparkline(p99), fmtLatency(maxP99, 1))

	// Members, with their calls from the stats and a rate from the previous frame.
	type mkey struct{ group, member string }
	calls1 := map[mkey]metrics.Point{}
	for _, m := range st.Members {
		calls1[mkey{m.Group, m.Member}] = metrics.Point{Calls: m.Calls, Errors: m.Errors}
	}
	calls0 := map[mkey]uint64{}
	dt := 0.0
	if prev != nil {
		dt = f.stats.Time.Sub(prev.stats.Time).Seconds()
		for _, m := range prev.stats.Members {
			calls0[mkey{m.Group, m.Member}] = m.Calls
		}
	}
	rate := func(now uint64, before uint64) string {
		if prev == nil || dt <= 0 || now < before {
			return "-"
		}
		return bench.FormatFigure(float64(now-before) / dt)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	// Every state is colored (or none is), and the header's STATE too with an escape
	// sequence of the same length: tabwriter counts them as width alike on every line.
	fmt.Fprintf(tw, "GROUP\tMEMBER\t%s\tWEIGHT\tIN FLIGHT\tCALLS/S\tCALLS\tERRORS\n", paint(ansiDefault, "STATE"))
	for _, g := range f.groups {
		for _, m := range g.Members {
			k := mkey{g.Name, m.Address}
			c := calls1[k]
			before := calls0[k] // 0 when it had no call yet
			state, code := "up", ansiGreen
			switch {
			case m.Drained && m.Status == "drained":
				state, code = "drained", ansiYellow
			case !m.Up:
				state, code = "out: "+m.Status, ansiRed
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", g.Name, shorten(m.Address, 40), paint(code, state),
				m.Weight, m.InFlight, rate(c.Calls, before), fmtCount(c.Calls), fmtCount(c.Errors))
		}
	}
	tw.Flush()

	if len(f.pools) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "POOL LISTENER\tMEMBER\tOPEN/MAX\tIN USE\tIDLE\tDIALING\tWAITING\tDIALS\tFAILED")
		for _, p := range f.pools {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%d\t%d\t%s\t%s\n", p.Listener, shorten(p.Member, 40), p.Open, p.MaxOpen*max(p.Handshakes, 1),
				p.InUse, p.Idle, p.Dialing, p.Waiting, fmtCount(p.Dials), fmtCount(p.DialFailures))
		}
		tw.Flush()
	}

	if len(st.Objects) > 0 {
		fmt.Fprintln(w)
		before := map[string]float64{}
		if prev != nil {
			for _, o := range prev.stats.Objects {
				before[o.Listener+"\x00"+o.Object+"\x00"+o.Method] = o.Calls
			}
		}
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "BUSIEST LISTENER\tOBJECT\tMETHOD\tCALLS/S\tCALLS\tERRORS")
		for _, o := range st.Objects {
			r := "-"
			if b, ok := before[o.Listener+"\x00"+o.Object+"\x00"+o.Method]; ok && dt > 0 && o.Calls >= b {
				r = bench.FormatFigure((o.Calls - b) / dt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", o.Listener, shorten(o.Object, 40), shorten(o.Method, 30), r,
				fmtCount(uint64(o.Calls)), fmtCount(uint64(o.Errors)))
		}
		tw.Flush()
	}

	if len(st.Slowest) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "SLOWEST (last minute)\tLISTENER\tMEMBER\tOBJECT.METHOD\tOUTCOME\tCORRELATION ID")
		for _, s := range st.Slowest[:min(len(st.Slowest), 5)] {
			what := ""
			if s.Object != "" {
				what = s.Object + "." + s.Method
			}
			fmt.Fprintf(tw, "%s  %s\t%s\t%s\t%s\t%s\t%s\n", s.Time.Local().Format("15:04:05"), fmtLatency(s.Seconds, 1), s.Listener,
				shorten(s.Member, 40), shorten(what, 40), s.Outcome, s.Corr)
		}
		tw.Flush()
	}

	if len(f.listeners) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "LISTENER\tADDRESSES\tMODE\tTLS\tCLIENTS")
		for _, l := range f.listeners {
			tls := l.TLS
			if tls == "" {
				tls = "no"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", l.Name, strings.Join(l.Addresses, ","), l.Mode, shorten(tls, 40), l.Clients)
		}
		tw.Flush()
	}

	if n := len(f.errors); n > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "RECENT WARNINGS AND ERRORS")
		for i := n - 1; i >= max(n-5, 0); i-- {
			e := f.errors[i]
			keys := make([]string, 0, len(e.Fields))
			for k := range e.Fields {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var fields []string
			for _, k := range keys {
				fields = append(fields, k+"="+e.Fields[k])
			}
			code := ansiYellow
			if e.Level != "warn" {
				code = ansiRed
			}
			fmt.Fprintf(w, "%s %s %s %s\n", e.Time.Local().Format("15:04:05"), paint(code, fmt.Sprintf("%-5s", e.Level)), e.Message,
				paint(ansiDim, shorten(strings.Join(fields, " "), 120)))
		}
	}
}

func errColor(ratio float64) string {
	switch {
	case ratio >= 0.05:
		return ansiRed
	case ratio > 0:
		return ansiYellow
	}
	return ""
}

// sparkline draws values as a line of block characters scaled to their maximum.
func sparkline(vs []float64) string {
	const blocks = "▁▂▃▄▅▆▇█"
	runes := []rune(blocks)
	var top float64
	for _, v := range vs {
		top = math.Max(top, v)
	}
	var b strings.Builder
	for _, v := range vs {
		switch {
		case v <= 0 || top == 0:
			b.WriteRune(' ')
		default:
			i := int(math.Ceil(v/top*float64(len(runes)))) - 1
			b.WriteRune(runes[min(max(i, 0), len(runes)-1)])
		}
	}
	return b.String()
}

func fmtPct(r float64) string {
	if r > 0 && r < 0.001 {
		return strconv.FormatFloat(100*r, 'f', 3, 64) + "%"
	}
	return strconv.FormatFloat(100*r, 'f', 1, 64) + "%"
}

// fmtLatency formats seconds; "-" when there were no calls.
func fmtLatency(s float64, calls uint64) string {
	if calls == 0 || s <= 0 {
		return "-"
	}
	switch d := time.Duration(s * float64(time.Second)); {
	case d >= time.Second:
		return strconv.FormatFloat(s, 'f', 2, 64) + "s"
	case d >= time.Millisecond:
		return strconv.FormatFloat(s*1e3, 'f', 2, 64) + "ms"
	default:
		return strconv.FormatFloat(s*1e6, 'f', 0, 64) + "µs"
	}
}

// fmtCount groups the digits of n by thousands: 1,234,567.
func fmtCount(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// fmtMap writes non-zero counts as " (k v, k v)", sorted by key; "" when none.
func fmtMap(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return ""
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " " + fmtCount(m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func fmtBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatUint(n, 10) + " B"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}

// shorten cuts s to n runes, keeping its start and end.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	h := (n - 1) / 2
	return string(r[:h]) + "…" + string(r[len(r)-(n-1-h):])
}
