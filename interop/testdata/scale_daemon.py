"""A real Pyro4 thread-pool daemon that counts its connected clients (TestPooled*, scale_test.go).

Usage: scale_daemon.py            prints the port it listens on (127.0.0.1), then serves.

The daemon is Pyro4's default: SERVERTYPE "thread" with THREADPOOL_SIZE 40, so it serves at
most 40 connected proxies and denies more with "no free workers, increase server threadpool
size". It registers "scale.obj" (add, echo) and "scale.stats" (stats). A client whose
handshake data is "stats" (the test's own look-ups) is not counted; every other successful
handshake counts as a connected client until clientDisconnect.
"""
import threading

import Pyro4

Pyro4.config.SERVERTYPE = "thread"
assert Pyro4.config.THREADPOOL_SIZE == 40, Pyro4.config.THREADPOOL_SIZE


class CountingDaemon(Pyro4.Daemon):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._count_lock = threading.Lock()
        self._uncounted = set()  # id() of the connections of stats look-ups
        self._counted = set()    # id() of the connections counted in current
        self.current = 0         # connected clients now
        self.max = 0             # most connected clients at once
        self.handshakes = 0      # successful counted handshakes

    def validateHandshake(self, conn, data):
        if data == "stats":
            with self._count_lock:
                self._uncounted.add(id(conn))
        return super().validateHandshake(conn, data)

    def _handshake(self, conn, denied_reason=None):
        ok = super()._handshake(conn, denied_reason)
        with self._count_lock:
            if id(conn) in self._uncounted:
                pass
            elif ok:
                self._counted.add(id(conn))
                self.current += 1
                self.handshakes += 1
                self.max = max(self.max, self.current)
        return ok

    def clientDisconnect(self, conn):
        with self._count_lock:
            self._uncounted.discard(id(conn))
            if id(conn) in self._counted:
                self._counted.discard(id(conn))
                self.current -= 1
        super().clientDisconnect(conn)


@Pyro4.expose
class Scale(object):
    def add(self, a, b):
        return a + b

    def echo(self, x):
        return x


@Pyro4.expose
class Stats(object):
    def __init__(self, daemon):
        self._daemon = daemon

    def stats(self):
        d = self._daemon
        with d._count_lock:
            return {"current": d.current, "max": d.max, "handshakes": d.handshakes}


daemon = CountingDaemon(host="127.0.0.1", port=0)
daemon.register(Scale(), "scale.obj")
daemon.register(Stats(daemon), "scale.stats")
print(daemon.locationStr.rsplit(":", 1)[1], flush=True)
daemon.requestLoop()
