# Makes a known mix of calls through the dispatcher for the metrics test, then prints
# one JSON line of what it saw.
#
# usage: metrics_client.py ADDR
#   on PYRO:test.echo@ADDR: 7 echo calls (ok), 3 fail calls (exception), 1 oneway mark,
#   2 add calls (which a pooled listener's route may deny); a proxy to
#   PYRO:blocked.thing@ADDR (which a route may refuse at CONNECT).
import json
import sys

import Pyro4
import Pyro4.errors

addr = sys.argv[1]
res = {"ok": 0, "exceptions": 0, "denied": 0, "refused_connect": 0}
with Pyro4.Proxy("PYRO:test.echo@" + addr) as p:
    for i in range(7):
        p.echo(i)
        res["ok"] += 1
    for i in range(3):
        try:
            p.fail("metrics test %d" % i)
        except ValueError:
            res["exceptions"] += 1
    p.mark("metrics-test-token")
    for i in range(2):
        try:
            p.add(i, 1)
            res["ok"] += 1
        except Pyro4.errors.CommunicationError as e:
            if "pyro-dispatch" in str(e):
                res["denied"] += 1
            p._pyroReconnect()  # Pyro4 drops its connection after a CommunicationError
try:
    with Pyro4.Proxy("PYRO:blocked.thing@" + addr) as b:
        b._pyroBind()
except Pyro4.errors.CommunicationError as e:
    if "pyro-dispatch" in str(e):
        res["refused_connect"] += 1
print(json.dumps(res), flush=True)
