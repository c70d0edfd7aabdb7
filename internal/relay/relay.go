// Package relay carries bytes both ways between a client and a backend
// connection: the hot path of sluice.
//
// A relay holds no user-space buffer and no kernel pipe while a connection is
// idle. Each direction waits for readability on the raw socket and takes a
// pipe (for splice) or a buffer from a pool only for the moment data is in
// flight, so an idle relay costs its two sockets and two parked goroutines.
// When one side sends FIN the other side gets FIN (CloseWrite) and the reverse
// direction keeps flowing; a reset or I/O error on either side resets both.
package relay

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// End says how a relay finished. It is the "end" field of the access log.
type End string

// The ways a relay can end.
const (
	EndEOF         End = "eof"          // both directions finished with FIN
	EndReset       End = "reset"        // a side reset or failed; both were reset
	EndIdleTimeout End = "idle-timeout" // no bytes either way for the idle limit
	EndDrained     End = "drained"      // stopped by a graceful shutdown deadline
	EndClosed      End = "closed"       // stopped by an operator (admin API)
)

// Counters are a relay's live byte counts, readable while it runs. Up is
// client→backend, Down is backend→client.
type Counters struct {
	Up   atomic.Int64
	Down atomic.Int64
}

// Options tune one relay. The zero value is usable: no idle limit, buffered
// copy through a private pool.
type Options struct {
	// IdleTimeout closes the relay after this long with no bytes moving in
	// either direction. Zero means no limit.
	IdleTimeout time.Duration
	// HalfCloseTimeout is the idle limit that applies once one direction has
	// finished (like HAProxy's client-fin/server-fin). Zero means IdleTimeout.
	HalfCloseTimeout time.Duration
	// Pools supplies pipes and buffers. Nil means a private pool with splice
	// enabled, which is fine for tests but wasteful at scale: share one.
	Pools *Pools
	// Counters, if not nil, is updated as bytes move.
	Counters *Counters
}

// Result is what a finished relay reports.
type Result struct {
	Up, Down int64 // bytes client→backend and backend→client
	End      End
	Err      error // the first I/O error, if the relay ended in a reset
}

// Relay is one client↔backend connection pair being relayed.
type Relay struct {
	client, backend net.Conn
	opts            Options
	pools           *Pools
	start           time.Time
	last            atomic.Int64 // nanoseconds since start of the last progress
	halfClosed      atomic.Bool  // one direction has finished

	mu      sync.Mutex // guards the following fields
	end     End
	err     error
	stopped bool
}

// New prepares a relay between client and backend. Run starts it.
func New(client, backend net.Conn, opts Options) *Relay {
	pools := opts.Pools
	if pools == nil {
		pools = NewPools(0)
	}
	return &Relay{client: client, backend: backend, opts: opts, pools: pools, start: time.Now()}
}

// Run relays until both directions have finished or the relay is stopped,
// closes both connections and reports the byte counts and how it ended.
func (r *Relay) Run() Result {
	up := newDirection(r, r.client, r.backend, "up")
	down := newDirection(r, r.backend, r.client, "down")
	up.other, down.other = down, up
	if d := r.opts.IdleTimeout; d > 0 {
		deadline := r.start.Add(d)
		up.setDeadlines(deadline)
		down.setDeadlines(deadline)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		down.run()
	}()
	up.run()
	<-done

	r.mu.Lock()
	end, err := r.end, r.err
	if end == "" {
		end = EndEOF
	}
	r.stopped = true
	r.mu.Unlock()
	r.client.Close()
	r.backend.Close()
	return Result{Up: up.n, Down: down.n, End: end, Err: err}
}

// Stop ends the relay now with the given reason; Run then returns. Connections
// are closed gracefully (the kernel sends RST only if unread data remains).
// Stop after the relay has finished does nothing.
func (r *Relay) Stop(end End) {
	if r.setEnd(end, nil) {
		r.client.Close()
		r.backend.Close()
	}
}

// abort resets both sides because of err: a reset or failure on one side is
// passed on as a reset to the other.
func (r *Relay) abort(err error) {
	if !r.setEnd(EndReset, err) {
		return
	}
	resetConn(r.client)
	resetConn(r.backend)
}

// setEnd records the first reason the relay ended and reports whether it was
// the first.
func (r *Relay) setEnd(end End, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.end != "" || r.stopped {
		return false
	}
	r.end, r.err = end, err
	return true
}

// touch records progress for the idle timer.
func (r *Relay) touch() {
	r.last.Store(int64(time.Since(r.start)))
}

// idleLimit is the idle limit in force: the half-close limit once one
// direction has finished.
func (r *Relay) idleLimit() time.Duration {
	d := r.opts.IdleTimeout
	if h := r.opts.HalfCloseTimeout; r.halfClosed.Load() && h > 0 && (d == 0 || h < d) {
		d = h
	}
	return d
}

// idleDeadline returns when the relay becomes idle given its last progress,
// or the zero time when no limit applies.
func (r *Relay) idleDeadline() time.Time {
	d := r.idleLimit()
	if d == 0 {
		return time.Time{}
	}
	return r.start.Add(time.Duration(r.last.Load()) + d)
}

// resetConn closes c so that the peer sees a reset rather than a FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// isClosed reports whether err means the connection was closed locally,
// which happens when the relay was stopped.
func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed)
}

// isDeadline reports whether err is an expired deadline, which the idle
// timer uses to wake a direction.
func isDeadline(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// BytesUp returns the bytes relayed client→backend so far.
func (c *Counters) BytesUp() int64 { return c.Up.Load() }

// BytesDown returns the bytes relayed backend→client so far.
func (c *Counters) BytesDown() int64 { return c.Down.Load() }
