"""A real, unmodified Pyro4 daemon for the security interop tests
(interop/security_test.go): TLS (Pyro4's SSL), HMAC keys and serializer policies.

Usage: security_daemon.py [--ssl --cert PEM --key PEM [--cacerts PEM] [--require-client-cert]]
                          [--hmac KEY] [--serializers serpent,json,marshal,pickle]

When ready it prints its listen address ("127.0.0.1:PORT") as the first stdout line.

Object "sec.svc" (one instance):
  add(a, b)      a + b
  echo(x)        x
  whoami()       what the daemon sees of the connection the call came on: {"ssl", "conn",
                 "peer_cn", "peer_serial" (the client certificate's, when TLS),
                 "tls_version", "annotations" (the request annotations' keys)}
  record(token)  counts a call under token (the tests prove that a refused call never ran)
                 and returns the count
  count(token)   the count of token
  big(data)      {"len", "sha256" of the bytes received, "data": those bytes reversed}
"""
import argparse
import hashlib
import sys
import threading

import Pyro4
import Pyro4.core
import serpent

Pyro4.config.SERVERTYPE = "thread"
Pyro4.config.THREADPOOL_SIZE = 64
Pyro4.config.THREADPOOL_SIZE_MIN = 8
# a client that connects and stalls must not hold a worker (or, with SSL, the accept
# loop, where Pyro4 runs the TLS handshake) for long
Pyro4.config.COMMTIMEOUT = 20.0

COUNTS = {}
LOCK = threading.Lock()


def as_bytes(data):
    """bytes from a bytes argument in any serializer (serpent and json send a base64 dict)"""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    return serpent.tobytes(data)


@Pyro4.expose
@Pyro4.behavior(instance_mode="single")
class Svc(object):
    def add(self, a, b):
        return a + b

    def echo(self, x):
        return x

    def whoami(self):
        ctx = Pyro4.current_context
        conn = ctx.client
        sock = conn.sock
        info = {"ssl": hasattr(sock, "getpeercert"), "conn": "%x" % id(conn), "peer_cn": None,
                "peer_serial": None, "tls_version": None, "annotations": sorted(ctx.annotations)}
        if info["ssl"]:
            cert = conn.getpeercert()
            if cert:
                subject = dict(p[0] for p in cert["subject"])
                info["peer_cn"] = subject.get("commonName")
                info["peer_serial"] = cert["serialNumber"]
            info["tls_version"] = sock.version()
        return info

    def record(self, token):
        with LOCK:
            COUNTS[token] = COUNTS.get(token, 0) + 1
            return COUNTS[token]

    def count(self, token):
        with LOCK:
            return COUNTS.get(token, 0)

    def big(self, data):
        data = as_bytes(data)
        return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest(), "data": data[::-1]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssl", action="store_true")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--cacerts")
    ap.add_argument("--require-client-cert", action="store_true")
    ap.add_argument("--hmac")
    ap.add_argument("--serializers", default="serpent,json,marshal,pickle")
    opts = ap.parse_args()
    Pyro4.config.SERIALIZERS_ACCEPTED = set(opts.serializers.split(","))
    if opts.ssl:
        Pyro4.config.SSL = True
        Pyro4.config.SSL_SERVERCERT = opts.cert
        Pyro4.config.SSL_SERVERKEY = opts.key
        Pyro4.config.SSL_CACERTS = opts.cacerts or ""
        Pyro4.config.SSL_REQUIRECLIENTCERT = opts.require_client_cert
    daemon = Pyro4.Daemon(host="127.0.0.1", port=0)
    if opts.hmac:
        daemon._pyroHmacKey = opts.hmac.encode()
    daemon.register(Svc(), "sec.svc")
    print(daemon.locationStr, flush=True)
    sys.stderr.write("security_daemon.py ready on %s (ssl=%s, hmac=%s, serializers=%s)\n"
                     % (daemon.locationStr, opts.ssl, bool(opts.hmac), opts.serializers))
    daemon.requestLoop()


if __name__ == "__main__":
    main()
