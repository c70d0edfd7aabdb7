package udp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sluice/internal/access"
	"sluice/internal/admit"
	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/rawsock"
)

// Bounds on the datagrams a session queues while its socket is being set up
// (its backend's name resolved). The first datagram is always kept.
const (
	maxPending      = 64
	maxPendingBytes = 256 << 10
)

// session is one client's traffic through one backend socket, or, with
// refusal set, a refused client remembered so its datagrams are dropped.
type session struct {
	svc     *Service
	m       *member // whose socket the client's datagrams arrive on; nil for the pause's refusal
	rs      *ruleState
	key     peer
	name    string // the client as logged
	start   time.Time
	born    int64         // service clock at creation
	timeout time.Duration // idle limit; for a refusal, how long it is remembered

	refusal    access.End // non-empty: the end of a refusal's access line
	refusalErr error

	backend *backend.Backend
	ticket  admit.Ticket
	entry   conntrack.Entry

	last    atomic.Int64 // service clock of the last datagram either way
	ready   atomic.Bool  // up is set; datagrams go straight to it
	replied atomic.Bool  // the backend has replied
	up      sender       // the backend socket, once ready
	traffic counters
	dropped atomic.Int64
	// sending is held (read) by a forward from its send to its count, and
	// (write) by finish before it reads the counts: a datagram the backend
	// has is in the access line, however late the forwarding goroutine runs.
	sending sync.RWMutex

	mu sync.Mutex // guards the following fields
	// owned: the plane holds the session's backend socket (conn for
	// goPlane, fd for loopPlane), so the plane closes it and finishes the
	// session once it has ended.
	owned        bool
	conn         *net.UDPConn
	fd           int
	pending      [][]byte
	pendingBytes int
	ended        bool
	end          access.End
	endErr       error
}

// BytesUp returns the bytes passed from the client to the backend so far.
func (ss *session) BytesUp() int64 { return ss.traffic.upBytes.Load() }

// BytesDown returns the bytes passed from the backend to the client so far.
func (ss *session) BytesDown() int64 { return ss.traffic.downBytes.Load() }

// forward passes the client's datagrams b.idx on to the backend, or queues
// them while the backend socket is being set up. A refusal drops them.
func (ss *session) forward(b *batch, now int64) {
	if ss.refusal != "" {
		ss.drop(len(b.idx))
		return
	}
	ss.last.Store(now)
	if !ss.ready.Load() && ss.queue(b) {
		return
	}
	ss.sending.RLock()
	sent, bytes, err := ss.up.send(b, nil, false)
	ss.count(true, sent, bytes, len(b.idx))
	ss.sending.RUnlock()
	if err != nil && unreachable(err) {
		ss.fail(err)
	}
}

// count adds a send's datagrams and bytes (up: client→backend) to the
// session's, the service's and the rule's counters, and what was not sent
// of tried to the drops.
func (ss *session) count(up bool, sent, bytes, tried int) {
	mine, all, rule := &ss.traffic, &ss.m.totals, ss.rs.down
	if up {
		rule = ss.rs.up
	}
	for _, c := range [...]*counters{mine, all} {
		if up {
			c.upDgrams.Add(int64(sent))
			c.upBytes.Add(int64(bytes))
		} else {
			c.downDgrams.Add(int64(sent))
			c.downBytes.Add(int64(bytes))
		}
	}
	rule.Add(int64(bytes))
	ss.drop(tried - sent)
}

// drop counts n datagrams that were not passed on.
func (ss *session) drop(n int) {
	if n > 0 {
		ss.dropped.Add(int64(n))
		ss.svc.dropped.Add(int64(n))
	}
}

// queue keeps copies of b.idx until the backend socket is ready, and
// reports false when it is ready after all and the caller must send.
func (ss *session) queue(b *batch) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.ready.Load() {
		return false
	}
	for _, i := range b.idx {
		n := b.lens[i]
		if ss.ended || (len(ss.pending) > 0 && (len(ss.pending) >= maxPending || ss.pendingBytes+n > maxPendingBytes)) {
			ss.drop(1)
			continue
		}
		ss.pending = append(ss.pending, append([]byte(nil), b.bufs[i][:n]...))
		ss.pendingBytes += n
	}
	return true
}

// resolve returns the address of the session's backend, resolving its name
// within the rule's connect timeout.
func (ss *session) resolve() (netip.AddrPort, error) {
	ctx := ss.svc.ctx
	if timeout := ss.rs.rule.ConnectTimeout; timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return ss.backend.ResolveAddr(ctx, ss.rs.rule.Index)
}

// origin returns how the session's backend socket towards addr is set
// up: from the rule's source (the client's own address and port, when it
// is the client's) with the rule's mark. The error wraps
// backend.ErrSourceFamily when that source cannot reach addr.
func (ss *session) origin(addr netip.AddrPort) (rawsock.Origin, error) {
	return ss.rs.rule.Pool.Origin(ss.key.client(), addr.Addr())
}

// dial opens the session's backend socket through the net package (the
// portable plane), connected to addr and set up as origin says. A source
// port in use (the client's own, taken on this host) is left to the
// kernel.
func (ss *session) dial(addr netip.AddrPort) (*net.UDPConn, error) {
	o, err := ss.origin(addr)
	if err != nil {
		return nil, err
	}
	for {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var err error
			if cerr := rc.Control(func(fd uintptr) { err = o.SetOptions(int(fd)) }); cerr != nil {
				return cerr
			}
			return err
		}}
		if o.Local.IsValid() {
			d.LocalAddr = net.UDPAddrFromAddrPort(o.Local)
		}
		c, err := d.Dial("udp", addr.String())
		if errors.Is(err, syscall.EADDRINUSE) && o.Local.Port() != 0 {
			o.Local = netip.AddrPortFrom(o.Local.Addr(), 0)
			continue
		}
		if err != nil {
			return nil, err
		}
		return c.(*net.UDPConn), nil
	}
}

// setupFailed ends a session whose socket could not be set up. A name that
// did not resolve (blame) counts against the backend, unless a drain cut
// the setup short; a socket sluice could not open (out of descriptors, say)
// does not (see openFailed).
func (ss *session) setupFailed(err error, blame bool) {
	if ss.stop(access.ConnectFailed, err) && blame && ss.svc.ctx.Err() == nil {
		ss.backend.ReportFailure(err)
	}
}

// replyArrived notes traffic from the backend at now; the first reply
// counts as a successful connect for the backend's health.
func (ss *session) replyArrived(now int64) {
	ss.last.Store(now)
	if !ss.replied.Load() {
		ss.replied.Store(true)
		ss.backend.ReportSuccess()
	}
}

// fail ends the session after a socket error: connect-failed when the
// backend never replied, reset otherwise. An ICMP unreachable counts
// against the backend's health.
func (ss *session) fail(err error) {
	end := access.Reset
	if !ss.replied.Load() {
		end = access.ConnectFailed
	}
	if ss.stop(end, err) && unreachable(err) {
		ss.backend.ReportFailure(err)
	}
}

// stop ends the session with end (the first end given wins): the client's
// next datagram opens a new session, and the plane closes the backend
// socket and finishes the session. It reports whether this call ended it.
// Safe to call more than once and concurrently.
func (ss *session) stop(end access.End, err error) bool {
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		return false
	}
	ss.ended, ss.end, ss.endErr = true, end, err
	owned := ss.owned
	ss.drop(len(ss.pending))
	ss.pending = nil
	ss.mu.Unlock()
	ss.svc.forget(ss)
	if owned {
		ss.m.plane.release(ss)
	}
	return true
}

// finish releases what the session held and writes its access line, or,
// when it found no socket, leaves that to the pause's refusal.
func (ss *session) finish() {
	ss.stop(access.Reset, nil) // in case the plane let go without an end
	svc, rule := ss.svc, ss.rs.rule
	ss.sending.Lock() // a forward between its send and its count finishes first
	svc.deps.Table.Remove(ss.entry.ID, func() { ss.backend.Settle(ss.BytesUp(), ss.BytesDown()) })
	ss.backend.Release()
	ss.ticket.Release()
	rule.Metrics.UDPSessionClosed()
	rule.Metrics.ConnClosed()
	ss.mu.Lock()
	end, err := ss.end, ss.endErr
	ss.mu.Unlock()
	if !svc.fold(ss, err) {
		svc.logAccess(ss, ss.backend.Address().String(), end, err)
	}
	ss.sending.Unlock()
	svc.wg.Done()
}

// logAccess writes the one access line of a finished session or refusal.
func (s *Service) logAccess(ss *session, backendName string, end access.End, err error) {
	t := &ss.traffic
	line := access.Line{
		Rule: ss.rs.rule.Name, Proto: "udp", Client: ss.key.client(), Listen: ss.rs.rule.Port, Backend: backendName,
		Up: t.upBytes.Load(), Down: t.downBytes.Load(),
		Datagrams: &access.Datagrams{Up: t.upDgrams.Load(), Down: t.downDgrams.Load(), Dropped: ss.dropped.Load()},
		Start:     ss.start, End: end, Err: err,
	}
	line.Log(s.deps.AccessLogger)
}
