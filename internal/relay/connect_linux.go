package relay

import (
	"os"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/access"
	"sluice/internal/epoll"
	"sluice/internal/rawsock"
)

// timeout is a connect timer's request to its loop.
type timeout struct {
	ec  *engineConn
	gen uint32
}

// errConnectTimeout is what a connect that ran out of time reports, as the
// net package's dialer does.
var errConnectTimeout = os.ErrDeadlineExceeded

// armConnect starts the connect timer of the socket cs waits for, if it
// has a timeout. The timer finds the relay's loop through r, so it may be
// armed before the relay is on one.
func (r *Relay) armConnect(cs *connectState) {
	if cs.Timeout <= 0 {
		return
	}
	gen := cs.gen
	cs.timer = time.AfterFunc(cs.Timeout, func() {
		r.mu.Lock()
		ec := r.ec
		r.mu.Unlock()
		if ec != nil {
			ec.loop.postTimeout(timeout{ec, gen})
		}
	})
}

// postTimeout asks the loop to fail a connect that ran out of time.
func (l *loop) postTimeout(t timeout) {
	l.request(func() { l.timeouts = append(l.timeouts, t) })
}

// connectTimedOut fails ec's connect if the socket a timer was for is still
// the one connecting.
func (ec *engineConn) connectTimedOut(gen uint32) {
	if ec.finished || ec.connecting == nil || ec.connecting.gen != gen {
		return
	}
	ec.connectFailed(errConnectTimeout)
}

// checkConnect looks at the backend socket of a connecting relay once an
// event came for it, and reports whether the relay is connected now: the
// socket's connect succeeded and its Dialer took it (see Dialer.Connected).
// A failure goes on as connectFailed.
func (ec *engineConn) checkConnect() bool {
	if !ec.writable[1] {
		return false
	}
	var soerr unix.Errno
	var err error
	if ec.troubled {
		soerr, err = sysSocketError(ec.fd[1])
	}
	switch {
	case err != nil:
		ec.connectFailed(os.NewSyscallError("getsockopt", err))
		return false
	case soerr == unix.EINPROGRESS || soerr == unix.EALREADY:
		ec.writable[1] = false
		return false
	case soerr != 0:
		ec.connectFailed(os.NewSyscallError("connect", soerr))
		return false
	}
	cs := ec.connecting
	if cs.timer != nil {
		cs.timer.Stop()
	}
	if err := cs.Dialer.Connected(ec.fd[1]); err != nil {
		ec.connectFailed(err)
		return false
	}
	ec.connecting = nil
	// The idle limit counts from now: the time spent connecting was not
	// the client's silence.
	ec.r.touch()
	ec.r.armIdleTimer()
	return true
}

// connectFailed asks the Dialer for the next backend socket after a failed
// connect, and waits for that one; or it ends the relay.
func (ec *engineConn) connectFailed(err error) {
	cs := ec.connecting
	if cs.timer != nil {
		cs.timer.Stop()
	}
	next, fail := cs.Dialer.Failed(err)
	if fail != nil {
		ec.r.setEnd(access.ConnectFailed, fail)
		ec.close(false)
		return
	}
	if err := ec.loop.swapBackend(ec, next); err != nil {
		ec.r.setEnd(access.ConnectFailed, err)
		ec.close(false)
		return
	}
	cs.gen++
	ec.r.armConnect(cs)
}

// swapBackend replaces ec's backend socket by next, closing the old one.
func (l *loop) swapBackend(ec *engineConn, next int) error {
	old := ec.fd[1]
	ec.fd[1], ec.r.fds[1] = next, next
	sysClose(old) // also takes it out of the epoll set
	ec.readable[1], ec.writable[1], ec.finPending[1], ec.troubled = false, false, false, false
	ev := epoll.Keyed(unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET, ec.id|1)
	return l.ep.Add(next, &ev)
}

// takeFirst makes the First bytes of cs, if any, f's chunk, as if read
// from the client, with f.given set: once connected, f writes them before
// it reads (see engineConn.pump), and a failed connect leaves them waiting
// for the next socket, as nothing is written before one connects.
func (f *flow) takeFirst(cs *connectState) {
	if cs == nil || cs.first == nil {
		return
	}
	f.c = chunk{buf: cs.first, n: len(*cs.first)}
	f.given = true
	cs.first = nil
}

// closeFD closes a socket the relay owns, with a reset when asked; a
// negative fd was closed already.
func closeFD(fd int, reset bool) {
	if fd < 0 {
		return
	}
	if reset {
		rawsock.ResetClose(fd)
		return
	}
	sysClose(fd)
}
