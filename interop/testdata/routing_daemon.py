"""Real, unmodified Pyro4 daemons for the routing tests (interop/routing_test.go): several
daemons in one process, each on its own 127.0.0.1 port, each serving the same class under
the object ids it is given, so a test sees which daemon a call reached.

Usage: routing_daemon.py [--port P] [--ns HOST:PORT] NAME=OBJ[,OBJ...] [NAME=OBJ...]
       routing_daemon.py --nameserver

NAME names a daemon (and is what its objects' who() returns); OBJ are the object ids it
registers. --port gives the port of the only daemon (for a restart on the same port);
otherwise each gets a free port. With --ns, every object is registered under its own id
in the name server at HOST:PORT (reached directly, not through the dispatcher).

The first stdout line is JSON: {"NAME": "127.0.0.1:PORT", ...}. With --nameserver the
process runs a Pyro4 name server instead (no broadcast) and prints its "127.0.0.1:PORT".

Every object (class Svc) has:
  who()              the daemon's NAME
  work(seconds)      sleeps, then returns NAME (a call that takes time)
  echo(x)            x
  checkout(order)    {"daemon": NAME, "order": order}  (method rules)
  browse()           NAME
  secret()           "secret from NAME" (a rule denies it: it must never run)
  process_blob(blob) {"daemon", "info", "data"} of a Pyro4 SerializedBlob (blob_info rules)
  annotations()      the request annotations' keys, as the daemon sees them
"""
import argparse
import json
import sys
import threading
import time

import Pyro4
import Pyro4.core
import Pyro4.naming

Pyro4.config.SERVERTYPE = "thread"
Pyro4.config.THREADPOOL_SIZE = 64  # a pool of 16 upstream connections plus health checks
Pyro4.config.SERIALIZERS_ACCEPTED = {"serpent", "json", "marshal"}


@Pyro4.expose
@Pyro4.behavior(instance_mode="single")
class Svc(object):
    def __init__(self, name):
        self.name = name

    def who(self):
        return self.name

    def work(self, seconds):
        time.sleep(seconds)
        return self.name

    def echo(self, x):
        return x

    def checkout(self, order):
        return {"daemon": self.name, "order": order}

    def browse(self):
        return self.name

    def secret(self):
        return "secret from " + self.name

    def process_blob(self, blob):
        return {"daemon": self.name, "info": blob.info, "data": blob.deserialized()}

    def annotations(self):
        return sorted(Pyro4.current_context.annotations)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ns")
    ap.add_argument("--nameserver", action="store_true")
    ap.add_argument("daemons", nargs="*")
    opts = ap.parse_args()
    if opts.nameserver:
        _, daemon, _ = Pyro4.naming.startNS(host="127.0.0.1", port=0, enableBroadcast=False)
        print(daemon.locationStr, flush=True)
        daemon.requestLoop()
        return
    if not opts.daemons or (opts.port and len(opts.daemons) > 1):
        sys.exit("give NAME=OBJ[,OBJ...] specs, and --port only with one of them")
    ns = None
    if opts.ns:
        host, port = opts.ns.rsplit(":", 1)
        ns = Pyro4.locateNS(host=host, port=int(port))
    daemons, where = [], {}
    for spec in opts.daemons:
        name, _, objs = spec.partition("=")
        d = Pyro4.Daemon(host="127.0.0.1", port=opts.port)
        for obj in objs.split(","):
            uri = d.register(Svc(name), obj)
            if ns is not None:
                ns.register(obj, uri)
        daemons.append(d)
        where[name] = d.locationStr
    if ns is not None:
        ns._pyroRelease()
    print(json.dumps(where), flush=True)
    for d in daemons[1:]:
        threading.Thread(target=d.requestLoop, daemon=True).start()
    daemons[0].requestLoop()


if __name__ == "__main__":
    main()
