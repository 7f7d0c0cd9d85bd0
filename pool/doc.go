// Package pool keeps ready upstream connections to one backend endpoint: it dials and
// handshakes them, leases each to one request/response at a time, health-checks idle ones
// with Pyro4 PINGs and closes (never reuses) a connection whose state is unknown.
package pool
