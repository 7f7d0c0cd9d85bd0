package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"
)

// listen returns a listener on a free loopback port, closed when the test ends.
func listen(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// echoBackend accepts one connection on ln, echoes it until the client's EOF and closes it.
func echoBackend(t *testing.T, ln *net.TCPListener) {
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		if _, err := io.Copy(c, c); err != nil {
			t.Error(err)
		}
	}()
}

// TestRelay sends 8 MiB through the relay to an echo backend, half-closes, and expects
// the same bytes back, then EOF; afterwards the relay's goroutines are gone.
func TestRelay(t *testing.T) {
	base := runtime.NumGoroutine()
	backend, front := listen(t), listen(t)
	echoBackend(t, backend)
	served := make(chan error, 1)
	go func() { served <- serve(front, backend.Addr().(*net.TCPAddr)) }()

	c, err := net.DialTCP("tcp", nil, front.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
	go func() {
		if _, err := c.Write(want); err != nil {
			t.Error(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Error(err)
		}
	}()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes back, want the %d sent", len(got), len(want))
	}
	front.Close()
	if err := <-served; !errors.Is(err, net.ErrClosed) {
		t.Errorf("serve returned %v", err)
	}
	c.Close()
	waitGoroutines(t, base)
}

// TestRelayBackendCloses: a backend that closes at once ends the client's connection.
func TestRelayBackendCloses(t *testing.T) {
	base := runtime.NumGoroutine()
	backend, front := listen(t), listen(t)
	go func() {
		if c, err := backend.Accept(); err == nil {
			c.Close()
		}
	}()
	go serve(front, backend.Addr().(*net.TCPAddr))
	c := dialFront(t, front)
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read %d, %v; want EOF", n, err)
	}
	c.Close()
	front.Close()
	waitGoroutines(t, base)
}

// TestRelayNoBackend: when the backend cannot be dialled, the client's connection is closed.
func TestRelayNoBackend(t *testing.T) {
	backend, front := listen(t), listen(t)
	addr := backend.Addr().(*net.TCPAddr)
	backend.Close()
	go serve(front, addr)
	c := dialFront(t, front)
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v; want the connection closed", err)
	}
}

// waitGoroutines waits until no more than base goroutines run.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialFront connects to the relay's listener, with a 10 s read deadline; the connection
// is closed when the test ends.
func dialFront(t *testing.T, front *net.TCPListener) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, front.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}
