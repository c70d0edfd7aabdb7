package tcp

import (
	"cmp"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"sluice/internal/admit"
	"sluice/internal/proxyproto"
)

// A trusted sender's connection waits for its PROXY header the way HAProxy's
// accept-proxy does, in the connection's own context: it holds no setup
// slot and, where there is a Parker, no goroutine. Its socket waits in the
// parker's epoll set (relay.Parker.Await) until bytes are there, the peer
// has gone, or the header timeout has passed; only then does a goroutine
// read the header, and only after the header does the connection queue for
// a setup slot to dial, as every other client does. So silent or slow
// senders never keep other clients of the rule waiting, and each costs a
// socket and a few hundred bytes while it waits. A sender that starts a
// header and stalls in the middle holds a goroutine (not a slot) for the
// rest of its timeout.

// DefaultProxyHeaderTimeout bounds the wait for a trusted sender's PROXY
// header, counted from accept, as the specification suggests (at least 3
// seconds).
const DefaultProxyHeaderTimeout = 3 * time.Second

// DefaultMaxPendingHeaders bounds how many connections from one trusted
// sender's address may wait for their PROXY header at once. A sender that
// sends its header with its first segment, as load balancers do, has a
// handful pending at a time even at tens of thousands of connections a
// second; the bound only stops a sender that opens connections and says
// nothing from holding an unbounded share of sluice's descriptors.
const DefaultMaxPendingHeaders = 1024

// proxyHeaderTimeout returns the rule's header timeout.
func (r *Rule) proxyHeaderTimeout() time.Duration {
	return cmp.Or(r.ProxyHeaderTimeout, DefaultProxyHeaderTimeout)
}

// maxPendingHeaders returns the rule's bound on waiting headers per sender.
func (r *Rule) maxPendingHeaders() int {
	return cmp.Or(r.MaxPendingHeaders, DefaultMaxPendingHeaders)
}

// awaitHeader sets a trusted sender's connection waiting for its PROXY
// header, or refuses it (rejected:proxy-pending) when its sender has too
// many waiting already.
func (s *Service) awaitHeader(cn *conn) {
	if !s.pending.add(cn.client.Addr(), cn.rule.maxPendingHeaders()) {
		s.reject(cn, admit.ReasonProxyPending, nil)
		return
	}
	cn.onLoop = false // from here on its own goroutine
	read := func() { s.readProxyHeader(cn) }
	if p := s.deps.Parker; p != nil {
		if rc := syscallConn(cn.c); rc != nil && p.Await(rc, cn.rule.proxyHeaderTimeout(), func() { s.spawn(read) }) {
			return
		}
	}
	s.spawn(read) // no parker: wait in the Go runtime's poller
}

// readProxyHeader reads a trusted sender's PROXY header, whose addresses
// then stand for the client, and carries on with admission and, holding a
// setup slot, the dial. The header must be complete within the rule's
// header timeout from accept.
func (s *Service) readProxyHeader(cn *conn) {
	cn.c.SetReadDeadline(cn.start.Add(cn.rule.proxyHeaderTimeout()))
	h, err := proxyproto.ReadHeader(cn.c)
	cn.c.SetReadDeadline(time.Time{})
	s.pending.done(cn.client.Addr())
	if err != nil {
		s.reject(cn, admit.ReasonProxyProtocol, err)
		return
	}
	if src, dst, ok := h.Endpoints(); ok {
		cn.client, cn.local = src, dst
	}
	if !s.admit(cn) || (cn.rule.routed() && !s.peekConn(cn)) {
		return
	}
	s.takeSetup(cn)
	s.dial(cn)
}

// syscallConn returns the raw socket of a TCP connection, or nil.
func syscallConn(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// pendingHeaders counts, per trusted sender's address, the connections
// waiting for their PROXY header. It holds an entry only for senders with
// some waiting.
type pendingHeaders struct {
	mu sync.Mutex // guards n
	n  map[netip.Addr]int
}

// add counts one more connection from src unless src has limit already,
// and reports whether it did.
func (p *pendingHeaders) add(src netip.Addr, limit int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[src] >= limit {
		return false
	}
	if p.n == nil {
		p.n = make(map[netip.Addr]int)
	}
	p.n[src]++
	return true
}

// done counts out a connection from src whose header wait is over.
func (p *pendingHeaders) done(src netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[src] <= 1 {
		delete(p.n, src)
		return
	}
	p.n[src]--
}

// count returns how many connections from src wait for their header.
func (p *pendingHeaders) count(src netip.Addr) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n[src]
}
