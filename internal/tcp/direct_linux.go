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

// acceptBatch is how many connections one wake-up of the accept loop takes
// before it looks again.
const acceptBatch = 64

// openDirect prepares l for raw accepts: a duplicate of its socket that
// the Go runtime's poller watches for readiness (a listener's own
// SyscallConn cannot wait), closed with the listener. Accepted sockets
// inherit Nagle's algorithm off from the listener, as the net package
// turns it off on each. It does nothing where the engine is missing or l is
// not a TCP listener.
func (s *Service) openDirect(l *listening) {
	rc := l.raw()
	if rc == nil || s.deps.Engine == nil {
		return
	}
	var dup int
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		dup, err = rawsock.Dup(int(fd))
	}); cerr != nil || err != nil {
		return // closed already, or out of descriptors: the net package's path
	}
	l.file = os.NewFile(uintptr(dup), "sluice-listener")
}

// acceptDirect runs l's accept loop on raw accept4 calls; see acceptEach.
func (s *Service) acceptDirect(l *listening) error {
	rc, err := l.file.SyscallConn()
	if err != nil {
		return err
	}
	var failed error
	take := func(fd uintptr) bool {
		for range acceptBatch {
			nfd, client, err := rawsock.Accept(int(fd))
			switch err {
			case nil:
				if err := s.startDirect(nfd, client, l); err != nil {
					failed = err // out of descriptors: back off
					return true
				}
			case unix.EAGAIN:
				return false // wait for the next client
			default:
				failed = &net.OpError{Op: "accept", Net: "tcp", Addr: l.ln.Addr(), Err: os.NewSyscallError("accept4", err)}
				return true
			}
		}
		return true
	}
	return acceptEach(l.ln, func() error {
		failed = nil
		if err := rc.Read(take); err != nil {
			if l.closed.Load() {
				// The os package reports its own close of l.file here as
				// poll.ErrFileClosing ("use of closed file"), which matches
				// neither net.ErrClosed nor os.ErrClosed.
				return net.ErrClosed
			}
			return err
		}
		return failed
	}, s.deps.Logger)
}

// startDirect takes a client socket from the raw accept loop. It returns
// the error when sluice could not open a socket for the connection (to the
// backend, or the duplicate the net package's path needs) for want of
// descriptors or memory: the accept loop then backs off, as when accept
// itself runs short.
func (s *Service) startDirect(fd int, client netip.AddrPort, l *listening) error {
	rule := s.rule.Load()
	if name := rule.Congestion.For(client.Addr()); name != "" && name != l.algorithm() {
		_ = unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
	}
	if s.deps.Engine == nil || rule.Bandwidth != 0 || !rule.Pool.Direct() || trusted(rule.TrustProxy, client.Addr()) {
		return s.startConn(fd, l)
	}
	cn := &conn{rule: rule, fd: fd, client: client, start: time.Now()}
	s.wg.Add(1)
	if !s.admit(cn) {
		return nil
	}
	return s.connect(cn, l)
}

// startConn makes a net.Conn of an accepted socket and takes it down the
// net package's path. When that fails for want of descriptors or memory
// it returns the error, for the accept loop to back off; the client is
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
// it on the engine, which tells cn how each connect went (see dial.go). It
// returns the error, as l's accept error, when no socket could be opened
// for want of descriptors or memory: the accept loop backs off. Any other
// failure closes this client only (connect-failed), and the loop goes on.
func (s *Service) connect(cn *conn, l *listening) error {
	if cn.rule.SendProxy != 0 {
		cn.local, _ = rawsock.LocalAddr(cn.fd)
	}
	cn.beginDial()
	bfd, err := cn.attempts.Next()
	if err != nil {
		unix.Close(cn.fd)
		s.finish(cn, relay.Result{End: access.ConnectFailed, Err: err})
		if oe := (*backend.OpenError)(nil); errors.As(err, &oe) && retryable(oe.Err) {
			return &net.OpError{Op: "accept", Net: "tcp", Addr: l.ln.Addr(), Err: oe.Err}
		}
		return nil // the backends' failure, or the client's: accept the next
	}
	c := relay.Connecting{FD: bfd, Timeout: cn.rule.Pool.ConnectTimeout(), Dialer: cn}
	cn.relay = relay.NewConnecting(cn.fd, c, s.relayOptions(cn))
	// Listed while connecting, with no backend yet: the operator sees it,
	// can close it, and a cut drain stops it.
	s.track(cn, "")
	s.run(cn)
	return nil
}
