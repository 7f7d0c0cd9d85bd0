package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// Server owns the listeners and every client session. Start it, then Shutdown it; it
// starts one goroutine per listener (the accept loop) and one per client connection.
type Server struct {
	cfg            config.Config
	log            *zap.Logger
	clientLimits   frame.Limits
	upstreamLimits frame.Limits
	bufferedLimit  int
	accessLog      bool

	listeners []*listener
	acceptWG  sync.WaitGroup
	sessionWG sync.WaitGroup
	draining  atomic.Bool

	mu       sync.Mutex
	sessions map[*Session]struct{}
	perIP    map[string]int
}

var enableRandPool sync.Once

// listener is one listening socket and the router of its listener config.
type listener struct {
	name string
	addr string // as configured
	net.Listener
	router     Router
	pooled     bool
	handshakes *handshakes // pooled mode: shared by the listener's addresses
	affinity   []string    // pooled mode: object patterns pinned to one upstream
}

// NewServer checks cfg and prepares a server; nothing listens before Start. Each
// listener's clients go to its configured backend unless routers names another Router
// for that listener.
func NewServer(cfg config.Config, log *zap.Logger, routers map[string]Router) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	// Correlation ids come from a buffered pool of randomness: no syscall per call.
	enableRandPool.Do(uuid.EnableRandPool)
	s := &Server{
		cfg: cfg,
		log: log,
		clientLimits: frame.Limits{
			MaxMessageSize: int64(cfg.Limits.MaxMessageSize),
			MaxAnnotations: int(cfg.Limits.MaxAnnotations),
		},
		upstreamLimits: frame.Limits{MaxAnnotations: 65535},
		bufferedLimit:  int(cfg.Limits.BufferedPayload),
		accessLog:      cfg.Log.Access,
		sessions:       map[*Session]struct{}{},
		perIP:          map[string]int{},
	}
	for _, lc := range cfg.Listeners {
		r := routers[lc.Name]
		if r == nil {
			sr, err := NewStaticRouter(lc.Backend)
			if err != nil {
				return nil, err
			}
			r = sr
		}
		var hs *handshakes
		if lc.Mode == config.ModePooled {
			var err error
			if hs, err = newHandshakes(lc.Pool, s); err != nil {
				return nil, err
			}
		}
		for _, a := range lc.Listen {
			s.listeners = append(s.listeners, &listener{name: lc.Name, addr: a, router: r,
				pooled: hs != nil, handshakes: hs, affinity: lc.Affinity})
		}
	}
	return s, nil
}

// Start opens every listening socket and starts accepting. If one cannot be opened, the
// others are closed again and the error names the address.
func (s *Server) Start() error {
	for i, l := range s.listeners {
		ln, err := listen(l.addr)
		if err != nil {
			for _, o := range s.listeners[:i] {
				o.Close()
			}
			return fmt.Errorf("listener %s: %w", l.name, err)
		}
		l.Listener = ln
	}
	for _, l := range s.listeners {
		s.acceptWG.Add(1)
		go s.acceptLoop(l)
	}
	return nil
}

// Addrs returns the bound address of every listening socket, in configuration order.
func (s *Server) Addrs() []net.Addr {
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		if l.Listener != nil {
			out = append(out, l.Addr())
		}
	}
	return out
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
		sess := newSession(s, l, c)
		reason, ok := s.admit(sess)
		if !ok {
			s.log.Warn("closing client: far over the connection limit", zap.Stringer("client", remoteAddr{c}), zap.String("reason", reason))
			c.Close()
			s.release(sess)
			continue
		}
		sess.refusal = reason
		s.sessionWG.Add(1)
		go func() {
			defer s.sessionWG.Done()
			sess.run()
		}()
	}
}

// rejectBacklog is how many connections over the limit are still read and answered with
// a CONNECTFAIL; past that they are closed at once.
const rejectBacklog = 256

// admit registers a new session against the connection limits. A non-empty reason means
// it is over a limit: it gets a CONNECTFAIL with that reason instead of a backend.
// ok is false when it is so far over that it is closed without an answer.
func (s *Server) admit(sess *Session) (reason string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[sess] = struct{}{}
	if sess.ip != "" {
		s.perIP[sess.ip]++
	}
	lim := s.cfg.Limits
	switch {
	case lim.MaxConnections > 0 && len(s.sessions) > lim.MaxConnections:
		reason = "pyro-dispatch: too many client connections (limit " + strconv.Itoa(lim.MaxConnections) + ")"
		ok = len(s.sessions) <= lim.MaxConnections+rejectBacklog
	case lim.MaxConnectionsPer > 0 && sess.ip != "" && s.perIP[sess.ip] > lim.MaxConnectionsPer:
		reason = "pyro-dispatch: too many connections from " + sess.ip + " (limit " + strconv.Itoa(lim.MaxConnectionsPer) + ")"
		ok = s.perIP[sess.ip] <= lim.MaxConnectionsPer+rejectBacklog
	default:
		ok = true
	}
	return reason, ok
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
	s.draining.Store(true)
	for _, l := range s.listeners {
		if l.Listener != nil {
			l.Close()
		}
	}
	s.acceptWG.Wait()
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
	defer s.closePools()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for sess := range s.sessions {
			sess.client.Close()
			if up := sess.upstreamConn(); up != nil {
				up.Close()
			}
		}
		s.mu.Unlock()
		s.closePools() // ends pipelined calls: their sessions wait for them before closing
		<-done
		return ctx.Err()
	}
}

// closePools closes the upstream pools of pooled listeners: once all sessions ended, or
// on a forced shutdown to end the pipelined calls that sessions wait for.
func (s *Server) closePools() {
	seen := map[*handshakes]bool{}
	for _, l := range s.listeners {
		if l.handshakes != nil && !seen[l.handshakes] {
			seen[l.handshakes] = true
			l.handshakes.close()
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
