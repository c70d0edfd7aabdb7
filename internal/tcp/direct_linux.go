package tcp

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"sluice/internal/access"
	"sluice/internal/backend"
	"sluice/internal/rawsock"
	"sluice/internal/relay"
)

// The direct path: where the engine can carry a rule's connections, the
// accept loop takes client sockets with raw accept4 calls and each
// connection is set up without a goroutine: a non-blocking connect to the
// backend, whose outcome the engine's loop waits for (relay.NewConnecting).
// Neither socket ever becomes a net.Conn, so neither is registered with the
// Go runtime's poller, and no goroutine is woken per connection. Clients
// that need more (a PROXY header to read, a bandwidth limit, a backend to
// resolve or on a unix socket) are handed to the net package's path.

// acceptBatch is how many connections one wake-up of a loop takes from a
// listener before it serves its relays again.
const acceptBatch = 64

// openDirect prepares l for raw accepts on the engine's loops: the rule's
// workers loops watch l's own socket (see loopAccept), and call ended
// when they stop accepting from it. No duplicate is made: one descriptor
// per listening port. The socket stays registered with the Go runtime's
// poller, where no goroutine ever waits for it, and l.close takes it off
// the loops before it closes it, so that no loop accepts from a
// descriptor that is closed, or reused. Accepted sockets inherit Nagle's
// algorithm off from the listener, as the net package turns it off on
// each. It does nothing where the engine is missing or l is not a TCP
// listener, and when the loops cannot watch the socket: the net
// package's path then accepts.
func (s *Service) openDirect(l *listening, workers int, ended func(error)) {
	rc := l.raw()
	if rc == nil || s.deps.Engine == nil {
		return
	}
	fd := -1
	if err := rc.Control(func(sfd uintptr) {
		unix.SetsockoptInt(int(sfd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		fd = int(sfd)
	}); err != nil {
		return // closed already: the net package's path says so
	}
	a := newLoopAccept(fd, l.ln.Addr(), s.deps.Logger, ended)
	a.watch = s.deps.Engine.Watch(fd, workers, func(at relay.Loop) { s.acceptOn(l, at) })
	l.direct = a
	if err := a.watch.Start(); err != nil {
		l.direct = nil
		a.watch.Close()
	}
}

// acceptError is err, from accept4 or from setting a connection up, as
// l's accept error.
func acceptError(l *listening, err error) error {
	if oe := (*net.OpError)(nil); errors.As(err, &oe) {
		return err
	}
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.ln.Addr(), Err: os.NewSyscallError("accept4", err)}
}

// startDirect takes a client socket accepted on the engine loop at. It
// returns the error when sluice could not open a socket for the
// connection (to the backend, or the duplicate the net package's path
// needs) for want of descriptors or memory: the listener then backs off,
// as when accept itself runs short.
func (s *Service) startDirect(fd int, client netip.AddrPort, l *listening, at relay.Loop) error {
	rule := s.rule.Load()
	if name := rule.Congestion.For(client.Addr()); name != "" && name != l.algorithm() {
		_ = unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
	}
	if s.deps.Engine == nil || rule.Bandwidth != 0 || !s.direct(rule) || trusted(rule.TrustProxy, client.Addr()) {
		return s.startConn(fd, l)
	}
	cn := &conn{rule: rule, fd: fd, client: client, port: l.port, start: time.Now(), onLoop: true}
	s.wg.Add(1)
	if !s.admit(cn) {
		return nil
	}
	if rule.routed() {
		s.peekDirect(cn, l, at)
		return nil
	}
	return s.connect(cn, l, at)
}

// startConn makes a net.Conn of an accepted socket and takes it down the
// net package's path. When that fails for want of descriptors or memory
// it returns the error, for the listener to back off; the client is
// closed either way.
func (s *Service) startConn(fd int, l *listening) error {
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f) // a duplicate
	f.Close()
	if err != nil {
		err = &net.OpError{Op: "accept", Net: "tcp", Addr: l.ln.Addr(), Err: err}
		if retryable(err) {
			return err
		}
		s.deps.Logger.Warn("cannot take a connection", "listen", l.ln.Addr().String(), "error", err.Error())
		return nil
	}
	s.start(c, l)
	return nil
}

// connect starts the connection to a backend and the relay that waits for
// it on the engine loop at, which tells cn how each connect went (see
// dial.go). It returns the error, as l's accept error, when no socket
// could be opened for want of descriptors or memory: the listener backs
// off. Any other
// failure closes this client only (connect-failed), and the loop goes on.
func (s *Service) connect(cn *conn, l *listening, at relay.Loop) error {
	if cn.sendProxy() != 0 {
		cn.local, _ = rawsock.LocalAddr(cn.fd)
	}
	cn.beginDial(true)
	return s.connectNext(cn, l, at)
}

// connectNext is connect once the dial has begun: it connects to the next
// backend, reserved by the queue or picked now, or puts cn in the queue
// when every backend is full (see queue.go).
func (s *Service) connectNext(cn *conn, l *listening, at relay.Loop) error {
	bfd, err := cn.attempts.Next()
	if errors.Is(err, backend.ErrFull) {
		if !s.queueDirect(cn, l) {
			return nil // waiting, or ended
		}
		bfd, err = cn.attempts.Next()
	}
	if err != nil {
		unix.Close(cn.fd)
		s.finish(cn, relay.Result{End: access.ConnectFailed, Err: err})
		if oe := (*backend.OpenError)(nil); errors.As(err, &oe) && retryable(oe.Err) {
			return &net.OpError{Op: "accept", Net: "tcp", Addr: l.ln.Addr(), Err: oe.Err}
		}
		return nil // the backends' failure, or the client's: accept the next
	}
	var first []byte
	if cn.rt != nil {
		first = cn.rt.handOver(&s.peekBufs) // the relay's: dropped once written
	}
	c := relay.Connecting{FD: bfd, Timeout: cn.pool().ConnectTimeout(), Dialer: cn, First: first}
	opts := s.relayOptions(cn)
	opts.Loop = at // relayed where it was accepted
	cn.relay = relay.NewConnecting(cn.fd, c, opts)
	// Listed while connecting, with no backend yet: the operator sees it,
	// can close it, and a cut drain stops it.
	s.track(cn, nil)
	cn.onLoop = false // from here its relay reports its end on a goroutine
	s.run(cn)
	return nil
}
