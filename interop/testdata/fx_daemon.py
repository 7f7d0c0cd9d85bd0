# A Pyro4 daemon for the fault tests of faults_pyro4_test.go: object "fx.svc", and with
# --chain objects that call each other (call cycles).
#
# usage: fx_daemon.py HOST:PORT [--commtimeout SECONDS] [--chain NAME=NEXT_URI]...
#   HOST:PORT: where to listen (port 0 for any free port).
#   --commtimeout: Pyro4.config.COMMTIMEOUT of the daemon (it closes connections idle
#     that long).
#   --chain NAME=NEXT_URI: registers "fx.chain.NAME", whose process(message) passes the
#     message on to NEXT_URI (a fresh proxy per call) until it comes back to a node
#     already in it, like the Debian circular example.
# The first line printed is the URI of fx.svc. Then, one line per event:
#   "slow-begin TAG" when slow(seconds, TAG) starts, "drop-call TAG N" for the Nth call
#   of drop(TAG), "disconnect T" (T: time.time()) when a client connection ends.
import sys
import threading
import time

import Pyro4

Pyro4.config.SERVERTYPE = "thread"
Pyro4.config.THREADPOOL_SIZE = 200

args = sys.argv[1:]
addr = args.pop(0)
chains = {}
while args:
    opt = args.pop(0)
    if opt == "--commtimeout":
        Pyro4.config.COMMTIMEOUT = float(args.pop(0))
    elif opt == "--chain":
        name, _, nxt = args.pop(0).partition("=")
        chains[name] = nxt
    else:
        sys.exit("unknown option %r" % opt)

lock = threading.Lock()


def say(line):
    with lock:
        print(line, flush=True)


@Pyro4.expose
class Svc(object):
    def __init__(self):
        self.calls = {}

    def echo(self, x):
        return x

    def slow(self, seconds, tag=""):
        say("slow-begin %s" % tag)
        time.sleep(seconds)
        return "slow-done %s" % tag

    def drop(self, tag, times=1):
        """The first `times` calls with this tag close the calling connection (the reply
        is lost, as when the daemon dies mid-call); later ones return normally."""
        with lock:
            n = self.calls[tag] = self.calls.get(tag, 0) + 1
        say("drop-call %s %d" % (tag, n))
        if n <= times:
            Pyro4.current_context.client.close()
            return "dropped %s" % tag
        return "ok %s after %d" % (tag, n - 1)

    def count(self, tag):
        with lock:
            return self.calls.get(tag, 0)


@Pyro4.expose
class Chain(object):
    def __init__(self, name, next_uri):
        self.name = name
        self.next_uri = next_uri

    def process(self, message):
        if self.name in message:
            return ["complete at " + self.name]
        message.append(self.name)
        with Pyro4.Proxy(self.next_uri) as nxt:
            result = nxt.process(message)
        result.insert(0, "passed on from " + self.name)
        return result


class Daemon(Pyro4.Daemon):
    def clientDisconnect(self, conn):
        say("disconnect %.6f" % time.time())


host, _, port = addr.rpartition(":")
daemon = Daemon(host=host.strip("[]"), port=int(port))
uri = daemon.register(Svc(), "fx.svc")
for name, nxt in chains.items():
    daemon.register(Chain(name, nxt), "fx.chain." + name)
print(uri, flush=True)
daemon.requestLoop()
