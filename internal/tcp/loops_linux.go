package tcp

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/backoff"
	"sluice/internal/rawsock"
	"sluice/internal/relay"
)

// loopAccept is a listener whose connections the engine's loops accept
// (relay.Watch): the rule's workers of them watch one listening socket,
// the kernel wakes one per connection, and that loop accepts a batch and
// sets each connection up and relays it itself. Loops accept at once, so
// all of this is safe for concurrent use.
type loopAccept struct {
	fd     int // the listener's own socket, for raw accepts; the listener closes it
	addr   net.Addr
	watch  *relay.Watch
	logger *slog.Logger
	ended  func(error) // told once, when the loops stop accepting (see Service.Take)

	// pausing is set while a shortage episode lasts: the next connection
	// set up ends it, and says so.
	pausing atomic.Bool
	mu      sync.Mutex    // guards the following fields
	delay   backoff.Delay // the current back-off; none outside an episode
	paused  bool          // out of the loops' sets until a timer resumes it
	done    bool          // the loops stop accepting for good, and ended was told
}

// newLoopAccept returns the loop accept state of the listening socket fd,
// which tells ended when the loops stop accepting from it.
func newLoopAccept(fd int, addr net.Addr, logger *slog.Logger, ended func(error)) *loopAccept {
	return &loopAccept{fd: fd, addr: addr, logger: logger, ended: ended}
}

// shortage takes the listener out of every loop's set for a back-off that
// starts at 5 ms and doubles to 1 s, with one warning per episode: a
// level-triggered listener that a loop cannot accept from would wake it
// again at once. A shortage seen while paused already (another loop's, at
// the same moment) changes nothing.
func (a *loopAccept) shortage(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paused || a.done {
		return
	}
	wait, first := a.delay.Next()
	if first {
		a.logger.Warn("accept paused: "+describe(err), "listen", a.addr.String(), "error", err.Error())
	}
	a.paused = true
	a.pausing.Store(true)
	a.watch.Pause()
	time.AfterFunc(wait, func() {
		a.mu.Lock()
		a.paused = false
		a.mu.Unlock()
		a.watch.Resume()
	})
}

// recovered ends a shortage episode once a connection was set up again,
// a full back-off (1 s) after the last shortage: a starved process that
// sets one up between failures stays in one episode, warned once.
func (a *loopAccept) recovered() {
	if !a.pausing.Load() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paused || !a.delay.Recover(time.Now()) {
		return
	}
	a.pausing.Store(false)
	a.logger.Info("accepting again", "listen", a.addr.String())
}

// fail stops every loop accepting from a listener that failed under
// sluice, for good, and tells ended err. It runs on a loop, which must
// not wait for whoever ended tells (its lock may be held by one waiting
// for the loop, in close): ended is told on a goroutine of its own.
func (a *loopAccept) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.done {
		return
	}
	a.watch.Pause()
	a.done = true
	go a.ended(err)
}

// close takes the listener off the loops and returns once no loop can
// accept from it any more: the caller may then close the socket. It
// tells ended nil, unless the listener had failed before.
func (a *loopAccept) close() {
	a.watch.Close()
	a.mu.Lock()
	done := a.done
	a.done = true
	a.mu.Unlock()
	if !done {
		a.ended(nil)
	}
}

// acceptOn runs on the engine loop at when l's socket has connections
// waiting: it accepts up to a batch of them and starts each on at. A
// shortage of descriptors or memory pauses the listener (see shortage);
// any other error, but a client that gave up, ends it.
func (s *Service) acceptOn(l *listening, at relay.Loop) {
	a := l.direct
	for range acceptBatch {
		fd, client, err := rawsock.Accept(a.fd)
		if err == nil {
			if s.accepted != nil {
				s.accepted(at)
			}
			if err = s.startDirect(fd, client, l, at); err == nil {
				a.recovered()
				continue
			}
		}
		switch {
		case err == unix.EAGAIN:
			return // wait for the next client
		case err == unix.ECONNABORTED || err == unix.EINTR:
			continue // the client gave up before we accepted it
		case retryable(err):
			a.shortage(acceptError(l, err))
			return
		default:
			a.fail(acceptError(l, err))
			return
		}
	}
}

// pause stops every loop accepting until resume: a connection that the
// loop could not set up without blocking waits elsewhere meanwhile.
func (a *loopAccept) pause() { a.watch.Pause() }

// resume ends a pause.
func (a *loopAccept) resume() { a.watch.Resume() }
