package logsink

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// waitLimit bounds every wait for something that should happen soon; the
// tests never assert that anything is fast.
const waitLimit = 20 * time.Second

// gate is a writer that blocks every Write until it is opened, as a disk
// that stalls does, and keeps what it was given.
type gate struct {
	open    chan struct{}
	mu      sync.Mutex // guards buf
	buf     bytes.Buffer
	entered atomic.Int64 // Writes begun
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	g.entered.Add(1)
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

// lines returns how many lines the gate was given.
func (g *gate) lines() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return bytes.Count(g.buf.Bytes(), []byte{'\n'})
}

// within runs fn and fails the test unless it returns within waitLimit:
// a Write that blocked would never return.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("%s blocked", what)
	}
}

// writeLines writes n numbered lines to w from the given number of
// goroutines and returns once all are written.
func writeLines(w interface{ Write([]byte) (int, error) }, n, writers int) {
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += writers {
				fmt.Fprintf(w, "line %06d of a log that someone reads\n", i)
			}
		}()
	}
	wg.Wait()
}

// TestQueueNeverBlocks holds that a stalled destination never blocks the
// caller: the lines beyond the queue's bound are dropped and counted, and
// every line is either written or counted once the destination recovers.
func TestQueueNeverBlocks(t *testing.T) {
	g := newGate()
	q := NewQueue(g, QueueOptions{Lines: 64})
	const n = 5000
	within(t, "Write to a queue whose destination is stalled", func() { writeLines(q, n, 8) })
	if q.Dropped() == 0 {
		t.Errorf("dropped 0 lines of %d with the destination stalled and room for 64", n)
	}
	close(g.open)
	if err := q.Close(waitLimit); err != nil {
		t.Fatal(err)
	}
	if written, dropped := g.lines(), int(q.Dropped()); written+dropped != n {
		t.Errorf("%d lines written + %d dropped = %d, want %d", written, dropped, written+dropped, n)
	}
}

// TestQueueBoundsBytes holds the byte bound: long lines are dropped once
// their bytes would pass it, whatever the line bound.
func TestQueueBoundsBytes(t *testing.T) {
	g := newGate()
	q := NewQueue(g, QueueOptions{Lines: 1000, Bytes: 10 << 10})
	line := append(bytes.Repeat([]byte("x"), 1023), '\n')
	within(t, "Write", func() {
		for range 100 {
			q.Write(line)
		}
	})
	close(g.open)
	if err := q.Close(waitLimit); err != nil {
		t.Fatal(err)
	}
	// 10 lines fit in the queue while the stalled writer holds a batch
	// (4 KiB) and the line after it.
	if written := g.lines(); written < 10 || written > 10+4+1 {
		t.Errorf("%d KiB lines written through a 10 KiB queue, want 10 to 15", written)
	}
	if written, dropped := g.lines(), int(q.Dropped()); written+dropped != 100 {
		t.Errorf("%d written + %d dropped, want 100", written, dropped)
	}
}

// TestQueueOnFIFONobodyReads is the blocked destination for real: a FIFO
// whose reader never reads. Writing goes on without blocking, the drops
// are counted and told to Warn, and Close gives up at its deadline.
func TestQueueOnFIFONobodyReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	reader, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	f, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	told := make(chan uint64, 100)
	q := NewQueue(f, QueueOptions{Lines: 100, WarnEvery: 10 * time.Millisecond, Warn: func(_, total uint64) { told <- total }})
	// 8 KiB lines: the pipe (64 KiB) takes 8, the writer holds one more
	// (partly written) and the line after it, the queue 100;
	// the rest must be dropped, however fast the writer is.
	line := append(bytes.Repeat([]byte("x"), 8<<10-1), '\n')
	within(t, "Write to a FIFO nobody reads", func() {
		for range 1000 {
			q.Write(line)
		}
	})
	if got := q.Dropped(); got < 1000-100-8-2 {
		t.Fatalf("dropped %d lines of 1000 with room for 100 and a FIFO of 64 KiB nobody reads", got)
	}
	select {
	case total := <-told:
		if total == 0 {
			t.Error("Warn told of 0 dropped lines")
		}
	case <-time.After(waitLimit):
		t.Error("Warn never told of the drops")
	}
	if err := q.Close(100 * time.Millisecond); err == nil {
		t.Error("Close returned nil with the FIFO still blocked")
	}
}

// TestQueueDiskFull counts the lines of a failed write as dropped, as on a
// full disk (/dev/full fails every write with ENOSPC).
func TestQueueDiskFull(t *testing.T) {
	f, err := Open("/dev/full", nil)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer f.Close()
	q := NewQueue(f, QueueOptions{})
	writeLines(q, 500, 2)
	if err := q.Close(waitLimit); err != nil {
		t.Fatal(err)
	}
	if got := q.Dropped(); got != 500 {
		t.Errorf("dropped %d lines of 500 written to a full disk", got)
	}
}

// TestQueueWarnsAtMostEvery holds that Warn is told on its own schedule,
// not per dropped line, and that what it is told adds up to every drop.
func TestQueueWarnsAtMostEvery(t *testing.T) {
	g := newGate()
	var calls, sum atomic.Uint64
	q := NewQueue(g, QueueOptions{Lines: 1, WarnEvery: time.Hour, Warn: func(dropped, _ uint64) {
		calls.Add(1)
		sum.Add(dropped)
	}})
	writeLines(q, 1000, 4)
	if calls.Load() != 0 {
		t.Errorf("Warn called %d times within its first hour", calls.Load())
	}
	close(g.open)
	if err := q.Close(waitLimit); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 || sum.Load() != q.Dropped() {
		t.Errorf("Warn called %d times for %d drops in all, want once at Close for %d", calls.Load(), sum.Load(), q.Dropped())
	}
}
