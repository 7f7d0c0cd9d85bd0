"""A Pyro4 client outside a NAT (interop/nat_test.go): it knows only the edge, and every
address it connects to is recorded, so the test can assert it never reached anything
else.

Usage: nat_client.py EDGE_HOST EDGE_PORT SERIALIZER NAME...
       nat_client.py --broadcast BCPORT SERIALIZER NAME...   (locateNS() by broadcast)

Prints one JSON line: {"connected": [...], "ns": NS URI, "lookup": {NAME: [uri, who,
who via PYRONAME]}, "meta": {NAME: [uri, [tags]]}, "list", "list_meta", "meta_any", "meta_all": the name
server's list() answers}.
"""
import json
import socket
import sys

import Pyro4

connected = set()
_connect = socket.socket.connect


def recording_connect(self, address):
    connected.add(address if isinstance(address, str) else "%s:%s" % address[:2])
    return _connect(self, address)


socket.socket.connect = recording_connect

if sys.argv[1] == "--broadcast":
    Pyro4.config.NS_BCPORT = int(sys.argv[2])
    Pyro4.config.BROADCAST_ADDRS = "127.0.0.1"
    Pyro4.config.NS_HOST = "ns.invalid"  # no name server on this machine to try first
    host, port = None, None
else:
    host, port = sys.argv[1], int(sys.argv[2])
Pyro4.config.SERIALIZER = sys.argv[3]
names = sys.argv[4:]
out = {"lookup": {}, "meta": {}}
ns = Pyro4.locateNS(host, port)
out["ns"] = str(ns._pyroUri)
for name in names:
    uri = ns.lookup(name)
    with Pyro4.Proxy(uri) as p:
        who = p.who()
    pyroname = "PYRONAME:%s@%s:%d" % (name, ns._pyroUri.host, ns._pyroUri.port)
    with Pyro4.Proxy(pyroname) as p:
        who2 = p.who()
    out["lookup"][name] = [str(uri), who, who2]
    if Pyro4.config.SERIALIZER != "marshal":  # Pyro4's own limit: "unmarshallable object"
        uri, meta = ns.lookup(name, return_metadata=True)
        out["meta"][name] = [str(uri), sorted(meta)]
out["list"] = ns.list(prefix="thing.")
out["list_meta"] = {k: [v[0], sorted(v[1])] for k, v in ns.list(prefix="thing.", return_metadata=True).items()}
out["meta_any"] = ns.list(metadata_any={"tag:a", "tag:b"})
out["meta_all"] = {k: [v[0], sorted(v[1])] for k, v in ns.list(metadata_all={"tag:b"}, return_metadata=True).items()}
out["connected"] = sorted(connected)
print(json.dumps(out), flush=True)
