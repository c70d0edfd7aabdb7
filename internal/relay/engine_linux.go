package relay

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/epoll"
)

// Engine relays established connections on a few event loops instead of on
// goroutines of their own.
//
// Each loop owns an edge-triggered epoll set holding both sockets of its
// relays. One wake-up of a loop serves every socket that became ready since
// the last, and the edge events tell what a goroutine per direction has to
// find out with extra reads: a short read means the socket is drained, and
// EPOLLRDHUP says a FIN is waiting behind the data. A relay on a loop costs
// no goroutine and no deadline timer, busy or idle.
//
// Like the Parker, a loop's epoll set is itself watched by the Go runtime's
// poller, so a loop is an ordinary goroutine holding no OS thread while it
// waits. The sockets stay registered with the runtime's poller too (the
// net.Conns own them); its edge events for them wake nobody.
//
// Only a relay's loop reads, writes or closes its sockets once it has
// started there. Stop from another goroutine posts the relay to its loop.
type Engine struct {
	loops   []*loop
	next    atomic.Uint32
	watches atomic.Uint32 // Watch keys, and where each watch's loops start
}

// loop is one event loop of an Engine.
type loop struct {
	ep     *epoll.Set
	wakefd int           // eventfd that posted requests write to
	ready  []event       // this round's events, resolved to their relays
	again  []*engineConn // relays that used up their budget with work left
	ended  []ended       // finished relays whose done is still to be called
	ids    uint64
	// accepting is this round's watched listeners with connections
	// waiting (see Watch).
	accepting []*Watch

	mu       sync.Mutex // guards the following fields
	conns    map[uint64]*engineConn
	posted   []*engineConn // relays to stop, from other goroutines
	timeouts []timeout     // connects that ran out of time
	calls    []func()      // to run on the loop (loop.call)
	watches  map[uint64]*Watch
	closed   bool

	done chan struct{}
}

// event is an epoll event for one socket of a relay.
type event struct {
	ec    *engineConn
	side  int // 0: the client socket, 1: the backend socket
	flags uint32
}

// ended is a finished relay and its result.
type ended struct {
	r   *Relay
	res Result
}

// wakeID is the epoll key of a loop's eventfd; relays get keys from 2 up.
const wakeID = 1

// budget is how many bytes one direction may move in one turn before the
// loop serves the other relays; the rest waits for the next round.
const budget = 4 << 20

// NewEngine starts an engine with n event loops (at least one). Close stops
// it.
func NewEngine(n int) (*Engine, error) {
	e := &Engine{}
	for range max(n, 1) {
		l, err := newLoop()
		if err != nil {
			e.Close()
			return nil, err
		}
		e.loops = append(e.loops, l)
		go l.run()
	}
	return e, nil
}

// newLoop creates a loop's epoll set and eventfd.
func newLoop() (*loop, error) {
	ep, err := epoll.New("sluice-engine", 256)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		ep.Close()
		return nil, err
	}
	ev := epoll.Keyed(unix.EPOLLIN, wakeID)
	if err := ep.Add(wakefd, &ev); err != nil {
		ep.Close()
		unix.Close(wakefd)
		return nil, err
	}
	return &loop{
		ep: ep, wakefd: wakefd,
		ids:   wakeID,
		conns: make(map[uint64]*engineConn), watches: make(map[uint64]*Watch),
		done: make(chan struct{}),
	}, nil
}

// Close stops the loops. Call it only once every relay has finished.
func (e *Engine) Close() {
	for _, l := range e.loops {
		l.mu.Lock()
		already := l.closed
		l.closed = true
		l.mu.Unlock()
		if already {
			continue
		}
		l.ep.Close()
		<-l.done
		unix.Close(l.wakefd)
	}
}

// errEngineClosed makes Start fall back to goroutines.
var errEngineClosed = errors.New("relay: engine closed")

// add puts r on one of the loops: both its sockets join the loop's epoll
// set, and from then on the loop owns them. With cs the backend socket is
// still connecting.
func (e *Engine) add(r *Relay, fds [2]int, cs *connectState) (*engineConn, error) {
	l := r.opts.Loop.l
	if l == nil {
		l = e.loops[int(e.next.Add(1))%len(e.loops)]
	}
	ec := &engineConn{r: r, loop: l, fd: fds, connecting: cs}
	ec.flows[0] = flow{d: r.up, src: 0, dst: 1}
	ec.flows[1] = flow{d: r.down, src: 1, dst: 0}
	ec.flows[0].takeFirst(cs)
	ec.writable = [2]bool{true, cs == nil}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errEngineClosed
	}
	l.ids++
	ec.id = l.ids << 1
	for side, fd := range fds {
		key := ec.id | uint64(side)
		ev := epoll.Keyed(unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET, key)
		if err := l.ep.Add(fd, &ev); err != nil {
			if side == 1 {
				unix.EpollCtl(l.ep.FD, unix.EPOLL_CTL_DEL, fds[0], nil)
			}
			return nil, err
		}
	}
	l.conns[ec.id] = ec
	return ec, nil
}

// post asks ec's loop to stop it (Relay.Stop from another goroutine).
func (l *loop) post(ec *engineConn) {
	l.request(func() { l.posted = append(l.posted, ec) })
}

// request queues a request from another goroutine for the loop (queue
// runs under the loop's lock) and wakes the loop if it is the first
// waiting. A closed loop takes no requests.
func (l *loop) request(queue func()) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	wake := len(l.posted) == 0 && len(l.timeouts) == 0 && len(l.calls) == 0
	queue()
	l.mu.Unlock()
	if wake {
		l.wake()
	}
}

// wake makes the loop's eventfd readable.
func (l *loop) wake() {
	var one = [8]byte{1}
	unix.Write(l.wakefd, one[:])
}

// run is the loop: wait for events, serve the relays they concern, then
// the ones with work left over, then posted requests.
func (l *loop) run() {
	defer close(l.done)
	for {
		var events []unix.EpollEvent
		if len(l.again) == 0 {
			var err error
			if events, err = l.ep.Wait(); err != nil {
				return // closed
			}
		} else {
			events = l.ep.Poll()
		}
		l.serve(events)
	}
}

// serve handles one round of events.
func (l *loop) serve(events []unix.EpollEvent) {
	woken := false
	l.ready = l.ready[:0]
	l.mu.Lock()
	for i := range events {
		key := epoll.Key(&events[i])
		if key == wakeID {
			woken = true
			continue
		}
		if key&listenKey != 0 {
			if w := l.watches[key]; w != nil {
				l.accepting = append(l.accepting, w)
			}
			continue
		}
		if ec := l.conns[key&^1]; ec != nil {
			l.ready = append(l.ready, event{ec: ec, side: int(key & 1), flags: events[i].Events})
		}
	}
	l.mu.Unlock()
	for _, ev := range l.ready {
		ev.ec.note(ev.side, ev.flags)
	}
	again := l.again
	l.again = nil
	for _, ec := range again {
		ec.queued = false
	}
	for _, ev := range l.ready {
		ev.ec.serve()
	}
	for _, ec := range again {
		ec.serve()
	}
	l.settle(again)
	clear(again)
	if l.again == nil {
		l.again = again[:0]
	}
	l.acceptWatched()
	if woken {
		l.serveRequests()
	}
	clear(l.ready)
	l.callDone()
}

// serveRequests serves what other goroutines asked of the loop.
func (l *loop) serveRequests() {
	var buf [8]byte
	unix.Read(l.wakefd, buf[:])
	l.mu.Lock()
	posted, timeouts, calls := l.posted, l.timeouts, l.calls
	l.posted, l.timeouts, l.calls = nil, nil, nil
	l.mu.Unlock()
	for _, ec := range posted {
		ec.stop()
	}
	for _, t := range timeouts {
		t.ec.connectTimedOut(t.gen)
	}
	for _, f := range calls {
		f()
	}
}

// settle records the time of this round's progress for the relays served
// in it (see Relay.settle), reading the clock at most once: after the
// round, so never before a byte it moved.
func (l *loop) settle(again []*engineConn) {
	var now time.Time
	for _, ev := range l.ready {
		ev.ec.r.settleAt(&now)
	}
	for _, ec := range again {
		ec.r.settleAt(&now)
	}
}

// report queues a finished relay's done call for the end of the round.
func (l *loop) report(r *Relay, res Result) {
	l.ended = append(l.ended, ended{r, res})
}

// callDone calls the done functions of the relays that finished this
// round, on one goroutine from Options.Go: done may block (an access log on
// a slow disk), and the loop must not.
func (l *loop) callDone() {
	if len(l.ended) == 0 {
		return
	}
	batch := l.ended
	l.ended = nil
	batch[0].r.opts.Go(func() {
		for _, e := range batch {
			e.r.done(e.res)
		}
	})
}

// forget removes ec from the loop: later events for its sockets are
// dropped. Closing the sockets takes them out of the epoll set.
func (l *loop) forget(ec *engineConn) {
	l.mu.Lock()
	delete(l.conns, ec.id)
	l.mu.Unlock()
}

// engineFDs returns the descriptors of a relay's two sockets and whether an
// engine can carry it: both must be plain sockets.
func engineFDs(client, backend syscall.RawConn) ([2]int, bool) {
	var fds [2]int
	for i, raw := range []syscall.RawConn{client, backend} {
		if raw == nil {
			return fds, false
		}
		if err := raw.Control(func(fd uintptr) { fds[i] = int(fd) }); err != nil {
			return fds, false
		}
	}
	return fds, true
}
