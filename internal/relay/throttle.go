package relay

import "time"

// throttle is a token bucket that paces one direction to a byte rate. Only
// its own direction's goroutine uses it, so it needs no lock.
type throttle struct {
	rate   float64 // bytes per second
	burst  float64 // most tokens held, and the most bytes moved at once
	tokens float64
	last   time.Time
}

// newThrottle returns a bucket for rate bytes per second, or nil for no
// limit. The burst is a tenth of a second's worth, at least 4 KiB, so the
// pace is smooth without tiny writes.
func newThrottle(rate int64) *throttle {
	if rate <= 0 {
		return nil
	}
	burst := max(float64(rate)/10, 4096)
	return &throttle{rate: float64(rate), burst: burst, tokens: burst, last: time.Now()}
}

// minChunk is the fewest bytes a throttled direction moves at once, so that
// pacing never degrades into tiny reads and writes.
const minChunk = 4096

// allow waits until at least minChunk bytes may be moved and returns how
// many, at most limit. An idle direction never waits here: its bucket is full.
func (t *throttle) allow(limit int) int {
	for {
		now := time.Now()
		t.tokens = min(t.burst, t.tokens+now.Sub(t.last).Seconds()*t.rate)
		t.last = now
		if t.tokens >= minChunk {
			return min(limit, int(t.tokens))
		}
		time.Sleep(time.Duration((minChunk - t.tokens) / t.rate * float64(time.Second)))
	}
}

// spend takes n bytes' worth of tokens.
func (t *throttle) spend(n int) { t.tokens -= float64(n) }
