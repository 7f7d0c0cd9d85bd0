// Command splicerelay is a plain TCP relay with no Pyro4 parsing at all: the physical
// limit of a user-space relay between the same two sockets as a proxy's, for the large
// workloads of bench/compare.sh. io.Copy between two TCP sockets is splice(2) on Linux.
//
//	splicerelay --listen ADDR --backend ADDR
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"
)

// acceptBackoff is how long serve waits after a failed accept (out of file descriptors,
// say) before it accepts again.
const acceptBackoff = 10 * time.Millisecond

func main() {
	listen := flag.String("listen", "", "address to listen on, HOST:PORT")
	backend := flag.String("backend", "", "backend address, HOST:PORT")
	flag.Parse()
	if *listen == "" || *backend == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: splicerelay --listen ADDR --backend ADDR")
		os.Exit(2)
	}
	if err := run(*listen, *backend); err != nil {
		fmt.Fprintf(os.Stderr, "splicerelay: %v\n", err)
		os.Exit(1)
	}
}

// run listens on listen and relays every connection to backend until the listener fails.
func run(listen, backend string) error {
	la, err := net.ResolveTCPAddr("tcp", listen)
	if err != nil {
		return err
	}
	ba, err := net.ResolveTCPAddr("tcp", backend)
	if err != nil {
		return err
	}
	ln, err := net.ListenTCP("tcp", la)
	if err != nil {
		return err
	}
	defer ln.Close()
	return serve(ln, ba)
}

// serve accepts connections on ln until it is closed and relays each to backend in
// a goroutine of its own; it returns the error that closed ln.
func serve(ln *net.TCPListener, backend *net.TCPAddr) error {
	for {
		c, err := ln.AcceptTCP()
		if errors.Is(err, net.ErrClosed) {
			return err
		}
		if err != nil {
			log.Printf("accept: %v", err)
			time.Sleep(acceptBackoff)
			continue
		}
		go relay(c, backend)
	}
}

// relay dials backend for the client c and copies both directions until both have
// ended; then it closes both sockets.
func relay(c *net.TCPConn, backend *net.TCPAddr) {
	defer c.Close()
	b, err := net.DialTCP("tcp", nil, backend)
	if err != nil {
		log.Printf("dial %s: %v", backend, err)
		return
	}
	defer b.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(b, c)
	}()
	pipe(c, b)
	<-done
}

// pipe copies src to dst. When src ends it half-closes dst, so that the other direction
// can still finish; when either fails it closes both, which ends the other direction too.
func pipe(dst, src *net.TCPConn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		err = dst.CloseWrite()
	}
	if err != nil {
		if !errors.Is(err, net.ErrClosed) {
			log.Printf("relay %s → %s: %v", src.RemoteAddr(), dst.RemoteAddr(), err)
		}
		src.Close()
		dst.Close()
	}
}
