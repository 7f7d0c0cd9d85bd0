//go:build !race

package timers

// raceEnabled tells that the race detector is on (see race_test.go).
const raceEnabled = false
