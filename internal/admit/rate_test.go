package admit

import (
	"fmt"
	"math"
	"testing"
	"time"
)

// TestRateBurst: a fresh client may open max(1, ceil(rate)) connections at
// once, then one more each 1/rate seconds, never earlier.
func TestRateBurst(t *testing.T) {
	tests := []struct {
		rate  float64
		burst int
	}{
		{0.5, 1}, {1, 1}, {2.5, 3}, {3, 3}, {10, 10}, {100, 100},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.rate), func(t *testing.T) {
			g, clk := newTestGate(Policy{RatePerIP: tt.rate})
			const c = "192.0.2.1"
			for range tt.burst {
				tk := admit(t, g, c)
				tk.Release()
			}
			refuse(t, g, c, ReasonRateLimited)

			step := time.Duration(math.Round(float64(time.Second) / tt.rate))
			for range 3 {
				clk.advance(step - 1)
				refuse(t, g, c, ReasonRateLimited)
				clk.advance(1)
				tk := admit(t, g, c)
				tk.Release()
				refuse(t, g, c, ReasonRateLimited)
			}

			// A long quiet spell refills the bucket to the burst, no more.
			clk.advance(time.Hour)
			for range tt.burst {
				tk := admit(t, g, c)
				tk.Release()
			}
			refuse(t, g, c, ReasonRateLimited)
		})
	}
}

// TestRatePerClient: buckets are per client IP; the IPv4-mapped form of an
// address shares its bucket; unix clients have none.
func TestRatePerClient(t *testing.T) {
	g, _ := newTestGate(Policy{RatePerIP: 1})
	a := admit(t, g, "192.0.2.1")
	a.Release()
	refuse(t, g, "192.0.2.1", ReasonRateLimited)
	refuse(t, g, "::ffff:192.0.2.1", ReasonRateLimited)
	b := admit(t, g, "192.0.2.2")
	b.Release()
	v6 := admit(t, g, "2001:db8::1")
	v6.Release()
	refuse(t, g, "2001:db8::1", ReasonRateLimited)
	for range 10 {
		u := admit(t, g, "")
		u.Release()
	}
}

// TestRefusalTakesNoToken: an attempt refused for another reason leaves the
// client's bucket as it was.
func TestRefusalTakesNoToken(t *testing.T) {
	g, _ := newTestGate(Policy{RatePerIP: 1, MaxConnections: 1})
	other := admit(t, g, "192.0.2.2")
	for range 5 {
		refuse(t, g, "192.0.2.1", ReasonMaxConnections)
	}
	other.Release()
	tk := admit(t, g, "192.0.2.1")
	tk.Release()
	refuse(t, g, "192.0.2.1", ReasonRateLimited)
}

// TestRateHeldConnections: the bucket limits new connections, whether or not
// earlier ones are still open.
func TestRateHeldConnections(t *testing.T) {
	g, clk := newTestGate(Policy{RatePerIP: 2})
	a := admit(t, g, "192.0.2.1")
	b := admit(t, g, "192.0.2.1")
	refuse(t, g, "192.0.2.1", ReasonRateLimited)
	clk.advance(500 * time.Millisecond)
	c := admit(t, g, "192.0.2.1")
	refuse(t, g, "192.0.2.1", ReasonRateLimited)
	for _, tk := range []*Ticket{&a, &b, &c} {
		tk.Release()
	}
}

func TestUpdateRate(t *testing.T) {
	g, clk := newTestGate(Policy{RatePerIP: 1})
	tk := admit(t, g, "192.0.2.1")
	tk.Release()
	refuse(t, g, "192.0.2.1", ReasonRateLimited)
	if all, idle := tracked(g); all != 1 || idle != 1 {
		t.Fatalf("tracked %d clients, %d idle; want the limited one, idle", all, idle)
	}

	// Without a rate there is no bucket to remember.
	g.Update(Policy{})
	if all, _ := tracked(g); all != 0 {
		t.Fatalf("%d clients tracked after the rate limit was removed", all)
	}
	for range 5 {
		tk := admit(t, g, "192.0.2.1")
		tk.Release()
	}

	// A new rate applies to new connections at once.
	g.Update(Policy{RatePerIP: 2})
	for range 2 {
		tk := admit(t, g, "192.0.2.1")
		tk.Release()
	}
	refuse(t, g, "192.0.2.1", ReasonRateLimited)
	clk.advance(500 * time.Millisecond)
	tk = admit(t, g, "192.0.2.1")
	tk.Release()
}

func TestBucketParameters(t *testing.T) {
	tests := []struct {
		rate           float64
		interval, span int64
	}{
		{0, 0, 0},
		{-1, 0, 0},
		{math.NaN(), 0, 0},
		{math.Inf(1), 0, 0},
		{2e9, 0, 0},
		{1e9, 1, 1e9},
		{1, 1e9, 1e9},
		{4, 250e6, 1e9},
		{2.5, 400e6, 1.2e9},
		{0.25, 4e9, 4e9},
		{1e-30, maxInterval, maxInterval},
	}
	for _, tt := range tests {
		iv, span := bucket(tt.rate)
		if iv != tt.interval || span != tt.span {
			t.Errorf("bucket(%v) = (%d, %d), want (%d, %d)", tt.rate, iv, span, tt.interval, tt.span)
		}
	}
}
