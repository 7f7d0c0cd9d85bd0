# A Pyro4 daemon for the fault tests: object "fault.svc" with echo, slow and pid.
#
# usage: fault_daemon.py ADDR
#   ADDR is HOST:PORT (port 0 for any free port), [::1]:PORT or unix:/path.
# The first line printed is the object's URI; "slow-begin TAG" is printed when a slow
# call starts, so a test knows the call is in flight at the daemon.
import os
import sys
import time

import Pyro4

Pyro4.config.SERVERTYPE = "thread"


@Pyro4.expose
class Svc(object):
    def echo(self, x):
        return x

    def slow(self, seconds, tag=""):
        print("slow-begin %s" % tag, flush=True)
        time.sleep(seconds)
        return "slow-done %s" % tag

    def pid(self):
        return os.getpid()


addr = sys.argv[1]
if addr.startswith("unix:"):
    daemon = Pyro4.Daemon(unixsocket=addr[len("unix:"):])
else:
    host, _, port = addr.rpartition(":")
    daemon = Pyro4.Daemon(host=host.strip("[]"), port=int(port))
uri = daemon.register(Svc(), "fault.svc")
print(uri, flush=True)
daemon.requestLoop()
