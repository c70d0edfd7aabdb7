package backend

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Attempts is one client's conversation with the rule's backends, the
// connect step of its connection, in one place:
//
//  1. pick a backend: by the rule's strategy among the usable ones (the
//     primaries that are up, else the backups) not tried yet;
//  2. open a socket and connect it;
//  3. write the prelude, the bytes the backend must read before the
//     client's relayed ones (see Begin): the header (a PROXY header) in
//     plaintext, then, when the pool speaks TLS, the TLS handshake, then
//     the replay (client bytes sluice read already) through TLS;
//  4. on success hand the backend out, counted as active until Release;
//     on a failure hold it against the backend (unless it was a shortage
//     of sluice's own: see shortageOf) and go back to 1, up to 1+Retries
//     backends.
//
// Two drivers run it. Dial does it all on the caller's goroutine with the
// net package's blocking dials (any backend, any system). An event loop
// that waits for non-blocking connects itself (the relay engine, through
// relay.Dialer) runs it in steps, for a Direct pool on Linux:
//
//	fd, err := a.Next()       // 1 and 2: the connect started
//	...                       // the loop waits until fd is writable
//	b, err := a.Connected(fd) // 3 and 4
//	fd, err = a.Failed(err)   // or 4's failure, then 1 and 2 again
//
// An Attempts belongs to one connection and one goroutine at a time.
type Attempts struct {
	p       *Pool
	client  netip.Addr
	port    uint16 // the client's port's index in the rule's listen range (see Backend.PortFor)
	header  []byte // plaintext, before any TLS
	replay  []byte // the stream's first bytes, through TLS when on
	tried   []*Backend
	first   [2]*Backend // tried's room for the usual one or two
	cur     *Backend    // the backend being connected to, or reserved by the queue
	queued  *waiter     // set once Wait queued them
	curAddr netip.AddrPort
	lastErr error
}

// Begin readies a for a new connection from client. Each backend, once
// connected, gets first the header (a PROXY header; empty: none) as it is,
// then, when the pool speaks TLS (Settings.TLS), the TLS handshake, then
// the replay (the client's bytes that sluice read before it chose the
// backend; empty: none) as the first bytes of the stream, inside TLS when
// on. A failure of any of these is a failed connect. Neither slice is
// modified or kept past the connect.
func (p *Pool) Begin(a *Attempts, client netip.Addr, header, replay []byte) {
	*a = Attempts{p: p, client: client, header: header, replay: replay}
	a.tried = a.first[:0]
}

// AtPort says that the client came in on port i of the rule's listen range
// (from 0, its first port): a backend with a range of ports is connected
// on its port i (see Backend.PortFor). Call it after Begin; without it,
// every backend is connected on its first port.
func (a *Attempts) AtPort(i uint16) { a.port = i }

// Dial runs the attempts with blocking dials, each bounded by the rule's
// connect timeout (the prelude, TLS handshake included, by another), and
// returns the connection (a *tls.Conn when the pool speaks TLS)
// and its backend, whose Release must be called once when the connection
// ends. With no usable backend it fails at once with an error wrapping
// ErrNoBackend. Errors name the backend and the cause. A dial cut short by
// ctx, or failed for a shortage of this host's (see shortageOf), is not
// held against the backend; when no socket can be opened at all Dial gives
// up at once with an error wrapping OpenError.
func (a *Attempts) Dial(ctx context.Context) (net.Conn, *Backend, error) {
	for {
		b, err := a.next()
		if err != nil {
			return nil, nil, err
		}
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if t := a.p.connectTimeout; t > 0 {
			dctx, cancel = context.WithTimeout(ctx, t)
		}
		conn, err := b.dial(dctx, a.client, b.PortFor(a.port))
		cancel()
		if err == nil {
			if conn, err = a.start(ctx, conn); err == nil {
				return conn, a.succeeded(), nil
			}
			err = a.describe(err)
		}
		if ctx.Err() != nil {
			a.Abandon()
			return nil, nil, fmt.Errorf("rule %q: %w", a.p.rule, err)
		}
		if shortageOf(err) == shortOfSockets {
			return nil, nil, a.starved(err)
		}
		a.failed(err)
	}
}

// start writes the prelude to a backend connection just dialed, all of it
// within the connect timeout: the header, the TLS handshake when the pool
// speaks TLS, the replay. It returns the connection to relay on, or the
// error (a *net.OpError) with conn closed.
func (a *Attempts) start(ctx context.Context, conn net.Conn) (net.Conn, error) {
	if len(a.header) == 0 && len(a.replay) == 0 && a.p.tls == nil {
		return conn, nil
	}
	if t := a.p.connectTimeout; t > 0 {
		conn.SetDeadline(time.Now().Add(t))
	}
	var err error
	if len(a.header) > 0 {
		_, err = conn.Write(a.header)
	}
	up := conn
	if err == nil && a.p.tls != nil {
		up, err = a.p.handshake(ctx, conn, a.cur, a.p.observeTLS)
	}
	if err == nil && len(a.replay) > 0 {
		_, err = up.Write(a.replay)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return up, nil
}

// Next picks the next backend and starts a non-blocking connect to it,
// returning the socket, which is the caller's to close. A connect that
// fails at once counts as a failed attempt, and the next backend is tried.
// Once 1+Retries backends have failed, or none is usable, it returns the
// error, worded as Dial's. When no socket can be opened at all it gives up
// at once with an error wrapping OpenError (see shortageOf). Use it only
// when the pool is Direct.
func (a *Attempts) Next() (int, error) {
	for {
		b, err := a.next()
		if err != nil {
			return -1, err
		}
		addr, _ := b.Literal(a.port)
		a.curAddr = addr
		o, err := a.p.tcpOrigin(a.client, addr.Addr())
		if err != nil {
			a.failed(a.describe(err))
			continue
		}
		fd, err := connectSocket(addr, a.p.congestion.For(addr.Addr()), o)
		if err == nil {
			return fd, nil
		}
		if shortageOf(err) == shortOfSockets {
			return -1, a.starved(fmt.Errorf("backend %s: %w", b.cfg.Address, err))
		}
		a.failed(a.describe(err))
	}
}

// Connected is told that the connect of socket fd, from Next or Failed,
// has succeeded. It writes the prelude (header, then replay: a Direct pool
// has no TLS) and ends the attempts with the current backend, whose
// Release must be called once when the connection ends. When the prelude
// cannot be written at once (fd's send buffer is empty, so it goes whole
// or not at all, in one send) the connect has failed after all: it returns
// the error, for the caller to pass on to Failed.
func (a *Attempts) Connected(fd int) (*Backend, error) {
	prelude := a.header
	if len(a.replay) > 0 {
		prelude = append(a.header[:len(a.header):len(a.header)], a.replay...)
	}
	if len(prelude) > 0 {
		if err := sendPrelude(fd, prelude); err != nil {
			return nil, &net.OpError{Op: "write", Net: "tcp", Addr: net.TCPAddrFromAddrPort(a.curAddr), Err: err}
		}
	}
	return a.succeeded(), nil
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
	if b := a.cur; b != nil { // reserved for them by the queue (Wait)
		a.tried = append(a.tried, b)
		return b, nil
	}
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
// package's dialer does, naming the backend: err is a connect's error, or
// a *net.OpError already (the prelude's write).
func (a *Attempts) describe(err error) error {
	if _, ok := err.(*net.OpError); !ok {
		err = &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(a.curAddr), Err: err}
	}
	return fmt.Errorf("backend %s: %w", a.cur.cfg.Address, err)
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

// succeeded ends the attempts with the current backend connected and
// returns it.
func (a *Attempts) succeeded() *Backend {
	b := a.cur
	a.cur = nil
	a.header, a.replay = nil, nil // written: the connection keeps no copy for its life
	b.ctr.total.Add(1)
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
// an empty host, meaning 127.0.0.1) and the pool speaks no TLS: nothing to
// resolve, no unix path and no handshake, so that Attempts can connect
// without waiting on anything but the socket.
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
