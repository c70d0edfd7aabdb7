// Package relay carries bytes both ways between a client and a backend
// connection: the hot path of sluice.
//
// A relay holds no user-space buffer and no kernel pipe while a connection is
// idle: it takes a buffer (small chunks) or a pipe (bulk: splice) from a
// pool only for the moment data is in flight. On Linux an Engine carries
// relays between plain sockets on a few epoll event loops, with no goroutine
// per relay; other relays run a goroutine per direction, which parks (see
// Parker) when idle.
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

	"sluice/internal/access"
)

// Counters are a relay's live byte counts, readable while it runs. Up is
// client→backend, Down is backend→client.
type Counters struct {
	Up   atomic.Int64
	Down atomic.Int64
}

// Options tune one relay. The zero value is usable: no idle limit, splice
// through a private pool, no parking.
type Options struct {
	// IdleTimeout closes the relay after this long with no bytes moving in
	// either direction. Zero means no limit.
	IdleTimeout time.Duration
	// HalfCloseTimeout is the idle limit that applies once one direction has
	// finished (like HAProxy's client-fin/server-fin). Zero means IdleTimeout.
	HalfCloseTimeout time.Duration
	// Pools supplies pipes and buffers. Nil means a private pool, which is
	// fine for tests but wasteful at scale: share one.
	Pools *Pools
	// Counters, if not nil, is updated as bytes move.
	Counters *Counters
	// RuleUp and RuleDown, if not nil, are rule-wide byte counts that every
	// relay of the rule adds to as bytes move.
	RuleUp, RuleDown *atomic.Int64
	// Parker, if not nil, takes directions that have waited ParkAfter for
	// data off their goroutines (see Parker). Nil: idle directions wait in
	// the Go runtime's poller, each holding a goroutine.
	Parker *Parker
	// ParkAfter is how long a direction waits for data on its goroutine
	// before it parks. Zero means DefaultParkAfter.
	ParkAfter time.Duration
	// Bandwidth limits each direction to this many bytes per second. Zero
	// means no limit. Reads are sized by the bucket and copied through
	// buffers.
	Bandwidth int64
	// Go runs a function on a goroutine, e.g. from a pool of workers whose
	// stacks are already grown. Nil: the go statement.
	Go func(func())
	// Engine, if not nil, carries relays between plain sockets on its event
	// loops instead of goroutines (see Engine). Relays it cannot carry (a
	// bandwidth limit, a wrapped connection) use goroutines as without it.
	Engine *Engine
	// Loop, if set, is the engine loop that carries the relay: the one an
	// accept callback runs on (see Watch), so that the connection stays
	// on the thread that accepted it. Zero: the engine picks a loop.
	Loop Loop
}

// DefaultParkAfter is the default Options.ParkAfter: long enough that a busy
// request/response connection never parks between messages, short enough
// that thousands of idle connections soon cost no goroutines.
const DefaultParkAfter = 10 * time.Millisecond

// Result is what a finished relay reports.
type Result struct {
	Up, Down int64      // bytes client→backend and backend→client
	End      access.End // how it ended: eof, reset, idle-timeout, connect-failed or Stop's
	Err      error      // the first I/O error, if the relay ended in a reset
}

// Relay is one client↔backend connection pair being relayed.
type Relay struct {
	client, backend net.Conn
	opts            Options
	pools           *Pools
	start           time.Time
	activity        atomic.Uint64 // chunks moved either way and FINs passed on; see touch
	settled         atomic.Uint64 // the activity that last accounts for; see settle
	// ending is set when Stop or abort ends the relay, for directions that
	// move chunk after chunk without returning to the poller (readOnce).
	ending     atomic.Bool
	last       atomic.Int64 // nanoseconds since start by when the settled activity had happened
	halfClosed atomic.Bool  // one direction has finished
	live       atomic.Int32 // directions not yet finished
	up, down   *direction
	done       func(Result)
	fds        [2]int // client and backend sockets, for the engine
	onEngine   bool   // the engine can carry this relay
	owned      bool   // fds are the relay's own, without net.Conns (NewConnecting)
	// connecting is the backend's connect in progress for a relay made by
	// NewConnecting, until Start hands it to the engine.
	connecting *connectState

	mu        sync.Mutex // guards the following fields
	end       access.End
	err       error
	stopped   bool
	idleTimer *time.Timer // checks the idle limit while directions are parked
	ec        *engineConn // set once the engine carries the relay
}

// New prepares a relay between client and backend. Start or Run starts it.
func New(client, backend net.Conn, opts Options) *Relay {
	r := newRelay(client, backend, opts)
	if opts.Engine != nil && opts.Bandwidth == 0 {
		r.fds, r.onEngine = engineFDs(r.up.srcRaw, r.up.dstRaw)
	}
	return r
}

// newRelay fills in opts' defaults and makes the relay and its directions.
func newRelay(client, backend net.Conn, opts Options) *Relay {
	if opts.Pools == nil {
		opts.Pools = NewPools(0)
	}
	if opts.ParkAfter <= 0 {
		opts.ParkAfter = DefaultParkAfter
	}
	if opts.Go == nil {
		opts.Go = func(f func()) { go f() }
	}
	r := &Relay{client: client, backend: backend, opts: opts, pools: opts.Pools, start: time.Now()}
	r.up = newDirection(r, client, backend, "up")
	r.down = newDirection(r, backend, client, "down")
	r.up.other, r.down.other = r.down, r.up
	return r
}

// Start relays until both directions have finished or the relay is
// stopped; then it closes both connections and calls done with the byte
// counts and how the relay ended. done is called exactly once, on one of the
// relay's goroutines.
//
// The calling goroutine carries the client→backend direction (a new
// connection's first bytes usually come from the client, and the caller's
// stack is already grown) and Start returns when that direction parks or
// ends; the other direction gets a goroutine of its own.
//
// On an Engine, Start returns at once: the engine's loop carries both
// directions and calls done on a goroutine from Options.Go.
func (r *Relay) Start(done func(Result)) {
	r.done = done
	if r.onEngine && r.startOnEngine() {
		return
	}
	r.up.prepare()
	r.down.prepare()
	r.live.Store(2)
	r.up.setReadDeadline()
	r.down.setReadDeadline()
	r.opts.Go(r.down.run)
	r.up.run()
}

// exited records that one direction has finished; the last one finishes
// the relay.
func (r *Relay) exited() {
	if r.live.Add(-1) == 0 {
		r.finish()
	}
}

// finish closes both connections and reports the result.
func (r *Relay) finish() {
	r.mu.Lock()
	end, err := r.end, r.err
	if end == "" {
		end = access.EOF
	}
	r.stopped = true
	if r.idleTimer != nil {
		r.idleTimer.Stop()
	}
	ec := r.ec
	r.mu.Unlock()
	if r.owned {
		closeFD(r.fds[0], false)
		closeFD(r.fds[1], false)
	} else {
		r.client.Close()
		r.backend.Close()
	}
	res := Result{Up: r.up.n, Down: r.down.n, End: end, Err: err}
	if ec != nil {
		ec.loop.report(r, res) // on the loop's goroutine: it must not block
		return
	}
	r.done(res)
}

// startOnEngine hands the relay to the engine, or finishes it at once if it
// was stopped before it started. It reports false when the engine cannot
// take it; the relay then runs on goroutines.
func (r *Relay) startOnEngine() bool {
	r.mu.Lock()
	if r.end != "" {
		r.mu.Unlock()
		r.finish()
		return true
	}
	cs := r.connecting
	r.connecting = nil
	if cs != nil {
		r.armConnect(cs)
	}
	var ec *engineConn
	err := errNoEngine
	if r.opts.Engine != nil {
		ec, err = r.opts.Engine.add(r, r.fds, cs)
	}
	if err != nil && cs != nil {
		// The relay owns bare descriptors: goroutines cannot carry it.
		if cs.timer != nil {
			cs.timer.Stop()
		}
		r.end, r.err = access.ConnectFailed, err
		r.mu.Unlock()
		r.finish()
		return true
	}
	if err != nil {
		r.onEngine = false
		r.mu.Unlock()
		return false
	}
	r.ec = ec
	r.mu.Unlock()
	if cs == nil {
		r.armIdleTimer() // a connecting relay's starts once it is connected
	}
	return true
}

// Stop ends the relay now with the given reason. Connections are closed
// gracefully (the kernel sends RST only if unread data remains). Stop after
// the relay has finished does nothing.
func (r *Relay) Stop(end access.End) {
	if !r.setEnd(end, nil) {
		return
	}
	r.mu.Lock()
	ec, onEngine := r.ec, r.onEngine
	r.mu.Unlock()
	switch {
	case ec != nil:
		ec.loop.post(ec) // its loop closes the sockets
	case onEngine:
		// Not started yet: Start sees the end and finishes.
	default:
		r.client.Close()
		r.backend.Close()
		r.unpark()
	}
}

// abort resets both sides because of err: a reset or failure on one side is
// passed on as a reset to the other.
func (r *Relay) abort(err error) {
	if r.setEnd(access.Reset, err) {
		r.reset()
		r.unpark()
	}
}

// reset closes both sides so that each peer sees a reset rather than a
// FIN.
func (r *Relay) reset() {
	if r.owned {
		closeFD(r.fds[0], true)
		closeFD(r.fds[1], true)
		r.fds = [2]int{-1, -1}
		return
	}
	resetConn(r.client)
	resetConn(r.backend)
}

// unpark finishes the directions that are parked: no goroutine of theirs
// will see that the connections were closed.
func (r *Relay) unpark() {
	p := r.opts.Parker
	if p == nil {
		return
	}
	for _, d := range []*direction{r.up, r.down} {
		if d.parkID != 0 && p.take(d.parkID) != nil {
			r.exited()
		}
	}
}

// armIdleTimer makes sure the idle limit is checked while no goroutine
// waits on a deadline: a direction is parked, or the relay is on an engine.
// The timer fires when the relay would be idle, given its last progress.
func (r *Relay) armIdleTimer() {
	if r.idleLimit() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.settle()
	deadline := r.idleDeadline()
	if r.idleTimer == nil {
		r.idleTimer = time.AfterFunc(time.Until(deadline), r.checkIdle)
	} else {
		r.idleTimer.Reset(time.Until(deadline))
	}
}

// checkIdle stops the relay if it has been idle for its limit, and
// otherwise looks again when it next could be.
func (r *Relay) checkIdle() {
	r.settle()
	now := time.Now()
	deadline := r.idleDeadline()
	if deadline.IsZero() {
		return
	}
	if !now.Before(deadline) {
		r.Stop(access.IdleTimeout)
		return
	}
	r.armIdleTimer()
}

// setEnd records the first reason the relay ended and reports whether it was
// the first.
func (r *Relay) setEnd(end access.End, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.end != "" || r.stopped {
		return false
	}
	r.end, r.err = end, err
	r.ending.Store(true)
	return true
}

// touch records progress: a chunk moved or a FIN passed on. It reads no
// clock, which would cost as much as the rest of a small chunk's trip:
// whoever moved the chunk settles when its burst of chunks ends (see
// settle), and that reads the clock once for the whole burst.
func (r *Relay) touch() {
	r.activity.Add(1)
}

// settle records the time of the progress not yet accounted for, if there
// is any, as now: the idle limit counts from then.
//
// A direction calls it when a burst ends, before it waits for a socket or
// for its bandwidth limit, and an engine's loop at the end of each round:
// the recorded time is then at most a burst's length after the last byte
// (never before it), so an idle limit fires on time. Timers and deadlines
// that check the idle limit call it too: progress that nobody has settled
// yet belongs to a burst still going on, which is progress now.
func (r *Relay) settle() {
	var now time.Time
	r.settleAt(&now)
}

// settleAt is settle for a caller that settles many relays at once (an
// engine's loop after a round, when none of them moves any more): *now is
// the time to record, read from the clock into it if it is zero, so that
// the caller reads the clock once for all of them.
func (r *Relay) settleAt(now *time.Time) {
	a := r.activity.Load() // before the clock: now is after all of a
	if a == r.settled.Load() {
		return
	}
	if now.IsZero() {
		*now = time.Now()
	}
	// last before settled: whoever sees settled reach a sees a last at
	// least as late as the progress it counts.
	t := int64(now.Sub(r.start))
	for {
		old := r.last.Load()
		if t <= old || r.last.CompareAndSwap(old, t) {
			break
		}
	}
	for {
		old := r.settled.Load()
		if a <= old || r.settled.CompareAndSwap(old, a) {
			return
		}
	}
}

// window is how far ahead a direction's deadlines are set: the deadline
// firing is when it parks, or finds the relay idle. With a parker it is
// ParkAfter; without, an eighth of the idle limit (at least ParkAfter), so
// that waiting connections do not wake often for nothing.
func (r *Relay) window() time.Duration {
	if r.opts.Parker != nil {
		return r.opts.ParkAfter
	}
	return max(r.opts.ParkAfter, r.idleLimit()/8)
}

// deadline is when a wait starting now should wake: at the next window or
// when the relay would be idle, whichever is first.
func (r *Relay) deadline(now time.Time) time.Time {
	t := now.Add(r.window())
	if idle := r.idleDeadline(); !idle.IsZero() && idle.Before(t) {
		t = idle
	}
	if r.opts.Parker == nil && r.idleLimit() == 0 {
		return time.Time{} // nothing to wake for
	}
	return t
}

// lastTime returns when the relay last made progress.
func (r *Relay) lastTime() time.Time {
	return r.start.Add(time.Duration(r.last.Load()))
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
	return r.lastTime().Add(d)
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
