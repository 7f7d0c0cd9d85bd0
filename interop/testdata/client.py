"""A real, unmodified Pyro4 client running named scenarios against testdata/daemon.py,
for the session-mode interop tests (interop/session_test.go).

Usage: client.py --addr ADDR [--direct ADDR] [--proxy-only S1,S2] [--serializer S]
                 [--hmac KEY] SCENARIO...

ADDR is a dispatcher-style address ("127.0.0.1:PORT", "[::1]:PORT", "unix:/path"). Each
scenario runs against --addr ("via": "proxy") and, when --direct is given, once more
against that address ("via": "direct"), so the test can compare the two (except the
scenarios listed in --proxy-only). One JSON line
is printed per scenario run:
  {"scenario": NAME, "via": "proxy"|"direct", "ok": true, "result": {...}}
  {"scenario": NAME, "via": ..., "ok": false, "error": "Class: text", "trace": "..."}
Values in a result that differ between runs (ids, timings) are under the key "_v".
"""
import argparse
import hashlib
import json
import os
import sys
import threading
import time
import traceback
import uuid

import Pyro4
import Pyro4.core
import Pyro4.errors
import Pyro4.util
import serpent

OPTS = None


def uri(addr, obj):
    if addr.startswith("unix:"):
        return "PYRO:%s@./u:%s" % (obj, addr[5:])
    return "PYRO:%s@%s" % (obj, addr)


def proxy(addr, obj, cls=Pyro4.Proxy):
    p = cls(uri(addr, obj))
    if OPTS.hmac:
        p._pyroHmacKey = OPTS.hmac.encode()
    return p


def exc_name(e):
    t = type(e)
    return t.__name__ if t.__module__ == "builtins" else t.__module__ + "." + t.__name__


def as_bytes(data):
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return serpent.tobytes(data)


def wait_for(cond, timeout=10.0):
    """polls cond until it returns a true value or timeout seconds passed; returns its
    last value."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() > deadline:
            return v
        time.sleep(0.02)


def reset_context():
    ctx = Pyro4.current_context
    ctx.correlation_id = None
    ctx.annotations = {}
    ctx.response_annotations = {}


# The arguments of the echo scenario: unicode, nested containers (tuples that json turns
# into lists), keyword arguments with sorted keys (serpent sorts dict keys).
ECHO_ARGS = (42, -7.5, u"\u00fcn\u00efc\u00f8d\u00e9 \u2713 \u65e5\u672c \U0001F600", True, None,
             [1, [2, (3, u"x")]], {u"k": (u"t", 1)})
ECHO_KWARGS = {u"flag": False, u"nested": {u"a": [1, 2, {u"b": (3,)}]}, u"text": u"Gr\u00fc\u00dfe"}


def sc_echo(addr):
    """args and kwargs with unicode and nested containers, as the client and the backend see them."""
    with proxy(addr, "test.echo") as p:
        r = p.echo(*ECHO_ARGS, **ECHO_KWARGS)
        return {"args": repr(r["args"]), "kwargs": repr(r["kwargs"]), "seen": r["seen"],
                "add": p.add(2, 40), "add_kw": p.add(b=u"\u2713", a=u"x")}


def sc_exception(addr):
    """a remote exception with its remote traceback; the connection stays usable."""
    with proxy(addr, "test.echo") as p:
        try:
            p.fail(u"bad thing \u2717")
        except Exception as e:
            tb = "".join(Pyro4.util.getPyroTraceback())
            after = p.add(1, 1)
            return {"class": exc_name(e), "args": list(e.args), "traceback": tb, "after": after}
        return {"class": None}


def sc_metadata(addr):
    """metadata from the connect (methods, oneway, attrs), attribute get and set."""
    with proxy(addr, "test.meta") as p:
        p._pyroBind()
        out = {"methods": sorted(p._pyroMethods), "oneway": sorted(p._pyroOneway),
               "attrs": sorted(p._pyroAttrs)}
        if OPTS.serializer != "marshal":
            # (Pyro4 4.82 bug: attribute access with marshal crashes in the client, which
            # serializes the call's kwargs None)
            out["version"] = p.version
            out["label_before"] = p.label
            p.label = u"r\u00e9label \u2713"
            out["label_after"] = p.label
        out["total"] = p.total(1, 2, 3)
        out["fire"] = p.fire(1)
        out["ping_me"] = p.ping_me()
        try:
            p._hidden()
        except Exception as e:
            out["hidden"] = exc_name(e)
        return out


def sc_oneway(addr):
    """a oneway call of a method sleeping 2 s returns at once; the next calls work."""
    token, marker = str(uuid.uuid4()), str(uuid.uuid4())
    with proxy(addr, "test.echo") as p:
        p._pyroBind()
        t0 = time.time()
        r = p.sleep_oneway(2.0, token)
        elapsed = time.time() - t0
        state_right_after = p.state(token)  # the oneway still sleeps on the backend
        after = p.echo1(u"after oneway")
        p.mark(marker)
        marked = wait_for(lambda: p.state(marker))
        return {"returned": r, "state_right_after": state_right_after, "after": after,
                "marked": marked, "_v": {"elapsed": elapsed}}


def sc_batch(addr):
    """a batch (Pyro4.batch) stopping at an exception."""
    with proxy(addr, "test.echo") as p:
        b = Pyro4.batch(p)
        b.add(1, 2)
        b.echo1(u"b\u00e4tch")
        b.echo1([1, (2, 3)])
        b.fail(u"in batch")
        b.add(5, 5)
        results = []
        out = {}
        try:
            for r in b():
                results.append(repr(r))
        except Exception as e:
            out["error"] = exc_name(e) + ": " + str(e)
            out["traceback_has_frame"] = "in fail_inner" in "".join(Pyro4.util.getPyroTraceback())
        out["results"] = results
        out["after"] = p.add(3, 4)
        return out


BLOB_DATA = {
    "serpent": {u"a": [1, 2, 3], u"s": u"\u00fcn\u00ef \u2713", u"t": (1, u"x")},
    "marshal": (1, u"tw\u00f6", [3.5, None], {u"k": u"v"}),
    "pickle": {u"a": [1, 2, 3], u"s": u"\u00fcn\u00ef \u2713", u"t": (1, u"x"), u"set": frozenset([7])},
}  # (no json: Pyro4 4.82 cannot deserialize a json blob on the receiving side)


def sc_blob(addr):
    """a SerializedBlob call: the backend gets the blob's info and deserializable data."""
    data = BLOB_DATA[OPTS.serializer]
    with proxy(addr, "test.echo") as p:
        r = p.process_blob(Pyro4.core.SerializedBlob(u"topic \u2713", data))
        return {"info": r["info"], "data_repr": r["data_repr"], "type": r["type"], "is_blob": r["is_blob"],
                "keepserialized": bool(r["flags"] & 64), "sent_repr": repr(data)}


def sc_corr_set(addr):
    """a correlation id set by the client: the backend sees it and answers with it."""
    cid = uuid.uuid4()
    try:
        Pyro4.current_context.correlation_id = cid
        with proxy(addr, "test.echo") as p:
            r = p.context()
            r2 = p.context()
            resp = Pyro4.current_context.response_annotations.get("CORR")
        return {"_v": {"set": str(cid), "backend": r["corr"], "backend_annotation": r["corr_annotation"],
                       "second_call": r2["corr"],
                       "response_corr": str(uuid.UUID(bytes=bytes(resp))) if resp else None}}
    finally:
        reset_context()


def sc_corr_gen(addr):
    """no correlation id from the client: what the backend sees for two calls."""
    reset_context()
    with proxy(addr, "test.echo") as p:
        r = p.context()
        resp = Pyro4.current_context.response_annotations.get("CORR")
        r2 = p.context()
    return {"client_corr": str(Pyro4.current_context.correlation_id), "keys": r["keys"],
            "differs": r["corr"] != r2["corr"],
            "_v": {"backend": r["corr"], "backend2": r2["corr"], "backend_annotation": r["corr_annotation"],
                   "response_corr": str(uuid.UUID(bytes=bytes(resp))) if resp else None}}


class AnnotationProxy(Pyro4.Proxy):
    """the pre-4.56 way: a Proxy subclass adding and receiving annotations. (Attributes
    set on a Proxy go to the remote object: the received ones are kept in SEEN.)"""

    def _pyroAnnotations(self):
        return {"XYZZ": u"from the proxy subclass \u2713".encode("utf-8")}

    def _pyroResponseAnnotations(self, annotations, msgtype):
        SEEN.append([msgtype, {k: bytes(v).decode("utf-8", "replace") for k, v in annotations.items() if k != "CORR"}])


SEEN = []


def sc_annotations(addr):
    """custom annotations both ways, the Proxy-subclass way and the current_context way."""
    reset_context()
    out = {}
    del SEEN[:]
    with proxy(addr, "test.echo", AnnotationProxy) as p:
        r = p.context()
        out["subclass_backend_saw"] = r["annotations"]
        out["subclass_responses"] = list(SEEN)  # CONNECTOK (2) and RESULT (5)
    try:
        with proxy(addr, "test.echo") as p:
            Pyro4.current_context.annotations = {"XYZZ": b"via current_context", "ROUT": b"blue"}
            r = p.context()
            out["context_backend_saw"] = r["annotations"]
            out["context_response"] = {k: bytes(v).decode("utf-8", "replace")
                                       for k, v in Pyro4.current_context.response_annotations.items() if k != "CORR"}
            r = p.context()  # the context's annotations are for one call only
            out["next_call_backend_saw"] = r["annotations"]
    finally:
        reset_context()
    return out


def sc_handshake(addr):
    """a handshake rejected by the backend's validateHandshake, then one accepted."""
    out = {}
    p = proxy(addr, "test.echo")
    p._pyroHandshake = {"secret": u"wrong \u2717", "who": "test"}
    try:
        p._pyroBind()
        out["rejected"] = None
    except Exception as e:
        _, _, reason = str(e).partition(" rejected: ")
        out["rejected"] = {"class": exc_name(e), "reason": reason}
        out["_v"] = {"text": str(e)}
    finally:
        p._pyroRelease()

    responses = []

    class Checking(Pyro4.Proxy):
        def _pyroValidateHandshake(self, response):
            responses.append(response)

    p = proxy(addr, "test.echo", Checking)
    p._pyroHandshake = {"secret": "sesame", "who": u"t\u00e9ster"}
    with p:
        out["accepted"] = p.add(1, 2)
        out["responses"] = responses
    return out


def sc_instance(addr):
    """instance_mode session: one instance per connection (proxy)."""
    with proxy(addr, "test.session") as p1, proxy(addr, "test.session") as p2:
        a1, a2, b1, a3 = p1.ident(), p1.ident(), p2.ident(), p1.ident()
    with proxy(addr, "test.session") as p3:
        c1 = p3.ident()
    return {"same_proxy_same_instance": a1[0] == a2[0] == a3[0], "counts_p1": [a1[1], a2[1], a3[1]],
            "p2_separate": b1[0] != a1[0], "count_p2": b1[1],
            "p3_separate": c1[0] not in (a1[0], b1[0]), "count_p3": c1[1]}


def sc_resource(addr):
    """a resource tracked for a connection is closed on the backend when the proxy is released."""
    name = str(uuid.uuid4())
    with proxy(addr, "test.resources") as watcher:
        p = proxy(addr, "test.resources")
        allocated = p.allocate(name)
        before = watcher.status(name)
        time.sleep(0.1)
        still = watcher.status(name)
        p._pyroRelease()
        wait_for(lambda: watcher.status(name) == "closed")
        return {"allocated": allocated, "before_release": before, "still_open": still,
                "after_release": watcher.status(name)}


def finished(p, token):
    """the backend state of a tracked generator once its finally clause ran, else None."""
    state = p.state(token)
    return state if state and state.startswith("finally") else None


def sc_stream(addr):
    """item streaming: full iteration, and closed early (the generator's finally runs on
    the backend when the client closes the stream)."""
    token = str(uuid.uuid4())
    with proxy(addr, "test.echo") as p:
        full = list(p.gen(25))
        empty = list(p.gen(0))
        it = p.tracked_gen(token, 1000)
        first = [next(it), next(it), next(it)]
        it.close()
        closed = wait_for(lambda: finished(p, token))
        again = list(p.gen(3))
        # a fully iterated tracked generator runs its finally too
        token2 = str(uuid.uuid4())
        total = sum(p.tracked_gen(token2, 10))
        done = wait_for(lambda: finished(p, token2))
    return {"full": full, "empty": empty, "first": first, "closed_state": closed, "again": again,
            "total": total, "done_state": done}


# serpent and json send bytes as base64 text, which serpent decodes slowly (and Pyro4's
# json serializer cannot send bytes at all)
BIG = {"marshal": 32 << 20, "pickle": 32 << 20, "serpent": 2 << 20}


def sc_big(addr):
    """a big bytes payload round trip, checked by hashes on both sides."""
    data = os.urandom(BIG[OPTS.serializer])
    sent = hashlib.sha256(data).hexdigest()
    with proxy(addr, "test.echo") as p:
        t0 = time.time()
        r = p.big(data)
        back = as_bytes(r["data"])
        elapsed = time.time() - t0
        return {"len": r["len"], "backend_sha_matches": r["sha256"] == sent, "back_len": len(back),
                "back_sha_matches": hashlib.sha256(back).hexdigest() == sent, "after": p.add(1, 2),
                "_v": {"elapsed": elapsed, "sha256": sent}}


def sc_timeout(addr):
    """proxy._pyroTimeout on a slow call gives TimeoutError; a new proxy works."""
    p = proxy(addr, "test.echo")
    p._pyroBind()
    p._pyroTimeout = 0.5  # for the call only: the connection is made
    t0 = time.time()
    out = {}
    try:
        p.sleep(2.0)
        out["error"] = None
    except Exception as e:
        out["error"] = exc_name(e)
        out["is_timeout"] = isinstance(e, Pyro4.errors.TimeoutError)
    out["_v"] = {"elapsed": time.time() - t0}
    p._pyroRelease()
    with proxy(addr, "test.echo") as p2:
        p2._pyroTimeout = 5
        out["new_proxy"] = p2.add(20, 22)
    return out


def sc_concurrent(addr):
    """32 threads, each its own proxy, many verified calls each."""
    clients, calls = 32, 40
    errors, counts = [], [0] * clients
    start = threading.Barrier(clients)

    def run(i):
        try:
            with proxy(addr, "test.echo") as p:
                p._pyroTimeout = 30
                p._pyroBind()
                start.wait(20)
                for j in range(calls):
                    text = u"c%d-%d \u2713" % (i, j)
                    if p.add(i, j) != i + j:
                        raise AssertionError("add(%d, %d) wrong" % (i, j))
                    if p.echo1([i, j, text]) != [i, j, text]:
                        raise AssertionError("echo1 %d %d wrong" % (i, j))
                    counts[i] += 1
        except Exception as e:
            errors.append("client %d: %s: %s" % (i, exc_name(e), e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return {"clients": clients, "calls_each": calls, "ok_calls": sum(counts), "errors": errors[:5],
            "alive": sum(t.is_alive() for t in threads)}


def sc_hmac(addr):
    """with the right key (--hmac): calls work and the signed message is left untouched."""
    reset_context()
    with proxy(addr, "test.echo") as p:
        r = p.context()
        out = {"keys": r["keys"], "corr_annotation": r["corr_annotation"], "add": p.add(1, 2),
               "response_keys": sorted(Pyro4.current_context.response_annotations)}
    cid = uuid.uuid4()
    try:
        Pyro4.current_context.correlation_id = cid
        with proxy(addr, "test.echo") as p:
            out["client_corr_kept"] = p.context()["corr"] == str(cid)
            out["_v"] = {"cid": str(cid)}
    finally:
        reset_context()
    return out


def sc_hmac_bad(addr):
    """the key of --hmac is wrong, or missing: Pyro4's own SecurityError."""
    out = {}
    for name, key in (("wrong_key", b"not the key"), ("no_key", None)):
        p = Pyro4.Proxy(uri(addr, "test.echo"))
        p._pyroHmacKey = key
        try:
            out[name] = {"result": p.add(1, 2)}
        except Exception as e:
            cause = e.__cause__
            out[name] = {"class": exc_name(e), "cause": exc_name(cause) if cause else None,
                         "reason": str(cause) if cause else None}
            out.setdefault("_v", {})[name] = str(e)
        finally:
            p._pyroRelease()
    return out


def sc_compression(addr):
    """Pyro4.config.COMPRESSION with a large compressible argument and result."""
    Pyro4.config.COMPRESSION = True
    try:
        text = u"compress me \u2713 " * 50000
        with proxy(addr, "test.echo") as p:
            r = p.compressible(text)
            return {"len": r["len"], "sha_matches": r["sha256"] == hashlib.sha256(text.encode()).hexdigest(),
                    "request_compressed": bool(r["flags"] & 2), "text_back": r["text"] == text,
                    "small": p.add(1, 2)}
    finally:
        Pyro4.config.COMPRESSION = False


def sc_nameserver(addr):
    """a name server at --addr: register, lookup, list, PYRONAME resolution, remove."""
    host, port = addr.rsplit(":", 1)
    host = host.strip("[]")
    ns = Pyro4.locateNS(host=host, port=int(port))
    if OPTS.hmac:
        ns._pyroHmacKey = OPTS.hmac.encode()
    out = {"ns_uri_location_is_dispatcher": ns._pyroUri.location == addr}
    with ns:
        ns.ping()
        name = "test.dispatched.echo"
        ns.register(name, uri(addr, "test.echo"))
        ns.register("test.other", "PYRO:other@10.0.0.1:1234", metadata={"colour"})
        out["lookup"] = str(ns.lookup(name))
        out["list"] = {k: v for k, v in ns.list(prefix="test.").items()}
        out["meta"] = {k: v for k, v in ns.list(metadata_all={"colour"}).items()}
        # PYRONAME resolution through the dispatcher, then a call through it
        Pyro4.config.NS_HOST, Pyro4.config.NS_PORT = host, int(port)
        with Pyro4.Proxy("PYRONAME:" + name) as p:
            out["pyroname_call"] = p.add(20, 22)
        out["removed"] = ns.remove(name)
        out["list_after"] = sorted(ns.list(prefix="test."))
    return out


SCENARIOS = {k[3:]: v for k, v in globals().items() if k.startswith("sc_")}


def run(name, via, addr):
    t0 = time.time()
    try:
        result = SCENARIOS[name](addr)
        line = {"scenario": name, "via": via, "ok": True, "result": result}
    except Exception as e:
        line = {"scenario": name, "via": via, "ok": False, "error": "%s: %s" % (exc_name(e), e),
                "trace": traceback.format_exc() + "".join(Pyro4.util.getPyroTraceback())}
    line["seconds"] = round(time.time() - t0, 3)
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()


def main():
    global OPTS
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--direct")
    ap.add_argument("--serializer", default="serpent")
    ap.add_argument("--hmac")
    ap.add_argument("--proxy-only", default="", help="comma-separated scenarios not run with --direct")
    ap.add_argument("scenarios", nargs="+")
    OPTS = ap.parse_args()
    Pyro4.config.SERIALIZER = OPTS.serializer
    # every socket operation is bounded: a hang shows as a TimeoutError in its scenario
    Pyro4.config.COMMTIMEOUT = 20.0
    for name in OPTS.scenarios:
        if name not in SCENARIOS:
            sys.exit("unknown scenario %r (have %s)" % (name, ", ".join(sorted(SCENARIOS))))
    proxy_only = set(OPTS.proxy_only.split(","))
    for name in OPTS.scenarios:
        run(name, "proxy", OPTS.addr)
        if OPTS.direct and name not in proxy_only:
            run(name, "direct", OPTS.direct)


if __name__ == "__main__":
    main()
