package backend

import (
	"fmt"
	"testing"
	"time"
)

// TestSlowStartRamps checks, for every strategy that uses weights, that a
// backend returning to ready (or coming up) ramps its share of picks from
// 1/20 of its weight to full over slow_start: with two backends of equal
// weight its share over 1,000 picks is about 1/21 at once, 10.5/30.5 half
// way, and 1/2 at the end.
func TestSlowStartRamps(t *testing.T) {
	const slow = 100 * time.Second
	stages := []struct {
		at       time.Duration
		min, max float64
	}{
		{0, 0.02, 0.08},        // 1/21 ≈ 0.048
		{slow / 2, 0.28, 0.41}, // 10.5/30.5 ≈ 0.344
		{slow, 0.45, 0.55},
	}
	for _, balance := range []string{RoundRobin, LeastConn, Random, SourceHash} {
		for _, how := range []string{"ready", "up"} {
			t.Run(balance+"/"+how, func(t *testing.T) {
				p, clock := pickPool(t, balance, []int{3, 3})
				p.slowStart = slow
				b := p.backends[1]
				if how == "ready" {
					b.SetState(Drain)
					clock.Advance(time.Hour)
					b.SetState(Ready)
				} else {
					markDown(t, b)
					clock.Advance(time.Hour)
					b.ReportSuccess()
				}
				began := clock.Now()
				for _, st := range stages {
					clock.Advance(began.Add(st.at).Sub(clock.Now()))
					share := shareOf(t, p, 1, 1000)
					t.Logf("at %v: share %.3f", st.at, share)
					if share < st.min || share > st.max {
						t.Errorf("at %v: share %.3f; want %.2f to %.2f", st.at, share, st.min, st.max)
					}
				}
			})
		}
	}
}

// TestNoSlowStartWithoutTheKey checks that a backend back to ready takes
// its full share at once when slow_start is off.
func TestNoSlowStartWithoutTheKey(t *testing.T) {
	p, _ := pickPool(t, RoundRobin, []int{1, 1})
	p.backends[1].SetState(Drain)
	p.backends[1].SetState(Ready)
	if share := shareOf(t, p, 1, 1000); share != 0.5 {
		t.Fatalf("share %.3f; want 0.5", share)
	}
}

// shareOf returns the share of n picks (from distinct clients, each
// released at once) that went to backend i.
func shareOf(t *testing.T, p *Pool, i, n int) float64 {
	t.Helper()
	hits := 0
	for c := range n {
		if mustPick(t, p, clientIP(c)) == i {
			hits++
		}
	}
	return float64(hits) / float64(n)
}

// ExamplePool_effectiveWeight shows the ramp of a weight-1 backend.
func ExamplePool_effectiveWeight() {
	p := NewPool(Settings{Name: "x", SlowStart: 20 * time.Second, Backends: []Target{{Address: testAddr(1), Weight: 1}}}, nil, nil)
	b := p.backends[0]
	start := time.Unix(1000, 0)
	b.rt.changed.Store(start.UnixNano())
	for _, s := range []int{0, 5, 10, 19, 20} {
		fmt.Print(p.effectiveWeight(b, start.Add(time.Duration(s)*time.Second)), " ")
	}
	// Output: 1 5 10 19 20
}
