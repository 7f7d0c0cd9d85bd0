"""Golden replies of a real Pyro4 4.82 name server, for package nsview.

    nsgolden.py capture     prints the golden file (JSON lines) on stdout
    nsgolden.py verify      reads Go's rewritten payloads (JSON lines) on stdin, decodes
                            them with Pyro4's own serializers and prints a verdict a line
    nsgolden.py parse       reads a JSON list of str on stdin and prints how core.URI
                            reads each

capture starts two name servers on 127.0.0.1 (NameServerDaemon, random ports) in this
process, registers URIs of every kind, calls them through real Proxies with the
serpent, json and marshal serializers (and once with COMPRESSION on), and records each
RESULT payload exactly as Message.recv received it. Values that no name server returns
but that exercise marshal back-references (shared objects) are serialized directly by
Pyro4's serializers. For each payload it also writes what Python finds in it (the URIs
in payload order) and, for serpent and json, the exact bytes Pyro4 writes for the value
with the golden mapping applied. Nothing expected comes from Go.
"""

import base64
import binascii
import json
import marshal
import sys
import threading

import Pyro4
from Pyro4 import core, errors, message, naming, util

Pyro4.config.SERIALIZERS_ACCEPTED = {"serpent", "json", "marshal"}
SERIALIZERS = ["serpent", "json", "marshal"]
SERIALIZER_IDS = {"serpent": 1, "json": 2, "marshal": 3}
SERIALIZER_NAMES = {v: k for k, v in SERIALIZER_IDS.items()}
EDGE = "edge.example.com"


# --- what the Go package must agree with ---------------------------------------------

def canon(host, port, sock):
    """The location as nsview.Addr.String writes it (port 0: none given)."""
    if host:
        h = "[%s]" % host if ":" in host else host
        return h + (":%d" % port if port else "")
    if sock:
        return "./u:" + sock
    return ""


def parse_str(s):
    """A str that core.URI accepts: (protocol, object, canonical location, match)."""
    m = core.URI.uriRegEx.match(s)
    if not m:
        return None
    try:
        core.URI(s)
    except (errors.PyroError, ValueError, TypeError):
        return None
    u = core.URI.__new__(core.URI)
    u.sockname = u.host = u.port = None
    loc = m.group("location")
    if loc:
        u._parseLocation(loc, 0)  # port 0: none given, as nsview reports it
    if not 0 <= (u.port or 0) <= 65535:
        return None
    return m.group("protocol").upper(), m.group("object"), canon(u.host, u.port, u.sockname), m


def is_uri_dict(v):
    if not isinstance(v, dict) or v.get("__class__") != "Pyro4.core.URI":
        return False
    st = v.get("state")
    if not isinstance(st, (tuple, list)) or len(st) != 5:
        return False
    proto, obj, sock, host, port = st
    if proto not in ("PYRO", "PYRONAME", "PYROMETA"):
        return False
    if not isinstance(obj, str) and proto != "PYROMETA":
        return False
    if not all(x is None or isinstance(x, str) for x in (sock, host)):
        return False
    return port is None or (type(port) is int and 0 <= port <= 65535)


def new_location(loc):
    """(sock, host, port) of a location in the mapping."""
    if loc.startswith("./u:"):
        return loc[4:], None, None
    u = core.URI("PYRO:x@" + loc)
    return None, u.host, u.port


def transform(value, mapping, found, shared):
    """value (as the serializer's loads returns it, before recreate_classes) with the URIs
    mapped; appends (protocol, object, location, form) to found in payload order. With
    shared (marshal), a container or str object met again is not reported again, as
    nsview reports a shared object once."""
    memo = {}

    def walk(v):
        if shared and isinstance(v, (dict, list, tuple, set, frozenset, str)) and id(v) in memo:
            return memo[id(v)]
        r = visit(v)
        if shared:
            memo[id(v)] = r
        return r

    def visit(v):
        if isinstance(v, dict):
            if is_uri_dict(v):
                proto, obj, sock, host, port = v["state"]
                loc = canon(host, port or 0, sock) if host else canon(None, 0, sock)
                found.append([proto, obj if isinstance(obj, str) else "", loc, "object"])
                if loc in mapping:
                    nsock, nhost, nport = new_location(mapping[loc])
                    st = (proto, obj, nsock, nhost, nport)
                    v = dict(v)
                    v["state"] = type(v["state"])(st)
                return v
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, tuple):
            return tuple(walk(x) for x in v)
        if isinstance(v, (set, frozenset)):
            return type(v)(walk(x) for x in v)
        if isinstance(v, str):
            p = parse_str(v)
            if p:
                proto, obj, loc, m = p
                found.append([proto, obj, loc, "string"])
                # An object ending in "@" without a location cannot take one ("o@" +
                # "@gw" reads back as object "o"): nsview leaves such a URI as it is.
                if loc in mapping and (m.group("location") or not obj.endswith("@")):
                    if m.group("location"):
                        return v[:m.start("location")] + mapping[loc]
                    return v[:m.end("object")] + "@" + mapping[loc]
        return v

    return walk(value)


def raw_loads(ser, data):
    """The value before recreate_classes, sharing kept (marshal)."""
    if ser == "serpent":
        import serpent
        return serpent.loads(data)
    if ser == "json":
        return json.loads(data.decode("utf-8"))
    return marshal.loads(data)


def expected(ser, payload, compressed, mapping):
    import zlib
    data = zlib.decompress(payload) if compressed else payload
    found = []
    raw = raw_loads(ser, data)
    value = transform(raw, mapping, found, ser == "marshal")
    s = util.get_serializer(ser)
    want = None
    if ser != "marshal" and not compressed:
        # Exact bytes, when Pyro4 writes the unchanged value back byte for byte.
        if s.dumps(s.recreate_classes(raw)) == data:
            want = s.dumps(s.recreate_classes(value))
    return found, s.recreate_classes(value), want


# --- capture -----------------------------------------------------------------------------

MAPPING_STATIC = {
    "10.0.0.1:5000": EDGE + ":7000",
    "[::1]:5001": "[2001:db8::7]:7001",
    "[fe80::1%2]:5002": EDGE + ":7002",
    "backend.internal:5003": "10.9.9.9:7003",
    "./u:/tmp/pyro.sock": EDGE + ":7004",
    "./u:/tmp/it's a \"sock\" \u00e9.sock": "./u:/run/edge 'q' \u00e9.sock",
    "10.0.0.2:5000": "./u:/run/edge.sock",
    "10.0.0.9:5009": "./u:/run/edge9.sock",
    "nshost.internal:9090": EDGE + ":9091",
    "nshost.internal": EDGE + ":9092",
    "10.1.0.1:6001": EDGE + ":8001",
    "10.1.0.2:6002": EDGE + ":8002",
}

ENTRIES = [
    ("svc.ipv4", "PYRO:obj_4@10.0.0.1:5000", {"tier:a", "v1"}),
    ("svc.ipv6", "PYRO:obj_6@[::1]:5001", {"tier:b"}),
    ("svc.v6scope", "PYRO:obj_s@[fe80::1%2]:5002", None),
    ("svc.host", "PYRO:obj_h@backend.internal:5003", {"tier:a"}),
    ("svc.unix", "PYRO:obj_u@./u:/tmp/pyro.sock", None),
    ("svc.unix.odd", "PYRO:obj_q@./u:/tmp/it's a \"sock\" \u00e9.sock", None),
    ("svc.to.unix", "PYRO:obj_2@10.0.0.2:5000", {"v1"}),
    ("\u00fcn\u00efc\u00f8d\u00e9 \u2603 'q' \"dq\"", "PYRO:obj_\u00fc@10.0.0.1:5000", {"m\u00e9ta 'x'"}),
    ("emoji \U0001F600", "PYRO:\U0001F600obj@10.0.0.1:5000", None),
    ("ctl\u200b\x7f\t", "PYRO:obj_z\u200b\x7f@10.0.0.1:5000", None),
    ("lower.case", "pyro:obj_l@10.0.0.1:0005000", None),
    ("quote'obj", "PYRO:o'b\"j@10.0.0.1:5000", None),
    ("at.in.host", "PYRO:a@b@10.0.0.1:5000", None),
    ("v6.tail", "PYRO:obj_t@[::1]:5001xyz", None),
    ("name.loc", "PYRONAME:other.name@nshost.internal:9090", None),
    ("name.noloc", "PYRONAME:other.name", None),
    ("meta", "PYROMETA:tier:a,v1@nshost.internal", None),
    ("not.fronted", "PYRO:obj_n@192.0.2.99:6000", {"tier:a"}),
    ("not.a.uri", "PYRO:obj_bad@host:notaport", None),
]

LOOKUPS = ["Pyro.NameServer", "svc.ipv4", "svc.ipv6", "svc.v6scope", "svc.host", "svc.unix",
           "svc.unix.odd", "svc.to.unix", "\u00fcn\u00efc\u00f8d\u00e9 \u2603 'q' \"dq\"",
           "emoji \U0001F600", "ctl\u200b\x7f\t", "lower.case", "quote'obj", "at.in.host",
           "v6.tail", "name.loc", "name.noloc", "meta", "not.fronted"]


def start_ns():
    uri, daemon, _ = naming.startNS(host="127.0.0.1", port=0, enableBroadcast=False)
    threading.Thread(target=daemon.requestLoop, daemon=True).start()
    return uri, daemon


def capture():
    # "not.a.uri" cannot be registered (core.URI refuses it): store it directly, as a
    # storage holding a hand-edited value would return it.
    ns_uri, ns_daemon = start_ns()
    bench_uri, bench_daemon = start_ns()
    ns = ns_daemon.nameserver
    mapping = dict(MAPPING_STATIC)
    mapping["127.0.0.1:%d" % ns_uri.port] = EDGE + ":9090"

    for name, uri, meta in ENTRIES:
        if name == "not.a.uri":
            ns.storage[name] = (uri, frozenset())
        else:
            ns.register(name, uri, metadata=meta)
    # One str object under two names, as a name and its own URI, and as metadata: marshal
    # writes the repeats as back-references.
    shared = "".join(["PYRO:obj_sh", "@10.0.0.1:5000"])
    ns.register("shared.1", shared)
    ns.register("shared.2", shared, metadata={shared})
    self_named = "".join(["PYRO:obj_self", "@10.0.0.2:5000"])
    ns.register(self_named, self_named)

    bench = bench_daemon.nameserver
    for i in range(100):
        bench.register("bench.service.%03d" % i,
                       "PYRO:obj_%032x@10.1.0.%d:600%d" % (i * 7919, i % 2 + 1, i % 2 + 1),
                       metadata={"group:%d" % (i % 5), "class:bench.Service"})

    captured = []
    recv = message.Message.recv.__func__

    def recording_recv(cls, *args, **kwargs):
        msg = recv(cls, *args, **kwargs)
        if msg.type == message.MSG_RESULT:
            captured.append(msg)
        return msg

    message.Message.recv = classmethod(recording_recv)
    out = [{"mapping": mapping}]

    def call(ser, name, fn, uri=ns_uri):
        with Pyro4.Proxy(uri) as p:
            p._pyroSerializer = ser
            del captured[:]
            try:
                fn(p)
            except Exception:
                pass  # an exception reply is captured as well
            msg = captured[-1]
        out.append({"name": "%s/%s" % (ser, name), "ser": SERIALIZER_IDS[ser],
                    "flags": msg.flags, "payload": binascii.hexlify(msg.data).decode()})

    for ser in SERIALIZERS:
        for n in LOOKUPS:
            call(ser, "lookup(%r)" % n, lambda p: p.lookup(n))
        for n in ["svc.ipv4", "svc.unix"]:
            call(ser, "lookup(%r,meta)" % n, lambda p: p.lookup(n, return_metadata=True))
        call(ser, "lookup(missing)", lambda p: p.lookup("missing"))
        for meta in (False, True):
            tag = ",meta" if meta else ""
            call(ser, "list(%s)" % tag, lambda p: p.list(return_metadata=meta))
            call(ser, "list(prefix%s)" % tag, lambda p: p.list(prefix="svc.", return_metadata=meta))
            call(ser, "list(regex%s)" % tag, lambda p: p.list(regex=r"shared\..*", return_metadata=meta))
            call(ser, "list(metadata_all%s)" % tag, lambda p: p.list(metadata_all={"tier:a"}, return_metadata=meta))
            call(ser, "list(metadata_any%s)" % tag, lambda p: p.list(metadata_any={"v1", "none"}, return_metadata=meta))
            call(ser, "bench.list(%s)" % tag, lambda p: p.list(return_metadata=meta), bench_uri)
        call(ser, "count()", lambda p: p.count())
        call(ser, "ping()", lambda p: p.ping())

    Pyro4.config.COMPRESSION = True
    for ser in SERIALIZERS:
        call(ser, "compressed.list(meta)", lambda p: p.list(return_metadata=True))
        call(ser, "compressed.bench.list()", lambda p: p.list(), bench_uri)
    Pyro4.config.COMPRESSION = False

    out.extend(synthetic())
    for rec in out[1:]:
        payload = binascii.unhexlify(rec["payload"])
        ser = SERIALIZER_NAMES[rec["ser"]]
        if rec.get("error"):
            continue
        found, _, want = expected(ser, payload, rec["flags"] & message.FLAGS_COMPRESSED, mapping)
        rec["found"] = found
        if want is not None:
            rec["want"] = binascii.hexlify(want).decode()
    for rec in out:
        print(json.dumps(rec, ensure_ascii=True, sort_keys=True))
    ns_daemon.shutdown()
    bench_daemon.shutdown()


def synthetic():
    """Values no name server returns, serialized by Pyro4's serializers: shared objects
    (marshal back-references) and URI objects in unusual places. Pyro4's marshal
    serializer converts only a top-level URI, so marshal values hold the dict form."""
    recs = []
    keep = []  # extra references make marshal flag the objects (FLAG_REF)

    def add(name, value, ser="marshal", error=None):
        data, _ = util.get_serializer(ser).serializeData(value)
        rec = {"name": "synthetic/%s/%s" % (ser, name), "ser": SERIALIZER_IDS[ser],
               "flags": 0, "payload": binascii.hexlify(data).decode()}
        if error:
            rec["error"] = error
        recs.append(rec)

    def urid(proto, obj, sock, host, port):
        return {"__class__": "Pyro4.core.URI", "state": (proto, obj, sock, host, port)}

    host, port = "".join(["10.0.0", ".1"]), int("5000")
    keep += [host, port]
    add("shared-host-port", [urid("PYRO", "a", None, host, port), urid("PYRO", "b", None, host, port), host, port])

    host9, port9, tail = "".join(["10.0.0", ".9"]), int("5009"), "".join(["tail", "-string"])
    keep += [host9, port9, tail]
    add("tcp-to-unix-renumber", [urid("PYRO", "n", None, host9, port9), tail, urid("PYRO", "m", None, host9, port9),
                                 tail, host9, port9, {"k": tail}])

    sock = "".join(["/tmp/", "pyro.sock"])
    keep.append(sock)
    add("unix-to-tcp", [urid("PYRO", "s", sock, None, None), urid("PYRO", "t", sock, None, None), sock])

    s = "".join(["PYRO:obj_v", "@10.0.0.1:5000"])
    lst = [s]
    keep += [s, lst]
    add("shared-list", [lst, lst, s])
    add("value-then-key", [s, {s: 1}, s])

    st = ("PYRO", "o", None, host, port)
    keep.append(st)
    add("shared-state", [{"__class__": "Pyro4.core.URI", "state": st}, {"__class__": "Pyro4.core.URI", "state": st}])
    add("tuple-then-state", [st, {"__class__": "Pyro4.core.URI", "state": st}], error="unsupported")

    t = ("".join(["PYRO:obj_k", "@10.0.0.1:5000"]),)
    keep.append(t)
    add("tuple-key-and-value", {t: 1, "v": t}, error="unsupported")

    u1 = core.URI("PYRO:a@10.0.0.1:5000")
    for ser in SERIALIZERS:
        d = {"state": ("PYRO", "o", None, "10.0.0.1", 5000), "extra": "PYRO:x@10.0.0.1:5000",
             "__class__": "Pyro4.core.URI"}
        add("state-before-class", [d, "PYRO:y@10.0.0.2:5000"], ser)
        u = urid("PYRO", "a", None, "10.0.0.1", 5000) if ser == "marshal" else u1
        add("nested", {"a": [(u, {"b": "PYRO:c@[::1]:5001"})], "c": {1, 2}, "d": [None, 1.5, True]}, ser)
    return recs


# --- verify ------------------------------------------------------------------------------

def same(a, b):
    """Equality that tells tuples from lists (Python's == does) and compares URIs by
    their fields (core.URI.__eq__ does)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a != a:
        return b != b  # NaN
    return a == b


def verify():
    for line in sys.stdin:
        req = json.loads(line)
        ser = SERIALIZER_NAMES[req["ser"]]
        s = util.get_serializer(ser)
        compressed = bool(req["compressed"])
        payload = binascii.unhexlify(req["payload"])
        out = binascii.unhexlify(req["out"])
        try:
            _, want, _ = expected(ser, payload, compressed, req["mapping"])
            got = s.deserializeData(out, compressed=compressed)
            if isinstance(want, Exception) or isinstance(got, Exception):
                ok = repr(want) == repr(got)
            else:
                ok = same(want, got)
            res = {"name": req["name"], "ok": ok}
            if not ok:
                res["detail"] = "want %r\n got %r" % (want, got)
        except Exception as e:  # the Go output does not decode
            res = {"name": req["name"], "ok": False, "detail": "%s: %s" % (type(e).__name__, e)}
        print(json.dumps(res))


def parse():
    """For each str of the JSON list on stdin: [protocol, object, location] as core.URI
    reads it, or null when it does not accept it."""
    res = []
    for s in json.load(sys.stdin):
        p = parse_str(s)
        res.append(list(p[:3]) if p else None)
    print(json.dumps(res))


if __name__ == "__main__":
    {"capture": capture, "verify": verify, "parse": parse}[sys.argv[1]]()
