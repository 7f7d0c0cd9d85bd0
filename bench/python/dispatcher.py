#!/usr/bin/python3
"""Pyro4's own SerializedBlob dispatcher pattern, as the baseline for `make bench`.

This is /usr/share/doc/pyro4/examples/blob-dispatch/dispatcher (Pyro4 4.82) reduced to
one fixed listener: a Python Pyro4 daemon serving the object "echo" whose process_blob
forwards the SerializedBlob it receives, still serialized (Pyro4 passes the client's
message data through with KEEPSERIALIZED and a new BLBI annotation), through a Proxy of
its own thread to the backend's blob method, and returns the backend's result. The
method is exposed as process_blob (the example's name) and as blob, so that Python
clients make the same call, blob(SerializedBlob), to this dispatcher, to pyro-dispatch
and to the Go echo daemon directly.

usage: dispatcher.py --listen HOST:PORT --backend PYRO:echo@HOST:PORT

Prints the dispatcher's URI on stdout once it listens; SIGTERM or SIGINT stops it.
"""
import argparse
import sys
import threading

import Pyro4
import Pyro4.core


@Pyro4.behavior(instance_mode="single")
class Dispatcher(object):
    def __init__(self, backend):
        self.backend = backend
        self.local = threading.local()

    def _proxy(self):
        p = getattr(self.local, "proxy", None)
        if p is None:
            p = self.local.proxy = Pyro4.Proxy(self.backend)
        return p

    @Pyro4.expose
    def process_blob(self, blob):
        assert isinstance(blob, Pyro4.core.SerializedBlob)
        return self._proxy().blob(blob)

    @Pyro4.expose
    def blob(self, blob):
        return self.process_blob(blob)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="HOST:PORT")
    ap.add_argument("--backend", required=True, help="URI of the backend object, PYRO:echo@HOST:PORT")
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    daemon = Pyro4.Daemon(host=host, port=int(port))
    uri = daemon.register(Dispatcher(args.backend), "echo")
    print(uri, flush=True)
    try:
        daemon.requestLoop()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
