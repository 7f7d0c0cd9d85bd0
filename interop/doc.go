// Package interop holds the tests that run pyro-dispatch code against real Pyro4
// (Debian python3-pyro4 under /usr/bin/python3): Python clients and daemons started from Go.
// It has no code of its own; helpers live in internal/pyro4test.
package interop
