package main

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 2^subBits buckets, so a recorded value is off by at most 1/32 (about 3%).
const subBits = 5

// numBuckets covers every non-negative int64 nanosecond count.
const numBuckets = (64 - subBits) << subBits

// histogram counts durations in log-linear buckets, HDR-style: constant
// memory however many samples it takes, and quantiles with bounded relative
// error. The zero value is empty and ready to use; it is not safe for
// concurrent use, so each load generator keeps its own and merges at the end.
type histogram struct {
	counts [numBuckets]uint64
	total  uint64
}

// bucketOf returns the bucket index for v.
func bucketOf(v uint64) int {
	if v < 2<<subBits {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)<<subBits + int(v>>shift) - 1<<subBits
}

// bucketMax returns the largest value that falls into bucket i.
func bucketMax(i int) uint64 {
	if i < 2<<subBits {
		return uint64(i)
	}
	shift := i>>subBits - 1
	mantissa := uint64(i&(1<<subBits-1) + 1<<subBits)
	return (mantissa+1)<<shift - 1
}

// record adds one sample; negative durations count as zero.
func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(uint64(max(d, 0)))]++
	h.total++
}

// merge adds every sample of o to h.
func (h *histogram) merge(o *histogram) {
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.total += o.total
}

// quantile returns an upper bound (within the histogram's precision) of the
// q-quantile, 0 < q <= 1, or 0 when the histogram is empty.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			return time.Duration(bucketMax(i))
		}
	}
	return time.Duration(bucketMax(numBuckets - 1))
}
