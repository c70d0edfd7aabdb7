// Package backoff paces retries after failures that time may cure (running
// out of descriptors, say): the first wait of an episode is 5 ms, each
// failure after it doubles the wait, up to 1 s, as net/http's Serve does
// between failed accepts.
package backoff

import "time"

// Bounds of the wait.
const (
	Min = 5 * time.Millisecond
	Max = time.Second
)

// Delay is the wait of one episode of failures; the zero value is no
// episode. It is not safe for concurrent use: its holder guards it.
type Delay struct{ d time.Duration }

// Next counts one more failure and returns the wait before the next try,
// and whether this failure began the episode (the time to say so once).
func (b *Delay) Next() (wait time.Duration, first bool) {
	first = b.d == 0
	if first {
		b.d = Min
	} else {
		b.d = min(2*b.d, Max)
	}
	return b.d, first
}

// Reset ends the episode and reports whether one was under way (the time
// to say that all is well again).
func (b *Delay) Reset() bool {
	was := b.d > 0
	b.d = 0
	return was
}

// Current returns the wait in force, zero when no episode is under way.
func (b *Delay) Current() time.Duration { return b.d }
