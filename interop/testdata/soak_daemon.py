"""Real, unmodified Pyro4 daemons for the soak run (bench/cmd/soak): one process hosts a
plain daemon and an HMAC-signed one, each serving the same objects, so that a SIGKILL of
the process takes a member out of both backend groups at once.

Usage: soak_daemon.py --port P --hmac-port Q --hmac-key KEY

When both listen it prints "P Q" on its first stdout line. SIGUSR1 makes every RESULT
the daemons send during the next --stall-window seconds stop in its middle for
--stall seconds (half written, then the rest): a backend that stalls mid-reply.

Objects (the same class under two ids; the soak's pooled listeners pin clients of
soak.stream with affinity, so that an item stream's calls stay on its daemon):
  soak.echo, soak.stream
    echo(x)        x
    oneway(x)      oneway, nothing (the Go load generator's oneway mode)
    blob(b)        the first item of a SerializedBlob's data (the load generator's blob mode)
    mark(tag)      oneway: remembers tag
    seen(tag)      whether mark(tag) arrived (oneway calls run in order: ONEWAY_THREADED off)
    gen(tag, n)    an item stream of "tag:0" ... "tag:n-1"
    slow(x)        sleeps float(x.split("|")[0]) seconds, then returns x (pool exhaustion)
"""
import argparse
import collections
import json
import signal
import sys
import threading
import time

import Pyro4
import Pyro4.core
import Pyro4.socketutil

Pyro4.config.SERVERTYPE = "thread"
Pyro4.config.THREADPOOL_SIZE = 1024  # every connected proxy and pooled connection holds a worker
Pyro4.config.THREADPOOL_SIZE_MIN = 16
Pyro4.config.ONEWAY_THREADED = False  # a oneway call is done before the next call on its connection
Pyro4.config.SERIALIZERS_ACCEPTED = {"serpent", "json", "marshal"}

MARKS = collections.OrderedDict()  # tag -> None, the most recent 100,000
MARKS_LOCK = threading.Lock()
STALL = {"until": 0.0, "seconds": 0.0, "window": 1.0}
RESULT = 5  # Pyro4 message type of a call's reply


def stalling_send(orig):
    def send(self, data):
        if time.time() < STALL["until"] and len(data) > 24 and data[4:6] == b"\x00\x30" and data[6:8] == b"\x00\x05":
            half = len(data) // 2
            orig(self, data[:half])
            time.sleep(STALL["seconds"])
            data = data[half:]
        orig(self, data)
    return send


def stall(signum, frame):
    STALL["until"] = time.time() + STALL["window"]


@Pyro4.expose
@Pyro4.behavior(instance_mode="single")
class Soak(object):
    def echo(self, x):
        return x

    @Pyro4.oneway
    def oneway(self, x):
        pass

    def blob(self, b):
        data = b.deserialized()
        if isinstance(data, str):
            # Pyro4 4.82 unpacks a json call's dict as if it were a tuple, so deserialized()
            # gives its third key ("params"): read the arguments from the message instead.
            data = json.loads(b._data.data)["params"]
        return data[0]

    @Pyro4.oneway
    def mark(self, tag):
        with MARKS_LOCK:
            MARKS[tag] = None
            while len(MARKS) > 100000:
                MARKS.popitem(last=False)

    def seen(self, tag):
        with MARKS_LOCK:
            return tag in MARKS

    def gen(self, tag, n):
        for i in range(n):
            yield "%s:%d" % (tag, i)

    def slow(self, x):
        time.sleep(float(x.split("|", 1)[0]))
        return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--hmac-port", type=int, required=True)
    ap.add_argument("--hmac-key", required=True)
    ap.add_argument("--stall", type=float, default=1.0)
    ap.add_argument("--stall-window", type=float, default=1.0)
    opts = ap.parse_args()
    STALL["seconds"], STALL["window"] = opts.stall, opts.stall_window
    Pyro4.socketutil.SocketConnection.send = stalling_send(Pyro4.socketutil.SocketConnection.send)
    signal.signal(signal.SIGUSR1, stall)
    plain = Pyro4.Daemon(host="127.0.0.1", port=opts.port)
    signed = Pyro4.Daemon(host="127.0.0.1", port=opts.hmac_port)
    signed._pyroHmacKey = opts.hmac_key.encode()
    for d in (plain, signed):
        for name in ("soak.echo", "soak.stream"):
            d.register(Soak(), name)
    print("%d %d" % (opts.port, opts.hmac_port), flush=True)
    threading.Thread(target=signed.requestLoop, daemon=True).start()
    plain.requestLoop()


if __name__ == "__main__":
    sys.exit(main())
