package pool

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// probeConnect is the CONNECT payload of a health check: the Python marshal of
// {"handshake": "pyro-dispatch health check"}, what a Pyro4 daemon's _handshake reads
// (no META flag, so no object is named).
var probeConnect = func() []byte {
	str := func(b []byte, s string) []byte { return append(append(b, 'z', byte(len(s))), s...) } // short ASCII str
	b := []byte{'{'}
	b = str(b, "handshake")
	b = str(b, "pyro-dispatch health check")
	return append(b, '0') // end of dict
}()

// Probe checks that the Pyro4 daemon at the other end of a new connection c serves: a
// real handshake (a marshal CONNECT the daemon must answer with CONNECTOK) and a PING,
// all within ctx; then it closes c. A refused handshake is a failure too: such a member
// could not serve a call.
func Probe(ctx context.Context, c net.Conn) error {
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msg := frame.AppendMessage(nil, frame.Header{Type: frame.Connect, Serializer: frame.Marshal}, nil, probeConnect)
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	r := frame.NewReader(c, 0, frame.Limits{MaxMessageSize: 16 << 20})
	m, err := r.Next()
	if err == nil {
		err = r.Discard(&m)
	}
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if m.Header.Type != frame.ConnectOK {
		return fmt.Errorf("handshake answered with %v", m.Header.Type)
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	return Ping(&Conn{Conn: c, Reader: r}, frame.Marshal, timeout)
}
