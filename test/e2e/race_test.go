//go:build race

package e2e

// raceEnabled reports whether this test binary was built with -race, so that
// TestMain builds sluice with the race detector too.
const raceEnabled = true
