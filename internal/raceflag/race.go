//go:build race

package raceflag

// Enabled tells that the race detector is on: sync.Pool then drops items at random, so
// allocation counts mean nothing.
const Enabled = true
