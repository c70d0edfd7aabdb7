package tcp

import (
	"errors"

	"golang.org/x/sys/unix"

	"sluice/internal/access"
	"sluice/internal/backend"
	"sluice/internal/relay"
)

// The queue step: a connection whose first pick finds every usable
// backend full (max_connections) waits in its pool's queue for a slot,
// when the rule or route has a queue_timeout (backend.Attempts.Wait),
// and is refused otherwise. A waiting connection costs nothing beyond what
// it already has: on the direct path it is a record in the queue, its
// client socket idle, and the slot freed for it starts its connect on a
// goroutine of the moment (never on an engine loop, where a Release may
// come from); on the net package's path it waits in the goroutine that
// dials it, without its setup slot. A client that hangs up while it waits
// is noticed only once it leaves the queue: its relay then ends at once.

// slot is what awaitSlot made of a connection whose backends are full.
type slot int

const (
	slotNow    slot = iota // a slot freed meanwhile and is reserved: connect now
	slotQueued             // waiting: resume is called once it leaves the queue
	slotEnded              // refused (queue-full), or failed as with no backend
)

// awaitSlot puts cn, whose first pick found every backend full, in its
// pool's queue; resume is told, once, nil when a backend is reserved for
// it or why it waited in vain. Without a queue cn fails as any
// connection that finds no backend (connect-failed); with a full queue it
// is refused (rejected:queue-full).
func (s *Service) awaitSlot(cn *conn, resume func(error)) slot {
	queued, err := cn.attempts.Wait(resume)
	switch {
	case queued:
		return slotQueued
	case err == nil:
		return slotNow
	case errors.Is(err, backend.ErrQueueFull):
		s.reject(cn, access.ReasonQueueFull, err)
	default:
		s.closeClient(cn)
		s.finish(cn, relay.Result{End: access.ConnectFailed, Err: err})
	}
	return slotEnded
}

// queueNet is the net package's path's queue step (see dial): it waits,
// on cn's own goroutine and without its setup slot, until a slot is
// reserved for cn, and reports whether cn may connect. Otherwise cn has
// ended: refused, failed, or cut by a drain while it waited.
func (s *Service) queueNet(cn *conn) bool {
	done := make(chan error, 1)
	switch s.awaitSlot(cn, func(err error) { done <- err }) {
	case slotNow:
		return true
	case slotEnded:
		return false
	}
	s.setupDone(cn)
	var err error
	select {
	case err = <-done:
	case <-s.ctx.Done():
		if !cn.attempts.Leave() {
			err = <-done // served or timed out meanwhile
			break
		}
		cn.c.Close()
		s.finish(cn, relay.Result{End: access.Drained})
		return false
	}
	if err != nil {
		s.reject(cn, access.ReasonQueueTimeout, err)
		return false
	}
	s.takeSetup(cn)
	return true
}

// closeClient closes cn's client socket: its descriptor on the direct
// path, its net.Conn on the other.
func (s *Service) closeClient(cn *conn) {
	if cn.c == nil {
		unix.Close(cn.fd)
		return
	}
	cn.c.Close()
}
