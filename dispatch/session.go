package dispatch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/rawsock"
	"github.com/pyro-dispatch/pyro-dispatch/internal/splice"
	"github.com/pyro-dispatch/pyro-dispatch/metrics"
	"github.com/pyro-dispatch/pyro-dispatch/pool"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// Session is one client connection and its upstream: in session mode its own backend
// connection for its whole life; in pooled mode a connection leased from the pool of its
// handshake for each call, or for good once pinned. Its goroutine runs the whole life of
// the connection; the per-message path is this file.
type Session struct {
	srv     *Server
	st      *lnState // the listener state it was accepted with
	client  net.Conn
	addr    netip.Addr   // client IP, invalid on unix sockets
	ip      string       // client IP for per-IP limits, "" on unix sockets
	ipr     *ipRates     // its rate limits, nil when none
	hm      *sessionHMAC // re-signs its messages (listener hmac keys that differ); nil when not
	refusal string       // non-empty when over a connection limit: the CONNECTFAIL reason
	// refusalCause is the metrics cause of refusal (causeLimit or causeRate).
	refusalCause string
	id           uint64             // for the admin API
	pinReason    string             // why pinned (pooled mode)
	stats        sessionStats       // for the admin API; under mu, kept only with metrics on
	cs           *metrics.CallStats // metrics of calls to csMember (recordCall); nil before the first
	csMember     *routing.Member
	log          *zap.Logger // with the session's fields; built by logger() when first needed

	*scratch                 // what serving a message needs; nil while parked
	group    *routing.Group  // where the CONNECT or (pooled mode) the current call goes
	pin      *routing.Member // the one member of group it goes to (a learned object id); nil: by balance
	// The serializer policies that apply (session mode: as at the CONNECT; pooled: as
	// at the last call's routing): the listener's, and the route's with its index.
	lpolicy, policy config.SerializerSet
	// The guard of a wait that does not read first (armedConn.early off: the reply was
	// written as the read was armed), under mu: waits counts the waits for a request
	// (wrapping); guardSeen is the wait the last sweep saw; untried, this wait's read did
	// not read first; guardPoked, a sweep ended this wait (see sweep).
	waits, guardSeen uint16
	rule             int
	member           *routing.Member // the current upstream's daemon
	upstream         net.Conn        // the current upstream: for the session, or for the call (pooled)
	cr, ur           *frame.Reader
	cl, up           *armedConn // client and (session mode) upstream, as cr and ur read them

	hs     *handshake    // pooled mode: this client's handshake with the current member
	hsSeen [4]*handshake // pooled mode: its handshakes with other members, recently used
	lease  pool.Lease    // pooled mode: the leased upstream (Conn nil when none)
	// Pipelined pooled mode: while pending, call belongs to the mux connection that will
	// deliver its reply, and s.head, s.corr and writes to the client are not the
	// session's to touch until awaitCall. Allocated at the first pipelined call.
	call    *pipelinedCall
	pending bool
	pinned  bool // pooled mode: keep the lease until the client disconnects
	// affinityUnknown: pooled mode, the CONNECT named no object; the first INVOKE decides.
	affinityUnknown bool
	counted         bool // member.Begin was called for the connection or call
	upDeadline      bool // a read deadline is set on upstream
	clDeadline      bool // a read deadline is set on client
	untried         bool // (the guard's, above)
	guardPoked      bool
	// (The fields are ordered to pack: an idle client's memory counts, and a Session
	// over 512 bytes takes the next size class: TestSessionSize.)

	mu     sync.Mutex // guards busy, hungUp, upstream and parking against Server.Shutdown and the watcher
	busy   bool
	hungUp bool   // session mode: the daemon closed the backend connection
	hupID  uint32 // session mode: its token with the server's watcher

	// Parking (pooled mode, see park): idleAt is when the session began waiting for the
	// client's next request, as time since stats.started (0: not yet); parkAsked: the
	// sweep asked it to park in this wait (at most once); parked: it has no goroutine
	// and parkID is its watcher token.
	idleAt    time.Duration
	parkAsked bool
	parked    bool
	resumed   bool // the wait continues (after parking, or asked to park): idleAt stands
	// calm (under mu) counts the client's first waits without a sign that it sends
	// before it has its reply (calmNever: it did); from calmCalls on, its reads wait
	// without reading first (armedConn.early off).
	calm   uint8
	parkID uint32
}

// A client connection's reads are tried first (armedConn.early) for its first calmCalls
// waits, and for good once the client sent before it had its reply (calmNever): a
// short-lived or odd client never meets the guard's delay, a Pyro4 client's calls make
// one system call fewer each (a read that would find nothing).
const (
	calmCalls = 8
	calmNever = math.MaxUint8
)

// scratch is a session's working state for the message it serves: allocated with the
// session, dropped while it is parked (over half of what an idle session would hold).
type scratch struct {
	req   routing.Request     // the CONNECT or call being routed
	nsbuf []byte              // a name server reply with its URIs translated (name-server view)
	head  []byte              // a rewritten header and annotations
	corr  [frame.CorrLen]byte // the current call's correlation id
	w     writer              // writing one message
}

// clientReadBuffer is the initial read buffer of a client connection: a CONNECT and most
// calls fit; it grows on demand. Small, because idle clients are most clients.
const clientReadBuffer = 448

// logger returns the session's logger, with listener, client and backend fields. It is
// built on first use: most sessions never log, and a logger with fields costs memory.
func (s *Session) logger() *zap.Logger {
	if s.log == nil {
		fields := []zap.Field{zap.String("listener", s.st.name), zap.Stringer("client", remoteAddr{s.client})}
		if s.member != nil && !s.st.pooled { // pooled calls name their backend per call
			fields = append(fields, zap.String("backend", s.member.Addr))
		}
		s.log = s.srv.log.With(fields...)
	}
	return s.log
}

// debug logs at debug level, building the session logger only when that level is on.
func (s *Session) debug(msg string, fields ...zap.Field) {
	if s.srv.log.Core().Enabled(zapcore.DebugLevel) {
		s.logger().Debug(msg, fields...)
	}
}

func (s *Session) upstreamConn() net.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.upstream
}

func newSession(srv *Server, st *lnState, c net.Conn) *Session {
	st.hold()
	s := &Session{srv: srv, st: st, client: c, ip: clientIP(c), cl: newArmedConn(c, true), id: srv.nextID.Add(1), scratch: &scratch{}}
	s.ipr = srv.rates.of(s.ip)
	s.stats.started = time.Now()
	if _, ok := c.(*tls.Conn); ok {
		s.w.pipe = splice.New() // copies through its buffer: nothing to splice, no allocation per copy
	}
	s.hm = newSessionHMAC(st.hmac)
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		s.addr, _ = netip.AddrFromSlice(a.IP)
		s.addr = s.addr.Unmap()
	}
	s.cr = frame.NewReader(s.cl, clientReadBuffer, srv.clientLimits)
	return s
}

// run serves the session on its goroutine until either side closes, an error, or
// shutdown (the Server's sessionWG counts it until then), or until it parks; resumed
// continues a parked session. A panic ends the session only (recoverPanic).
func (s *Session) run(resumed bool) {
	if !s.serve(resumed) {
		s.srv.sessionWG.Done()
	}
}

// serve is run's work; it reports true when the session parked: then the watcher owns
// it, and nothing here may touch it any more.
func (s *Session) serve(resumed bool) (parked bool) {
	defer func() {
		if !parked {
			s.closeAll()
		}
	}()
	defer s.recoverPanic()
	if resumed {
		s.scratch = &scratch{}
		s.debug("parked client resumed")
	} else {
		if tc, ok := s.client.(*tls.Conn); ok && !s.acceptTLS(tc) {
			return false
		}
		if !s.handshake() {
			return false
		}
	}
	for {
		switch s.waitRequest() {
		case gotRequest:
			if err := s.relayCall(); err != nil {
				s.logEnd(err)
				return false
			}
		case toEnd:
			return false
		case toPark:
			if s.park() {
				return true
			}
		}
	}
}

// recoverPanic, deferred by run, recovers a panic in the session's goroutine: it is
// logged with the client and the stack and counted, then run's closeAll closes the
// client's connection and what the session holds upstream (a leased connection is
// destroyed, never pooled).
func (s *Session) recoverPanic() {
	if p := recover(); p != nil {
		var backend []zap.Field
		if s.member != nil {
			backend = append(backend, zap.String("backend", s.member.Addr))
		}
		s.srv.recovered(p, "panic serving a client: closing its connection", s.st.name, s, backend...)
	}
}

// handshake reads the client's CONNECT, picks and dials the backend, forwards the CONNECT
// and relays the backend's answer. It reports whether calls may follow.
func (s *Session) handshake() bool {
	s.setClientDeadline(s.srv.cfg.Timeouts.Header)
	m, err := s.cr.Next()
	if errors.Is(err, io.EOF) {
		s.debug("client closed before CONNECT") // a port probe or health check
		return false
	}
	if err != nil {
		s.logEnd(fmt.Errorf("reading CONNECT: %w", err))
		return false
	}
	if m.Header.Type != frame.Connect {
		s.logEnd(fmt.Errorf("protocol violation: first message is %v, want CONNECT", m.Header.Type))
		return false
	}
	if limit := max(s.srv.bufferedLimit, config.DefaultBufferedPayload); m.Header.DataLen > limit {
		s.logEnd(fmt.Errorf("CONNECT payload of %d bytes over the %d byte limit", m.Header.DataLen, limit))
		return false
	}
	if err := s.cr.ReadRest(&m); err != nil {
		s.logEnd(fmt.Errorf("reading CONNECT: %w", err))
		return false
	}
	s.setClientDeadline(0)
	if s.refusal != "" {
		s.connectFail(&m, s.refusalCause, s.refusal)
		return false
	}
	if s.hm != nil {
		// As a Pyro4 daemon with a key: a CONNECTFAIL (signed with the client key, so the
		// client's own check gives it the daemon's error), then the connection closes.
		if err := s.hm.reqVerify.Verify(m.Payload, m.Annotations); err != nil {
			s.connectFail(&m, causeHMAC, "pyro-dispatch: "+err.Error())
			return false
		}
	}
	r := s.router()
	s.lpolicy = r.Policy()
	if err := s.checkSerializer(m.Header.Serializer, s.lpolicy, -1); err != nil {
		s.connectFail(&m, causePolicy, err.Error())
		s.logger().Warn("refused client: serializer policy", zap.Error(err))
		return false
	}
	s.req.Reset(true, s.addr, &m)
	d := r.Decide(&s.req)
	if d.Group == nil {
		s.connectFail(&m, causeDenied, "pyro-dispatch: "+d.Deny)
		return false
	}
	if err := s.checkSerializer(m.Header.Serializer, d.Serializers, d.Rule); err != nil {
		s.connectFail(&m, causePolicy, err.Error())
		s.logger().Warn("refused client: serializer policy", zap.Error(err))
		return false
	}
	s.group, s.pin, s.policy, s.rule = d.Group, d.Member, d.Serializers, d.Rule
	if s.st.pooled {
		if s.hm != nil {
			s.hm.unsigned(&m) // the pools sign it with the backend key
		}
		return s.handshakePooled(&m, d.Group)
	}
	return s.handshakeSession(&m, d.Group)
}

// router returns the routes in service for the session's listener: those of the last
// reload, or the session's own when a reload removed its listener.
func (s *Session) router() *routing.Router {
	if r := s.srv.table.Load().Router(s.st.name); r != nil {
		return r
	}
	return s.st.router
}

// reroute decides the call's group again when member, just picked, left the
// configuration in a reload (its pool closed under the call): a reload never fails a
// call. It sets a to walk the new group (a.g nil: member is still configured, no
// reroute), at most a few times per call; a refusal by the new routes is the error.
func (s *Session) reroute(a *attempt, member *routing.Member) error {
	if !member.Retired() || a.reroutes >= maxReroutes {
		a.g = nil
		return nil
	}
	d := s.router().Decide(&s.req)
	if d.Group == nil {
		return &deniedError{d.Deny}
	}
	s.group, s.pin = d.Group, d.Member
	*a = attempt{g: d.Group, pin: d.Member, reroutes: a.reroutes + 1}
	return nil
}

// maxReroutes bounds how often one call is routed again because reloads removed the
// members it picked.
const maxReroutes = 3

// route decides where a pooled call goes (s.group). A PING goes where the CONNECT went: it
// names no object for a rule to read. A refusal is the error.
func (s *Session) route(m *frame.Message) error {
	if m.Header.Type != frame.Invoke {
		return nil
	}
	if m.Remaining > 0 && m.Header.DataLen <= s.srv.bufferedLimit {
		// Read now what is read anyway before it is sent: the rules see all of it.
		if err := s.cr.ReadRest(m); err != nil {
			return &copyError{fromClient: true, err: err}
		}
	}
	s.req.Reset(false, s.addr, m)
	r := s.router()
	s.lpolicy = r.Policy()
	d := r.Decide(&s.req)
	if d.Group == nil {
		return &deniedError{d.Deny}
	}
	s.group, s.pin, s.policy, s.rule = d.Group, d.Member, d.Serializers, d.Rule
	return nil
}

// policyError is a message refused by a serializer policy; the client gets Pyro4's
// SerializeError, as from a daemon that does not accept the serializer.
type policyError struct{ reason string }

func (e *policyError) Error() string { return e.reason }

// checkPolicies applies the listener's and the route's serializer policies to a call.
func (s *Session) checkPolicies(ser frame.Serializer) error {
	if err := s.checkSerializer(ser, s.lpolicy, -1); err != nil {
		return err
	}
	return s.checkSerializer(ser, s.policy, s.rule)
}

// checkSerializer applies a serializer policy (the listener's when rule is -1, else that
// route's) to a message in serializer ser.
func (s *Session) checkSerializer(ser frame.Serializer, p config.SerializerSet, rule int) error {
	if p.Allows(ser) {
		return nil
	}
	whose := "listener " + s.st.name
	if rule >= 0 {
		whose = fmt.Sprintf("route %d of listener %s", rule, s.st.name)
	}
	return &policyError{fmt.Sprintf("pyro-dispatch: message used serializer that is not accepted: %v (the policy of %s accepts %v)", ser, whose, p)}
}

// deniedError is a call the routes refuse, with the rule's reason.
type deniedError struct{ reason string }

func (e *deniedError) Error() string { return e.reason }

// handshakeSession dials the session's own backend connection to a member of group g,
// forwards the CONNECT and relays the backend's answer. While members cannot be reached
// (dial or handshake failed) the next is tried, within the dial timeout.
func (s *Session) handshakeSession(m *frame.Message, g *routing.Group) bool {
	a := attempt{g: g, pin: s.pin}
	dial := s.srv.cfg.Timeouts.Dial
	deadline := time.Now().Add(dial)
	for {
		member, err := a.next(&s.req)
		if err != nil {
			s.connectFail(m, causeBackend, "pyro-dispatch: "+err.Error())
			return false
		}
		s.member, s.log = member, nil // the logger is rebuilt with the backend field
		timeout := time.Duration(0)
		if dial > 0 {
			timeout = max(time.Until(deadline), time.Millisecond)
		}
		ok, err := s.connectTo(m, member, timeout)
		if a.retry(member, err) {
			if dial == 0 || time.Now().Before(deadline) {
				continue
			}
			s.connectFail(m, causeBackend, "pyro-dispatch: "+g.NoHealthy(a.errs).Error())
			return false
		}
		if ok {
			member.Succeeded()
			member.Begin()
			s.counted = true
			s.hupID = s.srv.watch.watchHangup(s, s.upstream)
		}
		return ok
	}
}

// connectTo dials member, forwards the CONNECT m and relays the answer, reporting whether
// calls may follow. A *pool.DialError means the member could not be reached or failed
// before it answered: nothing was relayed, and another member may be tried.
func (s *Session) connectTo(m *frame.Message, member *routing.Member, timeout time.Duration) (bool, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	up, err := s.srv.dialMember(ctx, member)
	if err != nil {
		return false, &pool.DialError{Err: err}
	}
	s.up = newArmedConn(up, false)
	s.setUpstream(up, frame.NewReader(s.up, 0, s.srv.upstreamLimits))
	failed := func(err error) (bool, error) {
		up.Close()
		s.up, s.upDeadline = nil, false
		s.setUpstream(nil, nil)
		return false, &pool.DialError{Err: fmt.Errorf("backend %s failed during the handshake: %v", member.Addr, err)}
	}
	seq := m.Header.Seq
	corr, err := s.forwardRequest(m, true)
	if err != nil {
		return failed(err)
	}
	s.setUpstreamDeadline(s.srv.cfg.Timeouts.Dial + s.srv.cfg.Timeouts.Call)
	r, err := s.ur.Next()
	if err == nil && r.Header.Seq != seq {
		err = fmt.Errorf("backend answered CONNECT seq %d with seq %d", seq, r.Header.Seq)
	}
	if err == nil && r.Header.Type != frame.ConnectOK && r.Header.Type != frame.ConnectFail {
		err = fmt.Errorf("backend answered CONNECT with %v", r.Header.Type)
	}
	if err != nil {
		return failed(err)
	}
	ok := r.Header.Type == frame.ConnectOK
	if err := s.forwardReply(&r); err != nil {
		s.logEnd(fmt.Errorf("relaying %v: %w", r.Header.Type, err))
		return false, nil
	}
	s.setUpstreamDeadline(0)
	if !ok {
		s.logger().Info("backend rejected the handshake", zap.Stringer("corr", corrID(corr)))
		return false, nil
	}
	s.debug("connected", zap.Stringer("corr", corrID(corr)), zap.Stringer("serializer", m.Header.Serializer))
	return true, nil
}

// waitResult is how waitRequest ended.
type waitResult int

const (
	gotRequest waitResult = iota // a request came: relay it
	toEnd                        // the session ends
	toPark                       // the sweep asked an idle session to park
)

// waitRequest waits for the client's next request under the idle timeout, and marks the
// session busy when one came.
func (s *Session) waitRequest() waitResult {
	if s.calm != calmNever && s.cr.Buffered() > 0 {
		s.sendsFirst() // bytes after the request just answered came with it
	}
	var idleAt time.Duration // parking is for pooled sessions only: no clock read otherwise
	if s.st.pooled && !s.resumed {
		idleAt = time.Since(s.stats.started)
	}
	s.mu.Lock()
	s.busy = false
	hungUp := s.hungUp
	if !s.resumed {
		s.idleAt, s.parkAsked = idleAt, false
	}
	resumed := s.resumed
	s.resumed = false
	if s.calm < calmCalls && s.srv.watch != nil { // the guard needs the server's sweep
		s.calm++
		s.cl.early = s.calm < calmCalls
	}
	s.waits++
	s.untried, s.guardPoked = s.cl.untried(), false
	s.mu.Unlock()
	if hungUp {
		s.logHungUp()
		return toEnd
	}
	if s.srv.isDraining() {
		return toEnd
	}
	var until time.Time // the wait's deadline (zero: none)
	switch idle := s.srv.cfg.Timeouts.Idle; {
	case idle > 0 && resumed: // the idle time counts from before parking
		until = s.stats.started.Add(s.idleAt + idle)
	case idle > 0:
		until = time.Now().Add(idle)
	}
	if !until.IsZero() || s.clDeadline {
		s.client.SetReadDeadline(until)
		s.clDeadline = !until.IsZero()
	}
	var err error
	var asked, poked bool
	for retried := false; ; retried = true {
		err = s.cr.Wait()
		s.mu.Lock()
		s.busy = err == nil
		hungUp, asked, poked = s.hungUp, s.parkAsked, s.guardPoked
		s.untried, s.guardPoked = false, false
		retry := poked && !asked && !hungUp && errors.Is(err, os.ErrDeadlineExceeded) && !s.srv.isDraining()
		if retry { // the guard ended a wait that did not read first: it reads now
			s.client.SetReadDeadline(until)
			s.clDeadline = !until.IsZero()
		}
		s.mu.Unlock()
		if !retry {
			if retried && err == nil && s.cl.found {
				s.sendsFirst()
			}
			break
		}
	}
	switch {
	case hungUp: // a request that came meanwhile is not sent: the daemon is gone
		s.logHungUp()
	case err == nil:
		if asked || poked || s.srv.isDraining() {
			// The sweep or Shutdown may have set a deadline just before busy: clear it.
			s.clDeadline = true
			s.setClientDeadline(0)
		}
		return gotRequest
	case s.srv.isDraining():
		s.debug("closed idle client for shutdown")
	case errors.Is(err, io.EOF):
		s.debug("client closed the connection")
	case errors.Is(err, os.ErrDeadlineExceeded) && asked && !s.idleTimedOut():
		return toPark
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.logger().Info("closed idle client", zap.Duration("idle_timeout", s.srv.cfg.Timeouts.Idle))
	default:
		s.logEnd(fmt.Errorf("waiting for a request: %w", err))
	}
	return toEnd
}

// sendsFirst notes that the client sends before it has its reply, which a Pyro4 client
// never does: its socket is read before each wait from now on (armedConn.early).
func (s *Session) sendsFirst() {
	s.mu.Lock()
	s.cl.early, s.calm = true, calmNever
	s.mu.Unlock()
	s.debug("the client sent before it had its reply (it pipelines, or ended its side): its socket is read before each wait from now on")
}

// park ends the session's goroutine while its client is idle (pooled mode; asked by the
// server's sweep once the client has been idle for pool.park_after): its read buffer and
// scratch are freed and the server's watcher watches its socket. The client's next
// request or its end, the idle timeout or Shutdown give it a goroutine again (unpark),
// which goes on waiting as before. A session holding more than its client's socket (a
// pinned or leased upstream, a pipelined call not answered yet, bytes of a request, TLS
// state) is not parked. It reports whether the session parked: then it belongs to the
// watcher.
func (s *Session) park() bool {
	s.resumed = true // parked or not, the same wait goes on: idleAt stands
	s.clDeadline = true
	s.setClientDeadline(0) // the sweep's
	if s.pending {         // a pipelined call: answered by now, unless it is slow
		select {
		case <-s.call.done:
			s.pending = false
		default:
			return false
		}
	}
	if _, ok := s.client.(*tls.Conn); ok || s.lease.Conn != nil || s.upstream != nil || len(s.cl.out) > 0 || !s.cr.Release() {
		return false
	}
	s.debug("idle client parked", zap.Duration("idle", s.idleFor(time.Now())))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv.isDraining() || s.hungUp {
		return false
	}
	if s.parkID = s.srv.watch.watchParked(s); s.parkID == 0 {
		return false
	}
	// The watcher may take it now, but resumes it only once s.mu is unlocked.
	s.parked, s.cl.out, s.scratch = true, nil, nil
	return true
}

// unpark gives a parked session a goroutine again; the watcher calls it once it took the
// session's registration (its client sent something, or left).
func (s *Session) unpark() {
	s.mu.Lock()
	s.parked = false
	s.mu.Unlock()
	go s.run(true)
}

// resumeLocked (s.mu held) takes a parked session back from the watcher and gives it a
// goroutine again, unless the watcher took it first (then it calls unpark).
func (s *Session) resumeLocked() {
	if s.srv.watch.forget(s.parkID) {
		s.parked = false
		go s.run(true)
	}
}

// isParked reports whether the session is parked now.
func (s *Session) isParked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parked
}

// closeClient closes the client's connection from outside the session's goroutine; a
// parked session gets one again first, to end.
func (s *Session) closeClient() {
	s.mu.Lock()
	if s.parked {
		s.resumeLocked()
	}
	s.mu.Unlock()
	s.client.Close()
}

// sweep, called by the server's sweep (parkIdle), asks a pooled session idle for
// pool.park_after to park (once per wait; its wait ends with a deadline) and resumes a
// parked one whose idle timeout passed, to end it. It reports whether it asked. In any
// mode it ends a wait that did not read first once a second sweep sees it (the guard;
// a client connection reads first always where the server has no sweep: early).
func (s *Session) sweep(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.untried && !s.busy && !s.guardPoked {
		// A wait whose read did not read first is safe from a Pyro4 client, which sends
		// only once it has its reply; one that sent before (pipelining, or ending its
		// side) may have done so before the read was armed, which RawConn.Read forgets.
		// The second sweep to see the same wait ends it, and the session reads then.
		if s.guardSeen == s.waits {
			s.guardPoked = true
			s.client.SetReadDeadline(now)
		}
		s.guardSeen = s.waits
	}
	if !s.st.pooled {
		return false
	}
	switch {
	case s.parked:
		if idle := s.srv.cfg.Timeouts.Idle; idle > 0 && s.idleFor(now) >= idle {
			s.resumeLocked()
		}
	case !s.busy && !s.parkAsked && s.idleAt > 0 && s.idleFor(now) >= s.st.cfg.Pool.ParkAfter:
		s.parkAsked = true
		s.client.SetReadDeadline(now)
		return true
	}
	return false
}

// idleTimedOut reports whether the session has waited for its client's next request for
// the idle timeout.
func (s *Session) idleTimedOut() bool {
	idle := s.srv.cfg.Timeouts.Idle
	return idle > 0 && s.idleFor(time.Now()) >= idle
}

// idleFor is how long the session has been waiting for its client's next request at now.
func (s *Session) idleFor(now time.Time) time.Duration { return now.Sub(s.stats.started) - s.idleAt }

// relayCall moves one request to the backend and, unless it is oneway, the backend's
// reply back. An error ends the session.
func (s *Session) relayCall() error {
	s.awaitCall() // a Pyro4 client sends its next request after the reply: no wait
	start := time.Now()
	if !s.cr.NextBuffered() { // usually it is: no deadline to set
		s.setClientDeadline(s.srv.cfg.Timeouts.Header)
	}
	m, err := s.cr.Next()
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	if m.Remaining > 0 && m.Header.DataLen > s.srv.bufferedLimit {
		s.setClientDeadline(0) // a large payload may take its time: it is spliced as it comes
	}
	if m.Header.Type != frame.Invoke && m.Header.Type != frame.Ping {
		return fmt.Errorf("protocol violation: %v message where INVOKE or PING belongs", m.Header.Type)
	}
	if s.hm != nil {
		if err := s.hm.verifyRequest(s.cr, &m); fromClient(err) {
			return fmt.Errorf("reading request: %w", err)
		} else if err != nil {
			// As a Pyro4 daemon with a key: no reply, the connection closes.
			s.logger().Warn("closing client: its message failed the HMAC check with client_key", zap.Error(err),
				zap.Stringer("type", m.Header.Type))
			return errLogged
		}
	}
	h := m.Header
	if h.Type == frame.Invoke && !s.ipr.callAllowed() {
		return s.refuseCall(&m, s.srv.rates.callRefusal(s.ip))
	}
	// A PING's payload is never deserialized (Pyro4's Message.ping uses id 42); pooled
	// calls are routed, and checked, each on its own below.
	if h.Type == frame.Invoke && !s.st.pooled {
		if err := s.checkPolicies(h.Serializer); err != nil {
			return s.refuseCall(&m, err)
		}
	}
	oneway := h.Type == frame.Invoke && h.Flags.Has(frame.FlagOneway)
	var object, method string
	if (s.srv.accessLog || len(s.srv.objects) > 0) && h.Type == frame.Invoke {
		object, method = s.peekCall(&m)
	}
	// A reply whose URIs the name-server view translates is relayed by the session itself.
	nsCall := s.st.nsv != nil && h.Type == frame.Invoke && s.isNSCall(&m)
	if s.srv.metrics != nil {
		corr, _ := m.Annotations.Lookup(frame.CORR)
		s.beginCall(start, corr, object, method)
	}
	if s.affinityUnknown && h.Type == frame.Invoke {
		if obj, _, err := frame.PeekInvoke(h.Serializer, h.Flags, m.Payload); err == nil {
			s.pinAffinity(obj)
		} else {
			// Pickled or compressed: the object may be one with per-connection state on the
			// backend (instance_mode "session", tracked resources), so keep it safe.
			s.affinityUnknown, s.pinned, s.pinReason = false, true, "object unreadable by affinity patterns"
			s.debug("pinned to one upstream connection: object unreadable with affinity patterns", zap.Error(err))
		}
	}
	if s.st.pooled {
		if err := s.route(&m); fromClient(err) {
			return fmt.Errorf("reading request: %w", err)
		} else if err != nil {
			return s.refuseCall(&m, fmt.Errorf("pyro-dispatch: %w", err))
		}
		if h.Type == frame.Invoke {
			if err := s.checkPolicies(h.Serializer); err != nil {
				return s.refuseCall(&m, err)
			}
		}
		if s.hs.mux != nil && !s.pinned && !nsCall {
			return s.relayPipelined(&m, start, object, method)
		}
	}
	_, nested := m.Annotations.Lookup(frame.CORR)
	if err := s.attach(nested, false); err != nil {
		return s.refuseCall(&m, err)
	}
	if corr, _ := m.Annotations.Lookup(frame.CORR); s.st.pooled && s.leftWhileWaiting(start, h, corr, object, method) {
		s.detach() // nothing was written: the connection is clean
		return errLogged
	}
	unsent := m.Remaining // of a large request: still in the client's socket
	corr, err := s.forwardRequest(&m, !oneway)
	s.setClientDeadline(0)
	// A write that failed before any of the client's unbuffered bytes were taken can be
	// made again: a small request is buffered whole, a large one's buffered prefix is.
	// io.CopyN does not count the bytes it took but could not write (lostInCopy).
	replayable := m.Header.DataLen <= s.srv.bufferedLimit || m.Remaining == unsent && !lostInCopy(err)
	if err != nil && !fromClient(err) && s.st.pooled && !s.pinned && replayable {
		var refused error
		if err, refused = s.resend(&m, nested, err); refused != nil {
			return s.refuseCall(&m, refused) // nothing of it reached a daemon
		}
	}
	if err != nil {
		if fromClient(err) {
			return err
		}
		return s.upstreamLost(h, corr, object, method, start, err)
	}
	if oneway {
		s.detach()
		s.logCall(s.member, h, corr, object, method, start, metrics.Oneway, 0)
		return nil
	}
	s.setUpstreamDeadline(s.srv.cfg.Timeouts.Call)
	r, err := s.ur.Next()
	if err != nil && s.st.pooled && !s.pinned && heldWriteFailed(err) {
		// The request, held for this read (armedConn), could not be written: as when a
		// write made at once fails (above), nothing of it reached a daemon.
		var refused error
		if err, refused = s.resend(&m, nested, err); refused != nil {
			return s.refuseCall(&m, refused)
		}
		if err == nil {
			r, err = s.ur.Next()
		}
	}
	if err == nil && r.Header.Seq != h.Seq {
		err = fmt.Errorf("backend answered seq %d with seq %d: stream out of step", h.Seq, r.Header.Seq)
	}
	if err != nil {
		return s.upstreamLost(h, corr, object, method, start, err)
	}
	outcome := metrics.OK
	if r.Header.Flags.Has(frame.FlagException) {
		outcome = metrics.Exception
	}
	if r.Header.Flags.Has(frame.FlagItemStreamResult) && s.lease.Conn != nil && !s.pinned {
		// The backend keeps the item stream on this connection: so must the client.
		s.pinned, s.pinReason = true, "item stream"
		s.debug("pinned to its upstream connection: item stream", zap.Stringer("corr", corrID(corr)))
	}
	size := r.Header.DataLen
	if panicHook != nil {
		panicHook(s, atReply)
	}
	relayed := false
	if nsCall && !r.Header.Flags.Has(frame.FlagException) {
		relayed, err = s.forwardNSReply(&r)
	}
	if err == nil && !relayed {
		err = s.forwardReply(&r)
	}
	if err != nil {
		err = fmt.Errorf("relaying reply: %w", err)
		if fromClient(err) {
			return err
		}
		// The backend failed in the middle of its reply, or the reply its HMAC check.
		return s.upstreamLost(h, corr, object, method, start, err)
	}
	s.setUpstreamDeadline(0)
	s.detach()
	s.logCall(s.member, h, corr, object, method, start, outcome, size)
	return nil
}

// attach makes sure the session has an upstream for a call: in pooled mode it leases one
// from a member of the call's group unless the session is pinned to one already (a pinned
// client's calls stay on its member). A call that came with a correlation id may be
// nested in a call in flight (a Pyro4 daemon's method calling out gives its calls the
// incoming call's id) whose connection it would otherwise wait for: it gets a connection
// beyond max_open rather than wait. A fresh one is newly dialed (resend).
func (s *Session) attach(nested, fresh bool) error {
	if !s.st.pooled {
		return nil
	}
	if s.lease.Conn == nil {
		a := attempt{g: s.group, pin: s.pin}
		for {
			member, err := a.next(&s.req)
			if err != nil {
				return errors.New("pyro-dispatch: " + err.Error())
			}
			h, err := s.handshakeWith(member)
			if err == nil {
				s.hs, s.member = h, member
				var lease pool.Lease
				if fresh {
					lease, err = s.hs.pool.AcquireNew(context.Background())
				} else if nested && s.hs.pool.Full() {
					lease, err = s.hs.pool.AcquireBeyond(context.Background())
					s.debug("a backend connection beyond pool.max_open for a call that may be nested", zap.Error(err))
				} else {
					lease, err = s.acquire(context.Background(), a.lastResort)
				}
				if err == nil {
					s.lease = lease
					s.setUpstream(lease.Conn, lease.Reader)
					break
				}
			}
			if a.retry(member, err) {
				continue
			}
			if rerr := s.reroute(&a, member); rerr != nil {
				return errors.New("pyro-dispatch: " + rerr.Error())
			} else if a.g != nil {
				continue
			}
			return errors.New("pyro-dispatch: " + poolReason(err, member, s.hs.pool))
		}
	}
	s.member.Begin()
	s.counted = true
	return nil
}

// resend sends a pooled request once more, on a newly dialed connection, after writing
// it to its leased one failed (werr) before the request was written whole: the daemon
// had closed that connection, and a daemon acts on no partial message, so nothing of the
// request reached a daemon. A request that was written whole is never sent again, nor a
// large one once part of it was spliced from the client. It returns the error of that
// second write, or refused when no connection could be had for it.
func (s *Session) resend(m *frame.Message, nested bool, werr error) (err, refused error) {
	s.logger().Info("backend connection closed by the daemon before the request: sending it on a fresh one",
		zap.String("backend", s.member.Addr), zap.Error(werr))
	s.endCount()
	s.lease.Destroy()
	s.lease, s.upDeadline = pool.Lease{}, false
	s.setUpstream(nil, nil)
	if err := s.attach(nested, true); err != nil {
		return nil, err
	}
	return s.w.send(s.upstream, s.cr, m, s.head, s.srv.bufferedLimit, true), nil
}

// waitedLong is how long a call may take to get an upstream connection before its
// client is checked (rawsock.PeerGone) before it is sent.
const waitedLong = time.Millisecond

// leftWhileWaiting reports whether the client of a call that took longer than waitedLong
// since start to be ready to send (waiting for a pooled connection, or for its body)
// has left meanwhile: then the call is dropped, never reaching a daemon, and logged.
func (s *Session) leftWhileWaiting(start time.Time, h frame.Header, corr []byte, object, method string) bool {
	if time.Since(start) < waitedLong || !rawsock.PeerGone(s.client) {
		return false
	}
	s.logger().Info("client left while its call waited for a backend connection: the call is dropped, no daemon sees it",
		zap.Stringer("corr", corrID(corr)), zap.Duration("waited", time.Since(start)))
	s.logCall(s.member, h, corr, object, method, start, metrics.ClientGone, 0)
	return true
}

// endCount ends the member's count of the call (pooled) or connection (session mode).
func (s *Session) endCount() {
	if s.counted {
		s.member.End()
		s.counted = false
	}
}

// detach returns a clean leased upstream to the pool after a call, unless pinned.
func (s *Session) detach() {
	if !s.st.pooled {
		return
	}
	s.endCount()
	if s.lease.Conn == nil || s.pinned {
		return
	}
	s.lease.Release()
	s.lease = pool.Lease{}
	s.setUpstream(nil, nil)
}

// refuseCall answers a request for which no upstream could be had with a Pyro4
// CommunicationError; the client connection stays usable.
func (s *Session) refuseCall(m *frame.Message, why error) error {
	corr, _ := m.Annotations.Lookup(frame.CORR)
	n := copy(s.corr[:], corr)
	if err := s.cr.Discard(m); err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	s.setClientDeadline(0)
	if s.srv.metrics != nil {
		corr, _ := m.Annotations.Lookup(frame.CORR)
		s.recordCall(nil, m.Header, corr, "", "", 0, refusedOutcome(why), 0)
		s.endCall(nil, m.Header, 0)
	}
	class := frame.ExcCommunicationError
	var pe *policyError
	if errors.As(why, &pe) {
		class = frame.ExcSerializeError
	}
	if m.Header.Type == frame.Ping || !m.Header.Flags.Has(frame.FlagOneway) {
		s.sendException(m.Header, s.corr[:n], class, why.Error())
	}
	var re *rateError
	if errors.As(why, &re) {
		s.debug("call refused", zap.Error(why), zap.Stringer("corr", corrID(s.corr[:n])))
	} else {
		s.logger().Warn("call refused", zap.Error(why), zap.Stringer("corr", corrID(s.corr[:n])))
	}
	return nil
}

func (s *Session) setUpstream(c net.Conn, r *frame.Reader) {
	if _, ok := c.(*tls.Conn); ok && s.w.pipe == nil {
		s.w.pipe = splice.New() // copies through its buffer: nothing to splice, no allocation per copy
	}
	s.mu.Lock()
	s.upstream, s.ur = c, r
	s.mu.Unlock()
}

// forwardRequest sends the client's message m to the backend (see rewriteRequest) and
// returns the message's correlation id. With answered, a read of the backend's answer
// follows at once: on the backend connection (the session's own, or the leased one) a
// small request is then written by that read (armedConn), whose error tells when that
// write failed (heldWriteFailed).
func (s *Session) forwardRequest(m *frame.Message, answered bool) ([]byte, error) {
	corr := s.rewriteRequest(m)
	if a := s.armedUpstream(); answered && a != nil {
		if held, err := s.hold(a, s.cr, m, s.head, true); held || err != nil {
			return corr, err
		}
	}
	return corr, s.w.send(s.upstream, s.cr, m, s.head, s.srv.bufferedLimit, true)
}

// armedUpstream returns the session's backend connection as an armedConn: its own in
// session mode, the leased one's in pooled mode (armUpstream).
func (s *Session) armedUpstream() *armedConn {
	if s.up != nil {
		return s.up
	}
	if pc, ok := s.upstream.(*pool.Conn); ok {
		a, _ := pc.Conn.(*armedConn)
		return a
	}
	return nil
}

// hold hands a small message (head, or m's own header and annotations when nil, then the
// payload) to a for its next Read, reading the rest of the payload first. It reports
// false, with nothing done, for a message too large to hold.
func (s *Session) hold(a *armedConn, r *frame.Reader, m *frame.Message, head []byte, srcIsClient bool) (bool, error) {
	if m.Header.DataLen > armLimit || m.Header.DataLen > s.srv.bufferedLimit {
		return false, nil
	}
	if err := r.ReadRest(m); err != nil {
		return true, &copyError{fromClient: srcIsClient, err: err}
	}
	head1, head2 := head, []byte(nil)
	if head == nil {
		head1, head2 = m.Raw, m.Annotations
	}
	if err := a.write(head1, head2, m.Payload); err != nil {
		return true, &copyError{fromClient: !srcIsClient, err: err}
	}
	return true, nil
}

// rewriteRequest puts m's header and annotations for the backend into s.head, with a
// correlation id added when it has none (and is not HMAC-signed: a new chunk would break
// the signature), and returns the message's correlation id.
func (s *Session) rewriteRequest(m *frame.Message) []byte {
	if s.hm != nil {
		return s.resignRequest(m)
	}
	var fresh *[frame.CorrLen]byte
	if _, has := m.Annotations.Lookup(frame.CORR); !has {
		if _, signed := m.Annotations.Lookup(frame.HMAC); !signed {
			id := frame.NewCorr()
			fresh = &id
		}
	}
	var corr []byte
	s.head, _, corr = frame.AppendForward(s.head[:0], m.Header, m.Annotations, m.Header.Seq, fresh)
	n := copy(s.corr[:], corr)
	return s.corr[:n:n]
}

// resignRequest is rewriteRequest when the session re-signs: m (whole and verified) is
// signed with the backend key, its correlation id injected when it had none.
func (s *Session) resignRequest(m *frame.Message) []byte {
	if corr, ok := m.Annotations.Lookup(frame.CORR); ok && len(corr) == frame.CorrLen {
		copy(s.corr[:], corr)
	} else {
		s.corr = frame.NewCorr()
	}
	head, err := s.hm.signRequest(s.head[:0], m, &s.corr)
	if err != nil { // over 64 KiB of annotations with CORR and HMAC: the backend refuses it
		s.logger().Warn("cannot re-sign the request", zap.Error(err))
		head, _ = frame.AppendHead(s.head[:0], m.Header, m.Annotations)
	}
	s.head = head
	return s.corr[:]
}

// forwardReply relays a backend message to the client unchanged (re-signed with the
// client key when the session re-signs). A small one is written by the read of the
// client's next request (armedConn), which follows at once.
func (s *Session) forwardReply(m *frame.Message) error {
	var head []byte
	if s.hm != nil {
		var err error
		if head, err = s.hm.signReply(s.ur, m); err != nil {
			return err
		}
	}
	if held, err := s.hold(s.cl, s.ur, m, head, false); held || err != nil {
		return err
	}
	if err := s.cl.flush(); err != nil {
		return &copyError{fromClient: true, err: err}
	}
	return s.w.send(s.cl, s.ur, m, head, s.srv.bufferedLimit, false)
}

// writer moves messages to a socket, with its own scratch for the pieces of one writev.
type writer struct {
	iov  [3][]byte
	bufs net.Buffers
	raw  rawsock.Writer // the writev to an armedConn's socket, a raw system call
	// within is how long that writev may wait for the socket (sendWithin; 0: no limit).
	within time.Duration
	flat   []byte // the pieces joined, for a connection without writev (TLS: one record)
	// pipe, when set, moves large payloads instead of io.CopyN, and knows which side
	// failed midway and how much it took from the source (see deliver).
	pipe *splice.Pipe
}

// send writes message m, read by r, to dst: head (or, when nil, m's own header and
// annotations) and the payload in one writev when the payload is at most limit bytes,
// otherwise the buffered prefix and then the rest moved from the source socket by
// io.CopyN, which splices between TCP or unix sockets (or by w.pipe). srcIsClient tells
// which side a failure is on (copyError); after io.CopyN a failure is put on the source's
// side unless dstFailed, w.pipe tells the side that failed.
func (w *writer) send(dst net.Conn, r *frame.Reader, m *frame.Message, head []byte, limit int, srcIsClient bool) error {
	if m.Remaining > 0 && m.Header.DataLen <= limit {
		if err := r.ReadRest(m); err != nil { // m's slices may have moved with the buffer
			return &copyError{fromClient: srcIsClient, err: err}
		}
	}
	if head != nil {
		w.iov = [3][]byte{head, nil, m.Payload}
	} else {
		w.iov = [3][]byte{m.Raw, m.Annotations, m.Payload}
	}
	if pc, ok := dst.(*pool.Conn); ok {
		dst = pc.Conn // its armedConn (armUpstream)
	}
	var err error
	switch d := dst.(type) {
	case *armedConn: // its socket's; nothing is held (its owner flushed, or holds nothing)
		dst = d.Conn
		if d.rc != nil {
			_, err = w.raw.WritevWithin(d.Conn, d.rc, w.within, w.iov[:]...)
			break
		}
		err = w.join(dst)
	case syscall.Conn:
		w.bufs = w.iov[:]
		_, err = w.bufs.WriteTo(dst)
	default:
		err = w.join(dst)
	}
	w.iov = [3][]byte{}
	if err != nil {
		return &copyError{fromClient: !srcIsClient, err: err}
	}
	if m.Remaining > 0 && w.pipe != nil {
		if _, err := r.MoveRest(dst, m, w.pipe.Copy); err != nil {
			return &copyError{fromClient: srcIsClient != splice.IsDst(err), err: err}
		}
	} else if m.Remaining > 0 {
		if _, err := r.CopyRest(dst, m); err != nil {
			return &copyError{fromClient: srcIsClient != dstFailed(dst, err), copied: true, err: err}
		}
	}
	return nil
}

// sendWithin is send of a reply (from r, the backend) that the client dst must take
// within timeout (0: no limit). A small reply to an armed connection, written in one
// writev, gets the deadline only if the socket makes it wait (rawsock.Writer.WritevWithin);
// any other gets it from the start. The deadline is cleared afterwards.
func (w *writer) sendWithin(dst net.Conn, r *frame.Reader, m *frame.Message, head []byte, limit int, timeout time.Duration) error {
	if a, ok := dst.(*armedConn); timeout <= 0 || ok && a.rc != nil && m.Header.DataLen <= limit {
		w.within = timeout
		err := w.send(dst, r, m, head, limit, false)
		w.within = 0
		return err
	}
	dst.SetWriteDeadline(time.Now().Add(timeout))
	err := w.send(dst, r, m, head, limit, false)
	dst.SetWriteDeadline(time.Time{})
	return err
}

// dstFailed tells whether io.CopyN's failure err was on dst's side, which its error does
// not say: only a write fails with EPIPE, and a reset was dst's when dst's socket shows
// it (the other's reset would leave dst up).
func dstFailed(dst net.Conn, err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) && rawsock.PeerGone(dst)
}

// join writes w.iov to dst as one piece: TLS would make a record of each piece.
func (w *writer) join(dst net.Conn) error {
	w.flat = append(append(append(w.flat[:0], w.iov[0]...), w.iov[1]...), w.iov[2]...)
	_, err := dst.Write(w.flat)
	return err
}

// copyError is a failure while moving a message, with the side that failed: the client
// (reading from it, or writing to it) or the backend.
type copyError struct {
	fromClient bool
	// copied: it failed in io.CopyN, which may have taken bytes from the source that it
	// neither wrote nor counted (a splice's pipe, a read buffer): they are gone.
	copied bool
	err    error
}

func (e *copyError) Error() string { return e.err.Error() }
func (e *copyError) Unwrap() error { return e.err }

// fromClient reports whether err is a copyError on the client's side.
func fromClient(err error) bool {
	ce := asCopyError(err)
	return ce != nil && ce.fromClient
}

// lostInCopy reports whether err is a copyError of io.CopyN, which may have taken bytes
// from the source that it neither wrote nor counted.
func lostInCopy(err error) bool {
	ce := asCopyError(err)
	return ce != nil && ce.copied
}

// asCopyError returns the copyError in err's chain, or nil.
func asCopyError(err error) *copyError {
	if err == nil { // before ce, which escapes: no allocation per call
		return nil
	}
	var ce *copyError
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}

// msgBackendLost is the warning of a call lost with its backend (upstreamLost, lost).
const msgBackendLost = "backend lost during a call: closing the client's connection, as the daemon's loss would"

// upstreamLost ends the session after its backend failed while a request may have
// reached the daemon (written, reply not complete): the client's connection is closed, as
// the daemon's loss would close it, so that a Pyro4 client raises ConnectionClosedError
// and its own retries (MAX_RETRIES) and _pyroReconnect work as they do directly. The
// request is never sent again. A leased connection is destroyed, and the member ejected.
func (s *Session) upstreamLost(h frame.Header, corr []byte, object, method string, start time.Time, err error) error {
	s.logCall(s.member, h, corr, object, method, start, lostOutcome(err), 0)
	s.member.Failed(err)
	s.endCount()
	if s.lease.Conn != nil {
		s.lease.Destroy()
		s.lease, s.pinned, s.upDeadline = pool.Lease{}, false, false
		s.setUpstream(nil, nil)
	}
	s.logger().Warn(msgBackendLost,
		zap.String("backend", s.member.Addr), zap.Stringer("type", h.Type), zap.Error(err), zap.Stringer("corr", corrID(corr)))
	return errLogged
}

// errLogged ends a session whose reason was logged already.
var errLogged = errors.New("session ended (logged)")

// Why a client was refused at CONNECT: the cause label of
// pyro_dispatch_client_connections_refused_total.
const (
	causeLimit   = "limit"   // max_connections, max_connections_per_ip
	causeRate    = "rate"    // connections_per_second_per_ip
	causeTLS     = "tls"     // its TLS handshake failed
	causeHMAC    = "hmac"    // its CONNECT failed the HMAC check
	causePolicy  = "policy"  // its serializer
	causeDenied  = "denied"  // a route's deny, or no route
	causeBackend = "backend" // no member could be reached or took it
)

// connectFail answers the CONNECT m with a CONNECTFAIL carrying reason, and counts the
// refusal under cause.
func (s *Session) connectFail(m *frame.Message, cause, reason string) {
	if s.srv.metrics != nil {
		s.srv.metrics.RefusedConnection(s.st.name, cause)
	}
	corr, _ := m.Annotations.Lookup(frame.CORR)
	s.connectFail2(m.Header.Serializer, m.Header.Seq, corr, reason)
}

func (s *Session) connectFail2(ser frame.Serializer, seq uint16, corr []byte, reason string) {
	payload, err := frame.AppendStringPayload(nil, ser, reason)
	if err != nil {
		// A serializer we cannot write: marshal, which every Pyro4 client decodes, as the
		// daemon does when it refuses a serializer.
		ser = frame.Marshal
		payload, _ = frame.AppendStringPayload(nil, ser, reason)
	}
	s.writeReply(frame.Header{Type: frame.ConnectFail, Seq: seq, Serializer: ser}, corr, payload)
	s.logger().Warn("refused client", zap.String("reason", reason), zap.Stringer("corr", corrID(corr)))
}

// sendException answers request h with a RESULT carrying a Pyro4 exception.
func (s *Session) sendException(h frame.Header, corr []byte, class, msg string) {
	payload, err := frame.AppendExceptionPayload(nil, h.Serializer, class, msg)
	if err != nil {
		// No reply it could read: it gets a closed connection instead, never neither.
		s.logger().Warn("closing client: cannot encode an exception in its serializer", zap.Error(err),
			zap.String("exception", msg), zap.Stringer("corr", corrID(corr)))
		s.client.Close()
		return
	}
	s.writeReply(frame.Header{Type: frame.Result, Flags: frame.FlagException, Seq: h.Seq, Serializer: h.Serializer}, corr, payload)
}

func (s *Session) writeReply(h frame.Header, corr, payload []byte) {
	var ann frame.Annotations
	if len(corr) == frame.CorrLen {
		ann = frame.AppendAnnotation(nil, frame.CORR, corr)
	}
	var msg []byte
	if s.hm != nil {
		msg = s.hm.signOwn(h, nil, corr, payload)
	} else {
		msg = frame.AppendMessage(nil, h, ann, payload)
	}
	if err := s.writeOwn(msg); err != nil {
		s.debug("could not send error reply", zap.Error(err))
	}
}

// writeOwn writes a message the dispatcher made itself to the client, within the header
// timeout (when there is one), and clears that deadline: the client may carry on.
func (s *Session) writeOwn(msg []byte) error {
	if err := s.cl.flush(); err != nil { // what came before goes first
		return err
	}
	d := s.srv.cfg.Timeouts.Header
	if d > 0 {
		s.client.SetWriteDeadline(time.Now().Add(d))
	}
	_, err := s.client.Write(msg)
	if d > 0 {
		s.client.SetWriteDeadline(time.Time{})
	}
	return err
}

// peekCall reads object and method from a request for the access log.
func (s *Session) peekCall(m *frame.Message) (object, method string) {
	if v, ok := m.Annotations.Lookup(frame.BLBI); ok {
		if bi, err := frame.DecodeBlobInfo(v); err == nil {
			return bi.Object, bi.Method
		}
	}
	object, method, err := frame.PeekInvoke(m.Header.Serializer, m.Header.Flags, m.Payload)
	if err != nil {
		return "?", "?"
	}
	return object, method
}

func (s *Session) logCall(member *routing.Member, h frame.Header, corr []byte, object, method string, start time.Time, outcome metrics.Outcome, replyBytes int) {
	if s.srv.metrics != nil {
		s.recordCall(member, h, corr, object, method, time.Since(start), outcome, replyBytes)
		s.endCall(member, h, replyBytes)
	}
	level := zapcore.DebugLevel
	if s.srv.accessLog {
		level = zapcore.InfoLevel
	}
	if !s.srv.log.Core().Enabled(level) {
		return
	}
	ce := s.logger().Check(level, "call")
	if ce == nil {
		return
	}
	fields := []zap.Field{zap.Stringer("corr", corrID(corr)), zap.Stringer("type", h.Type), zap.Uint16("seq", h.Seq)}
	if object != "" {
		fields = append(fields, zap.String("object", object), zap.String("method", method))
	}
	fields = append(fields, zap.Stringer("flags", h.Flags), zap.Int("request_bytes", h.DataLen),
		zap.Int("reply_bytes", replyBytes), zap.Duration("latency", time.Since(start)), zap.Stringer("outcome", outcome))
	ce.Write(fields...)
}

func (s *Session) logEnd(err error) {
	if errors.Is(err, errLogged) {
		return
	}
	if frame.IsProtocolError(err) {
		s.logger().Warn("closing client: bad message", zap.Error(err))
		return
	}
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		s.logger().Warn("closing client: timed out", zap.Error(err))
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || clientReset(err):
		s.logger().Info("closing client: connection ended", zap.Error(err))
	default:
		s.logger().Warn("closing client", zap.Error(err))
	}
}

// clientReset reports whether err is the client's connection reset (a killed process, a
// socket closed with bytes unread), on the client's side: the client ended, as at EOF.
func clientReset(err error) bool {
	var ce *copyError
	if errors.As(err, &ce) && !ce.fromClient {
		return false
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// setClientDeadline sets (d > 0) or clears the client read deadline.
func (s *Session) setClientDeadline(d time.Duration) { setReadDeadline(s.client, &s.clDeadline, d) }

// setUpstreamDeadline sets (d > 0) or clears the backend read deadline.
func (s *Session) setUpstreamDeadline(d time.Duration) { setReadDeadline(s.upstream, &s.upDeadline, d) }

// setReadDeadline sets c's read deadline d from now (d > 0) or clears it, skipping the
// call when *set says there is none to clear; *set tracks whether one is set.
func setReadDeadline(c net.Conn, set *bool, d time.Duration) {
	if d == 0 && !*set {
		return
	}
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	*set = d > 0
	c.SetReadDeadline(t)
}

// backendHungUp is called (by the server's watcher) when the daemon closed the session's
// backend connection: a session waiting for its client's next request is woken to end,
// closing the client's connection as the daemon's close would; one in a call finds out
// by itself (upstreamLost).
func (s *Session) backendHungUp() {
	s.mu.Lock()
	s.hungUp = true
	if !s.busy {
		s.client.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
}

func (s *Session) logHungUp() {
	s.logger().Info("the daemon closed the idle backend connection (its COMMTIMEOUT, a restart): closing the client's connection, as a direct one would close")
}

// wakeIfIdle interrupts a session waiting for a request, for shutdown; a parked one is
// given a goroutine again, which sees the shutdown.
func (s *Session) wakeIfIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.parked:
		s.resumeLocked()
	case !s.busy:
		s.client.SetReadDeadline(time.Now()) // the session sees a timeout and ends
	}
}

// closeAll closes the client and its upstream: a pinned or mid-call lease is destroyed,
// never pooled, so the backend releases what it kept for that connection.
func (s *Session) closeAll() {
	if s.pending { // the client left before its pipelined call's reply
		s.call.on.abandon(s)
	}
	s.awaitCall()
	if err := s.cl.flush(); err != nil { // a last reply, when no read followed it
		s.debug("could not send the last reply", zap.Error(err))
	}
	s.client.Close()
	if s.w.pipe != nil {
		s.w.pipe.Close()
	}
	s.endCount()
	s.srv.watch.forget(s.hupID)
	switch {
	case s.lease.Conn != nil:
		s.lease.Destroy()
	case s.upstream != nil:
		s.upstream.Close()
	}
	s.srv.release(s)
}

// corrID formats a correlation id as a uuid for logs, only when a line is written. It
// keeps a copy of the id: c usually aliases the session's buffer, which holds the next
// call's id by the time a core that encodes lazily (zap's observer, any core keeping
// fields) formats the line.
func corrID(c []byte) fmt.Stringer {
	switch len(c) {
	case frame.CorrLen:
		return uuid.UUID(c)
	case 0:
		return noCorr{}
	}
	return corrHex(fmt.Sprintf("%x", c))
}

type noCorr struct{}

func (noCorr) String() string { return "-" }

type corrHex string

func (c corrHex) String() string { return string(c) }

// remoteAddr prints a connection's peer address only when a log line is written.
type remoteAddr struct{ c net.Conn }

func (r remoteAddr) String() string {
	a := r.c.RemoteAddr()
	if a == nil || a.String() == "" || a.String() == "@" {
		return "unix"
	}
	return a.String()
}

// dialReason shortens a dial error to what the user needs ("connection refused").
func dialReason(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		var se *os.SyscallError
		if errors.As(op.Err, &se) {
			return se.Err.Error()
		}
		return op.Err.Error()
	}
	return err.Error()
}
