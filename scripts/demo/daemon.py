"""The demo backend: a plain Pyro4 daemon with one object, 'demo.greeter'."""
import sys
import Pyro4
import Pyro4.core


@Pyro4.expose
class Greeter(object):
    def greet(self, name):
        corr = Pyro4.current_context.correlation_id
        return "hello %s (backend saw correlation id %s)" % (name, corr)

    @Pyro4.oneway
    def note(self, text):
        print("backend: oneway note received: %r (correlation id %s)" % (text, Pyro4.current_context.correlation_id), flush=True)

    def process_blob(self, blob):
        data = blob.deserialized()
        return "blob %r arrived with %d items: %r" % (blob.info, len(data), data)


port = int(sys.argv[1])
daemon = Pyro4.Daemon(host="127.0.0.1", port=port)
daemon.register(Greeter, "demo.greeter")
print("backend: Pyro4 daemon ready at PYRO:demo.greeter@127.0.0.1:%d" % port, flush=True)
daemon.requestLoop()
