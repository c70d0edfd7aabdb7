// Package workers runs tasks on reusable goroutines.
//
// A goroutine starts with a small stack and grows it by copying as calls go
// deeper; dialing a backend or driving a socket goes deep enough that a fresh
// goroutine per connection spends a noticeable share of its CPU growing
// stacks. A Pool keeps goroutines that finished a task waiting for the next
// one for a while, stacks already grown, and ends them when they have been
// idle too long.
package workers

import (
	"sync"
	"time"
)

// Pool runs tasks on idle workers when it has some, and on new goroutines
// otherwise. The zero value is not usable; call New.
type Pool struct {
	maxIdle  int
	idleTime time.Duration
	stop     chan struct{}
	stopped  sync.Once

	mu   sync.Mutex // guards the following fields
	idle []*worker  // the most recently used last
	done bool
}

// worker is one reusable goroutine; a nil task tells it to end.
type worker struct {
	tasks    chan func()
	lastUsed time.Time
}

// New returns a pool that keeps at most maxIdle idle workers, each for at
// most idleTime. Close stops it.
func New(maxIdle int, idleTime time.Duration) *Pool {
	p := &Pool{maxIdle: maxIdle, idleTime: idleTime, stop: make(chan struct{})}
	go p.reap()
	return p
}

// Go runs task on an idle worker, or on a new goroutine if none is idle. It
// never waits for a worker to become free.
func (p *Pool) Go(task func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.tasks <- task
		return
	}
	p.mu.Unlock()
	go p.work(&worker{tasks: make(chan func(), 1)}, task)
}

// work runs tasks until the worker is not wanted any more.
func (p *Pool) work(w *worker, task func()) {
	for task != nil {
		task()
		if !p.release(w) {
			return
		}
		task = <-w.tasks
	}
}

// release makes w idle, unless the pool is full or closed.
func (p *Pool) release(w *worker) bool {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || len(p.idle) >= p.maxIdle {
		return false
	}
	w.lastUsed = now
	p.idle = append(p.idle, w)
	return true
}

// reap ends workers idle for longer than idleTime, checking a few times per
// idleTime, until Close.
func (p *Pool) reap() {
	ticker := time.NewTicker(max(p.idleTime/4, 10*time.Millisecond))
	defer ticker.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-ticker.C:
			for _, w := range p.expired(now) {
				w.tasks <- nil
			}
		}
	}
}

// expired removes and returns the workers idle since before now-idleTime.
// They are at the front: the list is ordered by last use.
func (p *Pool) expired(now time.Time) []*worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].lastUsed) > p.idleTime {
		n++
	}
	old := append([]*worker(nil), p.idle[:n]...)
	rest := copy(p.idle, p.idle[n:])
	clear(p.idle[rest:])
	p.idle = p.idle[:rest]
	return old
}

// Close ends the idle workers and the reaper. Tasks already running finish;
// their workers end afterwards. Go may still be called and starts plain
// goroutines.
func (p *Pool) Close() {
	p.stopped.Do(func() {
		close(p.stop)
		p.mu.Lock()
		idle := p.idle
		p.idle = nil
		p.done = true
		p.mu.Unlock()
		for _, w := range idle {
			w.tasks <- nil
		}
	})
}
