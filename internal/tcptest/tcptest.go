// Package tcptest gives tests the two ends of a loopback TCP connection, closed when the
// test ends.
package tcptest

import (
	"net"
	"testing"
)

// Pair returns both ends of a new loopback TCP connection: the dialing end and the
// accepted one. Both are closed when the test ends.
func Pair(t testing.TB) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}
