package backend

import (
	"container/list"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// The queue: when every usable backend of a pool is full (each at its
// max_connections), a new client may wait for a slot, in arrival order,
// instead of being refused. A waiting client is a record in the pool's
// list with one timer, and no goroutine of its own: whoever frees a slot
// (a Release, a backend coming up or back to ready) picks a backend for
// the head of the queue, reserves it, and tells the client, whose driver
// then connects to it as to a first pick (Attempts.Next or Dial).

// DefaultMaxQueue bounds a queue whose Settings.MaxQueue is zero.
const DefaultMaxQueue = 1024

var (
	// ErrFull is wrapped by the error of a first pick when every usable
	// backend is full, or clients are waiting in the queue already.
	ErrFull = errors.New("every usable backend is full (max_connections)")
	// ErrQueueFull is wrapped by Wait's error when the queue holds
	// max_queue clients already.
	ErrQueueFull = errors.New("queue full")
	// ErrQueueTimeout is wrapped by the error a waiting client is given
	// when queue_timeout passed without a free slot.
	ErrQueueTimeout = errors.New("no backend slot freed within queue_timeout")
)

// queue is a pool's waiting clients; its fields but length are guarded
// by Pool.mu.
type queue struct {
	timeout time.Duration // zero: no queue
	max     int
	waiters list.List    // of *waiter, in arrival order
	length  atomic.Int64 // waiters.Len(), read without the lock
}

// waiter is one client in the queue.
type waiter struct {
	a     *Attempts
	ready func(error)
	timer *time.Timer
	elem  *list.Element // nil once out of the queue
}

// QueueLength returns how many clients wait in the pool's queue.
func (p *Pool) QueueLength() int { return int(p.queue.length.Load()) }

// Wait is for attempts whose first pick failed with ErrFull. When the pool
// has a queue (Settings.QueueTimeout) with room, it puts them at its tail
// and returns true: ready is called once, later and on another goroutine
// (the one that freed a slot, or a timer's), with nil once a backend is
// reserved for them (Next or Dial then begins with it), or with an error
// wrapping ErrQueueTimeout. ready must not block. Wait returns false with
// the error that ends the connection when the queue is full (ErrQueueFull)
// or the pool has none (ErrFull, as before); and false with no error when
// a slot freed meanwhile: it is reserved, and the caller goes on at once.
// A client that hangs up while it waits is noticed only once it leaves
// the queue, when its connect or relay fails.
func (a *Attempts) Wait(ready func(error)) (bool, error) {
	p := a.p
	q := &p.queue
	p.mu.Lock()
	defer p.mu.Unlock()
	// Counted before the pick looks at the backends: a Release whose
	// slot the pick does not see then finds the queue not empty, and
	// serves it once p.mu is free (see serveQueue).
	q.length.Add(1)
	if q.waiters.Len() == 0 {
		b, err := p.pickLocked(a.client, nil)
		if err == nil {
			q.length.Add(-1)
			a.cur = b
			return false, nil
		}
		if !errors.Is(err, ErrFull) || q.timeout <= 0 {
			q.length.Add(-1)
			return false, err
		}
	}
	if q.waiters.Len() >= q.max {
		q.length.Add(-1)
		return false, fmt.Errorf("rule %q: %w (%d waiting)", p.rule, ErrQueueFull, q.waiters.Len())
	}
	w := &waiter{a: a, ready: ready}
	w.elem = q.waiters.PushBack(w)
	w.timer = time.AfterFunc(q.timeout, func() { p.expire(w) })
	a.queued = w
	return true, nil
}

// Leave takes the attempts out of the queue if they still wait there, and
// reports whether they did: ready will then never be called. Otherwise
// ready has been called, or is being called.
func (a *Attempts) Leave() bool {
	w := a.queued
	if w == nil {
		return false
	}
	a.p.mu.Lock()
	defer a.p.mu.Unlock()
	if w.elem == nil {
		return false
	}
	a.p.unqueueLocked(w)
	w.timer.Stop()
	return true
}

// expire ends w's wait when queue_timeout has passed, unless a slot came
// first.
func (p *Pool) expire(w *waiter) {
	p.mu.Lock()
	in := w.elem != nil
	if in {
		p.unqueueLocked(w)
	}
	p.mu.Unlock()
	if in {
		w.ready(fmt.Errorf("rule %q: %w (%v)", p.rule, ErrQueueTimeout, p.queue.timeout))
	}
}

// serveQueue hands free slots to the clients at the head of the queue,
// in order, for as long as a backend can be picked for the next one. Its
// look at the length without the lock misses no waiter: Wait counts a
// client in before its pick reads the backends' counts.
func (p *Pool) serveQueue() {
	if p.queue.length.Load() == 0 {
		return
	}
	for {
		w := p.dequeue()
		if w == nil {
			return
		}
		w.timer.Stop()
		w.ready(nil)
	}
}

// dequeue reserves a backend for the client at the head of the queue and
// takes it out, or returns nil when the queue is empty or still no
// backend has room.
func (p *Pool) dequeue() *waiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.queue.waiters.Front()
	if e == nil {
		return nil
	}
	w := e.Value.(*waiter)
	b, err := p.pickLocked(w.a.client, nil)
	if err != nil {
		return nil
	}
	p.unqueueLocked(w)
	w.a.cur = b
	return w
}

// unqueueLocked takes w out of the queue. The caller holds p.mu.
func (p *Pool) unqueueLocked(w *waiter) {
	p.queue.waiters.Remove(w.elem)
	w.elem = nil
	p.queue.length.Add(-1)
}

// full reports whether the backend has as many live connections as its
// max_connections allows.
func (b *Backend) full() bool {
	return b.cfg.MaxConns > 0 && b.ctr.active.Load() >= int64(b.cfg.MaxConns)
}

// freed is told that one of b's slots may have freed (a Release, a
// return to ready or up): the queues of b's pool and, after a reload, of
// the newest pool sharing its counters are served.
func (b *Backend) freed() {
	b.pool.serveQueue()
	if p := b.ctr.pool.Load(); p != nil && p != b.pool {
		p.serveQueue()
	}
}
