"""A real, unmodified Pyro4 daemon exposing every object the session-mode interop tests
(interop/session_test.go) need.

Usage: daemon.py [--host H] [--port P] [--unix PATH] [--hmac KEY] [--compression]
                 [--nameserver]

It accepts the serpent, json, marshal and pickle serializers. When ready it prints its
listen address on the first stdout line in the dispatcher's address form:
"127.0.0.1:PORT", "[::1]:PORT" or "unix:/path". With --nameserver it runs a Pyro4 name
server (Pyro4.naming.startNS, no broadcast) that also hosts the test objects.

Objects:
  test.echo       stateless calls: echo, add, fail (remote traceback), sleep, oneways,
                  call context and annotations, blobs, big payloads, item streams
  test.meta       a small object whose metadata the tests check exactly
  test.session    instance_mode "session": one instance per client connection
  test.resources  tracked resources (current_context.track_resource), and their state
  test.stats      for the pooled-mode tests (interop/pooled_test.go): the daemon's count of
                  client connections and handshakes, and the handshake secrets it accepts
Test state shared between connections (oneway marks, stream and resource events) is
kept in STATE, keyed by tokens the client makes up.

The daemon counts the connections whose handshake it saw (CONNS), except those with the
handshake data "observer": the tests' own direct connections that read the counts.
A slow call (test.echo slow) prints "slow-begin TOKEN" on stdout when it starts.
"""
import argparse
import hashlib
import sys
import threading
import time
import uuid

import Pyro4
import Pyro4.core
import Pyro4.naming
import serpent

Pyro4.config.SERIALIZERS_ACCEPTED = {"serpent", "json", "marshal", "pickle"}
Pyro4.config.THREADPOOL_SIZE = 256  # one worker per connected proxy: 32 concurrent clients and more
Pyro4.config.THREADPOOL_SIZE_MIN = 8

STATE = {}
STATE_LOCK = threading.Lock()


def put(token, value):
    with STATE_LOCK:
        STATE[token] = value


def get(token, default=None):
    with STATE_LOCK:
        return STATE.get(token, default)


def as_bytes(data):
    """bytes from a bytes argument in any serializer (serpent and json send a base64 dict)."""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return serpent.tobytes(data)


def fail_inner(message):
    raise ValueError(message)


@Pyro4.expose
@Pyro4.behavior(instance_mode="single")
class Echo(object):
    def echo(self, *args, **kwargs):
        return {"args": args, "kwargs": kwargs, "seen": repr((args, kwargs))}

    def echo1(self, value):
        return value

    def add(self, a, b):
        return a + b

    def fail(self, message):
        fail_inner(message)

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def slow(self, seconds, token):
        """sleep, announced on stdout and in STATE (token: "started", then "done")"""
        put(token, "started")
        print("slow-begin %s" % token, flush=True)
        time.sleep(seconds)
        put(token, "done")
        return seconds

    def conn(self):
        """an id of the client connection this call came in on"""
        return conn_id(Pyro4.current_context.client)

    @Pyro4.oneway
    def sleep_oneway(self, seconds, token):
        time.sleep(seconds)
        put(token, "slept")

    @Pyro4.oneway
    def mark(self, token):
        put(token, "marked")

    def state(self, token):
        return get(token)

    def context(self):
        """what the backend sees of the call: correlation id, request annotations and
        flags; it answers the client's XYZZ annotation with a RSPA response annotation."""
        ctx = Pyro4.current_context
        ann = dict(ctx.annotations)
        if "XYZZ" in ann:
            ctx.response_annotations["RSPA"] = b"reply to " + bytes(ann["XYZZ"])
        return {
            "corr": str(ctx.correlation_id),
            "keys": sorted(ann),
            "annotations": {k: bytes(v).decode("utf-8", "replace") for k, v in ann.items() if k not in ("CORR", "HMAC")},
            "corr_annotation": str(uuid.UUID(bytes=bytes(ann["CORR"]))) if "CORR" in ann else None,
            "flags": ctx.msg_flags,
            "serializer_id": ctx.serializer_id,
        }

    def process_blob(self, blob):
        data = blob.deserialized()
        return {"info": blob.info, "data_repr": repr(data), "type": type(data).__name__,
                "is_blob": isinstance(blob, Pyro4.core.SerializedBlob),
                "flags": Pyro4.current_context.msg_flags}

    def big(self, data):
        data = as_bytes(data)
        return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest(), "data": data}

    def compressible(self, text):
        return {"len": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest(),
                "flags": Pyro4.current_context.msg_flags, "text": text}

    def gen(self, n):
        for i in range(n):
            yield i

    def conn_gen(self, n, delay=0.0):
        """an item stream whose items [i, connection id, same] tell on which connection each
        get_next_stream_item call came, and whether it is the one that created the stream"""
        owner = Pyro4.current_context.client

        def items():
            for i in range(n):
                if delay:
                    time.sleep(delay)
                client = Pyro4.current_context.client
                yield [i, conn_id(client), client is owner]
        return items()

    def tracked_gen(self, token, n):
        sent = 0
        put(token, "started")
        try:
            for i in range(n):
                yield i
                sent += 1
        finally:
            put(token, "finally after %d items" % sent)


@Pyro4.expose
@Pyro4.behavior(instance_mode="session")
class Meta(object):
    def __init__(self):
        self._label = "initial"

    def ping_me(self):
        return "pong"

    def total(self, *numbers):
        return sum(numbers)

    @Pyro4.oneway
    def fire(self, value):
        pass

    @property
    def version(self):
        return "4.82-test"

    @property
    def label(self):
        return self._label

    @label.setter
    def label(self, value):
        self._label = value

    def _hidden(self):
        return "not exposed"


@Pyro4.expose
@Pyro4.behavior(instance_mode="session")
class Session(object):
    def __init__(self):
        self.instance = str(uuid.uuid4())
        self.count = 0

    def ident(self):
        self.count += 1
        return [self.instance, self.count]


RESOURCES = {}  # strong references: a connection tracks its resources by weak reference


class Resource(object):
    def __init__(self, name):
        self.name = name
        with STATE_LOCK:
            RESOURCES[name] = self
            STATE["resource:" + name] = "open"

    def close(self):
        # Pyro4 calls this when the client connection that tracked it closes.
        with STATE_LOCK:
            RESOURCES.pop(self.name, None)
            STATE["resource:" + self.name] = "closed"


@Pyro4.expose
@Pyro4.behavior(instance_mode="single")
class Resources(object):
    def allocate(self, name):
        Pyro4.current_context.track_resource(Resource(name))
        return get("resource:" + name)

    def status(self, name):
        return get("resource:" + name, "unknown")


def conn_id(conn):
    return "%x" % id(conn)


# Connection accounting: handshakes seen, accepted and rejected; connections open now (at
# most peak at once) and closed (disconnects). Observer connections are not counted.
CONNS = {"handshakes": 0, "accepted": 0, "rejected": 0, "open": 0, "peak": 0, "disconnects": 0}
COUNTED = set()  # the open connections that passed a counted handshake
SECRETS = {"sesame"}  # handshake secrets accepted; test.stats accept_secret adds one


@Pyro4.expose
@Pyro4.behavior(instance_mode="single")
class Stats(object):
    def connections(self):
        with STATE_LOCK:
            return dict(CONNS)

    def accept_secret(self, secret):
        with STATE_LOCK:
            SECRETS.add(secret)


class TestDaemon(Pyro4.Daemon):
    def validateHandshake(self, conn, data):
        if data == "observer":
            return "hello"
        with STATE_LOCK:
            CONNS["handshakes"] += 1
            if isinstance(data, dict) and "secret" in data and data["secret"] not in SECRETS:
                CONNS["rejected"] += 1
                raise ValueError("handshake refused by the backend: wrong secret %r" % data["secret"])
            CONNS["accepted"] += 1
            COUNTED.add(conn)
            CONNS["open"] = len(COUNTED)
            CONNS["peak"] = max(CONNS["peak"], CONNS["open"])
        if isinstance(data, dict) and "secret" in data:
            return {"welcome": data.get("who", "?")}
        return "hello"

    def clientDisconnect(self, conn):
        with STATE_LOCK:
            if conn in COUNTED:
                COUNTED.discard(conn)
                CONNS["disconnects"] += 1
                CONNS["open"] = len(COUNTED)
            for rsc in list(conn.tracked_resources):
                STATE["disconnect:" + rsc.name] = "clientDisconnect"

    def annotations(self):
        return {"DDAA": b"daemon annotation"}


OBJECTS = {"test.echo": Echo, "test.meta": Meta, "test.session": Session, "test.resources": Resources,
           "test.stats": Stats}


def address(daemon):
    loc = daemon.locationStr
    if loc.startswith("./u:"):
        return "unix:" + loc[4:]
    return loc  # "127.0.0.1:PORT" or "[::1]:PORT"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix")
    ap.add_argument("--hmac")
    ap.add_argument("--compression", action="store_true")
    ap.add_argument("--nameserver", action="store_true")
    opts = ap.parse_args()
    Pyro4.config.COMPRESSION = opts.compression
    if opts.nameserver:
        _, daemon, _ = Pyro4.naming.startNS(host=opts.host, port=opts.port, enableBroadcast=False)
    elif opts.unix:
        daemon = TestDaemon(unixsocket=opts.unix)
    else:
        daemon = TestDaemon(host=opts.host, port=opts.port)
    if opts.hmac:
        daemon._pyroHmacKey = opts.hmac.encode()
    for name, cls in OBJECTS.items():
        daemon.register(cls, name)
    print(address(daemon), flush=True)
    sys.stderr.write("daemon.py ready on %s\n" % daemon.locationStr)
    daemon.requestLoop()


if __name__ == "__main__":
    main()
