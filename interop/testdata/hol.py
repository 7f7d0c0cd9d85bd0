"""Head-of-line blocking in pipelined pooled mode (interop/hol_test.go): a real Pyro4
thread-pool daemon, and the two clients of the scenario.

usage:
  hol.py daemon            a daemon on 127.0.0.1 (any free port) serving "hol.svc"; its
                           first line is its address (HOST:PORT); "slow-begin CONN" and
                           "slow-end CONN" are printed around a slow call
  hol.py slow URI SECONDS  client A: prints "ready" once connected, then calls slow and
                           prints {"conn": ..., "seconds": ...}
  hol.py fast URI N        client B: connects, then makes N sequential echo calls, each
                           timed, and prints {"calls": [{"seconds", "conn", "ok"}, ...]}

CONN is the daemon's view of the connection a call came in on: the address of its peer,
here the dispatcher's end of one of its upstream connections.
"""
import json
import sys
import time

import Pyro4

Pyro4.config.SERVERTYPE = "thread"


def conn():
    """the peer address of the connection the current call came in on"""
    return "%s:%d" % tuple(Pyro4.current_context.client_sock_addr[:2])


@Pyro4.expose
class Svc(object):
    def slow(self, seconds):
        c = conn()
        print("slow-begin %s" % c, flush=True)
        time.sleep(seconds)
        print("slow-end %s" % c, flush=True)
        return c

    def echo(self, x):
        return [x, conn()]


def daemon():
    d = Pyro4.Daemon(host="127.0.0.1", port=0)
    d.register(Svc(), "hol.svc")
    print("%s:%d" % (d.locationStr.rsplit(":", 1)[0], d.sock.getsockname()[1]), flush=True)
    d.requestLoop()


def slow(uri, seconds):
    p = Pyro4.Proxy(uri)
    p._pyroBind()
    print("ready", flush=True)
    t0 = time.perf_counter()
    c = p.slow(seconds)
    print(json.dumps({"conn": c, "seconds": time.perf_counter() - t0}), flush=True)


def fast(uri, n):
    p = Pyro4.Proxy(uri)
    p._pyroBind()  # the CONNECT, not timed
    calls = []
    for i in range(n):
        t0 = time.perf_counter()
        x, c = p.echo(i)
        calls.append({"seconds": time.perf_counter() - t0, "conn": c, "ok": x == i})
    print(json.dumps({"calls": calls}), flush=True)


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "daemon":
        daemon()
    elif role == "slow":
        slow(sys.argv[2], float(sys.argv[3]))
    else:
        fast(sys.argv[2], int(sys.argv[3]))
