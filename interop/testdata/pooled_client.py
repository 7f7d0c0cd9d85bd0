"""A real, unmodified Pyro4 client running the pooled-mode scenarios of
interop/pooled_test.go against testdata/daemon.py through a pooled dispatcher listener.

Usage: pooled_client.py --addr ADDR --daemon ADDR [--signal FILE] SCENARIO

ADDR is a dispatcher-style address ("127.0.0.1:PORT", "unix:/path"): --addr the
dispatcher's, --daemon the daemon's own, where an observer connection (handshake data
"observer", which the daemon does not count) reads the daemon's connection counts.
The scenario prints one JSON line:
  {"scenario": NAME, "ok": true, "result": {...}}
  {"scenario": NAME, "ok": false, "error": "Class: text", "trace": "..."}
The scenario "lost" is driven by the test instead: it prints one JSON line per step (see
sc_lost).
"""
import argparse
import json
import os
import sys
import threading
import time
import traceback
import uuid

import Pyro4
import Pyro4.errors
import Pyro4.util
import serpent

OPTS = None


def uri(addr, obj):
    if addr.startswith("unix:"):
        return "PYRO:%s@./u:%s" % (obj, addr[5:])
    return "PYRO:%s@%s" % (obj, addr)


def proxy(obj, cls=Pyro4.Proxy):
    """a proxy through the dispatcher"""
    return cls(uri(OPTS.addr, obj))


def observer(obj="test.stats"):
    """a proxy straight to the daemon, on a connection the daemon does not count"""
    p = Pyro4.Proxy(uri(OPTS.daemon, obj))
    p._pyroHandshake = "observer"
    return p


def exc_name(e):
    t = type(e)
    return t.__name__ if t.__module__ == "builtins" else t.__module__ + "." + t.__name__


def outcome(f):
    """calls f; returns {"ok": result} or {"class", "error"}, with the seconds it took"""
    t0 = time.time()
    try:
        out = {"ok": f()}
    except Exception as e:
        out = {"class": exc_name(e), "error": str(e)}
    out["seconds"] = round(time.time() - t0, 3)
    return out


def wait_for(cond, timeout=10.0):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() > deadline:
            return v
        time.sleep(0.02)


def delta(after, before):
    return {k: after[k] - before[k] for k in ("handshakes", "accepted", "rejected", "disconnects")}


def run_threads(n, target):
    errors = []

    def wrap(i):
        try:
            target(i)
        except Exception as e:
            errors.append("thread %d: %s: %s" % (i, exc_name(e), e))

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors + ["thread %d hangs" % i for i, t in enumerate(threads) if t.is_alive()]


def sc_resources():
    """a client of the affinity object test.resources allocates a tracked resource; while
    it holds it, 8 clients of test.echo (no affinity) call concurrently; then the resource
    client disconnects."""
    stats = observer()
    before = stats.connections()
    name = str(uuid.uuid4())
    key = "resource:" + name
    out = {}
    res = proxy("test.resources")
    out["allocated"] = res.allocate(name)
    clients, calls = 8, 10
    conns = set()
    start = threading.Barrier(clients)

    def echo_client(i):
        with proxy("test.echo") as p:
            p._pyroBind()
            start.wait(20)
            for j in range(calls):
                if p.add(i, j) != i + j:
                    raise AssertionError("add(%d, %d) wrong" % (i, j))
                conns.add(p.conn())

    out["echo_errors"] = run_threads(clients, echo_client)
    out["echo_clients"] = clients
    out["echo_backend_conns"] = len(conns)
    with proxy("test.echo") as watcher:  # another object, through the dispatcher
        out["during"] = watcher.state(key)
        res._pyroRelease()  # the resource client disconnects
        out["after_release"] = wait_for(lambda: watcher.state(key) == "closed" and "closed") or watcher.state(key)
        out["hook"] = watcher.state("disconnect:" + name)
        out["watcher_call_ok"] = watcher.add(1, 1) == 2
    out["daemon"] = delta(stats.connections(), before)
    return out


def stream_client(p, n, delay, items):
    for item in p.conn_gen(n, delay):
        items.append(item)


def sc_streams():
    """3 clients, each streaming, through a pool of 2 connections (wait timeout short):
    A and B hold a stream each (pinned); C's stream call waits and times out; once A is
    done and disconnected, C's same proxy streams."""
    stats = observer()
    before = stats.connections()
    out = {}
    a, b, c = proxy("test.echo"), proxy("test.echo"), proxy("test.echo")
    for p in (a, b, c):
        p._pyroBind()
    n = 20
    items = {"a": [], "b": [], "c": []}
    it_a, it_b = a.conn_gen(n, 0.02), b.conn_gen(n, 0.02)
    items["a"].append(next(it_a))
    items["b"].append(next(it_b))
    # A and B iterate their streams concurrently while C tries to start one.
    threads = [threading.Thread(target=lambda it=it, k=k: items[k].extend(it)) for it, k in ((it_a, "a"), (it_b, "b"))]
    for t in threads:
        t.start()
    out["c_first"] = outcome(lambda: list(c.conn_gen(3)))
    out["c_connected_after_error"] = c._pyroConnection is not None
    for t in threads:
        t.join(30)
    out["stream_threads_alive"] = sum(t.is_alive() for t in threads)
    a._pyroRelease()  # A's pinned connection goes back to the backend (closed)
    out["c_again"] = outcome(lambda: stream_client(c, 5, 0, items["c"]) or len(items["c"]))
    out["c_call_after"] = outcome(lambda: c.add(2, 3))
    b._pyroRelease()
    c._pyroRelease()
    out["items"] = items
    out["daemon"] = delta(stats.connections(), before)
    return out


def sc_wait_timeout():
    """a pool of 1 connection: S holds it with a slow call; F's call waits for it, times out;
    S is unaffected; F's same proxy works once S's call is done."""
    token = str(uuid.uuid4())
    watch = observer("test.echo")
    s, f = proxy("test.echo"), proxy("test.echo")
    s._pyroBind()
    f._pyroBind()
    out = {}
    slow = {}
    t = threading.Thread(target=lambda: slow.update(outcome(lambda: s.slow(2.0, token))))
    t.start()
    out["slow_started"] = wait_for(lambda: watch.state(token))
    out["f_first"] = outcome(lambda: f.add(1, 2))
    out["f_connected_after_error"] = f._pyroConnection is not None
    out["slow_state_then"] = watch.state(token)
    t.join(30)
    out["slow"] = slow
    out["f_again"] = outcome(lambda: f.add(3, 4))
    out["s_again"] = outcome(lambda: s.add(5, 6))
    s._pyroRelease()
    f._pyroRelease()
    return out


class Checking(Pyro4.Proxy):
    """keeps the handshake response of its connection (in a class-level dict: attributes
    set on a Proxy go to the remote object)"""
    responses = {}

    def _pyroValidateHandshake(self, response):
        Checking.responses[threading.get_ident()] = response


def handshake_call(secret, who):
    """a new proxy with handshake data {"secret", "who"} calls add(1, 2); returns the outcome
    and the handshake response its connection got"""
    Checking.responses.pop(threading.get_ident(), None)
    p = proxy("test.echo", Checking)
    p._pyroHandshake = {"secret": secret, "who": who}
    try:
        r = outcome(lambda: p.add(1, 2))
    finally:
        p._pyroRelease()
    r["response"] = Checking.responses.get(threading.get_ident())
    return r


def sc_handshakes():
    """concurrent clients with different handshakes, accepted and rejected, then a rejected
    handshake that the daemon starts to accept."""
    stats = observer()
    out = {}
    variants = [("sesame", "alice"), ("sesame", "bob"), ("wrong", "eve")]
    records = []
    lock = threading.Lock()

    def client(i):
        for round_ in range(4):
            secret, who = variants[(i + round_) % len(variants)]
            r = handshake_call(secret, who)
            with lock:
                records.append([secret, who, r])

    out["mixed_errors"] = run_threads(6, client)
    out["mixed"] = records
    # One handshake, rejected several times in a row: each rejection comes from the
    # daemon's validateHandshake; once the daemon accepts it, it works.
    before = stats.connections()
    out["later_rejected"] = [handshake_call("later", "dave") for _ in range(4)]
    out["later_daemon"] = delta(stats.connections(), before)
    stats.accept_secret("later")
    out["later_accepted"] = handshake_call("later", "dave")
    return out


def sc_connect_cache():
    """24 clients connect at once (real handshakes, metadata) through a pool of 3."""
    stats = observer()
    before = stats.connections()
    clients = 24
    start = threading.Barrier(clients)
    conns, methods = set(), []
    hold = threading.Event()
    connected = threading.Barrier(clients + 1)

    def client(i):
        with proxy("test.echo") as p:
            p._pyroBind()
            methods.append("add" in p._pyroMethods and "conn_gen" in p._pyroMethods)
            start.wait(20)
            for j in range(3):
                if p.add(i, j) != i + j:
                    raise AssertionError("add(%d, %d) wrong" % (i, j))
                conns.add(p.conn())
            connected.wait(20)
            hold.wait(20)  # all clients stay connected until the counts are read

    errors = []
    t = threading.Thread(target=lambda: errors.extend(run_threads(clients, client)))
    t.start()
    connected.wait(30)
    during = stats.connections()
    hold.set()
    t.join(60)
    return {"clients": clients, "errors": errors, "metadata_ok": sum(methods), "backend_conns": len(conns),
            "daemon": delta(during, before), "daemon_open": during["open"] - before["open"]}


def sc_lost():
    """driven by the test: a proxy warms up (prints "ready") and starts a slow call during
    which the test kills the daemon; once the file --signal.down exists (the daemon is
    gone), it calls again, and once --signal exists (the daemon is restarted), once more.
    Each step prints a JSON line."""
    p = proxy("test.echo")
    p._pyroTimeout = 30
    p.add(1, 1)
    print("ready", flush=True)

    def step(name, r):
        r["step"] = name
        r["connected"] = p._pyroConnection is not None
        print(json.dumps(r, sort_keys=True), flush=True)

    step("slow", outcome(lambda: p.slow(60, "doomed")))
    wait_for(lambda: os.path.exists(OPTS.signal + ".down"), 30)
    step("down", outcome(lambda: p.add(2, 2)))
    wait_for(lambda: os.path.exists(OPTS.signal), 30)
    step("restarted", outcome(lambda: p.add(3, 4)))
    p._pyroRelease()
    return None


def as_bytes(data):
    """bytes from a bytes result in any serializer (serpent sends a base64 dict)"""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return serpent.tobytes(data)


def sc_parked():
    """three clients (serpent, json, marshal) make calls of every kind, go idle for longer
    than the listener's park_after (their sessions park), and call again, three times:
    small calls, a 256 KiB payload (spliced; not json), a oneway call, a SerializedBlob
    call (not json). Every
    result is checked here; the test counts the parkings in the dispatcher's log."""
    data = os.urandom(256 << 10)
    proxies = []
    for ser in ("serpent", "json", "marshal"):
        p = proxy("test.echo")
        p._pyroSerializer = ser
        proxies.append(p)
    rounds = []
    for r in range(3):
        got = []
        for i, p in enumerate(proxies):
            token = "parked-%d-%d" % (r, i)
            if p.add(r, i) != r + i:
                raise AssertionError("add(%d, %d) wrong" % (r, i))
            if p.echo1(token) != token:
                raise AssertionError("echo1 %s wrong" % token)
            if p._pyroSerializer != "json":  # json sends bytes as base64: see big()
                big = p.big(data)
                if big["len"] != len(data) or as_bytes(big["data"]) != data:
                    raise AssertionError("big() round %d serializer %s: wrong reply" % (r, p._pyroSerializer))
            p._pyroOneway.add("mark")
            p.mark(token)
            if not wait_for(lambda: p.state(token) == "marked"):
                raise AssertionError("oneway mark(%s) never arrived" % token)
            if p._pyroSerializer != "json":  # Pyro4 4.82 cannot deserialize a json blob
                blob = Pyro4.core.SerializedBlob("info-%d" % r, {"n": r})
                out = p.process_blob(blob)
                with Pyro4.Proxy(uri(OPTS.daemon, "test.echo")) as d:  # the same call, directly
                    d._pyroSerializer = p._pyroSerializer
                    want = d.process_blob(blob)
                if out != want or out["info"] != "info-%d" % r or not out["is_blob"]:
                    raise AssertionError("process_blob round %d: %r, directly %r" % (r, out, want))
            got.append(p._pyroSerializer)
        rounds.append(got)
        time.sleep(0.7)  # idle: past park_after and a sweep
    for p in proxies:
        p._pyroRelease()
    return {"rounds": rounds}


SCENARIOS = {k[3:]: v for k, v in globals().items() if k.startswith("sc_")}


def main():
    global OPTS
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--signal")
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    OPTS = ap.parse_args()
    Pyro4.config.SERIALIZER = "serpent"
    # every socket operation is bounded: a hang shows as a TimeoutError
    Pyro4.config.COMMTIMEOUT = 20.0
    if OPTS.scenario == "lost":
        sc_lost()
        return
    t0 = time.time()
    try:
        line = {"scenario": OPTS.scenario, "ok": True, "result": SCENARIOS[OPTS.scenario]()}
    except Exception as e:
        line = {"scenario": OPTS.scenario, "ok": False, "error": "%s: %s" % (exc_name(e), e),
                "trace": traceback.format_exc() + "".join(Pyro4.util.getPyroTraceback())}
    line["seconds"] = round(time.time() - t0, 3)
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
