# A Pyro4 client that keeps one proxy connected and calls echo in a loop until a stop file
# exists, for tests that check a client is unaffected by what happens to others.
#
# usage: fault_client.py URI STOPFILE
# Prints "ready" after its first call, "ok N" after each call, and "calls N" at the end,
# after one more call on the same proxy and one on a fresh proxy. Any failure raises:
# a traceback on stderr and a non-zero exit.
import os
import sys
import time

import Pyro4

uri, stop = sys.argv[1], sys.argv[2]
p = Pyro4.Proxy(uri)
p._pyroTimeout = 10
if p.echo("before") != "before":
    sys.exit("bad first reply")
print("ready", flush=True)
n = 0
while not os.path.exists(stop):
    n += 1
    got = p.echo(n)
    if got != n:
        sys.exit("echo(%r) returned %r" % (n, got))
    print("ok %d" % n, flush=True)
    time.sleep(0.02)
if p.echo("after") != "after":
    sys.exit("bad last reply")
p._pyroRelease()
with Pyro4.Proxy(uri) as q:
    q._pyroTimeout = 10
    if q.echo("fresh") != "fresh":
        sys.exit("bad reply on a fresh proxy")
print("calls %d" % n, flush=True)
