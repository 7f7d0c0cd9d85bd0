// Package dispatch runs the proxy: listeners, one Session per client connection, and the
// relay loop that moves Pyro4 messages between a client and its backend connection.
// It asks a Router where a client goes and never parses payloads unless a rule needs it.
package dispatch
