package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/nsview"
	"github.com/pyro-dispatch/pyro-dispatch/pyrocall"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
)

// nsView is the name-server view of a listener (listeners[].advertise, nameserver,
// learn, broadcast, publish): the URIs in the name server's replies that point at members
// are rewritten to the advertised address, and the object ids they name are learned, so
// that a client outside reaches every object through the listener. It outlives reloads
// that keep its configuration; its loops (learn, publish, broadcast) run until stop.
type nsView struct {
	srv      *Server
	listener string
	cfg      config.Listener
	adv      nsview.Addr
	key      []byte // the backend HMAC key (nil: none)
	log      *zap.Logger
	hosts    *hostAddrs // for URIs that name a member's address another way

	mu     sync.Mutex
	noted  map[string]bool   // addresses and clashes logged already
	pubbed map[string]string // name -> URI registered in the outside name server

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// nsMethods are the name server's methods whose replies hold URIs.
func nsMethod(method string) bool {
	switch method {
	case "lookup", "list", "yplookup", "yplist":
		return true
	}
	return false
}

// newNSView makes the view of listener l (validated, with a name-server view).
func newNSView(srv *Server, l *config.Listener) (*nsView, error) {
	adv, err := nsview.ParseAddr(l.Advertise)
	if err != nil {
		return nil, fmt.Errorf("listener %s: advertise: %w", l.Name, err)
	}
	_, backend, err := l.HMAC.Keys()
	if err != nil {
		return nil, err
	}
	return &nsView{srv: srv, listener: l.Name, cfg: *l, adv: adv, key: backend, hosts: newHostAddrs(),
		log: srv.log.With(zap.String("listener", l.Name)), noted: map[string]bool{}, pubbed: map[string]string{}}, nil
}

// noteOnce logs msg once per key.
func (v *nsView) noteOnce(key, msg string, fields ...zap.Field) {
	v.mu.Lock()
	seen := v.noted[key]
	v.noted[key] = true
	v.mu.Unlock()
	if !seen {
		v.log.Info(msg, fields...)
	}
}

// member returns the member of the table in service that a URI's address points at:
// the one written the same way, else the one on the same port whose host names the same
// IP address (a URI on localhost, a member on 127.0.0.1, or the other way round).
func (v *nsView) member(a nsview.Addr) *routing.Member {
	t := v.srv.table.Load()
	if a.Sock != "" {
		return t.MemberAt("unix", a.Sock)
	}
	if m := t.MemberAt("tcp", net.JoinHostPort(a.Host, strconv.Itoa(a.Port))); m != nil {
		return m
	}
	return v.hosts.memberByAddr(t, a)
}

// found are the object ids one name server reply names, with the member of each, or nil
// for an id the reply puts on two members (a clash).
type found map[string]*routing.Member

// translator returns the nsview.Translate of one reply: a URI that points at a member is
// rewritten to the advertised address, and a PYRO URI's object id noted in f with that
// member; others stay as they are (logged once per address).
func (v *nsView) translator(f found) nsview.Translate {
	return func(u nsview.URI) (nsview.Addr, bool) {
		if u.Addr == (nsview.Addr{}) {
			return u.Addr, false // PYRONAME:name without a location: the client's own name server
		}
		m := v.member(u.Addr)
		if m == nil {
			v.noteOnce("addr "+u.Addr.String(), "name server URI points at a daemon this listener does not front: left as it is",
				zap.String("address", u.Addr.String()), zap.String("object", u.Object))
			return u.Addr, false
		}
		if u.Protocol == "PYRO" && u.Object != "" && u.Object != config.NameServerObject {
			if prev, seen := f[u.Object]; !seen {
				f[u.Object] = m
			} else if prev != m {
				if prev != nil {
					v.noteOnce("clash "+u.Object+" "+prev.Addr+" "+m.Addr, "object id on two members in one name server answer: the routes decide where its calls go",
						zap.String("object", u.Object), zap.String("member", prev.Addr), zap.String("other", m.Addr))
				}
				f[u.Object] = nil
			}
		}
		return v.adv, true
	}
}

// learn records what a reply said: each object id on its member (the latest answer wins:
// a daemon that moved is followed), an id the reply put on two members left to the routes.
func (v *nsView) learn(f found) {
	learned := v.srv.table.Load().Learned(v.listener)
	if learned == nil {
		return
	}
	for object, m := range f {
		if prev, changed := learned.Learn(object, m); changed && prev != nil && m != nil {
			v.log.Debug("object id moved to another member", zap.String("object", object), zap.String("was", prev.Addr), zap.String("now", m.Addr))
		}
	}
}

var rewriters = sync.Pool{New: func() any { return new(nsview.Rewriter) }}

// rewrite appends to dst the payload of a name server reply with its URIs translated
// (compressed again when it came compressed); changed false: nothing to change.
func (v *nsView) rewrite(dst []byte, h frame.Header, payload []byte) (out []byte, changed bool, err error) {
	rw := rewriters.Get().(*nsview.Rewriter)
	defer rewriters.Put(rw)
	f := found{}
	if h.Flags.Has(frame.FlagCompressed) {
		out, changed, err = rw.RewriteCompressed(dst, payload, h.Serializer, v.translator(f))
	} else {
		out, changed, err = rw.Rewrite(dst, payload, h.Serializer, v.translator(f))
	}
	if err == nil {
		v.learn(f)
	}
	return out, changed, err
}

// start runs the view's loops: learning by list(), publishing, broadcast answers.
func (v *nsView) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	if v.cfg.Broadcast {
		pc, err := net.ListenPacket("udp", v.cfg.BroadcastListen)
		if err != nil {
			cancel()
			return fmt.Errorf("listener %s: broadcast: %w", v.listener, err)
		}
		context.AfterFunc(ctx, func() { pc.Close() })
		v.wg.Go(func() { v.answerBroadcasts(pc) })
		v.log.Info("answering name server broadcasts", zap.String("udp", pc.LocalAddr().String()), zap.String("uri", v.nsURI()))
	}
	if v.cfg.Learn != nil {
		v.wg.Go(func() { v.every(ctx, v.cfg.Learn.Interval, v.learnList) })
	}
	if v.cfg.Publish != nil {
		v.wg.Go(func() { v.every(ctx, v.cfg.Publish.Interval, v.publish) })
	}
	return nil
}

// stop ends the loops and waits for them.
func (v *nsView) stop() {
	if v.cancel != nil {
		v.cancel()
	}
	v.wg.Wait()
}

// every runs f now and then every interval until ctx ends.
func (v *nsView) every(ctx context.Context, interval time.Duration, f func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		fctx, cancel := context.WithTimeout(ctx, v.srv.cfg.Timeouts.Dial+v.callTimeout())
		if err := f(fctx); err != nil && ctx.Err() == nil {
			v.log.Warn("name server view", zap.Error(err))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (v *nsView) callTimeout() time.Duration {
	if d := v.srv.cfg.Timeouts.Call; d > 0 {
		return d
	}
	return 30 * time.Second
}

// nsURI is the name server's URI as clients outside use it.
func (v *nsView) nsURI() string { return "PYRO:" + config.NameServerObject + "@" + v.adv.String() }

// answerBroadcasts answers Pyro4's broadcast lookup ("GET_NSURI") with the advertised
// name server URI, as Pyro4's BroadcastServer does, until pc is closed.
func (v *nsView) answerBroadcasts(pc net.PacketConn) {
	buf := make([]byte, 100)
	reply := []byte(v.nsURI())
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				v.log.Warn("broadcast responder stopped", zap.Error(err))
			}
			return
		}
		if string(buf[:n]) == "GET_NSURI" {
			pc.WriteTo(reply, addr)
		}
	}
}

// nameServer connects to a member of the name server's group.
func (v *nsView) nameServer(ctx context.Context) (*pyrocall.Client, error) {
	g := v.srv.table.Load().Group(v.cfg.NameServer)
	if g == nil {
		return nil, fmt.Errorf("no backend group %q", v.cfg.NameServer)
	}
	var req routing.Request
	var tried routing.Tried
	var last error
	for {
		m, err := g.Pick(&req, tried)
		if err != nil {
			return nil, fmt.Errorf("name server group %s: %w", g.Name, last)
		}
		tried = tried.With(g, m)
		c, err := v.srv.dialMember(ctx, m)
		if err == nil {
			var cl *pyrocall.Client
			if cl, err = pyrocall.Connect(ctx, c, config.NameServerObject, v.key); err == nil {
				return cl, nil
			}
		}
		last = err
	}
}

// list returns the name server's list(prefix) reply, in json.
func (v *nsView) list(ctx context.Context, ns *pyrocall.Client, prefix string) ([]byte, error) {
	var args []any
	if prefix != "" {
		args = []any{prefix}
	}
	return ns.Call(ctx, config.NameServerObject, "list", args, nil)
}

// learnList learns the object ids of the name server's list() (learn.prefix).
func (v *nsView) learnList(ctx context.Context) error {
	ns, err := v.nameServer(ctx)
	if err != nil {
		return err
	}
	defer ns.Close()
	reply, err := v.list(ctx, ns, v.cfg.Learn.Prefix)
	if err != nil {
		return err
	}
	_, _, err = v.rewrite(nil, frame.Header{Serializer: frame.JSON}, reply)
	return err
}

// publish registers the objects to publish (publish.objects, or those on the members of
// publish.group) in the outside name server, under their names, with URIs that point at
// the advertised address; it registers again what the outside name server lost or has
// otherwise, and removes what it published that is no longer behind the listener.
func (v *nsView) publish(ctx context.Context) error {
	ns, err := v.nameServer(ctx)
	if err != nil {
		return err
	}
	reply, err := v.list(ctx, ns, "")
	ns.Close()
	if err != nil {
		return err
	}
	var inside map[string]string
	if err := json.Unmarshal(reply, &inside); err != nil {
		return fmt.Errorf("name server list: %w", err)
	}
	p := v.cfg.Publish
	want := map[string]string{}
	for name, uri := range inside {
		if len(p.Objects) > 0 && !slices.Contains(p.Objects, name) {
			continue
		}
		object, loc, ok := splitPyroURI(uri)
		if !ok {
			continue
		}
		a, err := nsview.ParseAddr(loc)
		if err != nil {
			continue
		}
		m := v.member(a)
		if m == nil || p.Group != "" && m.GroupName() != p.Group {
			continue
		}
		want[name] = "PYRO:" + object + "@" + v.adv.String()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.NameServer)
	if err != nil {
		return fmt.Errorf("publish: outside name server: %w", err)
	}
	out, err := pyrocall.Connect(ctx, c, config.NameServerObject, nil)
	if err != nil {
		return fmt.Errorf("publish: outside name server %s: %w", p.NameServer, err)
	}
	defer out.Close()
	reply, err = v.list(ctx, out, "")
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	var outside map[string]string
	if err := json.Unmarshal(reply, &outside); err != nil {
		return fmt.Errorf("publish: outside name server list: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for name, uri := range want {
		if outside[name] == uri {
			v.pubbed[name] = uri
			continue
		}
		if _, err := out.Call(ctx, config.NameServerObject, "register", []any{name, uri, false}, nil); err != nil {
			return fmt.Errorf("publish %s: %w", name, err)
		}
		v.pubbed[name] = uri
		v.log.Info("published", zap.String("name", name), zap.String("uri", uri), zap.String("ns", p.NameServer))
	}
	for name, uri := range v.pubbed {
		if _, ok := want[name]; ok {
			continue
		}
		delete(v.pubbed, name)
		if outside[name] != uri {
			continue // someone else's now
		}
		if _, err := out.Call(ctx, config.NameServerObject, "remove", []any{name}, nil); err != nil {
			return fmt.Errorf("unpublish %s: %w", name, err)
		}
		v.log.Info("unpublished: no longer behind the listener", zap.String("name", name), zap.String("ns", p.NameServer))
	}
	return nil
}

// splitPyroURI splits "PYRO:object@location" (the form list() answers with).
func splitPyroURI(uri string) (object, loc string, ok bool) {
	rest, ok := strings.CutPrefix(uri, "PYRO:")
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '@')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// isNSCall reports whether m calls a method of the name server whose reply carries URIs
// (peeked into the session's scratch: no allocation).
func (s *Session) isNSCall(m *frame.Message) bool {
	names, split, err := frame.AppendPeekInvoke(s.nsbuf[:0], m.Header.Serializer, m.Header.Flags, m.Payload)
	s.nsbuf = names
	return err == nil && string(names[:split]) == config.NameServerObject && nsMethod(string(names[split:]))
}

// nsReplyLimit bounds a name server reply the view decodes; a larger one is relayed as it
// is (and logged once).
const nsReplyLimit = 16 << 20

// forwardNSReply relays the reply m of a URI-returning call on the name server through a
// listener with a name-server view, its URIs translated (nsView.rewrite), re-signed when
// the session signs replies or the reply was signed with the backend key. It reports
// false, having relayed nothing, when the reply stays as it is (nothing to translate, too
// large, undecodable, signed with no key to sign it again): the caller relays it then.
func (s *Session) forwardNSReply(m *frame.Message) (bool, error) {
	v := s.st.nsv
	if m.Header.DataLen > nsReplyLimit {
		v.noteOnce("large", "name server reply too large to translate: relayed as it is", zap.Int("bytes", m.Header.DataLen))
		return false, nil
	}
	if err := s.ur.ReadRest(m); err != nil {
		return true, &copyError{fromClient: false, err: err}
	}
	_, signed := m.Annotations.Lookup(frame.HMAC)
	signer := s.hmSigner()
	switch {
	case s.hm != nil:
		if err := s.hm.repVerify.Verify(m.Payload, m.Annotations); err != nil {
			return false, nil // forwardReply refuses it as it refuses any
		}
	case signed && len(v.key) == 0:
		v.noteOnce("signed", "name server reply signed, and no backend key to sign it again: relayed as it is")
		return false, nil
	case signed:
		signer = frame.NewSigner(v.key) // the same key on both sides
		if err := signer.Verify(m.Payload, m.Annotations); err != nil {
			return false, nil
		}
	}
	out, changed, err := v.rewrite(s.nsbuf[:0], m.Header, m.Payload)
	if err != nil {
		v.noteOnce("undecodable "+err.Error(), "name server reply not translated: relayed as it is", zap.Error(err))
		return false, nil
	}
	s.nsbuf = out
	if !changed {
		return false, nil
	}
	head, _, err := signer.AppendSignedHead(nil, m.Header, out, m.Annotations, nil)
	if err != nil {
		return false, nil
	}
	if err := s.writeOwn(append(head, out...)); err != nil {
		return true, &copyError{fromClient: true, err: err}
	}
	return true, nil
}

// hmSigner returns what signs the session's replies to its client: the client key's
// Signer when it re-signs, else nil (unsigned).
func (s *Session) hmSigner() *frame.Signer {
	if s.hm != nil {
		return s.hm.repSign
	}
	return nil
}

// sameView reports whether two configurations of a listener make the same name-server view.
func sameView(a, b *config.Listener) bool {
	type view struct {
		Advertise, NameServer, BroadcastListen string
		Broadcast                              bool
		Learn                                  *config.Learn
		Publish                                *config.Publish
		HMAC                                   *config.HMAC
	}
	va := view{a.Advertise, a.NameServer, a.BroadcastListen, a.Broadcast, a.Learn, a.Publish, a.HMAC}
	vb := view{b.Advertise, b.NameServer, b.BroadcastListen, b.Broadcast, b.Learn, b.Publish, b.HMAC}
	return reflect.DeepEqual(va, vb)
}

// viewsOf returns the name-server views of listener states.
func viewsOf(states map[string]*lnState) map[*nsView]bool {
	out := map[*nsView]bool{}
	for _, st := range states {
		if st.nsv != nil {
			out[st.nsv] = true
		}
	}
	return out
}

// startViews starts the views in next that are not in cur; on an error it stops those it
// started.
func startViews(next, cur map[*nsView]bool) error {
	var started []*nsView
	for v := range next {
		if cur[v] {
			continue
		}
		if err := v.start(); err != nil {
			for _, o := range started {
				o.stop()
			}
			return err
		}
		started = append(started, v)
	}
	return nil
}

// stopViews stops the views in cur that are not in next.
func stopViews(cur, next map[*nsView]bool) {
	for v := range cur {
		if !next[v] {
			v.stop()
		}
	}
}
