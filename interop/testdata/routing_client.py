"""A real, unmodified Pyro4 client for the routing tests (interop/routing_test.go): every
proxy points at the one dispatcher address --addr, whose routes send each client or call
to one of the daemons of testdata/routing_daemon.py (their who() tells which).

Usage: routing_client.py --addr HOST:PORT SCENARIO [NAME...]

Scenarios (one JSON line: {"ok": true, "result": {...}} or {"ok": false, "error", "trace"}):
  nameserver NAME...  Pyro4.locateNS at the dispatcher; for each NAME: ns.lookup and a
                      PYRONAME resolution through the dispatcher give the daemon's own URI,
                      whose location the client replaces with the dispatcher's, then
                      calls who(); an object the routes deny; the name server proxy
                      still works after.
  rules               pooled-mode rules on object shop.cart: method, deny (Pyro4 drops its
                      connection on any CommunicationError and reconnects for the next
                      call), blob_info, client address and serializer, annotation (a Proxy
                      subclass whose _pyroAnnotations adds ROUT).
"""
import argparse
import json
import sys
import time
import traceback

import Pyro4
import Pyro4.core
import Pyro4.errors
import Pyro4.util

OPTS = None


def exc_name(e):
    t = type(e)
    return t.__name__ if t.__module__ == "builtins" else t.__module__ + "." + t.__name__


def outcome(f):
    """calls f; returns {"ok": result} or {"class", "error"}"""
    try:
        return {"ok": f()}
    except Exception as e:
        return {"class": exc_name(e), "error": str(e)}


def via_dispatcher(uri):
    """the URI with its location replaced by the dispatcher's"""
    u = Pyro4.URI(str(uri))
    host, port = OPTS.addr.rsplit(":", 1)
    u.host, u.port = host, int(port)
    return u


def sc_nameserver(names):
    host, port = OPTS.addr.rsplit(":", 1)
    out = {"names": {}}
    ns = Pyro4.locateNS(host=host, port=int(port))
    out["ns_location"] = ns._pyroUri.location
    out["listed"] = sorted(ns.list())
    for name in names:
        looked = ns.lookup(name)
        resolved = Pyro4.resolve("PYRONAME:%s@%s" % (name, OPTS.addr))
        r = {"lookup": str(looked), "pyroname": str(resolved)}
        with Pyro4.Proxy(via_dispatcher(resolved)) as p:
            r["who"] = p.who()
            r["who_again"] = p.who()
            r["proxy_location"] = p._pyroUri.location
        out["names"][name] = r
    with Pyro4.Proxy("PYRO:admin.panel@" + OPTS.addr) as p:
        out["denied"] = outcome(lambda: p.who())
    out["ns_after_denied"] = outcome(lambda: ns.ping())
    ns._pyroRelease()
    return out


class Annotated(Pyro4.Proxy):
    """a proxy that sends the annotation ROUT with every message (CONNECT included); the
    value lives in the class: attributes set on a Proxy go to the remote object"""
    rout = b"blue"

    def _pyroAnnotations(self):
        return {"ROUT": self.rout}


class Green(Annotated):
    rout = b"green"


def sc_rules(_names):
    uri = "PYRO:shop.cart@" + OPTS.addr
    out = {}
    with Pyro4.Proxy(uri) as p:
        out["browse"] = outcome(lambda: p.browse())
        out["checkout"] = outcome(lambda: p.checkout(7))
        out["secret"] = outcome(lambda: p.secret())
        out["after_secret"] = outcome(lambda: p.browse())
        out["blob_orders"] = outcome(lambda: p.process_blob(Pyro4.core.SerializedBlob("orders.eu", {"n": 1})))
        out["blob_orders2"] = outcome(lambda: p.process_blob(Pyro4.core.SerializedBlob("orders.us.42", [1, 2])))
        out["blob_other"] = outcome(lambda: p.process_blob(Pyro4.core.SerializedBlob("invoices", "x")))
    with Annotated(uri) as p:
        out["blue_browse"] = outcome(lambda: p.browse())
        out["blue_checkout"] = outcome(lambda: p.checkout(8))
        out["blue_annotations"] = outcome(lambda: p.annotations())
    with Green(uri) as p:
        out["green_browse"] = outcome(lambda: p.browse())
    with Pyro4.Proxy(uri) as p:
        p._pyroSerializer = "marshal"
        out["marshal_browse"] = outcome(lambda: p.browse())
        out["marshal_checkout"] = outcome(lambda: p.checkout(9))
    with Pyro4.Proxy(uri) as p:
        p._pyroSerializer = "json"
        out["json_browse"] = outcome(lambda: p.browse())
    with Pyro4.Proxy("PYRO:admin.panel@" + OPTS.addr) as p:
        out["admin_connect"] = outcome(lambda: p.who())
    return out


SCENARIOS = {k[3:]: v for k, v in globals().items() if k.startswith("sc_")}


def main():
    global OPTS
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("scenario", choices=sorted(SCENARIOS))
    ap.add_argument("names", nargs="*")
    OPTS = ap.parse_args()
    Pyro4.config.SERIALIZER = "serpent"
    Pyro4.config.COMMTIMEOUT = 20.0  # a hang shows as a TimeoutError
    t0 = time.time()
    try:
        line = {"ok": True, "result": SCENARIOS[OPTS.scenario](OPTS.names)}
    except Exception as e:
        line = {"ok": False, "error": "%s: %s" % (exc_name(e), e),
                "trace": traceback.format_exc() + "".join(Pyro4.util.getPyroTraceback())}
    line["seconds"] = round(time.time() - t0, 3)
    sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
