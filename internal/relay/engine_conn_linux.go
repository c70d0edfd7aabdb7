package relay

import (
	"golang.org/x/sys/unix"

	"sluice/internal/access"
)

// engineConn is a relay carried by an engine loop: its two sockets, what
// the edge events said of them, and a flow per direction. Only the loop
// touches it.
type engineConn struct {
	r    *Relay
	loop *loop
	id   uint64 // epoll key of the client socket; the backend's is id|1
	fd   [2]int // client, backend
	// readable and writable are what the last events and operations said
	// of each socket: an operation that returns EAGAIN clears them, an
	// edge event sets them again.
	readable, writable [2]bool
	// finPending is set by EPOLLRDHUP: a FIN waits behind the data, so a
	// short read does not mean the socket is drained.
	finPending [2]bool
	flows      [2]flow // up (client→backend), down
	queued     bool    // in loop.again
	finished   bool    // closed; events still in flight are ignored
	// connecting is set while the backend socket's connect is in
	// progress (NewConnecting): nothing moves until it is done.
	connecting *connectState
	// troubled is set by EPOLLERR or EPOLLHUP: a connect that reports
	// writable without it has succeeded, with it the socket says how.
	troubled bool
}

// flow is one direction of an engineConn.
type flow struct {
	d        *direction // byte counts and the bulk flag
	src, dst int        // sides: 0 client, 1 backend
	c        chunk      // read but not yet written: dst was full
	eof      bool       // src sent FIN and it was passed on
	// given is set while c holds bytes given to the relay
	// (Connecting.First), not a carrier of the pool's.
	given bool
}

// note records an edge event on one socket.
func (ec *engineConn) note(side int, flags uint32) {
	if flags&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ec.readable[side] = true
	}
	if flags&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		ec.finPending[side] = true
	}
	if flags&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ec.writable[side] = true
	}
	if side == 1 && flags&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ec.troubled = true
	}
}

// serve moves what it can both ways and finishes the relay when both
// directions have ended, or resets both sides on an error.
func (ec *engineConn) serve() {
	if ec.finished {
		return
	}
	if ec.connecting != nil && !ec.checkConnect() {
		return
	}
	for i := range ec.flows {
		if err := ec.pump(&ec.flows[i]); err != nil {
			ec.r.setEnd(access.Reset, err)
			ec.close(true)
			return
		}
	}
	if ec.flows[0].eof && ec.flows[1].eof {
		ec.close(false)
	}
}

// pump moves chunks of f while its source is readable and its destination
// writable, up to the budget of one turn, and passes a FIN on.
func (ec *engineConn) pump(f *flow) error {
	moved := 0
	for !f.eof {
		if f.c.n > 0 {
			if !ec.writable[f.dst] {
				return nil
			}
			if err := ec.write(f); err == unix.EAGAIN {
				ec.writable[f.dst] = false
				return nil
			} else if err != nil {
				return err
			}
		}
		if !ec.readable[f.src] {
			return nil
		}
		if moved >= budget {
			ec.requeue()
			return nil
		}
		n, err := ec.read(f)
		switch {
		case err == unix.EAGAIN:
			ec.readable[f.src] = false
			return nil
		case err != nil:
			return err
		case n == 0:
			return ec.passFIN(f)
		}
		moved += n
	}
	return nil
}

// read reads a chunk from f's source: into a buffer, or for bulk data into
// a pipe. A short read into a buffer means the socket is drained (unless a
// FIN is pending), which saves the read that would return EAGAIN; a short
// splice does not, as a pipe can fill up before its byte capacity.
func (ec *engineConn) read(f *flow) (int, error) {
	pools, c := ec.r.pools, &f.c
	fd := ec.fd[f.src]
	for {
		*c = chunk{}
		if f.d.bulk {
			c.p = pools.pipe()
		}
		if c.p == nil {
			c.buf = pools.buffer()
		}
		want := c.fill(fd, max(pools.pipeSize, bufferSize))
		if c.err == unix.EINTR {
			pools.release(*c)
			continue
		}
		if c.err != nil || c.n <= 0 {
			err := c.err
			pools.release(*c)
			*c = chunk{}
			return 0, err
		}
		f.d.bulk = c.n > smallChunk
		if c.buf != nil && c.n < want && !ec.finPending[f.src] {
			ec.readable[f.src] = false
		}
		return c.n, nil
	}
}

// write writes f's chunk to its destination. It returns nil when all of it
// went (the carrier is back in the pool), EAGAIN when the destination is
// full, or the error.
func (ec *engineConn) write(f *flow) error {
	if err := f.d.send(ec.fd[f.dst], &f.c); err != nil {
		return err
	}
	f.free(ec.r.pools)
	return nil
}

// free lets go of f's chunk: its carrier goes back to the pool, or is
// closed if it still holds bytes; given bytes are only dropped.
func (f *flow) free(pools *Pools) {
	switch {
	case f.given:
		f.given = false
	case f.c.n > 0:
		pools.discard(f.c)
	default:
		pools.release(f.c)
	}
	f.c = chunk{}
}

// passFIN sends f's destination a FIN for the one f's source sent, and puts
// the relay under its half-close limit.
//
// When the other direction has ended already, the relay is about to close
// both sockets, and closing sends the FIN: no shutdown call is needed.
func (ec *engineConn) passFIN(f *flow) error {
	f.eof = true
	if ec.flows[f.dst].eof { // the flow whose source is f's destination
		return nil
	}
	if err := sysShutdown(ec.fd[f.dst]); err != nil {
		return err
	}
	r := ec.r
	r.touch() // the FIN passed on: the other side may answer
	r.halfClosed.Store(true)
	if r.idleLimit() > 0 {
		r.armIdleTimer()
	}
	return nil
}

// requeue asks the loop to serve ec again after the other relays.
func (ec *engineConn) requeue() {
	if !ec.queued {
		ec.queued = true
		ec.loop.again = append(ec.loop.again, ec)
	}
}

// stop ends the relay for Relay.Stop, which recorded why.
func (ec *engineConn) stop() {
	if !ec.finished {
		ec.close(false)
	}
}

// close takes ec off its loop, gives back what it holds, closes both
// sockets (with a reset when asked) and reports the result.
func (ec *engineConn) close(reset bool) {
	ec.finished = true
	ec.loop.forget(ec)
	if cs := ec.connecting; cs != nil && cs.timer != nil {
		cs.timer.Stop()
	}
	for i := range ec.flows {
		ec.flows[i].free(ec.r.pools)
	}
	r := ec.r
	if reset {
		r.reset()
	}
	r.finish()
}
