//go:build race

package timers

// raceEnabled tells that the race detector is on: sync.Pool then drops items at random,
// so allocation counts mean nothing.
const raceEnabled = true
