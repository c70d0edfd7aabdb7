package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	values := []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 40, 1<<63 - 1}
	for range 10000 {
		values = append(values, r.Uint64N(1<<(1+r.IntN(62))))
	}
	for _, v := range values {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, outside [0, %d)", v, i, numBuckets)
		}
		hi := bucketMax(i)
		if hi < v {
			t.Fatalf("bucketMax(bucketOf(%d)) = %d, below the value", v, hi)
		}
		if float64(hi-v) > float64(v)/32 {
			t.Fatalf("bucketMax(bucketOf(%d)) = %d, more than 1/32 above", v, hi)
		}
		if i > 0 && bucketMax(i-1) >= v {
			t.Fatalf("%d also fits bucket %d below its own %d", v, i-1, i)
		}
	}
}

func TestQuantile(t *testing.T) {
	var a, b histogram
	if got := a.quantile(0.99); got != 0 {
		t.Fatalf("empty histogram: p99 = %v, want 0", got)
	}
	// 990 fast samples and 10 slow ones, split over two histograms.
	for i := range 990 {
		a.record(time.Duration(10+i%5) * time.Microsecond)
	}
	for range 10 {
		b.record(5 * time.Millisecond)
	}
	a.merge(&b)
	if a.total != 1000 {
		t.Fatalf("total %d after merge, want 1000", a.total)
	}
	if p := a.quantile(0.99); p < 14*time.Microsecond || p > 15*time.Microsecond {
		t.Errorf("p99 = %v, want about 14µs", p)
	}
	if p := a.quantile(0.999); p < 5*time.Millisecond || p > 5*time.Millisecond*33/32 {
		t.Errorf("p99.9 = %v, want about 5ms", p)
	}
	if p := a.quantile(0.5); p < 12*time.Microsecond || p > 13*time.Microsecond {
		t.Errorf("p50 = %v, want about 12µs", p)
	}
}
