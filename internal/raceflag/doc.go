// Package raceflag tells tests whether the race detector is on, for checks it makes
// meaningless: under it sync.Pool drops items at random, so a test counting allocations
// skips. Enabled is a constant set by the build (race.go, norace.go).
package raceflag
