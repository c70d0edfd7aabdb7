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
type Delay struct {
	d    time.Duration
	last time.Time // when Next was last called
	// open is set from an episode's first failure until Reset, or a
	// Recover a full Max after the last failure, ends it.
	open bool
}

// Next counts one more failure and returns the wait before the next try,
// and whether this failure began the episode (the time to say so once).
func (b *Delay) Next() (wait time.Duration, first bool) {
	b.last = time.Now()
	first = !b.open
	b.open = true
	if b.d == 0 {
		b.d = Min
	} else {
		b.d = min(2*b.d, Max)
	}
	return b.d, first
}

// Reset ends the episode and reports whether one was under way (the time
// to say that all is well again).
func (b *Delay) Reset() bool {
	was := b.open
	b.d, b.open = 0, false
	return was
}

// Recover counts a success at now: the next failure waits Min again, as
// after Reset, but the episode ends, and Recover reports so (the time to
// say that all is well again), only once the last failure is at least Max
// old. A shortage that lets a try through between failures (a descriptor
// freed for a moment) so stays one episode, said once, rather than a
// warning and an all-clear per success, and its tries are not slowed.
func (b *Delay) Recover(now time.Time) bool {
	b.d = 0
	if !b.open || now.Sub(b.last) < Max {
		return false
	}
	b.open = false
	return true
}

// Current returns the wait in force, zero when no episode is under way or
// a success came since the last failure.
func (b *Delay) Current() time.Duration { return b.d }
