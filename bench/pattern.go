package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// patternLen is the period of every bench stream. It is deliberately not a
// power of two, so a forwarder that drops or repeats a buffer-sized chunk
// shifts the stream out of phase and the checker sees it.
const patternLen = 1<<20 + 4099

// maxChunk is the largest slice a streamWriter hands out in one call.
const maxChunk = 256 << 10

// pattern is one deterministic pseudo-random byte stream: the first
// patternLen bytes of a ChaCha8 stream seeded by a 64-bit seed, repeated
// forever. buf holds one period plus maxChunk bytes of its start, so any
// window of up to maxChunk bytes is one contiguous slice.
type pattern struct {
	seed uint64
	buf  []byte
}

// newPattern generates the stream for seed. It costs about a millisecond,
// once per connection, and nothing per byte afterwards.
func newPattern(seed uint64) *pattern {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	buf := make([]byte, patternLen+maxChunk)
	_, _ = rand.NewChaCha8(key).Read(buf[:patternLen]) // ChaCha8.Read never fails
	copy(buf[patternLen:], buf[:maxChunk])
	return &pattern{seed: seed, buf: buf}
}

// streamWriter hands out the next bytes of a pattern to send.
type streamWriter struct {
	p   *pattern
	off int // position within the period
}

// next returns the next n (at most maxChunk) bytes of the stream without
// consuming them; call advance with the number actually written.
func (w *streamWriter) next(n int) []byte {
	return w.p.buf[w.off : w.off+min(n, maxChunk)]
}

// advance consumes n bytes of the stream.
func (w *streamWriter) advance(n int) {
	w.off = (w.off + n) % patternLen
}

// streamChecker verifies received bytes against a pattern.
type streamChecker struct {
	p     *pattern
	off   int   // position within the period
	total int64 // bytes verified so far
}

// check verifies that b is the next part of the stream. On a mismatch it
// returns an error naming the first bad byte's offset in the stream, and the
// checker must not be used again.
func (c *streamChecker) check(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), maxChunk)
		want := c.p.buf[c.off : c.off+n]
		if !bytes.Equal(b[:n], want) {
			i := firstDiff(b[:n], want)
			return fmt.Errorf("stream %016x: byte %d is %#02x, want %#02x",
				c.p.seed, c.total+int64(i), b[i], want[i])
		}
		c.total += int64(n)
		c.off = (c.off + n) % patternLen
		b = b[n:]
	}
	return nil
}

// firstDiff returns the index of the first byte where a and b differ; they
// must have equal lengths and differ somewhere.
func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return len(a)
}
