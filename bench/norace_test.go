//go:build !race

package main

// raceEnabled is whether the race detector is on; it allocates on its own.
const raceEnabled = false
