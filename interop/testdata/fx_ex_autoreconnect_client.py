# The Debian pyro4-examples autoreconnect/client.py, changed only to take the URI from
# argv instead of input(), and to end (printing "done") after 2 calls made once the
# connection was rebound, or after 30 loops, instead of looping forever.
from __future__ import print_function
import time
import sys

import Pyro4


if sys.version_info < (3, 0):
    input = raw_input

print("Autoreconnect using PYRO uri.")

# We create a proxy with a PYRO uri.
# Reconnect logic depends on the server now.
# (it needs to restart the object with the same id)
uri = sys.argv[1]
obj = Pyro4.core.Proxy(uri)

rebound, calls_after = False, 0
for _ in range(30):
    if calls_after >= 2:
        break
    print("call...")
    try:
        obj.method(42)
        if rebound:
            calls_after += 1
        print("Sleeping 1 second")
        time.sleep(1)
    except Pyro4.errors.ConnectionClosedError:  # or possibly CommunicationError
        print("Connection lost. REBINDING...")
        print("(restart the server now)")
        obj._pyroReconnect()
        rebound = True
print("done")
