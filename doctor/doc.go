// Package doctor diagnoses why a Pyro4 client cannot reach a daemon or name server: it runs
// the checks of the usual checklist (DNS, TCP, TLS, protocol, HMAC, serializers, lookup,
// PING, metadata) and reports each with a hint. It only ever acts as a client.
package doctor
