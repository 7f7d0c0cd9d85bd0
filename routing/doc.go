// Package routing decides where a Pyro4 client connection or call goes: compiled rules
// that match on what the message says, backend groups with balancers and member health,
// and a decision cache. It never opens a socket: dispatch asks it, and reports back.
package routing
