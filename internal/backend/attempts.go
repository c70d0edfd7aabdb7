package backend

import (
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Attempts sets up one client's backend connection in steps: the picks,
// retries on the next backend and health reports of one connection. Dial
// runs them with blocking dials; Next and Failed, with non-blocking
// connects, for a caller that waits for them itself (an event loop).
//
// An Attempts belongs to one connection and one goroutine at a time.
type Attempts struct {
	p       *Pool
	client  netip.Addr
	tried   []*Backend
	first   [2]*Backend // tried's room for the usual one or two
	cur     *Backend    // the backend being connected to
	curAddr netip.AddrPort
	lastErr error
}

// OpenError is the error of Attempts.Next and Pool.Dial when sluice could
// not open a socket at all for want of file descriptors or memory: a
// shortage of its own, not held against any backend. A socket that this
// host cannot open towards one backend (its address family unsupported, a
// security policy) is no OpenError: it is that backend's failed attempt.
type OpenError struct{ Err error }

func (e *OpenError) Error() string { return e.Err.Error() }

// Unwrap returns the system call's error.
func (e *OpenError) Unwrap() error { return e.Err }

// Direct reports whether every backend is a TCP address given by IP (or by
// an empty host, meaning 127.0.0.1): nothing to resolve and no unix path,
// so that Attempts can connect without waiting on anything but the socket.
func (p *Pool) Direct() bool { return p.direct }

// direct reports whether every backend of bs is a TCP IP address.
func direct(bs []*Backend) bool {
	for _, b := range bs {
		if !b.isLiteral {
			return false
		}
	}
	return true
}

// literalAddr returns a's IP address when it is a TCP address that needs
// no resolving.
func literalAddr(a Address) (netip.AddrPort, bool) {
	if a.Network != "tcp" {
		return netip.AddrPort{}, false
	}
	if a.Host == "" {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), a.Port), true
	}
	ip, err := netip.ParseAddr(a.Host)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), a.Port), true
}

// ConnectTimeout is how long one connect may take (Settings.ConnectTimeout;
// zero: no bound).
func (p *Pool) ConnectTimeout() time.Duration { return p.connectTimeout }

// Begin readies a for a new connection from client.
func (p *Pool) Begin(a *Attempts, client netip.Addr) {
	*a = Attempts{p: p, client: client}
	a.tried = a.first[:0]
}

// Next picks the next backend (by the rule's strategy among the usable
// ones not tried yet) and starts a non-blocking connect to it, returning
// the socket, which is the caller's to close. A connect that fails at once
// counts as a failed attempt, and the next backend is tried. Once 1+Retries
// backends have failed, or none is usable, it returns the error, worded as
// Dial's. When no socket can be opened at all it gives up at once with an
// error wrapping OpenError (see shortageOf). Use it only when the pool is
// Direct.
func (a *Attempts) Next() (int, error) {
	for {
		b, err := a.next()
		if err != nil {
			return -1, err
		}
		addr := b.literal
		a.curAddr = addr
		fd, err := connectSocket(addr, a.p.congestion.For(addr.Addr()))
		if err == nil {
			return fd, nil
		}
		if shortageOf(err) == shortOfSockets {
			return -1, a.starved(fmt.Errorf("backend %s: %w", b.cfg.Address, err))
		}
		a.failed(a.describe(err))
	}
}

// Failed ends the current attempt, whose connect failed with err (the
// caller closes its socket), and goes on as Next.
func (a *Attempts) Failed(err error) (int, error) {
	a.failed(a.describe(err))
	return a.Next()
}

// next picks the next backend to try and makes it the current one, or
// returns why there is none: no usable backend at all, or the error of
// the last of 1+Retries failed attempts.
func (a *Attempts) next() (*Backend, error) {
	if len(a.tried) <= a.p.retries {
		b, err := a.p.pick(a.client, a.tried)
		if err == nil {
			a.tried = append(a.tried, b)
			a.cur = b
			return b, nil
		}
		if a.lastErr == nil {
			return nil, err
		}
	}
	if len(a.tried) == 1 {
		return nil, fmt.Errorf("rule %q: %w", a.p.rule, a.lastErr)
	}
	return nil, fmt.Errorf("rule %q: %d backends tried, last: %w", a.p.rule, len(a.tried), a.lastErr)
}

// describe words a failed connect of the current attempt as the net
// package's dialer does, naming the backend.
func (a *Attempts) describe(err error) error {
	return fmt.Errorf("backend %s: %w", a.cur.cfg.Address, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(a.curAddr), Err: err})
}

// failed ends the current attempt with err, which names its backend:
// it counts against the backend unless it is a shortage (see shortageOf),
// and the backend is let go.
func (a *Attempts) failed(err error) {
	b := a.cur
	a.cur = nil
	b.Release()
	if Blames(err) {
		b.ReportFailure(err)
	}
	a.lastErr = err
	if len(a.tried) <= a.p.retries {
		a.p.logger.Debug("connect failed, trying next backend", "rule", a.p.rule, "error", err)
	}
}

// Succeeded ends the attempts with the current backend connected and
// returns it; its Release must be called once when the connection ends.
func (a *Attempts) Succeeded() *Backend {
	b := a.cur
	a.cur = nil
	b.ReportSuccess()
	return b
}

// Abandon lets the current backend go without holding anything against
// it: the connection ended before its connect did.
func (a *Attempts) Abandon() {
	if a.cur != nil {
		a.cur.Release()
		a.cur = nil
	}
}
