package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// newFlagSet returns a flag set for a subcommand that reports errors instead of exiting.
func newFlagSet(name, argsUsage string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pyro-dispatch %s [flags] %s\n\nFlags:\n%s", name, argsUsage, fs.FlagUsages())
	}
	return fs
}

// parse parses args into fs. done is true when the command should return code at once:
// after --help (0) or a flag error (2).
func parse(fs *pflag.FlagSet, args []string) (code int, done bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return 0, true
	case err != nil:
		fmt.Fprintf(fs.Output(), "pyro-dispatch %s: %v\n", fs.Name(), err)
		return 2, true
	}
	return 0, false
}
