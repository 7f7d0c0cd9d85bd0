// Package bench measures Pyro4 servers and the dispatcher: a Go Pyro4 echo daemon
// (EchoServer), a load generator with HDR latency histograms (Run), and its report as a
// table, JSON and an SVG chart. It speaks the wire through package frame and never starts a dispatcher.
package bench
