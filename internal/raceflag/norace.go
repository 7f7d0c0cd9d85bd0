//go:build !race

// Package raceflag tells tests whether the race detector is on, for checks it makes
// meaningless: under it sync.Pool drops items at random, so a test counting allocations
// skips. It is a constant set by the build.
package raceflag

// Enabled tells that the race detector is on (see race.go).
const Enabled = false
