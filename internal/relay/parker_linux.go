package relay

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/epoll"
)

// Parker lets idle relay directions wait for data without a goroutine.
//
// A direction that has seen no data for a while hands its source socket to
// the parker's epoll set (one-shot, level-triggered) and its goroutine ends.
// When the socket becomes readable, closes or fails, the parker starts a new
// goroutine that carries on. An idle relay so costs its two sockets and a
// few hundred bytes of heap, not two parked goroutine stacks.
//
// Whoever removes a direction from the parked set owns it from then on: the
// event loop (which resumes it) or Relay.Stop (which finishes it).
//
// Await lets other sockets wait the same way for their first bytes.
type Parker struct {
	ep  *epoll.Set
	ids atomic.Uint64

	mu     sync.Mutex // guards the following fields
	parked map[uint64]waiter
	closed bool

	loopDone chan struct{}
}

// NewParker starts a parker's event loop. Close stops it.
//
// The epoll set is itself watched by the Go runtime's poller (an epoll
// descriptor is readable when it has events), so the event loop is an
// ordinary goroutine that holds no OS thread while it waits.
func NewParker() (*Parker, error) {
	ep, err := epoll.New("sluice-parker", 128)
	if err != nil {
		return nil, err
	}
	p := &Parker{ep: ep, parked: make(map[uint64]waiter), loopDone: make(chan struct{})}
	go p.loop()
	return p, nil
}

// waiter is what waits in a parker's set: a relay direction, or a socket
// given to Await.
type waiter interface {
	// wake is called, on the event loop, once the waiter has been taken
	// from the set because its socket is readable. It must not block.
	wake()
}

// wake resumes a parked direction on a new goroutine.
func (d *direction) wake() { d.r.opts.Go(d.resume) }

// loop waits for parked sockets to become readable and wakes their
// waiters. It ends when the parker is closed.
func (p *Parker) loop() {
	defer close(p.loopDone)
	for {
		events, err := p.ep.Wait()
		if err != nil {
			return
		}
		for i := range events {
			if w := p.take(epoll.Key(&events[i])); w != nil {
				w.wake()
			}
		}
	}
}

// park hands d's source socket to the event loop. It reports false when the
// socket could not be watched; d's goroutine then keeps ownership and goes on
// waiting in the Go runtime's poller.
func (p *Parker) park(d *direction) bool {
	id := d.parkID
	op := unix.EPOLL_CTL_MOD
	if !d.registered {
		op = unix.EPOLL_CTL_ADD
	}
	// Every write to d happens before it is published in the parked set:
	// once the socket is armed, another goroutine may resume d at once.
	d.registered = true
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		d.registered = op == unix.EPOLL_CTL_MOD
		return false
	}
	p.parked[id] = d
	p.mu.Unlock()
	var ctlErr error
	err := d.srcRaw.Control(func(fd uintptr) {
		ev := epoll.Keyed(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT, id)
		ctlErr = unix.EpollCtl(p.ep.FD, op, int(fd), &ev)
	})
	if err == nil && ctlErr == nil {
		return true
	}
	// Not watched, so no event can come for it. If nobody took it
	// meanwhile (Stop), it is ours again.
	if p.take(id) == nil {
		return true // Stop owns it now
	}
	d.registered = op == unix.EPOLL_CTL_MOD && ctlErr == nil
	return false
}

// take removes the waiter with id from the parked set and returns it, or
// nil when it is not parked.
func (p *Parker) take(id uint64) waiter {
	p.mu.Lock()
	d := p.parked[id]
	delete(p.parked, id)
	p.mu.Unlock()
	return d
}

// Close stops the event loop. Directions still parked stay parked until
// their relays are stopped; call Close only after every relay has finished.
func (p *Parker) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	p.ep.Close()
	<-p.loopDone
}

// Await calls ready once the socket behind rc has bytes to read, has been
// closed by its peer or has failed, or once timeout has passed, whichever
// comes first; meanwhile no goroutine waits for it. ready runs on the
// parker's event loop or on a timer's goroutine and must not block: it
// starts whatever comes next, which finds out by reading (with a deadline)
// which of these happened. By then the socket has left the parker's set.
//
// Await reports false, and never calls ready, when the socket cannot be
// watched (the parker is closed, or epoll refuses it).
func (p *Parker) Await(rc syscall.RawConn, timeout time.Duration, ready func()) bool {
	id := p.ids.Add(1)
	a := &awaiter{p: p, id: id, rc: rc, ready: ready}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.parked[id] = a
	p.mu.Unlock()
	var ctlErr error
	err := rc.Control(func(fd uintptr) {
		ev := epoll.Keyed(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLONESHOT, id)
		ctlErr = unix.EpollCtl(p.ep.FD, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || ctlErr != nil {
		p.take(id) // no event can come for it, and nobody else knows id
		return false
	}
	// Armed under mu: the event loop may have taken a already, and then
	// a.timer must stay nil; otherwise wake sees the timer set.
	p.mu.Lock()
	if p.parked[id] != nil {
		a.timer = time.AfterFunc(timeout, a.expire)
	}
	p.mu.Unlock()
	return true
}

// awaiter is a socket waiting in a parker's set for Await.
type awaiter struct {
	p     *Parker
	id    uint64
	rc    syscall.RawConn
	ready func()
	timer *time.Timer // nil until armed; see Await
}

// wake hands a readable socket on.
func (a *awaiter) wake() {
	if a.timer != nil {
		a.timer.Stop()
	}
	a.p.forget(a.rc)
	a.ready()
}

// expire hands the socket on when its time is up, unless the event loop
// has taken it already.
func (a *awaiter) expire() {
	if a.p.take(a.id) == nil {
		return
	}
	a.p.forget(a.rc)
	a.ready()
}

// forget takes a socket that has left the parked set out of the epoll set
// (a one-shot registration stays there, disabled), so that it can be
// parked again later, e.g. by a relay direction.
func (p *Parker) forget(rc syscall.RawConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return // the epoll descriptor is closed, and its number may be reused
	}
	rc.Control(func(fd uintptr) {
		unix.EpollCtl(p.ep.FD, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}
