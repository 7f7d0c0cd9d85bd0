"""Pyro4 client for the golden vector capture (run by gen/main.go with /usr/bin/python3).

Usage: client.py HMACKEY SCENARIOS_JSON   (a JSON list of [scenario, "host:port"] pairs)
Runs each scenario against its address (a capture relay) and prints, for every message it
sends, one JSON line saying what it meant to send: scenario, kind (connect, invoke, ping),
message type, serializer, its local port and the seq (to find the message), object, method,
oneway/batch/blob, the blob info, the user annotations and the correlation id it set.
These are the expected values of the golden test; they never come from the Go decoders.
"""
import json
import socket
import sys
import uuid

import Pyro4
from Pyro4 import config, errors, message, socketutil, util
from Pyro4.core import SerializedBlob  # in core, not util, in 4.82

SERIALIZERS = ["serpent", "json", "marshal", "pickle"]
OBJECT_ID = "golden.obj"
DAEMON_ID = Pyro4.constants.DAEMON_NAME
TYPES = {"connect": message.MSG_CONNECT, "invoke": message.MSG_INVOKE, "ping": message.MSG_PING}
HMAC_KEY = sys.argv[1].encode()

# Remember the local port of every socket a proxy opens: the relay knows each connection by
# the client's address, so the port ties an expectation to a captured connection, even for
# a handshake that is rejected before the proxy keeps the connection.
last_port = [None]
_create_socket = socketutil.createSocket


def _recording_create_socket(*args, **kwargs):
    sock = _create_socket(*args, **kwargs)
    last_port[0] = sock.getsockname()[1]
    return sock


socketutil.createSocket = _recording_create_socket


def tagged(v):
    """A JSON form of a marshallable value that keeps its Python type."""
    if v is None:
        return {"none": True}
    if isinstance(v, bool):
        return {"bool": v}
    if isinstance(v, int):
        return {"int": v}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, tuple):
        return {"tuple": [tagged(x) for x in v]}
    if isinstance(v, list):
        return {"list": [tagged(x) for x in v]}
    raise TypeError("no tagged form for %r" % type(v))


def hexmap(annotations):
    return {k: bytes(v).hex() for k, v in sorted(annotations.items())}


def user_annotations(proxy):
    # What Proxy.__annotations adds besides CORR: the context's annotations, then the
    # proxy's _pyroAnnotations().
    ann = dict(Pyro4.current_context.annotations)
    ann.update(proxy._pyroAnnotations())
    ann.pop("CORR", None)
    return hexmap(ann)


def current_corr():
    corr = Pyro4.current_context.correlation_id
    return corr.bytes.hex() if corr else None


def port_of(proxy):
    return proxy._pyroConnection.sock.getsockname()[1]


class AnnotatedProxy(Pyro4.Proxy):
    def _pyroAnnotations(self):
        return {"XYZZ": b"client annotation \x00\x01"}


class Run(object):
    def __init__(self, scenario, addr):
        self.scenario = scenario
        self.addr = addr
        self.uri = "PYRO:%s@%s" % (OBJECT_ID, addr)

    def emit(self, kind, serializer, port, seq, **fields):
        rec = {"scenario": self.scenario, "kind": kind, "type": TYPES[kind], "port": port, "seq": seq,
               "serializer": serializer}
        if serializer in SERIALIZERS + ["msgpack"]:
            rec["serializer_id"] = util.get_serializer(serializer).serializer_id
        rec.update(fields)
        print(json.dumps(rec, ensure_ascii=False, sort_keys=True), flush=True)

    def proxy(self, serializer, cls=Pyro4.Proxy, handshake=None, hmac_key=None, reject=False):
        """A new proxy, connected (the CONNECT message); with reject, a refused handshake."""
        p = cls(self.uri)
        p._pyroSerializer = serializer
        if handshake is not None:
            p._pyroHandshake = handshake
        if hmac_key:
            p._pyroHmacKey = hmac_key
        seq, ann, corr = p._pyroSeq, user_annotations(p), current_corr()
        rejected = None
        try:
            p._pyroBind()
        except errors.CommunicationError as x:
            if not reject:
                raise
            rejected = str(x)
        else:
            if reject:
                raise AssertionError("handshake %r was accepted" % (handshake,))
        self.emit("connect", serializer, last_port[0], seq, object=OBJECT_ID, metadata=bool(config.METADATA),
                  handshake=p._pyroHandshake, annotations=ann, corr=corr, rejected=rejected)
        return p

    def invoke(self, p, method, args=(), kwargs=None, context_annotations=None, raises=None):
        """One remote call through the proxy (an INVOKE message)."""
        kwargs = kwargs or {}
        port = port_of(p)
        if context_annotations:
            Pyro4.current_context.annotations = dict(context_annotations)
        ann, corr = user_annotations(p), current_corr()
        blob = args[0] if args and isinstance(args[0], SerializedBlob) else None
        error = None
        try:
            getattr(p, method)(*args, **kwargs)
        except Exception as x:
            if raises is None or not isinstance(x, raises):
                raise
            error = type(x).__name__
        else:
            if raises is not None:
                raise AssertionError("%s did not raise %s" % (method, raises.__name__))
        fields = {}
        if blob is not None:
            fields["blob_info"] = tagged(blob.info)
        self.emit("invoke", p._pyroSerializer, port, p._pyroSeq, object=OBJECT_ID, method=method,
                  oneway=method in p._pyroOneway, batch=False, blob=blob is not None, annotations=ann,
                  corr=corr, error=error, **fields)

    def batch(self, p, calls, oneway=False):
        """A Pyro4.batch of calls: one INVOKE of method <batch> with flag BATCH."""
        port, ann, corr = port_of(p), user_annotations(p), current_corr()
        b = Pyro4.batch(p)
        for method, args, kwargs in calls:
            getattr(b, method)(*args, **kwargs)
        results = b(oneway=oneway)
        error = None
        if not oneway:
            try:
                list(results)
            except ValueError as x:
                error = type(x).__name__
        self.emit("invoke", p._pyroSerializer, port, p._pyroSeq, object=OBJECT_ID, method="<batch>",
                  oneway=oneway, batch=True, blob=False, annotations=ann, corr=corr, error=error,
                  calls=[c[0] for c in calls])

    def stream_step(self, p, port, method, step, serializer):
        """One call an item stream makes by itself, on the daemon object."""
        error = None
        try:
            step()
        except StopIteration:
            error = "StopIteration"
        self.emit("invoke", serializer, port, p._pyroSeq, object=DAEMON_ID, method=method,
                  oneway=method == "close_stream", batch=False, blob=False, annotations={}, corr=current_corr(),
                  error=error)
        return error is None


def scenario_connect(run):
    for ser in SERIALIZERS:
        run.proxy(ser)._pyroRelease()
        run.proxy(ser, handshake={"user": "\u00fcn\u00ef", "token": [1, 2.5, None]})._pyroRelease()


def scenario_connect_nometa(run):
    config.METADATA = False
    try:
        for ser in SERIALIZERS:
            p = run.proxy(ser)
            run.invoke(p, "echo", ("no metadata",))
            p._pyroRelease()
    finally:
        config.METADATA = True


def scenario_connectfail(run):
    for ser in SERIALIZERS:
        run.proxy(ser, handshake={"reject": True, "why": "golden test"}, reject=True)
    host, port = run.addr.rsplit(":", 1)
    # A serializer the daemon does not accept: refused before the payload is read, reply in marshal.
    sock = socket.create_connection((host, int(port)))
    conn = socketutil.SocketConnection(sock)
    data = util.get_serializer("msgpack").dumps({"handshake": "hello", "object": OBJECT_ID})
    conn.send(message.Message(message.MSG_CONNECT, data, 6, message.FLAGS_META_ON_CONNECT, 0).to_bytes())
    reply = message.Message.recv(conn, [message.MSG_CONNECTFAIL])
    run.emit("connect", "msgpack", sock.getsockname()[1], 0, object=OBJECT_ID, metadata=True, handshake="hello",
             annotations={}, corr=None, rejected=util.get_serializer_by_id(reply.serializer_id).loads(reply.data))
    conn.close()
    # A PING before the handshake: the daemon wants CONNECT and answers CONNECTFAIL.
    sock = socket.create_connection((host, int(port)))
    conn = socketutil.SocketConnection(sock)
    conn.send(message.Message(message.MSG_PING, b"ping", 1, 0, 0).to_bytes())
    reply = message.Message.recv(conn, [message.MSG_CONNECTFAIL])
    run.emit("ping", "serpent", sock.getsockname()[1], 0,
             rejected=util.get_serializer_by_id(reply.serializer_id).loads(reply.data))
    conn.close()


def scenario_call(run):
    args = (1, "a", 2.5, None, True, -7, "\u00fc\u00f1\u00ed\u00a9\u00f8d\u00e9 \u2713 \u65e5\u672c",
            [1, [2, [3, {"k": "v"}]]], {"x": (1, 2), "y": {"z": []}})
    kwargs = {"key": "v\u00e4lue", "nested": {"a": [1, {"b": "\u00fc"}]}}
    for ser in SERIALIZERS:
        p = run.proxy(ser)
        run.invoke(p, "echo", args, kwargs)
        run.invoke(p, "add", (2, 3))
        p._pyroRelease()


def scenario_exception(run):
    for ser in SERIALIZERS:
        p = run.proxy(ser)
        run.invoke(p, "fail", ("boom \u2717",), raises=ValueError)
        p._pyroRelease()


def scenario_oneway(run):
    for ser in SERIALIZERS:
        p = run.proxy(ser)
        run.invoke(p, "fire", ({"v": 1},))
        run.invoke(p, "echo", ("after oneway",))
        p._pyroRelease()


def scenario_batch(run):
    calls = [("echo", ("b1",), {"k": 1}), ("add", (2, 3), {}), ("fail", ("batch boom",), {}), ("echo", ("never",), {})]
    for ser in SERIALIZERS:
        p = run.proxy(ser)
        try:
            run.batch(p, calls)
            run.batch(p, calls[:2], oneway=True)
        except AttributeError as x:
            # Pyro4 4.82 sends a batch with kwargs None, which its marshal serializer cannot
            # encode ('NoneType' object has no attribute 'items'): no batch with marshal.
            print("batch with %s impossible: %s" % (ser, x), file=sys.stderr)
            p._pyroRelease()
            continue
        run.invoke(p, "echo", ("after batch",))
        p._pyroRelease()


def blob_infos(p, all_kinds):
    same_id = p._pyroConnection.objectId          # the very string Pyro puts in BLBI: a marshal ref
    equal_id = "".join(["golden", ".", "obj"])    # equal to the object id, another object: no ref
    infos = ["topic", same_id, "process_blob"]    # "process_blob" is interned like the method name
    if all_kinds:
        infos += [equal_id, "t\u00f6pic \u2713", b"raw\x00bytes", 42, -7, 2 ** 31 - 1, None, True, False, 1.5,
                  ("tuple", 1), ["list", 2], ("nested", ["x", None])]
    return infos


def scenario_blob(run):
    for ser in SERIALIZERS:
        p = run.proxy(ser)
        for info in blob_infos(p, ser == "serpent"):
            run.invoke(p, "process_blob", (SerializedBlob(info, ("blob data", 1)),))
        p._pyroRelease()


def scenario_annotations(run):
    for ser in SERIALIZERS:
        p = run.proxy(ser, cls=AnnotatedProxy)
        run.invoke(p, "context")
        run.invoke(p, "context", context_annotations={"ABCD": b"this call only"})
        run.invoke(p, "echo", ("x",))
        p._pyroRelease()


def scenario_correlation(run):
    try:
        for ser in SERIALIZERS:
            Pyro4.current_context.correlation_id = uuid.uuid4()
            p = run.proxy(ser)
            run.invoke(p, "context")
            Pyro4.current_context.correlation_id = uuid.uuid4()
            run.invoke(p, "echo", ("new correlation id",))
            p._pyroRelease()
    finally:
        Pyro4.current_context.correlation_id = None


def scenario_stream(run):
    for ser in SERIALIZERS:
        p = run.proxy(ser)
        port = port_of(p)
        it = p.numbers(3)
        run.emit("invoke", ser, port, p._pyroSeq, object=OBJECT_ID, method="numbers", oneway=False, batch=False,
                 blob=False, annotations={}, corr=None, error=None)
        while run.stream_step(p, port, "get_next_stream_item", lambda: next(it), ser):
            pass
        it = p.numbers(5)
        run.emit("invoke", ser, port, p._pyroSeq, object=OBJECT_ID, method="numbers", oneway=False, batch=False,
                 blob=False, annotations={}, corr=None, error=None)
        run.stream_step(p, port, "get_next_stream_item", lambda: next(it), ser)
        run.stream_step(p, port, "close_stream", it.close, ser)
        run.invoke(p, "echo", ("after stream",))
        p._pyroRelease()


def scenario_ping(run):
    for ser in SERIALIZERS:
        p = run.proxy(ser)
        conn = p._pyroConnection
        # Pyro4's own ping helper: serializer id 42, seq 0.
        message.Message.ping(conn)
        run.emit("ping", None, port_of(p), 0, serializer_id=42, annotations={}, corr=None)
        # A PING as a proxy would send one: its serializer, a seq, a CORR.
        corr = uuid.uuid4()
        sid = util.get_serializer(ser).serializer_id
        seq = p._pyroSeq + 1000
        conn.send(message.Message(message.MSG_PING, b"ping", sid, 0, seq, annotations={"CORR": corr.bytes}).to_bytes())
        message.Message.recv(conn, [message.MSG_PING])
        run.emit("ping", ser, port_of(p), seq, annotations={}, corr=corr.bytes.hex())
        run.invoke(p, "echo", ("after ping",))
        p._pyroRelease()


def scenario_compression(run):
    config.COMPRESSION = True
    try:
        for ser in SERIALIZERS:
            p = run.proxy(ser)
            run.invoke(p, "echo", ("x" * 3000,))
            run.invoke(p, "big", (3000,))
            run.invoke(p, "add", (1, 2))
            p._pyroRelease()
    finally:
        config.COMPRESSION = False


def scenario_hmac(run):
    for ser in SERIALIZERS:
        p = run.proxy(ser, hmac_key=HMAC_KEY)
        run.invoke(p, "echo", ("signed",))
        run.invoke(p, "fail", ("signed boom",), raises=ValueError)
        # Message.ping(conn, hmac_key) signs its PING but reads the reply without the key
        # ("hmac key config not symmetric"), so do what it does by hand.
        conn = p._pyroConnection
        conn.send(message.Message(message.MSG_PING, b"ping", 42, 0, 0, hmac_key=HMAC_KEY).to_bytes())
        message.Message.recv(conn, [message.MSG_PING], hmac_key=HMAC_KEY)
        run.emit("ping", None, port_of(p), 0, serializer_id=42, annotations={}, corr=None)
        p._pyroRelease()


def main():
    for name, addr in json.loads(sys.argv[2]):
        globals()["scenario_" + name](Run(name, addr))


if __name__ == "__main__":
    main()
