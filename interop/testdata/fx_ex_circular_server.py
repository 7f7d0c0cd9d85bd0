# The Debian pyro4-examples circular example's chain.py and servA.py / servB.py /
# servC.py in one file, changed only so it needs no name server: the node names and the
# next node's URI come from argv (THIS NEXT NEXT_URI HOST:PORT) instead of
# "PYRONAME:example.chain." + next, and the object is registered with the id
# "example.chain." + THIS on HOST:PORT instead of in a name server.
from __future__ import print_function
import sys

import Pyro4
import Pyro4.core


# a Chain member. Passes messages to the next link,
# until the message went full-circle: then it exits.

class Chain(object):
    def __init__(self, name, next_node):
        self.name = name
        self.nextName = next_node
        self.next = None

    @Pyro4.expose
    def process(self, message):
        if self.next is None:
            self.next = Pyro4.core.Proxy(next_uri)
        if self.name in message:
            print("Back at %s; we completed the circle!" % self.name)
            return ["complete at " + self.name]
        else:
            print("I'm %s, passing to %s" % (self.name, self.nextName))
            message.append(self.name)
            result = self.next.process(message)
            result.insert(0, "passed on from " + self.name)
            return result


this_node, next_node, next_uri, addr = sys.argv[1:5]
host, _, port = addr.rpartition(":")

servername = "example.chain." + this_node

with Pyro4.core.Daemon(host=host, port=int(port)) as daemon:
    obj = Chain(this_node, next_node)
    uri = daemon.register(obj, servername)

    # enter the service loop.
    print("Server started %s %s" % (this_node, uri))
    daemon.requestLoop()
