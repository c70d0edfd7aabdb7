//go:build race

package rawsock

// raceEnabled is whether the race detector is on; it allocates on its own.
const raceEnabled = true
