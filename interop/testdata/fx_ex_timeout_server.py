# The Debian pyro4-examples timeout/server.py, changed only so it needs no name server:
# both daemons listen on 127.0.0.1 and, instead of registering "example.timeout" and
# "example.timeout.frozendaemon" in a name server, it prints their URIs ("uri = ..." and
# "uri2 = ...") for the client.
from __future__ import print_function
import time

import Pyro4.naming
import Pyro4.core


@Pyro4.expose
class TimeoutServer(object):
    def delay(self, amount):
        print("sleeping %d" % amount)
        time.sleep(amount)
        print("done.")
        return "slept %d seconds" % amount


Pyro4.config.COMMTIMEOUT = 0  # the server won't be using timeouts

daemon = Pyro4.core.Daemon(host="127.0.0.1")
daemon2 = Pyro4.core.Daemon(host="127.0.0.1")
obj = TimeoutServer()
obj2 = TimeoutServer()
uri = daemon.register(obj)
uri2 = daemon2.register(obj2)
print("uri = %s" % uri)
print("uri2 = %s" % uri2)
print("Server ready.")
# Note that we're only starting one of the 2 daemons.
# daemon2 is not started to simulate connection timeouts.
daemon.requestLoop()
