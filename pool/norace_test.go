//go:build !race

package pool

// raceEnabled tells that the race detector is on (see race_test.go).
const raceEnabled = false
