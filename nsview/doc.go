// Package nsview rewrites the Pyro4 URIs in name server replies (serpent, json, marshal)
// so that those pointing at daemons behind a gateway point at the gateway instead,
// copying every other byte of the payload as it is.
package nsview
