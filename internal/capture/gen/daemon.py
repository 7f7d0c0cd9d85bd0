"""Pyro4 daemons for the golden vector capture (run by gen/main.go with /usr/bin/python3).

Usage: daemon.py HMACKEY [--compress]
Prints one JSON line {"kind": port, ...} once the daemons listen, serves until stdin closes.
Without --compress it runs three daemons: "plain", "annotated" (adds a DDAA annotation to
every reply) and "hmac" (signs with HMACKEY). With --compress it runs one daemon, "compress",
with config.COMPRESSION on (it is a process-wide setting).
"""
import json
import sys
import threading

import Pyro4
from Pyro4 import config

config.SERIALIZERS_ACCEPTED = {"serpent", "json", "marshal", "pickle"}
config.COMPRESSION = "--compress" in sys.argv[2:]
config.DETAILED_TRACEBACK = False

OBJECT_ID = "golden.obj"


@Pyro4.expose
class Golden(object):
    def echo(self, *args, **kwargs):
        return [list(args), kwargs]

    def add(self, a, b):
        return a + b

    def fail(self, message):
        raise ValueError(message)

    @Pyro4.oneway
    def fire(self, value):
        pass

    def process_blob(self, blob):
        # Never blob.deserialized(): with json it is broken on the receiving side.
        return "blob " + type(blob.info).__name__

    def numbers(self, n):
        for i in range(n):
            yield i

    def big(self, n):
        return "y" * n

    def context(self):
        ctx = Pyro4.current_context
        return {"correlation_id": str(ctx.correlation_id), "annotations": sorted(ctx.annotations)}


class GoldenDaemon(Pyro4.Daemon):
    def validateHandshake(self, conn, data):
        if isinstance(data, dict) and data.get("reject"):
            raise ValueError("golden daemon rejects handshake: %s" % data.get("why"))
        return "hello"


class AnnotatedDaemon(GoldenDaemon):
    def annotations(self):
        return {"DDAA": b"daemon annotation \x00\xff"}


def main():
    key = sys.argv[1].encode()
    if config.COMPRESSION:
        kinds = {"compress": GoldenDaemon}
    else:
        kinds = {"plain": GoldenDaemon, "annotated": AnnotatedDaemon, "hmac": GoldenDaemon}
    daemons = {}
    for kind, cls in kinds.items():
        d = cls(host="127.0.0.1", port=0)
        if kind == "hmac":
            d._pyroHmacKey = key
        d.register(Golden(), OBJECT_ID)
        threading.Thread(target=d.requestLoop, daemon=True).start()
        daemons[kind] = d
    print(json.dumps({k: d.sock.getsockname()[1] for k, d in daemons.items()}), flush=True)
    sys.stdin.read()
    for d in daemons.values():
        d.shutdown()


if __name__ == "__main__":
    main()
