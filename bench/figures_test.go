package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// testDuration is each figure's duration in tests: long enough for many
// round trips, short enough to keep the package quick.
const testDuration = 200 * time.Millisecond

// figureByName returns the figure called name.
func figureByName(t *testing.T, name string) figure {
	t.Helper()
	for _, f := range figures() {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no figure %q", name)
	return figure{}
}

// TestFiguresThroughFaithfulPaths runs every figure that needs no process
// directly and through a faithful relay, and expects clean, plausible
// values.
func TestFiguresThroughFaithfulPaths(t *testing.T) {
	bk := testBackends(t)
	for _, fig := range figures() {
		if fig.needsProc {
			continue
		}
		for _, path := range []string{"direct", "relay"} {
			t.Run(fig.name+"/"+path, func(t *testing.T) {
				addr := bk.addr(fig.backend)
				if path == "relay" {
					addr = startRelay(t, addr, relayGood)
				}
				out, err := verdict(context.Background(), bk, fig.run, env{addr: addr, d: testDuration})
				if err != nil {
					t.Fatal(err)
				}
				if len(out.values) != fig.runRows() {
					t.Fatalf("%d values for %d rows", len(out.values), fig.runRows())
				}
				for i, rw := range fig.rows[:fig.runRows()] {
					v := out.values[i]
					if rw.cmp == plain && v != 0 || rw.cmp != plain && !(v > 0) {
						t.Errorf("%s = %v", rw.label, v)
					}
				}
				if len(out.notes) != 0 {
					t.Errorf("notes: %q", out.notes)
				}
			})
		}
	}
}

// TestFiguresCatchCorruption flips one byte per direction per connection
// and expects every figure that moves data to fail, naming the byte.
func TestFiguresCatchCorruption(t *testing.T) {
	bk := testBackends(t)
	tests := []struct {
		figure string
		want   string
	}{
		{"1 stream up", "byte 32"}, // the stream starts after an 8-byte seed
		{"8 streams up", "byte 32"},
		{"1 stream down", "byte 41"},
		{"new connections", errEchoMismatch.Error()},
		{"request/response", errEchoMismatch.Error()},
	}
	for _, tc := range tests {
		t.Run(tc.figure, func(t *testing.T) {
			fig := figureByName(t, tc.figure)
			addr := startRelay(t, bk.addr(fig.backend), relayFlip)
			_, err := verdict(context.Background(), bk, fig.run, env{addr: addr, d: testDuration})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// TestStreamsNeedHalfClose runs the stream figures through a relay that
// closes both sides on the first FIN: the byte counts that travel after
// FIN cannot arrive.
func TestStreamsNeedHalfClose(t *testing.T) {
	bk := testBackends(t)
	for _, name := range []string{"1 stream up", "1 stream down"} {
		t.Run(name, func(t *testing.T) {
			fig := figureByName(t, name)
			addr := startRelay(t, bk.addr(fig.backend), relayNoHalfClose)
			_, err := verdict(context.Background(), bk, fig.run, env{addr: addr, d: testDuration})
			if err == nil {
				t.Fatal("no error through a relay without half-close")
			}
			t.Log(err)
		})
	}
}

// TestNewConnsCountsErrors points the connection figure at a port nobody
// listens on: every cycle fails, is counted, and the figure fails.
func TestNewConnsCountsErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	out, err := newConns(context.Background(), env{addr: addr, d: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v, want connection refused", err)
	}
	if errors.Is(err, errEchoMismatch) {
		t.Fatalf("refused connections reported as corruption: %v", err)
	}
	if out.values[0] != 0 || out.values[1] < connClients {
		t.Fatalf("values %v, want 0 cycles/s and at least %d errors", out.values, connClients)
	}
	if len(out.notes) != 1 {
		t.Fatalf("notes %q, want one", out.notes)
	}
}

// TestIdleNeedsProcess checks that the idle figure refuses to run without
// a process to measure.
func TestIdleNeedsProcess(t *testing.T) {
	bk := testBackends(t)
	_, err := idle(dialPlain)(context.Background(), env{addr: bk.addr(echoBackend), idleN: 10})
	if err == nil {
		t.Fatal("idle ran without a process")
	}
}

// TestRowLabelsAreUnique: the table keys its cells by row label, so two
// rows with one label would share their values.
func TestRowLabelsAreUnique(t *testing.T) {
	seen := make(map[string]bool)
	for _, fig := range allFigures(defaultPorts) {
		for _, rw := range fig.rows {
			if seen[rw.label] {
				t.Errorf("two rows labelled %q", rw.label)
			}
			seen[rw.label] = true
		}
	}
}
