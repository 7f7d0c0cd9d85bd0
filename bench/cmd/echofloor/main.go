// Command echofloor is bench/floor/echofloor.c in Go, for bench/compare.sh: a Pyro4 echo
// that reads only the 24-byte header (frame.ParseHeader) and answers each request with
// its own bytes, one goroutine per connection with the net package, as a Go server is
// usually written.
// Beside the C echo floor it shows what Go costs around the same two system calls a
// proxy's client side makes per call.
//
//	echofloor --listen HOST:PORT
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"time"

	"github.com/pyro-dispatch/pyro-dispatch/frame"
)

const (
	bufSize = 1 << 20 // a message over it closes its connection
	// acceptBackoff is how long serve waits after a failed accept before it accepts again.
	acceptBackoff = 10 * time.Millisecond
)

func main() {
	listen := flag.String("listen", "", "address to listen on, HOST:PORT")
	flag.Parse()
	if *listen == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: echofloor --listen HOST:PORT")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "echofloor: %v\n", err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			log.Printf("accept: %v", err)
			time.Sleep(acceptBackoff)
			continue
		}
		go serve(c)
	}
}

// serve answers the requests of c until it ends or sends something that is not Pyro4.
func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, bufSize)
	n := 0
	for {
		r, err := c.Read(buf[n:])
		if err != nil {
			return
		}
		n += r
		off, ok := answer(buf[:n])
		if !ok {
			return
		}
		if off == 0 {
			continue
		}
		if _, err := c.Write(buf[:off]); err != nil {
			return
		}
		n = copy(buf, buf[off:n])
	}
}

// answer turns every whole message at the start of b into its reply in place (message
// type + 1: CONNECT to CONNECTOK, INVOKE to RESULT) and returns their length; ok is
// false for a message that is not Pyro4 or does not fit the buffer.
func answer(b []byte) (off int, ok bool) {
	for len(b)-off >= frame.HeaderSize {
		h, err := frame.ParseHeader(b[off:])
		size := frame.HeaderSize + h.BodyLen()
		if err != nil || size > bufSize {
			return off, false
		}
		if len(b)-off < size {
			break
		}
		h.Type++
		h.Put(b[off:])
		off += size
	}
	return off, true
}
