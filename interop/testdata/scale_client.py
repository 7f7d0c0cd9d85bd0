"""Real Pyro4 clients for scale_test.go. Each mode prints one JSON line.

scale_client.py load URI THREADS CALLS TIMEOUT
    THREADS threads, each with its own Proxy, all connected at once (a barrier), then each
    makes CALLS calls add(thread, i) and checks every result:
    {"ok": calls that returned the right result, "errors": [first few errors], "seconds": s}
scale_client.py once URI TIMEOUT
    one call add(1, 2) with proxy._pyroTimeout = TIMEOUT:
    {"result": 3, "seconds": s} or {"error": "module.Class", "message": "...", "seconds": s}
scale_client.py stats URI
    the daemon's connection counts, asked with handshake "stats" (not counted):
    {"current": n, "max": n, "handshakes": n}
"""
import json
import sys
import threading
import time

import Pyro4


def load(uri, threads, calls, timeout):
    ok = [0] * threads
    errors = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads, timeout=timeout)

    def run(t):
        try:
            with Pyro4.Proxy(uri) as p:
                p._pyroTimeout = timeout
                p._pyroBind()
                barrier.wait()  # every proxy is connected before the calls start
                for i in range(calls):
                    r = p.add(t, i)
                    if r != t + i:
                        raise ValueError("add(%d, %d) returned %r" % (t, i, r))
                    ok[t] += 1
        except Exception as e:
            with lock:
                errors.append("thread %d: %s.%s: %s" % (t, type(e).__module__, type(e).__name__, e))

    start = time.monotonic()
    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    print(json.dumps({"ok": sum(ok), "errors": errors[:5], "nerrors": len(errors),
                      "seconds": time.monotonic() - start}))


def once(uri, timeout):
    start = time.monotonic()
    p = Pyro4.Proxy(uri)
    p._pyroTimeout = timeout
    try:
        r = p.add(1, 2)
        out = {"result": r}
    except Exception as e:
        out = {"error": "%s.%s" % (type(e).__module__, type(e).__name__), "message": str(e)}
    finally:
        p._pyroRelease()
    out["seconds"] = time.monotonic() - start
    print(json.dumps(out))


def stats(uri):
    with Pyro4.Proxy(uri) as p:
        p._pyroHandshake = "stats"
        p._pyroTimeout = 10
        print(json.dumps(p.stats()))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "load":
        load(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    elif mode == "once":
        once(sys.argv[2], float(sys.argv[3]))
    elif mode == "stats":
        stats(sys.argv[2])
    else:
        sys.exit("unknown mode " + mode)
