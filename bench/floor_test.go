package bench

import (
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

// TestEchoFloors builds make bench's echo floors, bench/floor/echofloor.c and its Go
// twin bench/cmd/echofloor, and checks that the load generator's calls through each are
// answered as from a Pyro4 daemon (CONNECTOK, then RESULT with the request's seq and
// serializer), also when several messages come in one read, and that a message that is
// not Pyro4 closes its connection.
func TestEchoFloors(t *testing.T) {
	for _, f := range []struct {
		lang  string
		build func(bin string) []string        // the command that builds bin
		args  func(host, port string) []string // bin's arguments
	}{
		{"c", func(bin string) []string {
			return []string{"cc", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", bin, "floor/echofloor.c"}
		}, func(host, port string) []string { return []string{host, port, "2"} }},
		{"go", func(bin string) []string { return []string{"go", "build", "-o", bin, "./cmd/echofloor"} },
			func(host, port string) []string { return []string{"--listen", net.JoinHostPort(host, port)} }},
	} {
		t.Run(f.lang, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "echofloor")
			b := f.build(bin)
			if _, err := exec.LookPath(b[0]); err != nil {
				t.Skipf("no %s to build it with (make bench needs one): %v", b[0], err)
			}
			if out, err := exec.Command(b[0], b[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(b, " "), err, out)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().(*net.TCPAddr)
			ln.Close()
			cmd := exec.Command(bin, f.args("127.0.0.1", strconv.Itoa(addr.Port))...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
			checkEchoFloor(t, addr.String())
		})
	}
}

// checkEchoFloor checks the echo floor listening on addr.
func checkEchoFloor(t *testing.T, addr string) {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s: %v", addr, err)
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
