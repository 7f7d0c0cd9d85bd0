// Command testcerts writes a test CA, a server certificate for localhost (127.0.0.1,
// ::1) and client certificates as PEM files into a directory, for bench/tls.sh and for
// trying TLS by hand. Never use them for anything real.
//
//	go run ./bench/cmd/testcerts DIR
package main

import (
	"fmt"
	"os"

	"github.com/pyro-dispatch/pyro-dispatch/internal/testcert"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: testcerts DIR")
		os.Exit(2)
	}
	if err := os.MkdirAll(os.Args[1], 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "testcerts:", err)
		os.Exit(1)
	}
	f, err := testcert.Write(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "testcerts:", err)
		os.Exit(1)
	}
	fmt.Printf("ca %s\nserver %s %s\nclient %s %s\n", f.CACert, f.ServerCert, f.ServerKey, f.ClientCert, f.ClientKey)
}
