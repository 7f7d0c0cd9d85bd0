package bench

import (
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// TestEchoFloor builds bench/floor/echofloor.c, make bench's C echo floor, and checks
// that the load generator's calls through it are answered as from a Pyro4 daemon
// (CONNECTOK, then RESULT with the request's seq and serializer), also when several
// messages come in one read, and that a message that is not Pyro4 closes its connection.
func TestEchoFloor(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc): the C echo floor is built by make bench only")
	}
	bin := filepath.Join(t.TempDir(), "echofloor")
	if out, err := exec.Command(cc, "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", bin, "floor/echofloor.c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "127.0.0.1", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "2")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("echofloor does not listen on %s: %v", addr, err)
		}
	}

	for _, payload := range []int{16, 1000, 100 << 10} {
		res := run(t, Config{Targets: []Target{{"floor", addr}}, Conns: 4, Calls: 400, Payload: payload, Serializer: frame.JSON})
		if m := res.Targets[0].Median; m.Calls != 400 || m.Errors != 0 {
			t.Fatalf("payload %d: %d calls, errors %v %v", payload, m.Calls, m.ErrorsByKind, m.ErrorSamples)
		}
	}

	// Two requests in one write: two replies, in order.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := func(seq uint16) []byte {
		h := frame.Header{Type: frame.Invoke, Seq: seq, Serializer: frame.JSON, DataLen: 2}
		b := make([]byte, frame.HeaderSize+2)
		h.Put(b)
		copy(b[frame.HeaderSize:], "{}")
		return b
	}
	if _, err := c.Write(append(msg(7), msg(8)...)); err != nil {
		t.Fatal(err)
	}
	r := frame.NewReader(c, 4096, frame.Limits{})
	for _, seq := range []uint16{7, 8} {
		m, err := r.Next()
		if err != nil {
			t.Fatalf("reply %d: %v", seq, err)
		}
		if m.Header.Type != frame.Result || m.Header.Seq != seq {
			t.Fatalf("reply %v seq %d, want RESULT seq %d", m.Header.Type, m.Header.Seq, seq)
		}
		if err := r.Discard(&m); err != nil {
			t.Fatal(err)
		}
	}

	// Not Pyro4 (a header of the right size without the magic): the connection is closed.
	bad := msg(9)
	copy(bad, "XYRO")
	if _, err := c.Write(bad); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 64)); err != io.EOF {
		t.Fatalf("after a message that is not Pyro4: read %d bytes, %v; want EOF", n, err)
	}
}
