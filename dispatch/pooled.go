package dispatch

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"path"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/pool"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// hsKey identifies a handshake. Pools and cached CONNECT replies are per key, so a
// backend's validateHandshake decision is never reused for a different handshake.
type hsKey struct {
	member     *routing.Member
	serializer frame.Serializer
	flags      frame.Flags
	sum        [sha256.Size]byte // of the CONNECT payload and its annotations (see kept)
}

// handshake is one distinct handshake with a backend: the CONNECT to repeat on every new
// upstream connection, the backend's first CONNECTOK, and the pool of connections made
// with it.
type handshake struct {
	key     hsKey
	connect []byte // the CONNECT as sent upstream: seq 0, no CORR (a fresh one per dial) unless signed
	signer  []byte // hmac backend key (re-signing): connect is sent signed with it, replies verified
	srv     *Server
	pool    *pool.Pool
	mux     *mux   // pipelined calls on the pool's connections; nil unless pool.pipeline > 1
	lname   string // the name of the listener whose clients it serves, for logs and metrics

	mu       sync.Mutex
	reply    *storedReply   // the first CONNECTOK, nil before one arrived
	rejected *rejectedError // why it was forgotten (for the clients waiting on its pool then)
}

// storedReply is a backend message kept to answer clients: its CORR chunk removed, since
// each client gets its own (unless signed: see kept).
type storedReply struct {
	header  frame.Header
	ann     frame.Annotations
	payload []byte
}

// rejectedError is a CONNECTFAIL from the backend, relayed to the client, never cached.
type rejectedError struct{ reply storedReply }

func (e *rejectedError) Error() string { return "backend rejected the handshake" }

// handshakes is a listener's LRU of handshakes; evicting one closes its pool once its
// calls are done.
type handshakes struct {
	cache *lru.Cache[hsKey, *handshake]
	cfg   config.Pool
	srv   *Server
	key   []byte // hmac backend key when the listener re-signs (see hmacKeys), else nil
	lname string // the name of the listener whose clients it serves
}

func newHandshakes(lname string, cfg config.Pool, srv *Server, backendKey []byte) (*handshakes, error) {
	hs := &handshakes{cfg: cfg, srv: srv, key: backendKey, lname: lname}
	cache, err := lru.NewWithEvict(cfg.Handshakes, func(_ hsKey, h *handshake) { h.close() })
	if err != nil {
		return nil, err
	}
	hs.cache = cache
	srv.mu.Lock()
	srv.pools[hs] = struct{}{}
	srv.mu.Unlock()
	return hs, nil
}

// keyOf computes the handshake key of a client's CONNECT m (payload fully buffered) with
// member m.
func keyOf(member *routing.Member, m *frame.Message) hsKey {
	d := sha256.New()
	d.Write(m.Payload)
	d.Write([]byte{0})
	d.Write(kept(m.Annotations))
	k := hsKey{member: member, serializer: m.Header.Serializer, flags: m.Header.Flags}
	d.Sum(k.sum[:0])
	return k
}

// get returns the handshake for the client's CONNECT m with member, creating it and its
// pool when new.
func (hs *handshakes) get(member *routing.Member, m *frame.Message) *handshake {
	key := keyOf(member, m)
	return hs.getOrAdd(key, func() *handshake { return hs.build(key, m) })
}

// like returns the handshake that repeats h's CONNECT with another member, creating it
// when new: a pooled client's calls may go to any member its routes allow.
func (hs *handshakes) like(h *handshake, member *routing.Member) (*handshake, error) {
	if h.key.member == member {
		return h, nil
	}
	key := h.key
	key.member = member
	if hh, ok := hs.cache.Get(key); ok {
		return hh, nil
	}
	return hs.renewKey(key, h.connect)
}

// renew returns the live handshake for h's key after h's pool was closed (evicted or
// forgotten); pool.ErrClosed when its member left the configuration.
func (hs *handshakes) renew(h *handshake) (*handshake, error) { return hs.renewKey(h.key, h.connect) }

func (hs *handshakes) renewKey(key hsKey, connect []byte) (*handshake, error) {
	if key.member.Retired() {
		return nil, pool.ErrClosed
	}
	return hs.getOrAdd(key, func() *handshake {
		n := &handshake{key: key, connect: connect}
		hs.start(n)
		return n
	}), nil
}

// prune closes the handshakes (pools) of members that left the configuration, once
// their calls are done.
func (hs *handshakes) prune() {
	for _, k := range hs.cache.Keys() {
		if k.member.Retired() {
			hs.cache.Remove(k)
		}
	}
}

// forget drops h, just rejected by the backend with rej, from the cache and closes its
// pool, unless it was replaced already. The clients waiting on that pool get rej.
func (hs *handshakes) forget(h *handshake, rej *rejectedError) {
	h.mu.Lock()
	h.rejected = rej
	h.mu.Unlock()
	if cur, ok := hs.cache.Peek(h.key); ok && cur == h {
		hs.cache.Remove(h.key)
	}
}

func (hs *handshakes) getOrAdd(key hsKey, build func() *handshake) *handshake {
	if h, ok := hs.cache.Get(key); ok {
		return h
	}
	h := build()
	if prev, ok, _ := hs.cache.PeekOrAdd(key, h); ok {
		h.close() // lost a race with another client's identical handshake
		return prev
	}
	return h
}

func (hs *handshakes) build(key hsKey, m *frame.Message) *handshake {
	h := &handshake{key: key}
	hdr := m.Header
	hdr.Seq = 0
	h.connect, _ = frame.AppendHead(nil, hdr, kept(m.Annotations))
	h.connect = append(h.connect, m.Payload...)
	hs.start(h)
	return h
}

// start gives h its pool and, when calls are pipelined, its mux.
func (hs *handshakes) start(h *handshake) {
	h.signer, h.srv, h.lname = hs.key, hs.srv, hs.lname
	h.pool = hs.newPool(h)
	if hs.cfg.Pipeline > 1 {
		h.mux = newMux(h, hs.srv, hs.cfg)
	}
}

// close stops h taking new calls and closes its pool; calls in flight finish first.
func (h *handshake) close() {
	if h.mux != nil {
		h.mux.drain()
	}
	h.pool.Close()
}

// abort ends h's pipelined calls at once (with an error for their clients) and closes its
// pool.
func (h *handshake) abort() {
	if h.mux != nil {
		h.mux.close()
	}
	h.pool.Close()
}

func (hs *handshakes) newPool(h *handshake) *pool.Pool {
	c := hs.cfg
	health := c.HealthInterval
	var check func(*pool.Conn, time.Duration) error // nil: pool.Ping
	if h.signer != nil {                            // the dispatcher holds the backend key: its PINGs are signed
		key, ser := h.signer, h.key.serializer
		check = func(cn *pool.Conn, timeout time.Duration) error {
			return pool.PingSigned(cn, ser, frame.NewSigner(key), timeout)
		}
	} else if hdr, err := frame.ParseHeader(h.connect); err == nil && signed(frame.Annotations(h.connect[frame.HeaderSize:frame.HeaderSize+hdr.AnnLen])) {
		// The backend wants every message signed and the dispatcher holds no key: an
		// unsigned PING would get the connection closed. Idle timeout and lifetime still
		// apply, and a dead connection fails the call that uses it.
		health = -1
	}
	return pool.New(pool.Config{
		Dial:           h.dial,
		Serializer:     h.key.serializer,
		MaxOpen:        c.MaxOpen,
		MaxIdle:        c.MaxIdle,
		Warm:           c.Warm,
		MaxWaiters:     c.MaxWaiters,
		WaitTimeout:    c.WaitTimeout,
		DialTimeout:    hs.srv.cfg.Timeouts.Dial,
		IdleTimeout:    c.IdleTimeout,
		MaxLifetime:    c.MaxLifetime,
		HealthInterval: health,
		HealthCheck:    check,
		BackoffMax:     c.BackoffMax,
		MaxIdleTime:    c.MaxIdleTime,
		Wrap:           armUpstream,
	})
}

// armUpstream gives a pooled upstream connection an armedConn, so that a session's
// small request is written by the read of its reply (forwardRequest): a daemon answers
// only once it has the request, so that read waits at once, with no read that finds
// nothing first. Reads and writes of a pipelined connection, and health checks, are
// made at once, as through the connection itself.
func armUpstream(c net.Conn) net.Conn { return newArmedConn(c, false) }

// close closes every pool once its calls are done.
func (hs *handshakes) close() {
	hs.srv.mu.Lock()
	delete(hs.srv.pools, hs)
	hs.srv.mu.Unlock()
	hs.cache.Purge()
}

// abort ends every pool's calls at once and closes it (a forced shutdown).
func (hs *handshakes) abort() {
	for _, k := range hs.cache.Keys() {
		if h, ok := hs.cache.Peek(k); ok {
			h.abort()
		}
	}
	hs.close()
}

// cached returns the stored CONNECTOK, or nil.
func (h *handshake) cached() *storedReply {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reply
}

// dial opens an upstream connection and performs this handshake on it (pool.Config.Dial).
// It runs for clients waiting for a connection, in one's goroutine or the pool's: a
// panic is recovered as a failed dial (errPanicked), the connection closed.
func (h *handshake) dial(ctx context.Context) (_ net.Conn, err error) {
	var c net.Conn
	defer func() {
		if p := recover(); p != nil {
			if c != nil {
				c.Close()
			}
			err = h.srv.recovered(p, "panic in a pooled handshake: closing its upstream connection, the dial failed",
				h.lname, nil, zap.String("backend", h.key.member.Addr))
		}
	}()
	c, err = h.srv.dialMember(ctx, h.key.member)
	if err != nil {
		return nil, err
	}
	if panicHook != nil {
		panicHook(nil, atHandshake)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	// A canceled dial (the pool closing, the caller giving up) ends the handshake at once.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	reply, err := h.exchange(c)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	h.mu.Lock()
	if h.reply == nil {
		h.reply = reply
	}
	h.mu.Unlock()
	return c, nil
}

// exchange sends the CONNECT on c and reads the answer.
func (h *handshake) exchange(c net.Conn) (*storedReply, error) {
	hdr, err := frame.ParseHeader(h.connect)
	if err != nil {
		return nil, err
	}
	ann := frame.Annotations(h.connect[frame.HeaderSize : frame.HeaderSize+hdr.AnnLen])
	payload := h.connect[frame.HeaderSize+hdr.AnnLen:]
	var msg []byte
	if id := frame.NewCorr(); h.signer != nil {
		var err error
		if msg, _, err = frame.NewSigner(h.signer).AppendSignedHead(nil, hdr, payload, ann, &id); err != nil {
			return nil, fmt.Errorf("signing the CONNECT for backend %s: %w", h.key.member.Addr, err)
		}
	} else if !signed(ann) {
		msg, _, _ = frame.AppendForward(nil, hdr, ann, 0, &id)
	} else {
		msg, _ = frame.AppendHead(nil, hdr, ann)
	}
	msg = append(msg, payload...)
	if _, err := c.Write(msg); err != nil {
		return nil, fmt.Errorf("backend %s failed during the handshake: %w", h.key.member.Addr, err)
	}
	r := frame.NewReader(c, 0, frame.Limits{MaxMessageSize: 16 << 20})
	m, err := r.Next()
	if err == nil {
		err = r.ReadRest(&m)
	}
	if err == nil && m.Header.Seq != 0 {
		err = fmt.Errorf("CONNECT answered with seq %d", m.Header.Seq)
	}
	if err == nil && m.Header.Type != frame.ConnectOK && m.Header.Type != frame.ConnectFail {
		err = fmt.Errorf("CONNECT answered with %v", m.Header.Type)
	}
	if err == nil && h.signer != nil {
		if err = frame.NewSigner(h.signer).Verify(m.Payload, m.Annotations); err != nil {
			err = fmt.Errorf("its answer failed the HMAC check with backend_key: %w", err)
		}
		m.Annotations = m.Annotations.AppendWithout(nil, frame.HMAC) // kept unsigned: signed per client
	}
	if err != nil {
		return nil, fmt.Errorf("backend %s failed during the handshake: %w", h.key.member.Addr, err)
	}
	reply := &storedReply{
		header:  m.Header,
		ann:     kept(m.Annotations),
		payload: append([]byte(nil), m.Payload...),
	}
	if m.Header.Type == frame.ConnectFail {
		return nil, &rejectedError{reply: *reply}
	}
	return reply, nil
}

// handshakePooled answers the client's CONNECT m from the handshake cache of a member of
// group g, performing the handshake upstream on a new pooled connection on a miss; while
// members cannot be reached, the next one is tried.
func (s *Session) handshakePooled(m *frame.Message, g *routing.Group) bool {
	a := attempt{g: g, pin: s.pin}
	hit := false
	for {
		member, err := a.next(&s.req)
		if err != nil {
			s.connectFail(m, causeBackend, "pyro-dispatch: "+err.Error())
			return false
		}
		h := s.st.handshakes.get(member, m)
		s.hs, s.member = h, member
		hit = h.cached() != nil
		s.log = nil // rebuilt with the backend field
		if h.cached() != nil && h.pool.Full() {
			break // every connection in use: the member serves
		}
		// A cached handshake is answered only once a live connection proves the member
		// reachable (an idle one passes a non-blocking check, else one is dialed): a
		// client reconnecting to a daemon that is down gets the CONNECTFAIL it would get
		// directly, so that _pyroReconnect keeps trying.
		lease, err := s.acquire(context.Background(), a.lastResort)
		if a.retry(member, err) {
			continue
		}
		if err != nil {
			var rej *rejectedError
			if errors.As(err, &rej) {
				// Not even the pool's backoff after a failed dial may keep a rejection: the
				// next client with this handshake asks the backend again.
				s.st.handshakes.forget(s.hs, rej)
				s.sendStored(&rej.reply, m)
				s.logger().Info("backend rejected the handshake")
				return false
			}
			s.connectFail(m, causeBackend, "pyro-dispatch: "+poolReason(err, member, s.hs.pool))
			return false
		}
		lease.Release()
		break
	}
	s.member.Succeeded()
	if s.srv.metrics != nil {
		s.srv.metrics.Handshake(s.st.name, hit)
	}
	s.sendStored(s.hs.cached(), m)
	if len(s.st.affinity) > 0 {
		obj, err := frame.PeekConnectObject(m.Header.Serializer, m.Header.Flags, m.Payload)
		if err != nil {
			s.affinityUnknown = true // decided by the first INVOKE's object instead
		} else {
			s.pinAffinity(obj)
		}
	}
	s.debug("connected (pooled)", zap.Stringer("serializer", m.Header.Serializer), zap.Bool("pinned", s.pinned))
	return true
}

// handshakeWith returns the session's handshake with member: the current one, one of the
// few it used last, or one from the listener's cache (a lock, and a hash of the key) that
// it then remembers in place of the oldest.
func (s *Session) handshakeWith(member *routing.Member) (*handshake, error) {
	if s.hs.key.member == member {
		return s.hs, nil
	}
	for i, h := range s.hsSeen {
		if h != nil && h.key.member == member {
			s.hsSeen[i] = s.hs // keep the current one in its place
			return h, nil
		}
	}
	h, err := s.st.handshakes.like(s.hs, member)
	if err == nil {
		copy(s.hsSeen[1:], s.hsSeen[:len(s.hsSeen)-1])
		s.hsSeen[0] = s.hs
	}
	return h, err
}

// acquire leases a connection of the session's handshake s.hs, renewing the handshake
// when it was evicted from the cache; a handshake rejected meanwhile gives its rejection.
// With lastResort (no other member can take the call) it dials even during a backoff.
func (s *Session) acquire(ctx context.Context, lastResort bool) (pool.Lease, error) {
	get := (*pool.Pool).Acquire
	if lastResort {
		get = (*pool.Pool).AcquireLastResort
	}
	lease, err := get(s.hs.pool, ctx)
	for try := 0; try < 3 && errors.Is(err, pool.ErrClosed); try++ {
		s.hs.mu.Lock()
		rej := s.hs.rejected
		s.hs.mu.Unlock()
		if rej != nil { // rejected while this client waited: that is its answer too
			return lease, rej
		}
		h, rerr := s.st.handshakes.renew(s.hs)
		if rerr != nil {
			return lease, err
		}
		s.hs = h
		lease, err = get(h.pool, ctx)
	}
	return lease, err
}

// attempt walks a group's members for one request: by the group's balance first, then
// the next member while the last could not be reached (nothing of the request reached a
// daemon), each at most once. When none is left, the first member passed over only
// because its pool was backing off after a failed dial is tried once more as the last
// resort, dialing despite the backoff: a daemon that is back serves at once.
type attempt struct {
	g          *routing.Group
	pin        *routing.Member // the one member to try (a learned object id); nil: g's balance
	tried      routing.Tried
	errs       map[*routing.Member]error // why members failed this request; nil until one did
	reroutes   int                       // times the request was routed again (reroute)
	backingOff *routing.Member           // the first member passed over for its pool's backoff
	lastResort bool                      // the member next returned is that one, tried anyway
}

// next returns the member to try, or the group's NoHealthyError when none is left.
func (a *attempt) next(req *routing.Request) (*routing.Member, error) {
	d := routing.Decision{Group: a.g, Member: a.pin}
	m, err := d.Pick(req, a.tried)
	if err != nil {
		if a.backingOff == nil || a.lastResort {
			return nil, a.g.NoHealthy(a.errs)
		}
		a.lastResort = true
		return a.backingOff, nil
	}
	a.tried = a.tried.With(a.g, m)
	return m, nil
}

// retry reports whether err says member m could not be reached (a failed dial or
// handshake: nothing was sent that a daemon acted on), ejecting it; then another member
// may take the request.
func (a *attempt) retry(m *routing.Member, err error) bool {
	if err == nil { // before the error variables, which escape: no allocation per call
		return false
	}
	var de *pool.DialError
	var rej *rejectedError
	if !errors.As(err, &de) || errors.As(err, &rej) { // a rejection is the daemon's answer
		return false
	}
	if de.Backoff && a.backingOff == nil {
		a.backingOff = m
	}
	m.Failed(de.Err)
	if a.errs == nil {
		a.errs = map[*routing.Member]error{}
	}
	a.errs[m] = de.Err
	return true
}

// pinAffinity pins the session when object matches one of the listener's affinity
// patterns: its calls then keep one upstream connection, as on a direct connection.
func (s *Session) pinAffinity(object string) {
	s.affinityUnknown = false
	for _, pat := range s.st.affinity {
		if ok, _ := path.Match(pat, object); ok {
			s.pinned, s.pinReason = true, "affinity "+pat
			s.debug("pinned to one upstream connection: affinity", zap.String("object", object), zap.String("pattern", pat))
			return
		}
	}
}

// sendStored answers the client's message m with a stored backend reply, carrying m's seq
// and m's correlation id (a signed reply is sent as stored).
func (s *Session) sendStored(r *storedReply, m *frame.Message) {
	h := r.header
	h.Seq = m.Header.Seq
	ann := r.ann
	corr, hasCorr := m.Annotations.Lookup(frame.CORR)
	var msg []byte
	switch {
	case s.hm != nil:
		msg = s.hm.signOwn(h, ann, corr, r.payload)
	case hasCorr && !signed(r.ann):
		ann = frame.AppendAnnotation(append(frame.Annotations(nil), r.ann...), frame.CORR, corr)
		fallthrough
	default:
		msg = frame.AppendMessage(nil, h, ann, r.payload)
	}
	if err := s.writeOwn(msg); err != nil {
		s.debug("could not send the handshake reply", zap.Error(err))
	}
}

// kept returns a copy of a handshake message's annotations as the cache keeps them:
// without CORR (each client and connection gets its own), unless the message is
// HMAC-signed: the signature covers every annotation but HMAC, CORR included, so a signed
// message is kept, sent and relayed exactly as it came.
func kept(a frame.Annotations) frame.Annotations {
	if signed(a) {
		return append(frame.Annotations(nil), a...)
	}
	return a.AppendWithout(nil, frame.CORR)
}

// signed reports whether annotations carry an HMAC signature.
func signed(a frame.Annotations) bool {
	_, ok := a.Lookup(frame.HMAC)
	return ok
}

// poolReason explains a failed Acquire to a client.
func poolReason(err error, member *routing.Member, p *pool.Pool) string {
	var de *pool.DialError
	var nh *routing.NoHealthyError
	var dn *deniedError
	switch {
	case errors.As(err, &nh), errors.As(err, &dn): // they say it all
		return err.Error()
	case errors.As(err, &de):
		return de.Err.Error()
	case errors.Is(err, pool.ErrWaitTimeout), errors.Is(err, pool.ErrTooManyWait):
		st := p.Stats()
		return fmt.Sprintf("no connection to backend %s free in time (%d open, %d waiting): %v", member.Addr, st.Open, st.Waiting, err)
	default:
		return fmt.Sprintf("backend %s: %v", member.Addr, err)
	}
}
