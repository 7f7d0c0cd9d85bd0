# The Debian pyro4-examples circular/client.py, changed only to take the URI of node A
# from argv instead of "PYRONAME:example.chain.A" (no name server).
from __future__ import print_function
import sys

import Pyro4.core

obj = Pyro4.core.Proxy(sys.argv[1])
print("Result=%s" % obj.process(["hello"]))
