package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/doctor"
	"github.com/pyro-dispatch/pyro-dispatch/tlsfiles"
)

func init() {
	commands["doctor"] = command{"diagnose a Pyro4 daemon or name server a client cannot reach (PYRO:, PYRONAME: or HOST:PORT)", runDoctor}
}

func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("doctor", "TARGET", stderr)
	var (
		asJSON          bool
		ns              string
		keyFile, keyEnv string
		useTLS          bool
		tlsOpts         doctor.TLSOptions
		opts            doctor.Options
	)
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON (for scripts)")
	fs.StringVar(&ns, "ns", "", "the name server of a PYRONAME: target, HOST[:PORT] (default: the URI's @HOST:PORT, else localhost:9090)")
	fs.StringVar(&keyFile, "hmac-key-file", "", "a file holding the HMAC key of the daemons (Pyro4's _pyroHmacKey; one trailing newline is dropped)")
	fs.StringVar(&keyEnv, "hmac-key-env", "", "an environment variable holding the HMAC key, instead of --hmac-key-file")
	fs.BoolVar(&useTLS, "tls", false, "use TLS from the start (daemons with SSL=True); without it TLS is tried when plain Pyro4 gets no answer")
	fs.StringVar(&tlsOpts.Files.CA, "tls-ca", "", "PEM file of the CAs the daemons' certificates must chain to (Pyro4's SSL_CACERTS; default: the system roots); implies --tls")
	fs.StringVar(&tlsOpts.Files.Cert, "tls-cert", "", "PEM client certificate, for daemons with SSL_REQUIRECLIENTCERT; implies --tls")
	fs.StringVar(&tlsOpts.Files.Key, "tls-key", "", "the PEM key of --tls-cert (default: in that file)")
	fs.StringVar(&tlsOpts.Files.ServerName, "tls-server-name", "", "the name the daemons' certificates must be valid for (default: the host of the URI)")
	fs.BoolVar(&tlsOpts.Insecure, "tls-insecure", false, "do not verify the daemons' certificates (the tls check then warns); implies --tls")
	fs.DurationVarP(&opts.Timeout, "timeout", "t", doctor.DefaultTimeout, "time for each network step: a lookup, a connect, a handshake, one call")
	fs.IntVar(&opts.Pings, "pings", doctor.DefaultPings, "how many PINGs to time")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: pyro-dispatch doctor [flags] TARGET

Checks, one line each with a hint where one fails, what stands between a Pyro4 client
and TARGET: PYRO:obj@HOST:PORT, PYRO:obj@./u:/path, PYRONAME:name[@HOST[:PORT]],
HOST:PORT or unix:/path. DNS (IPv4 and IPv6), TCP connect, TLS (and the certificate's
names and expiry), the protocol that answers a Pyro4 CONNECT (Pyro4, Pyro5, Pyro 3,
something else), HMAC, a handshake with each serializer, for PYRONAME: the name server's
URI for the name (loopback or private addresses flagged, a NAT hint), PING round trips
and the object's exposed members. Exit status 0 when TARGET answers calls and no check
failed, 1 otherwise, 2 for a usage error.

Flags:
%s`, fs.FlagUsages())
	}
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "pyro-dispatch doctor: give one TARGET: PYRO:obj@HOST:PORT, PYRONAME:name or HOST:PORT")
		return 2
	}
	if ns != "" {
		e, err := doctor.ParseNameServer(ns)
		if err != nil {
			fmt.Fprintf(stderr, "pyro-dispatch doctor: --ns: %v\n", err)
			return 2
		}
		opts.NameServer = e
	}
	if keyFile != "" && keyEnv != "" {
		fmt.Fprintln(stderr, "pyro-dispatch doctor: give --hmac-key-file or --hmac-key-env, not both")
		return 2
	}
	key, _, err := (&config.HMAC{ClientKeyFile: keyFile, ClientKeyEnv: keyEnv}).Keys()
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch doctor: hmac %v\n", err)
		return 2
	}
	opts.HMACKey = key
	if useTLS || tlsOpts.Insecure || tlsOpts.Files != (tlsfiles.ClientFiles{}) {
		opts.TLS = &tlsOpts
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := doctor.Run(ctx, fs.Arg(0), opts)
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch doctor: %v\n", err)
		return 2
	}
	if asJSON {
		err = report.WriteJSON(stdout)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pyro-dispatch doctor: %v\n", err)
		return 1
	}
	return report.ExitCode()
}
