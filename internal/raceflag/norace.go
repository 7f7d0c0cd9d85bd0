//go:build !race

package raceflag

// Enabled tells that the race detector is on (see race.go).
const Enabled = false
