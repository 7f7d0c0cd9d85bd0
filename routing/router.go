package routing

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// needs is the set of request facts a rule (or a whole rule set) reads.
type needs uint8

const (
	needClient needs = 1 << iota
	needSerializer
	needAnnotation
	needObject
	needMethod
	needBlob
)

// payloadNeeds are the facts read from the payload (or a SerializedBlob's BLBI).
const payloadNeeds = needObject | needMethod | needBlob

// Decision is where a connection or call goes: a group, or a refusal with its reason.
type Decision struct {
	Group *Group // nil when refused
	Deny  string // the reason, when refused
	Rule  int    // index of the rule that decided; -1 when none matched
	// Serializers is the deciding rule's serializer policy (routes[].serializers), which
	// the caller applies on top of the listener's; zero: none.
	Serializers config.SerializerSet
	// Member, when set, is the one member that serves the object (a learned object id):
	// Pick returns it rather than balancing over Group.
	Member *Member
	// catchAll marks a decision of a to: rule that does not name an object: a learned
	// object id overrides it.
	catchAll bool
}

// Pick chooses the member for req: the decision's own Member (once), else one of its
// group's (Group.Pick).
func (d *Decision) Pick(req *Request, tried Tried) (*Member, error) {
	if d.Member != nil {
		if tried.has(d.Member.index(d.Group)) {
			return nil, ErrNoMember
		}
		return d.Member, nil
	}
	return d.Group.Pick(req, tried)
}

// Router holds a listener's compiled rules and its decision cache. Safe for concurrent use.
type Router struct {
	name   string
	rules  []*rule
	needs  needs
	chunks []frame.ChunkID // annotations the rules read, sorted
	fixed  *Decision       // the decision when the rules read nothing
	policy config.SerializerSet
	seed   maphash.Seed
	cache  *lru.Cache[uint64, *cached]
	// learned are the object ids the listener's name-server view learned (nil: none).
	learned *Learned
}

// Policy returns the listener's serializer policy (listeners[].serializers); each
// Decision carries its rule's own.
func (r *Router) Policy() config.SerializerSet { return r.policy }

// cached is one remembered decision and the exact key it was made for.
type cached struct {
	key []byte
	d   Decision
}

// DecisionCacheSize is how many decisions a listener's router remembers.
const DecisionCacheSize = 4096

// rule is one compiled route.
type rule struct {
	src        config.Route
	object     []func(string) bool
	method     []func(string) bool
	blobInfo   []func(string) bool
	client     []netip.Prefix
	serializer []frame.Serializer
	ann        []annMatch
	needs      needs
	group      *Group
	deny       string
	policy     config.SerializerSet
}

type annMatch struct {
	id   frame.ChunkID
	pats []func(string) bool
}

func newRouter(l *config.Listener, groups map[string]*Group, learned *Learned) (*Router, error) {
	r := &Router{name: l.Name, seed: maphash.MakeSeed(), learned: learned}
	var err error
	if r.policy, err = config.ParseSerializers("serializers", l.Serializers); err != nil {
		return nil, err
	}
	routes := l.Routes
	if len(l.Backend) > 0 { // the listener's own backend takes what no route takes
		routes = append(append([]config.Route(nil), routes...), config.Route{To: l.Name})
	}
	chunks := map[frame.ChunkID]bool{}
	for _, src := range routes {
		ru, err := compileRule(src, groups)
		if err != nil {
			return nil, err
		}
		for _, a := range ru.ann {
			chunks[a.id] = true
		}
		r.rules = append(r.rules, ru)
		r.needs |= ru.needs
		if ru.needs == 0 {
			break // it takes everything: the rules after it are never reached
		}
	}
	for id := range chunks {
		r.chunks = append(r.chunks, id)
	}
	sort.Slice(r.chunks, func(i, j int) bool { return bytes.Compare(r.chunks[i][:], r.chunks[j][:]) < 0 })
	if learned != nil {
		r.needs |= needObject // a learned object id may take the call
	}
	if r.needs == 0 { // nothing to read: one decision for all
		d := r.evaluate(nil)
		r.fixed = &d
		return r, nil
	}
	cache, err := lru.New[uint64, *cached](DecisionCacheSize)
	if err != nil {
		return nil, err
	}
	r.cache = cache
	return r, nil
}

func compileRule(src config.Route, groups map[string]*Group) (*rule, error) {
	ru := &rule{src: src, deny: src.Deny}
	if src.To != "" {
		ru.group = groups[src.To]
	}
	m := &src.Match
	var err error
	if ru.policy, err = config.ParseSerializers("serializers", src.Serializers); err != nil {
		return nil, err
	}
	if ru.object, err = compilePatterns(m.Object); err != nil {
		return nil, err
	}
	if ru.method, err = compilePatterns(m.Method); err != nil {
		return nil, err
	}
	if ru.blobInfo, err = compilePatterns(m.BlobInfo); err != nil {
		return nil, err
	}
	for _, c := range m.Client {
		p, err := config.ParsePrefix(c)
		if err != nil {
			return nil, err
		}
		ru.client = append(ru.client, p)
	}
	for _, s := range m.Serializer {
		ser, _ := frame.ParseSerializer(s)
		ru.serializer = append(ru.serializer, ser)
	}
	ids := make([]string, 0, len(m.Annotation))
	for id := range m.Annotation {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		cid, err := config.ParseChunkID(id)
		if err != nil {
			return nil, err
		}
		pats, err := compilePatterns(m.Annotation[id])
		if err != nil {
			return nil, err
		}
		ru.ann = append(ru.ann, annMatch{id: cid, pats: pats})
	}
	for _, f := range []struct {
		n    int
		need needs
	}{{len(ru.object), needObject}, {len(ru.method), needMethod}, {len(ru.blobInfo), needBlob},
		{len(ru.client), needClient}, {len(ru.serializer), needSerializer}, {len(ru.ann), needAnnotation}} {
		if f.n > 0 {
			ru.needs |= f.need
		}
	}
	return ru, nil
}

func compilePatterns(list config.StringList) ([]func(string) bool, error) {
	var out []func(string) bool
	for _, p := range list {
		f, err := config.CompilePattern(p)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Decide returns where req goes. A decision the rules made before for the same facts is
// taken from the cache without allocating.
func (r *Router) Decide(req *Request) Decision {
	if r.fixed != nil {
		return *r.fixed
	}
	key := r.appendKey(req.key[:0], req)
	req.key = key
	h := maphash.Bytes(r.seed, key)
	var d Decision
	if c, ok := r.cache.Get(h); ok && bytes.Equal(c.key, key) {
		d = c.d
	} else {
		d = r.evaluate(req)
		r.cache.Add(h, &cached{key: bytes.Clone(key), d: d})
	}
	if d.catchAll && r.learned != nil {
		if obj, ok := req.object(); ok {
			if m := r.learned.Lookup(obj); m != nil {
				return Decision{Group: m.group.Load(), Member: m, Rule: -1}
			}
		}
	}
	return d
}

// appendKey appends exactly the facts of req that the rules read.
func (r *Router) appendKey(k []byte, req *Request) []byte {
	if req.connect {
		k = append(k, 'C')
	} else {
		k = append(k, 'I')
	}
	if r.needs&needClient != 0 {
		a := req.client.As16()
		k = append(k, a[:]...)
		if req.client.IsValid() {
			k = append(k, 1)
		} else {
			k = append(k, 0)
		}
	}
	if r.needs&needSerializer != 0 {
		k = binary.BigEndian.AppendUint16(k, uint16(req.Serializer()))
	}
	for _, id := range r.chunks {
		v, ok := req.Annotation(id)
		k = appendField(k, v, ok)
	}
	if r.needs&payloadNeeds != 0 {
		switch {
		case req.isBlob(): // its BLBI holds info, object and method
			k = append(k, 'B')
			k = appendField(k, req.blob, true)
		case r.needs&payloadNeeds == needBlob: // only blob rules: the payload is not read
			k = append(k, 'N')
		default:
			obj, ok := req.object()
			k = append(k, 'P')
			k = appendField(k, obj, ok)
			meth, ok := req.method()
			k = appendField(k, meth, ok)
		}
	}
	return k
}

// appendField appends a present or absent value, length-prefixed.
func appendField(k, v []byte, ok bool) []byte {
	if !ok {
		return append(k, 0)
	}
	k = append(k, 1)
	k = binary.AppendUvarint(k, uint64(len(v)))
	return append(k, v...)
}

// evaluate runs the rules in order (req nil: the rules read nothing).
func (r *Router) evaluate(req *Request) Decision {
	var f facts
	if req != nil {
		f.req = req
	}
	for i, ru := range r.rules {
		if ru.matches(&f) {
			if ru.group == nil {
				return Decision{Deny: ru.deny, Rule: i}
			}
			return Decision{Group: ru.group, Rule: i, Serializers: ru.policy, catchAll: len(ru.object) == 0}
		}
	}
	return Decision{Deny: r.noRoute(&f), Rule: -1}
}

// noRoute explains a refusal because no rule matched.
func (r *Router) noRoute(f *facts) string {
	what := "this client"
	if f.req != nil && !f.req.connect {
		what = "this call"
	}
	if obj, ok := f.object(); ok {
		what += " (object " + strconv.Quote(obj)
		if meth, ok := f.method(); ok {
			what += ", method " + strconv.Quote(meth)
		}
		what += ")"
	}
	return "no route on listener " + r.name + " for " + what
}

// facts gives a rule the request's values as strings, computed once per evaluation.
type facts struct {
	req *Request
}

func (f *facts) object() (string, bool) {
	if f.req == nil {
		return "", false
	}
	b, ok := f.req.object()
	return string(b), ok
}

func (f *facts) method() (string, bool) {
	if f.req == nil {
		return "", false
	}
	b, ok := f.req.method()
	return string(b), ok
}

func (ru *rule) matches(f *facts) bool {
	if ru.needs == 0 {
		return true
	}
	req := f.req
	if req == nil {
		return false
	}
	if len(ru.client) > 0 && !anyPrefix(ru.client, req.client) {
		return false
	}
	if len(ru.serializer) > 0 && !anySerializer(ru.serializer, req.Serializer()) {
		return false
	}
	for _, a := range ru.ann {
		v, ok := req.Annotation(a.id)
		if !ok || !anyPattern(a.pats, string(v)) {
			return false
		}
	}
	if len(ru.object) > 0 {
		obj, ok := f.object()
		if !ok || !anyPattern(ru.object, obj) {
			return false
		}
	}
	if len(ru.method) > 0 {
		meth, ok := f.method()
		if !ok || !anyPattern(ru.method, meth) {
			return false
		}
	}
	if len(ru.blobInfo) > 0 {
		info, ok := req.blobText()
		if !ok || !anyPattern(ru.blobInfo, info) {
			return false
		}
	}
	return true
}

func anyPrefix(ps []netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func anySerializer(list []frame.Serializer, s frame.Serializer) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func anyPattern(pats []func(string) bool, s string) bool {
	for _, p := range pats {
		if p(s) {
			return true
		}
	}
	return false
}

// needNames says what each fact a rule may read is, for check.
var needNames = []struct {
	need needs
	name string
}{
	{needClient, "client address"},
	{needSerializer, "serializer id"},
	{needAnnotation, "annotations"},
	{needObject, "object id (CONNECT or call payload peek, or BLBI)"},
	{needMethod, "method name (call payload peek, or BLBI)"},
	{needBlob, "SerializedBlob info (BLBI annotation)"},
}

// describeNeeds says what a rule reads to match, for check.
func describeNeeds(n needs) string {
	if n == 0 {
		return "matches everything"
	}
	var parts []string
	for _, f := range needNames {
		if n&f.need != 0 {
			parts = append(parts, f.name)
		}
	}
	s := "needs " + strings.Join(parts, ", ")
	if n&(needObject|needMethod) != 0 {
		s += "; never matches pickle, dill, cloudpickle, msgpack or compressed payloads (not peeked)"
	}
	return s
}
