# Pyro4 clients for the fault tests of faults_pyro4_test.go, against testdata/fx_daemon.py
# directly or through the dispatcher. One scenario per run; progress lines first, then the
# outcome as one JSON line (the last line).
#
# usage: fx_client.py SCENARIO ARGS...
#   maxretries URI                  _pyroMaxRetries 0 and 2 on a call whose connection the
#                                   daemon drops; an idle bystander proxy calls on after.
#   reconnect URI DIR               echo; "ready"; waits for DIR/restarted; echo again,
#                                   _pyroReconnect on an error; "phase2"; waits for
#                                   DIR/down; fresh proxies call every 50 ms until one works.
#   commtimeout URI THREADS ROUNDS LONG
#                                   each thread idles LONG or 0.1 s by turns, then pings
#                                   its connection (Message.ping, as the disconnects example),
#                                   reconnects when it was closed, and calls echo.
#   abandon LABEL=URI...            per URI, 3 rounds: a slow call abandoned on its
#                                   _pyroTimeout, then a 0.2 s call on the same proxy, timed.
#   inflight URI DIR N              N threads, each with its proxy, call slow(30); "outcomes"
#                                   once every call ended; waits for DIR/restarted; each
#                                   proxy calls echo again.
#   cycle URI THREADS ROUNDS WANT   THREADS threads call process([...]) ROUNDS times, each
#                                   until its first error; WANT is the JSON result each
#                                   call must return.
# An outcome is {"ok": result} or {"class": "Pyro4.errors.X", "error": str}, with "seconds".
import json
import os
import sys
import threading
import time

import Pyro4
import Pyro4.errors
import Pyro4.message

TIMEOUT = 10  # every proxy's _pyroTimeout: a reply that never comes shows as TimeoutError
lock = threading.Lock()


def say(line):
    with lock:
        print(line, flush=True)


def classname(e):
    return type(e).__module__ + "." + type(e).__qualname__


def outcome(f):
    t0 = time.monotonic()
    try:
        res = {"ok": f()}
    except Exception as e:
        res = {"class": classname(e), "error": str(e)}
    res["seconds"] = round(time.monotonic() - t0, 4)
    return res


def proxy(uri, timeout=TIMEOUT):
    p = Pyro4.Proxy(uri)
    p._pyroTimeout = timeout
    return p


def wait_file(path, within=60):
    deadline = time.monotonic() + within
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError("no %s within %ss" % (path, within))
        time.sleep(0.01)


def maxretries(uri):
    res = {}
    bystander = proxy(uri)
    res["bystander_before"] = outcome(lambda: bystander.echo("b1"))
    p0 = proxy(uri)
    p0._pyroMaxRetries = 0
    res["no_retry"] = outcome(lambda: p0.drop("t0"))
    p2 = proxy(uri)
    p2._pyroMaxRetries = 2
    res["retry"] = outcome(lambda: p2.drop("t2"))
    res["retry_after"] = outcome(lambda: p2.echo("after"))
    res["bystander"] = outcome(lambda: bystander.echo("b2"))
    with proxy(uri) as c:
        res["t0_calls"] = c.count("t0")
        res["t2_calls"] = c.count("t2")
    return res


def reconnect(uri, d):
    res = {}
    p = proxy(uri)
    res["first"] = outcome(lambda: p.echo(1))
    say("ready")
    wait_file(os.path.join(d, "restarted"))
    t0 = time.monotonic()
    res["after_restart"] = outcome(lambda: p.echo(2))
    if "class" in res["after_restart"]:
        res["reconnect"] = outcome(lambda: p._pyroReconnect(2))
        res["again"] = outcome(lambda: p.echo(3))
    res["recovered_in"] = round(time.monotonic() - t0, 4)
    p._pyroRelease()

    say("phase2")
    wait_file(os.path.join(d, "down"))
    failures = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        q = proxy(uri, 2)
        o = outcome(lambda: q.echo("back"))
        q._pyroRelease()
        if "class" not in o:
            res["back"] = o
            res["back_at"] = time.time()
            break
        f = failures.setdefault(o["class"], {"count": 0, "error": o["error"]})
        f["count"] += 1
        time.sleep(0.05)
    res["down_failures"] = failures
    return res


def commtimeout(uri, threads, rounds, long_idle):
    results = [None] * threads

    def worker(i):
        steps = []
        p = proxy(uri)
        steps.append({"idle": 0, "call": outcome(lambda: p.echo([i, -1]))})
        for r in range(rounds):
            idle = long_idle if r % 2 == 0 else 0.1
            time.sleep(idle)
            step = {"idle": idle}
            if p._pyroConnection is None:
                step["ping"] = "not connected"
            else:
                try:
                    Pyro4.message.Message.ping(p._pyroConnection, hmac_key=None)
                    step["ping"] = "pong"
                except Pyro4.errors.ConnectionClosedError as e:
                    step["ping"] = classname(e)
                    step["reconnect"] = outcome(lambda: p._pyroReconnect(2))
                except Exception as e:
                    step["ping"] = classname(e)
                    step["ping_error"] = str(e)
                    p._pyroRelease()
            step["call"] = outcome(lambda: p.echo([i, r]))
            if step["call"].get("ok") not in (None, [i, r]):
                step["wrong_reply"] = True
            steps.append(step)
        p._pyroRelease()
        results[i] = steps

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(rounds * (long_idle + 2 * TIMEOUT) + 5)
    return {"threads": results}


def abandon(targets):
    res = {}
    for target in targets:
        label, _, uri = target.partition("=")
        rounds = []
        p = proxy(uri)
        p.echo("warm")
        for r in range(3):
            p._pyroTimeout = 0.3
            abandoned = outcome(lambda: p.slow(1.5, "abandoned-%s-%d" % (label, r)))
            p._pyroTimeout = TIMEOUT
            nxt = outcome(lambda: p.slow(0.2, "next-%s-%d" % (label, r)))
            rounds.append({"abandoned": abandoned, "next": nxt})
        p._pyroRelease()
        res[label] = rounds
    return res


def inflight(uri, d, n):
    proxies = [proxy(uri, 15) for _ in range(n)]
    warm = [outcome(lambda: p.echo(i)) for i, p in enumerate(proxies)]
    results = [None] * n

    def worker(i):
        say("sent %d" % i)
        o = outcome(lambda: proxies[i].slow(30, "c%d" % i))
        o["at"] = time.time()
        if "ok" in o and o["ok"] != "slow-done c%d" % i:
            o["wrong_reply"] = True
        results[i] = o

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + 25
    for t in ts:
        t.join(max(0.1, deadline - time.monotonic()))
    say("outcomes")
    after = []
    if all(r is not None for r in results):
        wait_file(os.path.join(d, "restarted"))
        for i, p in enumerate(proxies):
            o = outcome(lambda: p.echo("c%d" % i))
            if o.get("ok") not in (None, "c%d" % i):
                o["wrong_reply"] = True
            after.append(o)
    return {"warm": warm, "calls": results, "after": after}


def cycle(uri, threads, rounds, want):
    results = [None] * threads

    def worker(i):
        out = []
        results[i] = out
        with proxy(uri, 8) as p:
            for r in range(rounds):
                o = outcome(lambda: p.process(["hello-%d-%d" % (i, r)]))
                if "ok" in o and o["ok"] != want:
                    o["wrong_reply"] = True
                out.append(o)
                if "class" in o:
                    break  # a deadlocked cycle: no more rounds

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    deadline = time.monotonic() + 20
    for t in ts:
        t.join(max(0.1, deadline - time.monotonic()))
    return {"threads": results}


def main():
    sc, args = sys.argv[1], sys.argv[2:]
    if sc == "maxretries":
        res = maxretries(args[0])
    elif sc == "reconnect":
        res = reconnect(args[0], args[1])
    elif sc == "commtimeout":
        res = commtimeout(args[0], int(args[1]), int(args[2]), float(args[3]))
    elif sc == "abandon":
        res = abandon(args)
    elif sc == "inflight":
        res = inflight(args[0], args[1], int(args[2]))
    elif sc == "cycle":
        res = cycle(args[0], int(args[1]), int(args[2]), json.loads(args[3]))
    else:
        sys.exit("unknown scenario %r" % sc)
    with lock:
        print(json.dumps(res), flush=True)
    os._exit(0)  # threads stuck in a call that never ends must not keep the process alive


main()
