package dispatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
	"github.com/pyro-dispatch/pyro-dispatch/tlsfiles"
)

// Server owns the listeners and every client session. Start it, then Shutdown it; it
// starts one goroutine per listening socket (the accept loop) and one per client
// connection. Reload swaps its routes, groups and listeners while it serves.
type Server struct {
	cfg            config.Config
	log            *zap.Logger
	clientLimits   frame.Limits
	upstreamLimits frame.Limits
	bufferedLimit  int
	accessLog      bool
	probe          routing.Probe
	backendTLS     atomic.Pointer[backendTLS] // the TLS side of dials to groups with tls
	rates          *rates                     // per client IP rate limits; nil when none
	metrics        *metrics.Metrics           // nil without an admin listener
	nextID         atomic.Uint64              // session ids
	objects        objectLabels               // metrics.objects
	watch          *watcher                   // sockets no goroutine reads: hang-ups of idle backends, parked clients
	parkStop       chan struct{}              // ends parkIdle (nil: not running)
	parkDone       chan struct{}
	parkOnce       sync.Once
	parkEvery      time.Duration // parkIdle's period: parkSweep (tests make it shorter)

	table     atomic.Pointer[routing.Table]
	reloadMu  sync.Mutex  // serializes Start, Reload and Shutdown's listener changes
	listeners []*listener // guarded by reloadMu
	acceptWG  sync.WaitGroup
	sessionWG sync.WaitGroup
	draining  atomic.Bool

	mu       sync.Mutex
	sessions map[*Session]struct{}
	perIP    map[string]int
	pools    map[*handshakes]struct{} // every listener's handshakes not closed yet
}

// listener is one listening socket. Its state (the listener's configuration, router and
// pools) is swapped by Reload; each client session keeps the state it was accepted with.
type listener struct {
	name string
	addr string // as configured
	net.Listener
	st atomic.Pointer[lnState]
}

// lnState is a listener configuration in service: what the sessions it accepted use.
type lnState struct {
	name       string
	cfg        config.Listener
	router     *routing.Router
	pooled     bool
	handshakes *handshakes // pooled mode: shared by the listener's addresses
	affinity   []string    // pooled mode: object patterns pinned to one upstream
	hmac       hmacKeys
	tls        *tlsfiles.Server // terminates its clients' TLS; nil without tls
	nsv        *nsView          // the name-server view; nil without one

	mu       sync.Mutex
	sessions int  // sessions accepted with this state and still open
	retired  bool // replaced by a reload: close what it owns once its sessions end
	owns     bool // on retirement, handshakes are its own to close (not carried over)
}

// NewServer checks cfg and prepares a server; nothing listens before Start.
func NewServer(cfg config.Config, log *zap.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		cfg:       cfg,
		log:       log,
		parkEvery: parkSweep,
		clientLimits: frame.Limits{
			MaxMessageSize: int64(cfg.Limits.MaxMessageSize),
			MaxAnnotations: int(cfg.Limits.MaxAnnotations),
		},
		upstreamLimits: frame.Limits{MaxAnnotations: 65535},
		bufferedLimit:  int(cfg.Limits.BufferedPayload),
		accessLog:      cfg.Log.Access,
		rates:          newRates(cfg.Limits),
		sessions:       map[*Session]struct{}{},
		perIP:          map[string]int{},
		pools:          map[*handshakes]struct{}{},
	}
	s.probe = s.probeMember
	if cfg.Admin.Listen != "" {
		s.metrics = metrics.New()
		s.metrics.Registry.MustRegister(stateCollector{s})
		s.objects = newObjectLabels(cfg.Metrics.Objects)
		errs := s.metrics.Errors()
		s.log = s.log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, errs) }))
	}
	bt, err := newBackendTLS(&s.cfg, &backendTLS{})
	if err != nil {
		return nil, err
	}
	s.backendTLS.Store(bt)
	t, err := routing.Compile(&s.cfg, nil, s.log)
	if err != nil {
		return nil, err
	}
	s.table.Store(t)
	states, err := s.states(&s.cfg, t, nil)
	if err != nil {
		return nil, err
	}
	for _, lc := range s.cfg.Listeners {
		for _, a := range lc.Listen {
			l := &listener{name: lc.Name, addr: a}
			l.st.Store(states[lc.Name])
			s.listeners = append(s.listeners, l)
		}
	}
	return s, nil
}

// states builds the listener states of cfg over table t. A listener of the same name,
// mode and pool settings in prev keeps its pools.
func (s *Server) states(cfg *config.Config, t *routing.Table, prev map[string]*lnState) (map[string]*lnState, error) {
	out := map[string]*lnState{}
	for _, lc := range cfg.Listeners {
		st := &lnState{name: lc.Name, cfg: lc, router: t.Router(lc.Name), pooled: lc.Mode == config.ModePooled, affinity: lc.Affinity}
		keys, err := readHMACKeys(lc.HMAC)
		if err != nil {
			return nil, fmt.Errorf("listener %s: hmac: %w", lc.Name, err)
		}
		st.hmac = keys
		if st.tls, err = listenerTLS(lc.TLS, prev[lc.Name]); err != nil {
			return nil, fmt.Errorf("listener %s: tls: %w", lc.Name, err)
		}
		if lc.NameServerView() {
			if old := prev[lc.Name]; old != nil && old.nsv != nil && sameView(&old.cfg, &lc) {
				st.nsv = old.nsv
			} else if st.nsv, err = newNSView(s, &lc); err != nil {
				return nil, err
			}
		}
		var poolKey []byte // what the pools sign with
		if keys.resign() {
			poolKey = keys.backend
		}
		if st.pooled {
			if old := prev[lc.Name]; old != nil && old.pooled && old.cfg.Pool == lc.Pool && bytes.Equal(old.handshakes.key, poolKey) {
				st.handshakes = old.handshakes
			} else {
				hs, err := newHandshakes(lc.Name, lc.Pool, s, poolKey)
				if err != nil {
					return nil, err
				}
				st.handshakes, st.owns = hs, true
			}
		}
		out[lc.Name] = st
	}
	return out, nil
}

// Start opens every listening socket, starts the health checks and starts accepting. If
// a socket cannot be opened, the others are closed again and the error names the address.
func (s *Server) Start() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if err := openAll(s.listeners); err != nil {
		return err
	}
	if err := startViews(viewsOf(s.inService()), nil); err != nil {
		for _, l := range s.listeners {
			l.Close()
		}
		return err
	}
	s.table.Load().StartHealth(s.probe)
	s.watch = newWatcher()
	if s.watch != nil {
		s.parkStop, s.parkDone = make(chan struct{}), make(chan struct{})
		go s.parkIdle(s.parkStop, s.parkDone)
	}
	for _, l := range s.listeners {
		s.serve(l)
	}
	return nil
}

// openAll opens the sockets of ls, or none of them.
func openAll(ls []*listener) error {
	for i, l := range ls {
		ln, err := listen(l.addr)
		if err != nil {
			for _, o := range ls[:i] {
				o.Close()
			}
			return fmt.Errorf("listener %s: %w", l.name, err)
		}
		l.Listener = ln
	}
	return nil
}

// serve starts the accept loop of an open listener.
func (s *Server) serve(l *listener) {
	s.acceptWG.Add(1)
	go s.acceptLoop(l)
}

// Addrs returns the bound address of every listening socket, in configuration order.
func (s *Server) Addrs() []net.Addr {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		if l.Listener != nil {
			out = append(out, l.Addr())
		}
	}
	return out
}

// Table returns the routing in service.
func (s *Server) Table() *routing.Table { return s.table.Load() }

// Reload puts a new configuration in service at once: routes and backend groups, and
// listeners (new ones open, removed ones stop accepting; a listener whose mode or pool
// settings changed serves new clients with the new ones). Clients connected before keep
// their backend connection (session mode) and their calls in flight; pools of removed
// members and listeners close once their calls are done. Limits, timeouts and log
// settings stay as they were started (Changed lists them). When cfg is invalid or a new
// socket cannot be opened, nothing changes and the error says why.
func (s *Server) Reload(cfg config.Config) error {
	err := s.reload(cfg)
	if s.metrics != nil {
		s.metrics.Reloaded(err == nil)
	}
	return err
}

func (s *Server) reload(cfg config.Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.draining.Load() {
		return errors.New("shutting down")
	}
	old := s.table.Load()
	t, err := routing.Compile(&cfg, old, s.log)
	if err != nil {
		return err
	}
	prev := s.inService()
	states, err := s.states(&cfg, t, prev)
	if err != nil {
		return err
	}
	bt, err := newBackendTLS(&cfg, s.backendTLS.Load())
	if err != nil {
		return err
	}
	// Sockets: keep those still configured, open the new ones (all or none), close the rest.
	have := map[[2]string]*listener{}
	for _, l := range s.listeners {
		have[[2]string{l.name, l.addr}] = l
	}
	var kept, added []*listener
	for _, lc := range cfg.Listeners {
		for _, a := range lc.Listen {
			if l := have[[2]string{lc.Name, a}]; l != nil {
				delete(have, [2]string{lc.Name, a})
				kept = append(kept, l)
			} else {
				added = append(added, &listener{name: lc.Name, addr: a})
			}
		}
	}
	if err := openAll(added); err != nil {
		return err
	}
	curViews, nextViews := viewsOf(prev), viewsOf(states)
	if err := startViews(nextViews, curViews); err != nil {
		for _, l := range added {
			l.Close()
		}
		return err
	}
	// From here on nothing fails.
	s.cfg.Backends, s.cfg.Listeners = cfg.Backends, cfg.Listeners
	s.backendTLS.Store(bt)
	s.table.Store(t)
	old.Retire(t)
	t.StartHealth(s.probe)
	for _, l := range append(kept, added...) {
		l.st.Store(states[l.name])
	}
	for _, l := range have { // removed: stop accepting; its sessions carry on
		l.Close()
	}
	for name, st := range prev {
		if next := states[name]; next != nil && next.handshakes == st.handshakes {
			st.mu.Lock()
			st.owns = false // carried over
			st.mu.Unlock()
		}
		st.retire()
	}
	for _, st := range states {
		if st.handshakes != nil {
			st.handshakes.prune()
		}
	}
	s.listeners = append(kept, added...)
	for _, l := range added {
		s.serve(l)
	}
	stopViews(curViews, nextViews)
	return nil
}

// inService returns the listener states in service, by listener name.
func (s *Server) inService() map[string]*lnState {
	out := map[string]*lnState{}
	for _, l := range s.listeners {
		out[l.name] = l.st.Load()
	}
	return out
}

// Changed names the settings of cfg that differ from those in service and that Reload
// does not change (they need a restart).
func (s *Server) Changed(cfg config.Config) []string {
	var out []string
	if cfg.Limits != s.cfg.Limits {
		out = append(out, "limits")
	}
	if cfg.Timeouts != s.cfg.Timeouts {
		out = append(out, "timeouts")
	}
	if cfg.Log != s.cfg.Log {
		out = append(out, "log")
	}
	if cfg.Admin != s.cfg.Admin {
		out = append(out, "admin")
	}
	if !slices.Equal(cfg.Metrics.Objects, s.cfg.Metrics.Objects) {
		out = append(out, "metrics")
	}
	if !slices.EqualFunc(cfg.HTTP, s.cfg.HTTP, sameHTTPListener) {
		out = append(out, "http")
	}
	return out
}

// sameHTTPListener compares HTTP gateway listeners but for their routing, which a reload
// changes.
func sameHTTPListener(a, b config.HTTPListener) bool {
	a.Backend, a.Balance, a.BackendTLS, a.Routes = nil, "", nil, nil
	b.Backend, b.Balance, b.BackendTLS, b.Routes = nil, "", nil, nil
	return reflect.DeepEqual(a, b)
}

// hold counts a session accepted with st.
func (st *lnState) hold() {
	st.mu.Lock()
	st.sessions++
	st.mu.Unlock()
}

// drop ends a session's hold on st; the last one out of a retired state closes its pools.
func (st *lnState) drop() {
	st.mu.Lock()
	st.sessions--
	done := st.retired && st.sessions == 0 && st.owns
	st.mu.Unlock()
	if done {
		st.handshakes.close()
	}
}

// retire marks st replaced; its pools close now if no session uses them.
func (st *lnState) retire() {
	st.mu.Lock()
	st.retired = true
	done := st.sessions == 0 && st.owns && st.handshakes != nil
	st.mu.Unlock()
	if done {
		st.handshakes.close()
	}
}

// listen opens a TCP or unix listening socket. A stale unix socket file (one nobody
// listens on) is removed first.
func listen(addr string) (net.Listener, error) {
	network, address, err := config.ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen(network, address)
	if err != nil && network == "unix" && errors.Is(err, syscall.EADDRINUSE) {
		if c, derr := net.Dial("unix", address); derr == nil {
			c.Close()
		} else if fi, serr := os.Stat(address); serr == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(address)
			ln, err = net.Listen(network, address)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", addr, err)
	}
	return ln, nil
}

func (s *Server) acceptLoop(l *listener) {
	defer s.acceptWG.Done()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", zap.String("listener", l.name), zap.Error(err), zap.Duration("retry_in", backoff))
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		st := l.st.Load()
		if st.tls != nil {
			c = tls.Server(c, st.tls.Config()) // its handshake is the session's first step
		}
		sess := newSession(s, st, c)
		if s.metrics != nil {
			s.metrics.Accepted(st.name)
		}
		reason, cause, ok := s.admit(sess)
		if !ok {
			s.log.Warn("closing client: far over the connection limit", zap.Stringer("client", remoteAddr{c}), zap.String("reason", reason))
			c.Close()
			s.release(sess)
			continue
		}
		sess.refusal, sess.refusalCause = reason, cause
		s.sessionWG.Add(1) // until the session ends (run)
		go sess.run(false)
	}
}

// rejectBacklog is how many connections over the limit are still read and answered with
// a CONNECTFAIL; past that they are closed at once.
const rejectBacklog = 256

// admit registers a new session against the connection limits. A non-empty reason means
// it is over a limit: it gets a CONNECTFAIL with that reason instead of a backend.
// ok is false when it is so far over that it is closed without an answer.
func (s *Server) admit(sess *Session) (reason, cause string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[sess] = struct{}{}
	if sess.ip != "" {
		s.perIP[sess.ip]++
	}
	lim := s.cfg.Limits
	switch {
	case lim.MaxConnections > 0 && len(s.sessions) > lim.MaxConnections:
		reason, cause = "pyro-dispatch: too many client connections (limit "+strconv.Itoa(lim.MaxConnections)+")", causeLimit
		ok = len(s.sessions) <= lim.MaxConnections+rejectBacklog
	case lim.MaxConnectionsPer > 0 && sess.ip != "" && s.perIP[sess.ip] > lim.MaxConnectionsPer:
		reason, cause = "pyro-dispatch: too many connections from "+sess.ip+" (limit "+strconv.Itoa(lim.MaxConnectionsPer)+")", causeLimit
		ok = s.perIP[sess.ip] <= lim.MaxConnectionsPer+rejectBacklog
	default:
		reason, cause, ok = sess.ipr.connectRefusal(s.rates, sess.ip), causeRate, true
	}
	return reason, cause, ok
}

// release forgets a finished session.
func (s *Server) release(sess *Session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	if sess.ip != "" {
		if s.perIP[sess.ip]--; s.perIP[sess.ip] <= 0 {
			delete(s.perIP, sess.ip)
		}
	}
	s.mu.Unlock()
	sess.st.drop()
}

// Sessions returns the number of client connections open now.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) isDraining() bool { return s.draining.Load() }

// Shutdown stops accepting, lets in-flight calls finish and closes idle clients at once.
// When ctx ends first, the remaining connections are closed and ctx's error returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.reloadMu.Lock()
	s.draining.Store(true)
	for _, l := range s.listeners {
		if l.Listener != nil {
			l.Close()
		}
	}
	stopViews(viewsOf(s.inService()), nil)
	s.reloadMu.Unlock()
	s.acceptWG.Wait()
	s.table.Load().Retire(nil)
	s.stopParking()
	s.mu.Lock()
	for sess := range s.sessions {
		sess.wakeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.sessionWG.Wait()
		close(done)
	}()
	defer s.watch.stop()
	defer s.closePools(false)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.closeClient()
			if up := sess.upstreamConn(); up != nil {
				up.Close()
			}
		}
		s.mu.Unlock()
		s.closePools(true) // ends pipelined calls: their sessions wait for them before closing
		<-done
		return ctx.Err()
	}
}

// parkSweep is how often parkIdle looks at the sessions. Once freeAfterParking sessions
// parked (asked by an earlier sweep), the memory of their goroutine stacks is returned to
// the system (debug.FreeOSMemory) at the first sweep that asks no more (or once 8 times as
// many parked), rather than gradually by the runtime.
const (
	parkSweep        = 250 * time.Millisecond
	freeAfterParking = 512
)

// parkIdle runs until stop closes: every parkSweep it asks the pooled sessions idle for
// their listener's pool.park_after to park, resumes parked ones whose idle timeout
// passed, and ends the waits that did not read first after two sweeps (Session.sweep).
func (s *Server) parkIdle(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.parkEvery)
	defer t.Stop()
	parking := 0 // asked in earlier sweeps since memory was last returned
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			asked := 0
			s.mu.Lock()
			for sess := range s.sessions {
				if sess.sweep(now) {
					asked++
				}
			}
			s.mu.Unlock()
			// Those asked before this sweep have parked by now; those asked now have not.
			if parking >= freeAfterParking && (asked == 0 || parking >= 8*freeAfterParking) {
				debug.FreeOSMemory()
				parking = 0
			}
			parking += asked
		}
	}
}

// stopParking ends parkIdle, once.
func (s *Server) stopParking() {
	s.parkOnce.Do(func() {
		if s.parkStop != nil {
			close(s.parkStop)
			<-s.parkDone
		}
	})
}

// closePools closes the upstream pools of pooled listeners, those of listener states
// retired by a reload included: once all sessions ended, or (abort) on a forced shutdown,
// to end the pipelined calls that sessions wait for.
func (s *Server) closePools(abort bool) {
	s.mu.Lock()
	all := make([]*handshakes, 0, len(s.pools))
	for hs := range s.pools {
		all = append(all, hs)
	}
	s.mu.Unlock()
	for _, hs := range all {
		if abort {
			hs.abort()
		} else {
			hs.close()
		}
	}
}

// clientIP returns the peer IP of a TCP connection, "" for unix sockets.
func clientIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}
