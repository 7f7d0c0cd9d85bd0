"""A real, unmodified Pyro4 client for the security interop tests
(interop/security_test.go), against the object "sec.svc" of testdata/security_daemon.py,
through the dispatcher or directly.

Usage: security_client.py < PLAN

PLAN (stdin) is JSON: {"steps": [STEP, ...]}. Every STEP has "name" (its label in the
output), "scenario" and "addr" ("127.0.0.1:PORT"), and may have "ssl" (null: plain TCP;
else {"cacerts", "cert", "key"}: Pyro4.config.SSL=True with those files; Pyro4 caches its
client SSL context, so it is dropped before every step) and "hmac" (the proxies' key).
One JSON line is printed per step:
  {"name": NAME, "ok": true, "result": {...}, "seconds": S}
  {"name": NAME, "ok": false, "error": "Class: text", "trace": "...", "seconds": S}

The outcome of a single call is {"ok": RESULT} or {"class", "error", "cause_class",
"cause", "seconds", "local"}: the exception's class and text, its __cause__'s, how long
the call took, and the local address of the last socket the call connected ("" when it
connected none). Texts have the daemon address "('127.0.0.1', PORT)" replaced by
"<addr>", so the same error through the dispatcher and directly compare equal.

Scenarios:
  tls_ok       a CertCheckingProxy (the technique of Pyro4's ssl example: it checks the
               server certificate in _pyroValidateHandshake) expecting serial "serial"
               (decimal) and subject CN "cn"; calls, a batch, what the daemon sees of
               the connection (whoami), and a second proxy expecting a wrong serial,
               which must refuse the connection.
  refused      one call with the step's ssl settings, which the other side must refuse.
  serializer   record(token) in serpent, json and marshal (each must work), in pickle
               from the CONNECT on, and in pickle on a connection made in serpent; then the
               daemon's counts of every token (read in serpent), and with "control" (an
               address of the same daemon, direct) a pickle call there that must work.
  hmac         with the key "hmac": calls, a batch, a "big_mib" MiB payload both ways
               (marshal), then wrong and missing keys at the CONNECT and at a later call,
               each followed by a call with the right key again; "backend_key" (when
               given) is another key that must be refused too.
  rate         a second client in a thread, from source address "other_source", makes
               "other_calls" calls, "other_interval" seconds apart; meanwhile this client
               (127.0.0.1) calls as fast as it can (and on until refused 5 times). Then a proxy with _pyroRawWireResponse
               (Pyro4 does not drop its connection on an error reply then) calls until
               refused, waits "refill" seconds and calls again on the same connection.
"""
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import uuid

import Pyro4
import Pyro4.core
import Pyro4.errors
import Pyro4.message
import Pyro4.socketutil
import Pyro4.util

# Every socket operation is bounded: a hang shows as a TimeoutError in its step.
Pyro4.config.COMMTIMEOUT = 15.0
Pyro4.config.SERIALIZER = "serpent"

LOCAL = threading.local()  # .source: IP to bind before connecting; .last: local address of the last connect

_real_connect = socket.socket.connect


def _connect(self, address):
    """socket.socket.connect that binds to LOCAL.source first (127.0.0.2...) and records the
    local address; Pyro4's sockets (ssl ones too: SSLSocket connects through it before its
    handshake) all connect here."""
    src = getattr(LOCAL, "source", None)
    if src and self.family == socket.AF_INET:
        self.bind((src, 0))
    try:
        return _real_connect(self, address)
    finally:
        try:
            host, port = self.getsockname()[:2]
            LOCAL.last = "%s:%d" % (host, port)
        except OSError:
            pass


socket.socket.connect = _connect

ADDR_RE = re.compile(r"\('127\.0\.0\.1', \d+\)")


def norm(text):
    return ADDR_RE.sub("<addr>", text)


def exc_name(e):
    t = type(e)
    return t.__name__ if t.__module__ == "builtins" else t.__module__ + "." + t.__name__


def outcome(f):
    LOCAL.last = ""
    t0 = time.time()
    try:
        return {"ok": f()}
    except Exception as e:
        cause = e.__cause__
        return {"class": exc_name(e), "error": norm(str(e)),
                "cause_class": exc_name(cause) if cause is not None else None,
                "cause": norm(str(cause)) if cause is not None else None,
                "seconds": round(time.time() - t0, 3), "local": LOCAL.last}


def configure_ssl(s):
    setattr(Pyro4.socketutil, "__ssl_client_context", None)  # Pyro4 caches it
    Pyro4.config.SSL = bool(s)
    s = s or {}
    Pyro4.config.SSL_CACERTS = s.get("cacerts", "")
    Pyro4.config.SSL_CLIENTCERT = s.get("cert", "")
    Pyro4.config.SSL_CLIENTKEY = s.get("key", "")


def proxy(step, cls=Pyro4.Proxy, serializer=None, key="step"):
    p = cls("PYRO:sec.svc@" + step["addr"])
    k = step.get("hmac") if key == "step" else key
    p._pyroHmacKey = k.encode() if k else None
    if serializer:
        p._pyroSerializer = serializer
    return p


class CertCheckingProxy(Pyro4.core.Proxy):
    """checks the server's certificate at the handshake, as Pyro4's ssl example does;
    subclasses set expect_serial (int), expect_cn and seen (a list)"""
    expect_serial = None
    expect_cn = None
    seen = None

    def _pyroValidateHandshake(self, response):
        cert = self._pyroConnection.getpeercert()
        if not cert:
            raise Pyro4.errors.CommunicationError("cert missing")
        subject = dict(p[0] for p in cert["subject"])
        issuer = dict(p[0] for p in cert["issuer"])
        sock = self._pyroConnection.sock
        self.seen.append({"serial": str(int(cert["serialNumber"], 16)), "cn": subject.get("commonName"),
                          "issuer_cn": issuer.get("commonName"), "tls_version": sock.version(),
                          "handshake": response})
        if int(cert["serialNumber"], 16) != self.expect_serial:
            raise Pyro4.errors.CommunicationError("cert serial number incorrect")
        if subject.get("commonName") != self.expect_cn:
            raise Pyro4.errors.CommunicationError("cert not for " + self.expect_cn)


def checking(serial, cn):
    return type("Checking", (CertCheckingProxy,), {"expect_serial": serial, "expect_cn": cn, "seen": []})


def run_batch(p):
    b = Pyro4.batch(p)
    b.add(1, 2)
    b.echo(u"batch \u2713")
    b.whoami()
    b.add(40, 2)
    return list(b())


def sc_tls_ok(step):
    cls = checking(int(step["serial"]), step["cn"])
    out = {}
    with proxy(step, cls) as p:
        out["add"] = p.add(2, 3)
        out["echo"] = p.echo({"list": [1, 2.5, u"\u2713"], "none": None})
        out["whoami"] = p.whoami()
        out["batch"] = run_batch(p)
        out["client_tls_version"] = p._pyroConnection.sock.version()
    out["server_cert"] = cls.seen
    wrong = checking(int(step["serial"]) + 1, step["cn"])
    p = proxy(step, wrong)
    out["wrong_serial"] = outcome(lambda: p.add(1, 1))
    p._pyroRelease()
    return out


def sc_refused(step):
    p = proxy(step)
    try:
        return outcome(lambda: p.add(1, 2))
    finally:
        p._pyroRelease()


def sc_serializer(step):
    tok = step.get("token") or str(uuid.uuid4())
    out = {"calls": {}}
    tokens = []

    def record(ser, name):
        t = tok + ":" + name
        tokens.append(t)
        p = proxy(step, serializer=ser)
        try:
            return outcome(lambda: p.record(t))
        finally:
            p._pyroRelease()

    for ser in ("serpent", "json", "marshal"):
        out["calls"][ser] = record(ser, ser)
        with proxy(step, serializer=ser) as p:
            out["calls"][ser + "_echo"] = outcome(lambda: p.echo({"k": [1, 2, u"\u2713"]}))
    out["pickle_connect"] = record("pickle", "pickle-connect")
    # a connection made in serpent, then a call in pickle (Pyro4 picks the serializer per call)
    p = proxy(step, serializer="serpent")
    t_first, t_later, t_after = tok + ":serpent-first", tok + ":pickle-later", tok + ":serpent-after"
    tokens += [t_first, t_later, t_after]
    out["serpent_first"] = outcome(lambda: p.record(t_first))
    p._pyroSerializer = "pickle"
    out["pickle_later"] = outcome(lambda: p.record(t_later))
    p._pyroSerializer = "serpent"
    out["serpent_after"] = outcome(lambda: p.record(t_after))
    p._pyroRelease()
    if step.get("control"):
        t = tok + ":pickle-direct"
        with Pyro4.Proxy("PYRO:sec.svc@" + step["control"]) as d:
            d._pyroSerializer = "pickle"
            out["pickle_direct"] = outcome(lambda: d.record(t))
        tokens.append(t)
    with proxy(step, serializer="serpent") as p:
        out["counts"] = {t[len(tok) + 1:]: p.count(t) for t in tokens}
    return out


def sc_hmac(step):
    out = {}
    with proxy(step) as p:
        out["add"] = p.add(1, 2)
        w = p.whoami()
        out["daemon_saw_hmac"] = "HMAC" in w["annotations"]
        out["annotations"] = w["annotations"]  # through a re-signing dispatcher: CORR too
        out["echo"] = p.echo([u"signed \u2713", {"n": 7}])
        out["batch"] = [r if not isinstance(r, dict) else {"daemon_saw_hmac": "HMAC" in r["annotations"]}
                        for r in run_batch(p)]
        out["response_has_hmac"] = "HMAC" in Pyro4.current_context.response_annotations
    mib = step.get("big_mib") or 0
    if mib:
        data = os.urandom(mib << 20)
        with proxy(step, serializer="marshal") as p:
            t0 = time.time()
            r = p.big(data)
            out["big"] = {"len": r["len"], "sha_ok": r["sha256"] == hashlib.sha256(data).hexdigest(),
                          "reply_ok": r["data"] == data[::-1], "reply_len": len(r["data"])}
            out["big_seconds"] = round(time.time() - t0, 3)
            out["big_after"] = p.add(20, 22)
        del data, r
    bad = [("wrong_key", b"not the key"), ("no_key", None)]
    if step.get("backend_key"):
        bad.append(("backend_key", step["backend_key"].encode()))
    good = step["hmac"].encode()
    for name, key in bad:
        p = proxy(step)
        p._pyroHmacKey = key
        out[name + "_connect"] = outcome(lambda: p.add(1, 2))
        p._pyroRelease()
        p._pyroHmacKey = good
        out[name + "_connect_then_good"] = outcome(lambda: p.add(2, 2))
        p._pyroRelease()
        # a later call: connected with the right key, then the key changes
        p = proxy(step)
        out[name + "_later_first"] = outcome(lambda: p.add(3, 3))
        p._pyroHmacKey = key
        out[name + "_later"] = outcome(lambda: p.add(4, 4))
        p._pyroHmacKey = good
        out[name + "_later_then_good"] = outcome(lambda: p.add(5, 5))
        p._pyroRelease()
    return out


def sc_rate(step):
    start, done = threading.Event(), threading.Event()
    other = {"ok": 0, "errors": [], "local": None}

    def other_client():
        LOCAL.source = step["other_source"]
        try:
            with proxy(step) as q:
                q._pyroBind()  # the CONNECT is not a call
                other["local"] = "%s:%d" % q._pyroConnection.sock.getsockname()[:2]
                start.wait(10)
                for _ in range(int(step["other_calls"])):
                    o = outcome(lambda: q.add(1, 1))
                    if "ok" in o:
                        other["ok"] += 1
                    else:
                        other["errors"].append(o)
                    time.sleep(float(step["other_interval"]))
        except Exception as e:
            other["errors"].append({"class": exc_name(e), "error": str(e)})
        finally:
            done.set()

    th = threading.Thread(target=other_client)
    th.start()
    out = {"limited": {"ok": 0, "errors": {}, "locals": []}}
    lim = out["limited"]
    p = proxy(step)
    p._pyroBind()
    lim["first_local"] = "%s:%d" % p._pyroConnection.sock.getsockname()[:2]
    time.sleep(0.2)  # the other client connected
    start.set()
    t0 = time.time()
    refused = 0
    # until the other client is done, and this one was refused a few times
    while (not done.is_set() or refused < 5) and time.time() < t0 + 10:
        o = outcome(lambda: p.add(1, 1))
        if "ok" in o:
            lim["ok"] += 1
        else:
            refused += 1
            key = "%s: %s" % (o["class"], o["error"])
            lim["errors"][key] = lim["errors"].get(key, 0) + 1
            lim["max_error_seconds"] = max(lim.get("max_error_seconds", 0), o["seconds"])
            ip = o["local"].split(":")[0]
            if ip and ip not in lim["locals"]:
                lim["locals"].append(ip)
        time.sleep(0.005)
    lim["seconds"] = round(time.time() - t0, 3)
    p._pyroRelease()
    th.join(20)
    out["other"] = other
    out["other_alive"] = th.is_alive()

    # the refused call is an ordinary reply on the connection: with raw wire responses Pyro4
    # keeps the connection, and a call after the bucket refilled works on the same one
    raw = proxy(step)
    raw._pyroRawWireResponse = True
    raw._pyroBind()
    conn = raw._pyroConnection
    local = conn.sock.getsockname()
    refused = None
    for i in range(200):
        msg = raw.add(1, 1)
        data = Pyro4.util.get_serializer_by_id(msg.serializer_id).deserializeData(msg.data)
        if msg.flags & Pyro4.message.FLAGS_EXCEPTION:
            refused = {"after_calls": i, "class": exc_name(data), "error": str(data)}
            break
    out["raw_refused"] = refused
    out["raw_same_connection_after_refusal"] = raw._pyroConnection is conn
    time.sleep(float(step["refill"]))
    msg = raw.add(20, 22)
    data = Pyro4.util.get_serializer_by_id(msg.serializer_id).deserializeData(msg.data)
    out["raw_after_refill"] = {"exception": bool(msg.flags & Pyro4.message.FLAGS_EXCEPTION), "result": data
                               if not isinstance(data, BaseException) else str(data),
                               "same_connection": raw._pyroConnection is conn and conn.sock.getsockname() == local}
    raw._pyroRelease()
    return out


SCENARIOS = {k[3:]: v for k, v in globals().items() if k.startswith("sc_")}


def main():
    plan = json.load(sys.stdin)
    for step in plan["steps"]:
        t0 = time.time()
        try:
            configure_ssl(step.get("ssl"))
            line = {"name": step["name"], "ok": True, "result": SCENARIOS[step["scenario"]](step)}
        except Exception as e:
            line = {"name": step["name"], "ok": False, "error": "%s: %s" % (exc_name(e), e),
                    "trace": traceback.format_exc() + "".join(Pyro4.util.getPyroTraceback())}
        line["seconds"] = round(time.time() - t0, 3)
        sys.stdout.write(json.dumps(line, sort_keys=True, default=repr) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
