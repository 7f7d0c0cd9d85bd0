# The Debian pyro4-examples disconnects/server.py, changed only in COMMTIMEOUT (1.0
# instead of 5.0, to keep the test short) and in listening on 127.0.0.1 (serveSimple
# host="127.0.0.1" instead of the default "localhost").
from __future__ import print_function
import logging

import Pyro4


logging.basicConfig(level=logging.DEBUG)
logging.getLogger("Pyro4").setLevel(logging.DEBUG)

Pyro4.config.COMMTIMEOUT = 1.0
Pyro4.config.POLLTIMEOUT = 5.0  # only used for multiplexing server


class TestDisconnect(object):
    @Pyro4.expose
    def echo(self, arg):
        print("echo: ", arg)
        return arg


Pyro4.Daemon.serveSimple({
    TestDisconnect: "example.disconnect"
}, host="127.0.0.1", ns=False)
