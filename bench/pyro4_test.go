package bench

import (
	"testing"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// echoDaemonPy is a real Pyro4 daemon serving the echo object the way EchoServer does:
// the load generator's messages must be what real Pyro4 accepts. It prints HOST:PORT.
const echoDaemonPy = `
import Pyro4, Pyro4.core
Pyro4.config.SERIALIZERS_ACCEPTED = {"serpent", "json", "marshal"}
Pyro4.config.THREADPOOL_SIZE = 16

@Pyro4.expose
class Echo(object):
    def echo(self, x):
        return x
    @Pyro4.oneway
    def oneway(self, x):
        pass
    def blob(self, b):
        assert isinstance(b, Pyro4.core.SerializedBlob), type(b)
        assert b.info == "pyro-dispatch.bench", b.info
        return b.info

d = Pyro4.Daemon(host="127.0.0.1", port=0)
d.register(Echo(), "echo")
print(d.locationStr, flush=True)
d.requestLoop()
`

// TestRunAgainstPyro4: every mode and serializer of the load generator against a real
// Pyro4 daemon: handshakes, calls, oneway calls and SerializedBlob calls are accepted and
// answered without exceptions.
func TestRunAgainstPyro4(t *testing.T) {
	pyro4test.Python(t)
	d := pyro4test.StartDaemon(t, echoDaemonPy)
	for _, mode := range []Mode{ModeCall, ModeOneway, ModeBlob} {
		for _, ser := range []frame.Serializer{frame.Serpent, frame.JSON, frame.Marshal} {
			res := run(t, Config{Targets: []Target{{"pyro4", d.Line}}, Conns: 2, Calls: 40, Payload: 300,
				Serializer: ser, Mode: mode})
			if m := res.Targets[0].Median; m.Calls != 40 || m.Errors != 0 {
				t.Errorf("%s/%v: %d calls, errors %v %v", mode, ser, m.Calls, m.ErrorsByKind, m.ErrorSamples)
			}
		}
	}
}
