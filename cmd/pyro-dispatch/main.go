// Command pyro-dispatch is a transparent forwarding proxy for the Pyro4 wire protocol.
//
// Usage: pyro-dispatch COMMAND [flags]; run "pyro-dispatch --help" for the commands.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
)

// version is set at build time with -ldflags "-X main.version=..."; otherwise the module
// version from the build info is used.
var version = ""

// command is one subcommand of the binary.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"version": {"print the version and exit", runVersion},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	case "--version", "-v":
		return runVersion(nil, stdout, stderr)
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pyro-dispatch: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, "pyro-dispatch: a transparent forwarding proxy for the Pyro4 wire protocol\n\nUsage: pyro-dispatch COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-9s %s\n", name, commands[name].summary)
	}
	fmt.Fprint(w, "\nRun \"pyro-dispatch COMMAND --help\" for the flags of a command.\n")
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "", stderr)
	if code, done := parse(fs, args); done {
		return code
	}
	fmt.Fprintf(stdout, "pyro-dispatch %s\n", versionString())
	return 0
}
