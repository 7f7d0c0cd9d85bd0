"""The demo client: an unmodified Pyro4 client that talks to pyro-dispatch."""
import sys
import time
import Pyro4
import Pyro4.core

uri = sys.argv[1]
print("client: connecting to %s (the dispatcher, not the daemon)" % uri)
with Pyro4.Proxy(uri) as p:
    print("client: greet('world') ->", p.greet("world"))
    t0 = time.time()
    p.note("fire and forget")
    print("client: oneway note() returned after %.1f ms" % ((time.time() - t0) * 1000))
    blob = Pyro4.core.SerializedBlob("sensor-42", ("reading", 21.5, [1, 2, 3]))
    print("client: process_blob(SerializedBlob) ->", p.process_blob(blob))
    Pyro4.current_context.correlation_id = __import__("uuid").UUID("00000000-0000-4000-8000-000000000042")
    print("client: greet('again') with the client's own correlation id ->", p.greet("again"))
