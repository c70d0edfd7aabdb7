package main

import (
	"bytes"
	"strings"
	"testing"
)

// streamBytes returns the first n bytes of seed's stream, produced by a
// streamWriter in uneven pieces.
func streamBytes(seed uint64, n int) []byte {
	w := streamWriter{p: newPattern(seed)}
	var out bytes.Buffer
	for step := 1; out.Len() < n; step = (step*7 + 3) % maxChunk {
		b := w.next(min(step+1, n-out.Len()))
		out.Write(b)
		w.advance(len(b))
	}
	return out.Bytes()
}

// checkInPieces feeds b to a fresh checker in pieces of the given size.
func checkInPieces(seed uint64, b []byte, piece int) error {
	c := streamChecker{p: newPattern(seed)}
	for len(b) > 0 {
		n := min(piece, len(b))
		if err := c.check(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func TestStreamRoundTrip(t *testing.T) {
	const seed = 42
	data := streamBytes(seed, 3*patternLen+12345) // wraps the period several times
	for _, piece := range []int{1 << 10, 65536 + 1, maxChunk, 3 * maxChunk} {
		if err := checkInPieces(seed, data, piece); err != nil {
			t.Errorf("pieces of %d: %v", piece, err)
		}
	}
}

func TestStreamCheckerCatches(t *testing.T) {
	const seed = 7
	good := streamBytes(seed, 2*patternLen)
	flipped := bytes.Clone(good)
	flipped[patternLen+5] ^= 0x10
	dropped := append(bytes.Clone(good[:4096]), good[4096+65536:]...)
	repeated := append(bytes.Clone(good[:8192]), good[4096:]...)
	tests := map[string]struct {
		seed uint64
		data []byte
		want string
	}{
		"flipped byte":   {seed, flipped, "byte 1052680"}, // patternLen+5
		"dropped chunk":  {seed, dropped, "byte 4096"},
		"repeated chunk": {seed, repeated, "byte 8192"},
		"other stream":   {seed + 1, good, "byte 0"},
	}
	for name, tc := range tests {
		err := checkInPieces(tc.seed, tc.data, 32<<10)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %q", name, err, tc.want)
		}
	}
}

func TestPatternDependsOnSeed(t *testing.T) {
	a, b := newPattern(1), newPattern(2)
	if bytes.Equal(a.buf[:64], b.buf[:64]) {
		t.Fatal("seeds 1 and 2 give the same stream")
	}
	if !bytes.Equal(newPattern(1).buf, a.buf) {
		t.Fatal("the same seed gives different streams")
	}
	if !bytes.Equal(a.buf[patternLen:], a.buf[:maxChunk]) {
		t.Fatal("the tail of the buffer does not repeat the start of the period")
	}
	// A stream of random bytes should use every byte value.
	var seen [256]bool
	for _, c := range a.buf[:patternLen] {
		seen[c] = true
	}
	for v, ok := range seen {
		if !ok {
			t.Fatalf("byte %#02x never occurs in the pattern", v)
		}
	}
}
