package rawsock

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/internal/tcptest"
)

// tcpPair returns the two ends of a loopback TCP connection: a, wrapped by New, and b.
func tcpPair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	a, b := tcptest.Pair(t)
	rc, ok := New(a).(*Conn)
	if !ok {
		t.Fatalf("New(%T) did not wrap it", a)
	}
	return rc, b
}

func TestReadWriteEOF(t *testing.T) {
	a, b := tcpPair(t)
	if n, err := a.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "hello" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	done := make(chan struct{})
	go func() { // the read waits for data that comes later
		defer close(done)
		time.Sleep(20 * time.Millisecond)
		b.Write([]byte("world"))
		b.Close()
	}()
	buf := make([]byte, 16)
	n, err := a.Read(buf)
	if err != nil || string(buf[:n]) != "world" {
		t.Fatalf("Read: %q, %v", buf[:n], err)
	}
	<-done
	if n, err := a.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read at the peer's end: %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	a, _ := tcpPair(t)
	a.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	start := time.Now()
	_, err := a.Read(make([]byte, 8))
	var op *net.OpError
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &op) || op.Op != "read" {
		t.Fatalf("Read past the deadline: %v; want a read's i/o timeout", err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("Read returned after %v, before its deadline", took)
	}
}

// TestWritevFullSocket writes far more than the socket buffers hold, in more pieces than
// one writev takes, some empty, while the peer reads slowly: the write waits for room
// and resumes mid-piece, and every byte arrives in order.
func TestWritevFullSocket(t *testing.T) {
	a, b := tcpPair(t)
	a.Conn.(*net.TCPConn).SetWriteBuffer(16 << 10) // small buffers: the socket fills at once
	b.(*net.TCPConn).SetReadBuffer(16 << 10)
	var pieces [][]byte
	var want []byte
	for i := range 9 {
		p := bytes.Repeat([]byte{byte('a' + i)}, (i+1)*30_011)
		if i == 4 {
			p = nil
		}
		pieces = append(pieces, p)
		want = append(want, p...)
	}
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		buf := make([]byte, 7919)
		for len(all) < len(want) {
			time.Sleep(100 * time.Microsecond)
			n, err := b.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- all
	}()
	n, err := a.Writev(pieces...)
	if err != nil || n != int64(len(want)) {
		t.Fatalf("Writev: %d, %v; want %d", n, err, len(want))
	}
	if g := <-got; !bytes.Equal(g, want) {
		t.Fatalf("the peer read %d bytes, not what was written (%d)", len(g), len(want))
	}
	if n, err := a.Writev(nil, []byte{}); n != 0 || err != nil {
		t.Fatalf("Writev of nothing: %d, %v", n, err)
	}
}

// WritevWithin: a write the socket takes at once is not limited; one that must wait
// for a peer that does not read ends with a timeout after about the limit, and leaves
// no deadline behind: once the peer reads, the next write goes through.
func TestWritevWithin(t *testing.T) {
	a, b := tcpPair(t)
	a.Conn.(*net.TCPConn).SetWriteBuffer(16 << 10)
	b.(*net.TCPConn).SetReadBuffer(16 << 10)
	var w Writer
	if n, err := w.WritevWithin(a.Conn, a.rc, time.Nanosecond, []byte("taken at once")); n != 13 || err != nil {
		t.Fatalf("a write that need not wait: %d, %v", n, err)
	}
	big := make([]byte, 4<<20)
	start := time.Now()
	n, err := w.WritevWithin(a.Conn, a.rc, 100*time.Millisecond, big)
	if took := time.Since(start); !errors.Is(err, os.ErrDeadlineExceeded) || took < 100*time.Millisecond || n >= int64(len(big)) {
		t.Fatalf("a write to a peer that does not read: %d bytes, %v after %v; want a timeout after 100ms", n, err, took)
	}
	go io.Copy(io.Discard, b)
	if n, err := w.Writev(a.Conn, a.rc, big); n != int64(len(big)) || err != nil {
		t.Fatalf("the next write, the peer reading: %d, %v (a deadline left behind?)", n, err)
	}
}

func TestWriteErrors(t *testing.T) {
	a, b := tcpPair(t)
	b.(*net.TCPConn).SetLinger(0) // its close resets the connection
	b.Close()
	time.Sleep(20 * time.Millisecond)
	var err error
	for range 10 { // the reset may come with the first write's answer
		if _, err = a.Write(make([]byte, 1024)); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "writev" {
		t.Fatalf("write to a reset connection: %v (%T); want a *net.OpError of writev", err, err)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write to a reset connection: %v; want ECONNRESET or EPIPE", err)
	}
	a.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := a.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &op) || op.Op != "write" {
		t.Fatalf("Write past the deadline: %v; want a write's i/o timeout", err)
	}
}

// TestCopyThroughInner: io.CopyN into a Conn goes through the inner connection's
// ReadFrom (splice between sockets), and Inner names the socket to copy from.
func TestCopyThroughInner(t *testing.T) {
	a, b := tcpPair(t)
	c, d := tcpPair(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	go func() { b.Write(payload) }()
	done := make(chan error, 1)
	go func() { // a's bytes into c
		_, err := io.CopyN(c, a.Inner(), int64(len(payload)))
		done <- err
	}()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(d, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("copied %v, equal %v", err, bytes.Equal(got, payload))
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a.Inner() != a.Conn {
		t.Fatal("Inner is not the wrapped connection")
	}
	if _, err := a.SyscallConn(); err != nil {
		t.Fatal(err)
	}
}

func TestNewLeavesOthers(t *testing.T) {
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if New(p) != p {
		t.Fatal("New wrapped a connection without a descriptor")
	}
	if RawConn(p) != nil || FD(p) != -1 {
		t.Fatal("a pipe has a descriptor")
	}
}

// TestFD: a socket's descriptor, the same under TLS and under a Conn, and none once it
// is closed.
func TestFD(t *testing.T) {
	a, _ := tcptest.Pair(t)
	fd := FD(a)
	if fd < 0 {
		t.Fatalf("FD of a TCP connection: %d", fd)
	}
	if got := FD(tls.Client(a, &tls.Config{})); got != fd {
		t.Fatalf("FD under TLS: %d, want %d", got, fd)
	}
	if got := FD(New(a)); got != fd {
		t.Fatalf("FD of its Conn: %d, want %d", got, fd)
	}
	a.Close()
	if got := FD(a); got != -1 {
		t.Fatalf("FD of a closed connection: %d", got)
	}
}

func TestFDCalls(t *testing.T) {
	a, b := tcpPair(t)
	rc, _ := a.SyscallConn()
	var n int
	var e syscall.Errno
	rc.Control(func(fd uintptr) { n, e = Read(fd, make([]byte, 8)) })
	if n != 0 || e != syscall.EAGAIN {
		t.Fatalf("Read of an empty socket: %d, %v; want 0, EAGAIN", n, e)
	}
	rc.Control(func(fd uintptr) { n, e = Write(fd, []byte("raw")) })
	if n != 3 || e != 0 {
		t.Fatalf("Write: %d, %v; want 3, 0", n, e)
	}
	got := make([]byte, 3)
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "raw" {
		t.Fatalf("peer read %q, %v", got, err)
	}
	// Peek: nothing yet; then a byte, seen and left to read; then the end of the stream.
	rc.Control(func(fd uintptr) { n, e = Peek(fd) })
	if n != 0 || e != syscall.EAGAIN {
		t.Fatalf("Peek of an empty socket: %d, %v; want 0, EAGAIN", n, e)
	}
	b.Write([]byte("p"))
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		if rc.Control(func(fd uintptr) { n, e = Peek(fd) }); n == 1 || time.Now().After(deadline) {
			break
		}
	}
	if n != 1 || e != 0 {
		t.Fatalf("Peek with a byte waiting: %d, %v; want 1, 0", n, e)
	}
	if k, err := a.Read(got); k != 1 || err != nil || got[0] != 'p' {
		t.Fatalf("read after the peek: %d, %v, %q; want the byte peeked", k, err, got[:k])
	}
	b.Close()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		if rc.Control(func(fd uintptr) { n, e = Peek(fd) }); e != syscall.EAGAIN || time.Now().After(deadline) {
			break
		}
	}
	if n != 0 || e != 0 {
		t.Fatalf("Peek after the peer's close: %d, %v; want 0, 0 (end of stream)", n, e)
	}
}

// TestPeerGone: up, or with bytes still to read, the peer is not gone; after its close or
// its reset, also once this end read the reset, it is; a connection without a socket
// never is.
func TestPeerGone(t *testing.T) {
	wait := func(c net.Conn, want bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); PeerGone(c) != want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("PeerGone: %v, want %v", !want, want)
			}
		}
	}
	a, b := tcptest.Pair(t)
	wait(a, false)
	b.Write([]byte("x"))
	wait(a, false)
	b.Close()
	wait(a, false) // the byte is still to be read: the end is behind it
	if _, err := a.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	wait(a, true)

	c, d := tcptest.Pair(t)
	d.(*net.TCPConn).SetLinger(0) // its close sends a reset
	d.Close()
	wait(c, true)
	if _, err := c.Read(make([]byte, 1)); err == nil { // EOF: the peek took the reset's error
		t.Fatal("read after the reset: no error")
	}
	wait(c, true)

	p, q := net.Pipe()
	defer p.Close()
	q.Close()
	if PeerGone(p) {
		t.Fatal("a pipe's peer gone: it has no socket to tell")
	}
}
