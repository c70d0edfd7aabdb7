//go:build !linux

package relay

// Methods for tests only, where there is no engine nor parker.

// Relays is always 0: there is no engine here.
func (e *Engine) Relays() int { return 0 }

// Parked is always 0: nothing parks here.
func (p *Parker) Parked() int { return 0 }
