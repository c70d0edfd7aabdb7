package tcp

import (
	"errors"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/access"
	"sluice/internal/relay"
)

// The direct path's route step (see peek.go): the client socket, a bare
// descriptor, waits in the parker's epoll set; each wake-up reads what is
// there without blocking, on the parker's loop or a timer's goroutine,
// and either chooses the route and starts the connection on the engine as
// the accept loop would (connect), or waits again for the rest of the
// peek timeout. A wait that the parker cannot take is the net package's
// path's (awaitPeek).

// direct reports whether the rule's connections may be set up on the
// engine's loops: every backend of a plain rule's pool is an IP address,
// and the rule does not terminate TLS (crypto/tls needs a net.Conn); a
// routed rule's wait needs the parker (its route decides the rest once
// chosen).
func (s *Service) direct(rule *Rule) bool {
	if rule.routed() {
		return s.deps.Parker != nil
	}
	return rule.TLS == nil && rule.Pool.Direct()
}

// awaitPeekDirect sets a routed client of the direct path waiting for its
// first bytes, until the peek timeout from accept. Should the parker
// refuse its socket, the client waits on the net package's path instead.
func (s *Service) awaitPeekDirect(cn *conn, l *listening) {
	wait := time.Until(cn.start.Add(cn.rule.peekTimeout()))
	if s.deps.Parker.Await(fdConn(cn.fd), max(wait, 0), func() { s.peekDirect(cn, l, relay.Loop{}) }) {
		return
	}
	if s.toConn(cn) {
		s.awaitPeek(cn)
	}
}

// peekDirect reads what the client has sent, at accept on the engine loop
// at (a client that sends at once needs no wait in the parker), or once
// its socket was ready or its time is up (at is zero then), and takes the
// connection on: waiting again, to its route, or to its end. It must not
// block.
func (s *Service) peekDirect(cn *conn, l *listening, at relay.Loop) {
	if cn.rt == nil {
		cn.rt = &routing{}
	}
	rt := cn.rt
	for {
		room := rt.peekRoom(&s.peekBufs)
		n, err := unix.Read(cn.fd, room)
		switch {
		case err == nil && n > 0:
			rt.peeked = rt.peeked[:len(rt.peeked)+n]
			if rt.judge(cn.rule, false) {
				s.routeDirect(cn, l, at)
				return
			}
			if n == len(room) {
				continue // maybe more waiting behind it
			}
			// A short read drained the socket: wait for the rest.
		case err == nil: // EOF
			rt.judge(cn.rule, true)
			s.routeDirect(cn, l, at)
			return
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			unix.Close(cn.fd)
			s.finish(cn, relay.Result{End: access.Reset, Err: os.NewSyscallError("read", err)})
			return
		}
		if !time.Now().Before(cn.start.Add(cn.rule.peekTimeout())) {
			rt.timedOut(cn.rule)
			s.routeDirect(cn, l, at)
			return
		}
		s.awaitPeekDirect(cn, l)
		return
	}
}

// routeDirect takes a connection whose route step is over to its route's
// backends: on the engine when its pool allows, else on the net package's
// path; or refuses it when it has no route. A relay on the engine stays
// on the loop at when the route was chosen there.
func (s *Service) routeDirect(cn *conn, l *listening, at relay.Loop) {
	if !s.routeOrRefuse(cn) {
		return
	}
	if cn.terminator() != nil {
		if s.toConn(cn) {
			s.awaitHandshake(cn)
		}
		return
	}
	if cn.pool().Direct() {
		if err := s.connect(cn, l, at); err != nil && l.direct != nil {
			l.direct.shortage(err)
		}
		return
	}
	if s.toConn(cn) {
		s.spawn(func() {
			s.takeSetup(cn)
			s.dial(cn)
		})
	}
}

// toConn turns cn's client socket into a net.Conn, for the net package's
// path, and reports whether it could; if not, cn has ended.
func (s *Service) toConn(cn *conn) bool {
	f := os.NewFile(uintptr(cn.fd), "")
	c, err := net.FileConn(f) // a duplicate
	f.Close()
	if err != nil {
		s.finish(cn, relay.Result{End: access.ConnectFailed, Err: err})
		return false
	}
	cn.c, cn.fd, cn.onLoop = c, -1, false
	return true
}

// fdConn is a bare socket descriptor as the parker's Await takes it.
type fdConn int

// Control runs f on the descriptor.
func (fd fdConn) Control(f func(fd uintptr)) error {
	f(uintptr(fd))
	return nil
}

// Read is not used by the parker.
func (fdConn) Read(func(fd uintptr) bool) error { return errors.ErrUnsupported }

// Write is not used by the parker.
func (fdConn) Write(func(fd uintptr) bool) error { return errors.ErrUnsupported }
