// Package logrec records what code under test logs through log/slog, so
// that a test waits on a logged event instead of on time.
package logrec

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Record is one logged record: its message and its attributes as text.
type Record struct {
	Msg   string
	Attrs map[string]string
}

// Int returns the attribute key as an integer, failing the test when it is
// not one.
func (r Record) Int(t testing.TB, key string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(r.Attrs[key], 10, 64)
	if err != nil {
		t.Fatalf("log record %q %v: %s is not an integer", r.Msg, r.Attrs, key)
	}
	return v
}

// Recorder is a slog.Handler that keeps every record, at every level, and
// wakes waiters when one arrives.
type Recorder struct {
	mu      sync.Mutex // guards the following fields
	records []Record
	notify  chan struct{} // closed and replaced on every record
}

// New returns an empty recorder.
func New() *Recorder { return &Recorder{notify: make(chan struct{})} }

// Logger returns a logger that writes to h.
func (h *Recorder) Logger() *slog.Logger { return slog.New(h) }

// Enabled reports true: every level is recorded.
func (h *Recorder) Enabled(context.Context, slog.Level) bool { return true }

// WithAttrs is not supported: the code under test logs through the
// logger it is given.
func (h *Recorder) WithAttrs([]slog.Attr) slog.Handler { panic("logrec: WithAttrs is not supported") }

// WithGroup is not supported either.
func (h *Recorder) WithGroup(string) slog.Handler { panic("logrec: WithGroup is not supported") }

// Handle keeps r and wakes the waiters.
func (h *Recorder) Handle(_ context.Context, r slog.Record) error {
	rec := Record{Msg: r.Message, Attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.Attrs[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	h.records = append(h.records, rec)
	close(h.notify)
	h.notify = make(chan struct{})
	h.mu.Unlock()
	return nil
}

// Find returns the records that match, oldest first.
func (h *Recorder) Find(match func(Record) bool) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Record
	for _, r := range h.records {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// WaitN waits up to limit until n records match and returns them; what
// names them in the failure.
func (h *Recorder) WaitN(t testing.TB, n int, limit time.Duration, what string, match func(Record) bool) []Record {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ch := h.notify
		h.mu.Unlock()
		if got := h.Find(match); len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline.C:
			got := h.Find(match)
			t.Fatalf("waited %v for %d log records of %s; have %d: %v", limit, n, what, len(got), got)
		}
	}
}
