package relay

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"sluice/internal/epoll"
)

// A Watch is a listening socket that some of an engine's loops accept
// from. Each of them has the socket in its epoll set, level-triggered,
// with EPOLLEXCLUSIVE: a connection coming in makes the kernel wake one
// waiting set rather than all of them, and that loop's accept callback
// takes what is waiting. The callback runs on the loop, between rounds of
// relaying, and starts the connections' relays on that same loop
// (Options.Loop): a connection is accepted, set up and relayed on one
// thread at a time, handed to no other.
//
// The loops' epoll sets are themselves watched by the Go runtime's poller
// (see Engine), so no loop is asleep in epoll_wait on its own set, and the
// kernel's exclusive wake-up then reaches every set that watches the
// socket: a loop may be woken for a connection another loop took, and
// finds nothing to accept (one accept4 that returns EAGAIN). What
// EPOLLEXCLUSIVE still saves is the wake-ups of sets that already have
// the socket on their ready list.
type Watch struct {
	fd     int
	key    uint64
	loops  []*loop
	accept func(Loop)
	closed atomic.Bool

	mu   sync.Mutex // guards held, and the socket's membership of the sets
	held int        // Pause calls not yet matched by Resume
}

// Loop is the engine loop that an accept callback runs on. A relay whose
// Options.Loop is it starts on that loop. The zero Loop is none: the
// engine picks one.
type Loop struct{ l *loop }

// listenKey marks the epoll keys of watched listening sockets; relays'
// keys count up from 2 and never reach it.
const listenKey = 1 << 63

// Watch prepares n of the engine's loops (at most all of them, at least
// one) to accept from the listening socket fd: once Start has put fd in
// their sets, each calls accept, on itself, whenever fd has connections
// waiting. fd must be non-blocking; it stays the caller's, to close once
// Close has returned. Successive watches start at successive loops, so
// one-loop rules spread over the engine.
func (e *Engine) Watch(fd int, n int, accept func(Loop)) *Watch {
	n = min(max(n, 1), len(e.loops))
	first := int(e.watches.Add(1))
	w := &Watch{fd: fd, key: listenKey | uint64(first), accept: accept, held: 1}
	for i := range n {
		w.loops = append(w.loops, e.loops[(first+i)%len(e.loops)])
	}
	for _, l := range w.loops {
		l.mu.Lock()
		l.watches[w.key] = w
		l.mu.Unlock()
	}
	return w
}

// Start puts the socket in the loops' sets: from now on they accept. When
// that fails (e.g. a kernel without EPOLLEXCLUSIVE, before 4.5) no loop
// watches it, and the caller must Close w.
func (w *Watch) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, l := range w.loops {
		// Under the loop's lock, which the loop takes to find w from an
		// event: what the caller did before Start happens before any
		// callback, for the race detector too.
		l.mu.Lock()
		err := l.listen(w)
		l.mu.Unlock()
		if err != nil {
			for _, done := range w.loops[:i] {
				unix.EpollCtl(done.ep.FD, unix.EPOLL_CTL_DEL, w.fd, nil)
			}
			return err
		}
	}
	w.held = 0
	return nil
}

// Loops returns how many loops accept from w.
func (w *Watch) Loops() int { return len(w.loops) }

// Pause takes the socket out of every loop's set until the matching
// Resume: while it is paused no loop accepts from it, and connections
// wait in the kernel's accept queue. Pauses nest.
func (w *Watch) Pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held++
	if w.held == 1 && !w.closed.Load() {
		for _, l := range w.loops {
			unix.EpollCtl(l.ep.FD, unix.EPOLL_CTL_DEL, w.fd, nil)
		}
	}
}

// Resume ends a Pause; the last one puts the socket back in the sets.
func (w *Watch) Resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.held--
	if w.held == 0 && !w.closed.Load() {
		for _, l := range w.loops {
			l.mu.Lock()
			l.listen(w)
			l.mu.Unlock()
		}
	}
}

// Close takes the socket out of every loop's set and returns once no loop
// is running or will run w's accept callback: the caller may then close
// the socket.
func (w *Watch) Close() {
	w.mu.Lock()
	if w.closed.Swap(true) {
		w.mu.Unlock()
		return
	}
	if w.held == 0 {
		for _, l := range w.loops {
			unix.EpollCtl(l.ep.FD, unix.EPOLL_CTL_DEL, w.fd, nil)
		}
	}
	w.mu.Unlock()
	for _, l := range w.loops {
		l.unwatch(w)
	}
}

// listen adds w's socket to the loop's set.
func (l *loop) listen(w *Watch) error {
	ev := epoll.Keyed(unix.EPOLLIN|unix.EPOLLEXCLUSIVE, w.key)
	return l.ep.Add(w.fd, &ev)
}

// unwatch takes w off the loop, on the loop itself, and waits until it
// has: a callback of w's that is running finishes first, and none starts
// after. A closed loop runs no callback, so it is taken off at once.
func (l *loop) unwatch(w *Watch) {
	unix.EpollCtl(l.ep.FD, unix.EPOLL_CTL_DEL, w.fd, nil)
	done := make(chan struct{})
	if !l.call(func() {
		l.mu.Lock()
		delete(l.watches, w.key)
		l.mu.Unlock()
		close(done)
	}) {
		l.mu.Lock()
		delete(l.watches, w.key)
		l.mu.Unlock()
		return
	}
	<-done
}

// call runs f on the loop, after its current round; it reports false, and
// does not run f, when the loop is closed.
func (l *loop) call(f func()) bool {
	queued := false
	l.request(func() {
		l.calls = append(l.calls, f)
		queued = true
	})
	return queued
}

// acceptWatched runs the accept callbacks of the watches that had events
// this round, unless they have been closed meanwhile.
func (l *loop) acceptWatched() {
	for i, w := range l.accepting {
		if !w.closed.Load() {
			w.accept(Loop{l})
		}
		l.accepting[i] = nil
	}
	l.accepting = l.accepting[:0]
}
