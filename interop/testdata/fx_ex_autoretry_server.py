# The Debian pyro4-examples autoretry/server.py, changed only so it needs no name server:
# serveSimple(..., host="127.0.0.1", ns=False) instead of serveSimple({...}) (which
# registers in a name server), so the object id is "example.autoretry" and the test reads
# the URI from the "uri = ..." line serveSimple prints.
import Pyro4


@Pyro4.expose
class CalcServer(object):
    def add(self, num1, num2):
        print("calling add: %d, %d" % (num1, num2))
        return num1 + num2


Pyro4.config.COMMTIMEOUT = 0.5  # the server should time out easily now

Pyro4.core.Daemon.serveSimple({
    CalcServer: "example.autoretry"
}, host="127.0.0.1", ns=False)
