# Calls one method through Pyro4 and prints the outcome as one JSON line; exits 0 either way.
#
# usage: fault_call.py URI METHOD ARGS_JSON [OPTIONS_JSON]
# options: "timeout": proxy timeout in seconds (default 30); "serializer": a Pyro4 name;
#          "proxies": how many fresh proxies call in turn (default 1);
#          "announce": print "start" first (for tests that wait for the first line).
# output: {"ok": result, "count": calls that succeeded, "elapsed": seconds} or
#         {"class": "Pyro4.errors.X", "error": str(exception), "count": ..., "elapsed": ...}
import json
import sys
import time

import Pyro4
import Pyro4.errors

uri, method, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
opts = (json.loads(sys.argv[4]) if len(sys.argv) > 4 else None) or {}
if opts.get("serializer"):
    Pyro4.config.SERIALIZER = opts["serializer"]
if opts.get("announce"):
    print("start", flush=True)
res = {"count": 0}
t0 = time.monotonic()
try:
    for _ in range(opts.get("proxies", 1)):
        with Pyro4.Proxy(uri) as p:
            p._pyroTimeout = opts.get("timeout", 30)
            res["ok"] = getattr(p, method)(*args)
            res["count"] += 1
except Exception as e:
    res.pop("ok", None)
    res["class"] = type(e).__module__ + "." + type(e).__qualname__
    res["error"] = str(e)
res["elapsed"] = time.monotonic() - t0
print(json.dumps(res), flush=True)
