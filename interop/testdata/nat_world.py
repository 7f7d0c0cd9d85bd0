"""The inside of a NAT for the edge tests (interop/nat_test.go): a Pyro4 name server and
two daemons that register their objects with their internal URIs (no nathost): daemon
"a" on a unix socket, daemon "b" on 127.0.0.1. Clients outside must reach them through
the edge only.

Usage: nat_world.py DIR      (the unix socket is DIR/a.sock)
       nat_world.py --register NS_HOST:NS_PORT NAME URI [TAG]   (and exit)
       nat_world.py --remove NS_HOST:NS_PORT NAME                 (and exit)

The first stdout line is JSON: {"ns": "127.0.0.1:P", "a": "DIR/a.sock", "b": "127.0.0.1:Q"}.
Objects (who() returns the daemon's name): thing.one on a, thing.two on b, each with
metadata {"tag:NAME"}; "hidden" is on b but not in the name server. The tests register
"late.one" and "by.name" (on b; by.name under localhost, as a daemon with Pyro4's
default HOST writes its URIs) and "mover" (on both) in the name server themselves.
"""
import json
import os
import sys
import threading

import Pyro4
import Pyro4.naming

Pyro4.config.SERVERTYPE = "thread"
Pyro4.config.SERIALIZERS_ACCEPTED = {"serpent", "json", "marshal"}


@Pyro4.expose
class Svc(object):
    def __init__(self, name):
        self.name = name

    def who(self):
        return self.name


def register(ns_addr, name, uri, tag=None):
    host, port = ns_addr.rsplit(":", 1)
    ns = Pyro4.locateNS(host, int(port))
    ns.register(name, uri, metadata={tag} if tag else None)


def remove(ns_addr, name):
    host, port = ns_addr.rsplit(":", 1)
    Pyro4.locateNS(host, int(port)).remove(name)


if sys.argv[1] == "--register":
    register(*sys.argv[2:])
    sys.exit(0)
if sys.argv[1] == "--remove":
    remove(*sys.argv[2:])
    sys.exit(0)

sock = os.path.join(sys.argv[1], "a.sock")
ns_uri, ns_daemon, _ = Pyro4.naming.startNS(host="127.0.0.1", port=0, enableBroadcast=False)
threading.Thread(target=ns_daemon.requestLoop, daemon=True).start()
ns_addr = ns_daemon.locationStr
a = Pyro4.Daemon(unixsocket=sock)
b = Pyro4.Daemon(host="127.0.0.1", port=0)
for d, name in ((a, "a"), (b, "b")):
    threading.Thread(target=d.requestLoop, daemon=True).start()
register(ns_addr, "thing.one", a.register(Svc("a"), "thing.one"), "tag:a")
register(ns_addr, "thing.two", b.register(Svc("b"), "thing.two"), "tag:b")
b.register(Svc("b"), "hidden")
b.register(Svc("b"), "late.one")
b.register(Svc("b"), "by.name")
a.register(Svc("a"), "mover")
b.register(Svc("b"), "mover")
print(json.dumps({"ns": ns_addr, "a": sock, "b": b.locationStr}), flush=True)
threading.Event().wait()
