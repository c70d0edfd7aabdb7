package logsink

import (
	"bytes"
	"errors"
	"io"
	"sync/atomic"
	"time"
)

// Defaults of QueueOptions.
const (
	DefaultLines     = 4096
	DefaultBytes     = 1 << 20
	DefaultWarnEvery = 10 * time.Second
)

// batchSize bounds the bytes of one write: a pipe (standard error under a
// service manager, say) takes up to PIPE_BUF bytes in one piece, so a batch
// is never interleaved with the lines other writers send to it.
const batchSize = 4096

// QueueOptions say how much a Queue holds and whom it tells about drops.
// The zero value is usable.
type QueueOptions struct {
	Lines int // most lines waiting to be written; 0: DefaultLines
	Bytes int // most bytes waiting to be written; 0: DefaultBytes
	// Warn, when set, is told about dropped lines: at most once per
	// WarnEvery, on a goroutine of its own (so never through the queue),
	// with the lines dropped since it was last told and in all.
	Warn      func(dropped, total uint64)
	WarnEvery time.Duration // 0: DefaultWarnEvery
}

// Queue is an io.Writer that never blocks: each Write copies its bytes (a
// log line, as slog writes them) into a bounded queue, and one goroutine
// writes them out in batches. When the queue is full, because the
// destination is slow or blocked, the line is dropped and counted, and so
// is every line of a batch that fails to be written (a full disk). Make it
// with NewQueue; Close writes what is queued and stops.
type Queue struct {
	out      io.Writer
	lines    chan []byte
	bytes    atomic.Int64 // bytes in lines
	maxBytes int64
	dropped  atomic.Uint64
	closed   atomic.Bool
	done     chan struct{} // closed by Close: write what is queued, then stop
	stopped  chan struct{} // closed when the writer has returned
	warned   chan struct{} // closed when the drop watcher has returned
}

// NewQueue returns a Queue writing to out and starts its goroutines.
func NewQueue(out io.Writer, opts QueueOptions) *Queue {
	lines, maxBytes := opts.Lines, opts.Bytes
	if lines <= 0 {
		lines = DefaultLines
	}
	if maxBytes <= 0 {
		maxBytes = DefaultBytes
	}
	q := &Queue{
		out:      out,
		lines:    make(chan []byte, lines),
		maxBytes: int64(maxBytes),
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
		warned:   make(chan struct{}),
	}
	go q.run()
	every := opts.WarnEvery
	if every <= 0 {
		every = DefaultWarnEvery
	}
	go q.watch(opts.Warn, every)
	return q
}

// Write queues a copy of p, or drops it when the queue is full or closed.
// It never blocks and never fails.
func (q *Queue) Write(p []byte) (int, error) {
	n := int64(len(p))
	switch {
	case n == 0:
	case q.closed.Load():
		q.dropped.Add(1)
	case q.bytes.Add(n) > q.maxBytes:
		q.bytes.Add(-n)
		q.dropped.Add(1)
	default:
		select {
		case q.lines <- bytes.Clone(p): // slog reuses p
		default:
			q.bytes.Add(-n)
			q.dropped.Add(1)
		}
	}
	return len(p), nil
}

// Dropped returns how many lines were dropped so far.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }

// Close stops taking lines, waits up to wait for the queued ones to be
// written and stops the goroutines. It returns an error when the
// destination (or Warn) is still blocked at the deadline; the lines still
// queued then are never written. Lines written while Close runs may be
// lost uncounted.
func (q *Queue) Close(wait time.Duration) error {
	if !q.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(q.done)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for _, stopped := range []chan struct{}{q.stopped, q.warned} {
		select {
		case <-stopped:
		case <-timer.C:
			return errors.New("log destination blocked: queued lines left unwritten")
		}
	}
	return nil
}

// run is the writer: it takes the queued lines in batches of up to
// batchSize bytes and writes each batch with one Write, until Close and
// the queue is empty.
func (q *Queue) run() {
	defer close(q.stopped)
	batch := make([]byte, 0, batchSize)
	var next []byte // a line taken that did not fit in the last batch
	for {
		if next == nil {
			if next = q.wait(); next == nil {
				return
			}
		}
		batch, next = q.fill(append(batch[:0], q.take(next)...))
		q.write(batch)
	}
}

// wait returns the next queued line, waiting for one until Close; nil
// once closed and empty.
func (q *Queue) wait() []byte {
	select {
	case line := <-q.lines:
		return line
	case <-q.done:
		select {
		case line := <-q.lines:
			return line
		default:
			return nil
		}
	}
}

// fill appends the lines waiting to batch while they fit, and returns it
// with the first line that did not fit (nil: none was waiting).
func (q *Queue) fill(batch []byte) ([]byte, []byte) {
	for {
		select {
		case line := <-q.lines:
			if len(batch)+len(line) > batchSize {
				return batch, line
			}
			batch = append(batch, q.take(line)...)
		default:
			return batch, nil
		}
	}
}

// take accounts for line leaving the queue and returns it.
func (q *Queue) take(line []byte) []byte {
	q.bytes.Add(-int64(len(line)))
	return line
}

// write writes one batch; the lines of a batch that fails are counted as
// dropped.
func (q *Queue) write(batch []byte) {
	if len(batch) == 0 {
		return
	}
	if _, err := q.out.Write(batch); err != nil {
		q.dropped.Add(uint64(bytes.Count(batch, []byte{'\n'})))
	}
}

// watch tells warn about drops at most once per every, until Close, and
// once more at Close for drops not told yet.
func (q *Queue) watch(warn func(dropped, total uint64), every time.Duration) {
	defer close(q.warned)
	if warn == nil {
		return
	}
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	var told uint64
	tell := func() {
		if total := q.dropped.Load(); total > told {
			warn(total-told, total)
			told = total
		}
	}
	for {
		select {
		case <-ticker.C:
			tell()
		case <-q.done:
			tell()
			return
		}
	}
}
