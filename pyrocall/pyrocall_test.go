package pyrocall

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/pyro4test"
)

// nsScript runs a real name server; argv[1] is its HMAC key ("" for none).
const nsScript = `
import sys
import Pyro4, Pyro4.naming
uri, daemon, bc = Pyro4.naming.startNS(host="127.0.0.1", port=0, enableBroadcast=False, hmac=sys.argv[1] or None)
print(daemon.locationStr, flush=True)
daemon.requestLoop()
`

func connect(t *testing.T, addr string, key []byte) (*Client, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return Connect(ctx, c, "Pyro.NameServer", key)
}

// Calls to a real Pyro4 name server: register, lookup, list, an exception, and HMAC.
func TestNameServer(t *testing.T) {
	pyro4test.Python(t)
	for _, key := range []string{"", "s3cret"} {
		ns := pyro4test.StartDaemon(t, nsScript, key)
		cl, err := connect(t, ns.Line, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := cl.Call(ctx, "Pyro.NameServer", "register", []any{"a.thing", "PYRO:thing@10.0.0.1:9100"}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := cl.Call(ctx, "Pyro.NameServer", "list", nil, map[string]any{"prefix": "a."})
		if err != nil || string(got) != `{"a.thing": "PYRO:thing@10.0.0.1:9100"}` {
			t.Errorf("list: %s %v", got, err)
		}
		got, err = cl.Call(ctx, "Pyro.NameServer", "lookup", []any{"a.thing"}, nil)
		var u struct {
			Class string `json:"__class__"`
			State []any  `json:"state"`
		}
		if err != nil || json.Unmarshal(got, &u) != nil || u.Class != "Pyro4.core.URI" || u.State[3] != "10.0.0.1" {
			t.Errorf("lookup: %s %v", got, err)
		}
		_, err = cl.Call(ctx, "Pyro.NameServer", "lookup", []any{"nope"}, nil)
		var re *RemoteError
		if !errors.As(err, &re) || re.Class != "Pyro4.errors.NamingError" || re.Message != "unknown name: nope" {
			t.Errorf("unknown name: %v", err)
		}
		cl.Close()
		if key != "" {
			if _, err := connect(t, ns.Line, nil); err == nil {
				t.Error("no key for a keyed name server: connected")
			}
			if _, err := connect(t, ns.Line, []byte("wrong")); err == nil || !strings.Contains(err.Error(), "hmac") {
				t.Errorf("wrong key: %v", err)
			}
		}
	}
}
