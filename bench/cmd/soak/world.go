package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/config"
)

// This file: what the soak runs against. The dispatcher (the built binary, serve
// --config, its admin listener on), the backends (real Pyro4 daemons, the Go echo
// daemon), their ports and configuration, and the processes it starts: each one killed
// by its own PID, and waited for.

// The soak's listeners: a plain one and an HMAC one for each mode.
var listenerNames = []string{"session", "pooled", "pipelined", "session-hmac", "pooled-hmac", "pipelined-hmac"}

// The backend groups, each of two members (and go-c, which reloads add to go and take
// out again).
const (
	groupGo     = "go"     // Go echo daemons: object "echo"
	groupPy     = "py"     // real Pyro4 daemons: objects soak.echo, soak.stream
	groupPyHMAC = "pyhmac" // the same processes' HMAC-signed daemons
)

// Pool settings of the pooled listeners, small enough for pool exhaustion to be reached.
const (
	pooledMaxOpen    = 8
	pipelinedMaxOpen = 4
	pipelinedDepth   = 8
	poolWait         = time.Second
	maxMessageSize   = 64 << 20
)

// Path is where a call goes: its listener and the group its route picks.
type Path struct {
	Listener string `json:"listener"`
	Group    string `json:"group"`
}

func (p Path) String() string { return p.Listener + "→" + p.Group }

// hmacListener reports whether listener l re-signs HMAC: its clients sign with the
// client key, its daemons (group pyhmac) with the backend key.
func hmacListener(l string) bool { return strings.HasSuffix(l, "-hmac") }

// modeOf is a listener's mode as the soak names it: session, pooled or pipelined.
func modeOf(l string) string { return strings.TrimSuffix(l, "-hmac") }

// pathsOf are the paths of listener l.
func pathsOf(l string) []Path {
	if hmacListener(l) {
		return []Path{{l, groupPyHMAC}}
	}
	return []Path{{l, groupGo}, {l, groupPy}}
}

// pathsTo are the paths that end in one of groups.
func pathsTo(groups ...string) []Path {
	var ps []Path
	for _, l := range listenerNames {
		for _, p := range pathsOf(l) {
			for _, g := range groups {
				if p.Group == g {
					ps = append(ps, p)
				}
			}
		}
	}
	return ps
}

// backend is a backend process: a Python process with a plain and an HMAC daemon
// (members of py and pyhmac), or a Go echo daemon (a member of go).
type backend struct {
	name   string // py-a, py-b, go-a, go-b, go-c
	python bool
	port   int // the plain daemon's, or the echo daemon's
	hport  int // the HMAC daemon's (python)

	mu sync.Mutex
	p  *proc
}

// groups are the groups b is a member of.
func (b *backend) groups() []string {
	if b.python {
		return []string{groupPy, groupPyHMAC}
	}
	return []string{groupGo}
}

func (b *backend) proc() *proc {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.p
}

// world is everything the soak started, and where.
type world struct {
	opt       options
	dir       string // work directory: configuration, keys, logs
	ports     map[string]int
	backends  []*backend
	clientKey string // HMAC: what clients sign with
	adminTok  string
	header    time.Duration // the dispatcher's timeouts.header
	disp      *proc

	mu      sync.Mutex
	procs   map[*proc]struct{}
	variant int // the configuration in effect (reloads)
}

// addr is the 127.0.0.1 address of the named port.
func (w *world) addr(name string) string { return "127.0.0.1:" + strconv.Itoa(w.ports[name]) }

func (w *world) backend(name string) *backend {
	for _, b := range w.backends {
		if b.name == name {
			return b
		}
	}
	panic("no backend " + name)
}

// freePorts picks n free 127.0.0.1 ports below Linux's ephemeral range (32768 and up):
// while a backend is down, a dial of the dispatcher to it could otherwise take its port
// as a source port and keep the restarted backend from listening there.
func freePorts(rng *rand.Rand, n int) ([]int, error) {
	seen := map[int]bool{}
	var ports []int
	for tries := 0; len(ports) < n && tries < 1000; tries++ {
		p := 20000 + rng.IntN(12000)
		if seen[p] {
			continue
		}
		seen[p] = true
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
			ln.Close()
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		return nil, fmt.Errorf("found %d free ports between 20000 and 32000, need %d", len(ports), n)
	}
	return ports, nil
}

// newWorld picks ports and writes the keys, the admin token and the configuration.
func newWorld(opt options, rng *rand.Rand) (*world, error) {
	w := &world{opt: opt, dir: opt.work, ports: map[string]int{}, procs: map[*proc]struct{}{},
		clientKey: "soak-client-key", adminTok: fmt.Sprintf("soak-%016x", rng.Uint64()), header: config.DefaultHeaderTimeout}
	names := append([]string{"admin", "py-a", "py-a-hmac", "py-b", "py-b-hmac", "go-a", "go-b", "go-c"}, listenerNames...)
	ports, err := freePorts(rng, len(names))
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		w.ports[n] = ports[i]
	}
	for _, n := range []string{"py-a", "py-b"} {
		w.backends = append(w.backends, &backend{name: n, python: true, port: w.ports[n], hport: w.ports[n+"-hmac"]})
	}
	for _, n := range []string{"go-a", "go-b", "go-c"} {
		w.backends = append(w.backends, &backend{name: n, port: w.ports[n]})
	}
	files := map[string]string{"client.key": w.clientKey, "backend.key": "soak-backend-key", "admin.token": w.adminTok}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(w.dir, name), []byte(content+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	return w, w.writeConfig(0)
}

// configPath is the dispatcher's configuration file.
func (w *world) configPath() string { return filepath.Join(w.dir, "soak.yaml") }

// Configuration variants: reloads go from one to another, and the last goes back to 0.
const configVariants = 3

// configYAML is the dispatcher's configuration in variant v: 0 is the base; 1 adds go-c
// to group go with weight 2; 2 balances go by least_inflight and py by round robin
// with weights 1 and 3.
func (w *world) configYAML(v int) string {
	var b strings.Builder
	goBalance, pyBalance, pyWeights := "round_robin", "least_inflight", [2]int{1, 1}
	if v == 2 {
		goBalance, pyBalance, pyWeights = "least_inflight", "round_robin", [2]int{1, 3}
	}
	health := "{interval: 1s, timeout: 500ms, fall: 2, rise: 1}"
	fmt.Fprintf(&b, "# pyro-dispatch soak, configuration variant %d (written by bench/cmd/soak)\nbackends:\n", v)
	fmt.Fprintf(&b, "  - name: %s\n    balance: %s\n    health: %s\n    members:\n      - %s\n      - %s\n",
		groupGo, goBalance, health, w.addr("go-a"), w.addr("go-b"))
	if v == 1 {
		fmt.Fprintf(&b, "      - {address: %s, weight: 2}\n", w.addr("go-c"))
	}
	fmt.Fprintf(&b, "  - name: %s\n    balance: %s\n    health: %s\n    members:\n      - {address: %s, weight: %d}\n      - {address: %s, weight: %d}\n",
		groupPy, pyBalance, health, w.addr("py-a"), pyWeights[0], w.addr("py-b"), pyWeights[1])
	// No health checks: they are unsigned, and these daemons want HMAC.
	fmt.Fprintf(&b, "  - name: %s\n    members:\n      - %s\n      - %s\n", groupPyHMAC, w.addr("py-a-hmac"), w.addr("py-b-hmac"))
	b.WriteString("listeners:\n")
	for _, l := range listenerNames {
		fmt.Fprintf(&b, "  - name: %s\n    listen: %s\n", l, w.addr(l))
		switch modeOf(l) {
		case "session":
			b.WriteString("    mode: session\n")
		case "pooled":
			fmt.Fprintf(&b, "    mode: pooled\n    affinity: [soak.stream]\n    pool: {max_open: %d, wait_timeout: %v}\n", pooledMaxOpen, poolWait)
		case "pipelined":
			fmt.Fprintf(&b, "    mode: pooled\n    affinity: [soak.stream]\n    pool: {max_open: %d, pipeline: %d, wait_timeout: %v}\n",
				pipelinedMaxOpen, pipelinedDepth, poolWait)
		}
		b.WriteString("    routes:\n")
		// Pyro.Daemon: an item stream's get_next_stream_item and close_stream.
		if hmacListener(l) {
			fmt.Fprintf(&b, "      - {match: {object: [\"soak.*\", Pyro.Daemon]}, to: %s}\n", groupPyHMAC)
			fmt.Fprintf(&b, "    hmac: {client_key_file: %s, backend_key_file: %s}\n",
				filepath.Join(w.dir, "client.key"), filepath.Join(w.dir, "backend.key"))
		} else {
			fmt.Fprintf(&b, "      - {match: {object: echo}, to: %s}\n", groupGo)
			fmt.Fprintf(&b, "      - {match: {object: [\"soak.*\", Pyro.Daemon]}, to: %s}\n", groupPy)
		}
	}
	fmt.Fprintf(&b, "limits: {max_message_size: %d}\n", maxMessageSize)
	fmt.Fprintf(&b, "admin: {listen: %s, token_file: %s}\n", w.addr("admin"), filepath.Join(w.dir, "admin.token"))
	b.WriteString("log: {level: info, format: json}\n")
	return b.String()
}

// writeConfig validates variant v and writes it, atomically, as the configuration file.
func (w *world) writeConfig(v int) error {
	text := w.configYAML(v)
	if _, err := config.ParseConfig([]byte(text)); err != nil {
		return fmt.Errorf("configuration variant %d: %w", v, err)
	}
	tmp := w.configPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		return err
	}
	w.mu.Lock()
	w.variant = v
	w.mu.Unlock()
	return os.Rename(tmp, w.configPath())
}

// proc is a process the soak started. It is stopped by its own PID only, and waited
// for; its stderr goes to a log file in the work directory, its stdout lines to a
// callback.
type proc struct {
	name  string
	cmd   *exec.Cmd
	first chan string   // its first stdout line
	done  chan struct{} // closed once it exited and its output was read
	err   error         // of Wait, set before done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// signal sends sig to the process unless it has exited.
func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
	}
}

// kill SIGKILLs the process and waits for it.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to grace, then kills.
func (p *proc) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.kill()
	}
}

// ready waits up to d for the process's first line.
func (p *proc) ready(d time.Duration) (string, error) {
	select {
	case l := <-p.first:
		return l, nil
	case <-p.done:
		select {
		case l := <-p.first:
			return l, nil
		default:
		}
		return "", fmt.Errorf("%s exited before it was ready: %v (see %s.log)", p.name, p.err, p.name)
	case <-time.After(d):
		return "", fmt.Errorf("%s printed nothing in %v (see %s.log)", p.name, d, p.name)
	}
}

// start starts a process; lines, when set, gets every line it prints on stdout.
func (w *world) start(name string, lines func(string), argv ...string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(w.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = w.opt.repo
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, first: make(chan string, 1), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	w.mu.Lock()
	w.procs[p] = struct{}{}
	w.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 0; sc.Scan(); n++ {
			if n == 0 {
				p.first <- sc.Text()
			}
			if lines != nil {
				lines(sc.Text())
			}
		}
		io.Copy(io.Discard, out)
		p.err = cmd.Wait()
		logf.Close()
		w.mu.Lock()
		delete(w.procs, p)
		w.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// close kills every process the soak started that is still running.
func (w *world) close() {
	w.mu.Lock()
	ps := slices.Collect(maps.Keys(w.procs))
	w.mu.Unlock()
	for _, p := range ps {
		p.kill()
	}
}

// startBackend starts b on its ports and waits until it listens; a port still held
// (by the process just killed) is tried again for up to 10 s.
func (w *world) startBackend(b *backend) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var argv []string
		if b.python {
			argv = []string{w.opt.python, "-u", "interop/testdata/soak_daemon.py", "--port", strconv.Itoa(b.port),
				"--hmac-port", strconv.Itoa(b.hport), "--hmac-key", "soak-backend-key",
				"--stall", strconv.FormatFloat(stallSeconds.Seconds(), 'f', -1, 64)}
		} else {
			argv = []string{w.opt.bin, "echo", "--listen", "127.0.0.1:" + strconv.Itoa(b.port), "--quiet"}
		}
		p, err := w.start(b.name, nil, argv...)
		if err != nil {
			return err
		}
		if _, err := p.ready(20 * time.Second); err == nil {
			b.mu.Lock()
			b.p = p
			b.mu.Unlock()
			return nil
		} else if time.Now().After(deadline) {
			p.kill()
			return err
		}
		p.kill()
		time.Sleep(50 * time.Millisecond)
	}
}

// startDispatcher starts `pyro-dispatch serve --config` and waits until its admin
// listener says it is ready (every listener listening, every group with a member).
func (w *world) startDispatcher(ctx context.Context, adm *adminClient) error {
	p, err := w.start("dispatcher", nil, w.opt.bin, "serve", "--config", w.configPath())
	if err != nil {
		return err
	}
	w.disp = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := adm.get(ctx, "/readyz"); err == nil {
			return nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the dispatcher is not ready after 30s: %v (see dispatcher.log)", err)
		}
		select {
		case <-p.done:
			return fmt.Errorf("the dispatcher exited: %v (see dispatcher.log)", p.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// adminClient asks the dispatcher's admin listener, with its token.
type adminClient struct {
	base, token string
	hc          *http.Client
}

func (a *adminClient) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %.200s", path, resp.Status, b)
	}
	return b, err
}

// errNoMetric is a metric missing from /metrics.
var errNoMetric = errors.New("no such metric")

// metric sums the samples of the named metric in Prometheus text exposition.
func metric(exposition []byte, name string) (float64, error) {
	var sum float64
	found := false
	for line := range strings.Lines(string(exposition)) {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("%w: %s", errNoMetric, name)
	}
	return sum, nil
}
