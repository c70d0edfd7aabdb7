package relay

import (
	"sync"
	"sync/atomic"

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
type Parker struct {
	ep  *epoll.Set
	ids atomic.Uint64

	mu     sync.Mutex // guards the following fields
	parked map[uint64]*direction
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
	p := &Parker{ep: ep, parked: make(map[uint64]*direction), loopDone: make(chan struct{})}
	go p.loop()
	return p, nil
}

// loop waits for parked sockets to become readable and resumes their
// directions, each in a new goroutine. It ends when the parker is closed.
func (p *Parker) loop() {
	defer close(p.loopDone)
	for {
		events, err := p.ep.Wait()
		if err != nil {
			return
		}
		for i := range events {
			if d := p.take(epoll.Key(&events[i])); d != nil {
				d.r.opts.Go(d.resume)
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

// take removes the direction with id from the parked set and returns it, or
// nil when it is not parked.
func (p *Parker) take(id uint64) *direction {
	p.mu.Lock()
	d := p.parked[id]
	delete(p.parked, id)
	p.mu.Unlock()
	return d
}

// Parked returns how many directions are parked.
func (p *Parker) Parked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.parked)
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
