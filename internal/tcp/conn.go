package tcp

import (
	"net"
	"net/netip"
	"time"

	"sluice/internal/access"
	"sluice/internal/admit"
	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/rawsock"
	"sluice/internal/relay"
)

// conn is one client connection on its way through the service: who it is
// from, what admitted it, and, once dialed, its relay. Allocated once.
type conn struct {
	rule    *Rule
	c       net.Conn       // nil on the direct path, which has fd instead
	fd      int            // the client socket on the direct path
	client  netip.AddrPort // the real client: from the PROXY header if trusted
	local   netip.AddrPort // the address the client connected to
	port    uint16         // the port of the listener it came in on; 0: a unix listener
	start   time.Time
	ticket  admit.Ticket
	inSetup bool // holds one of the service's setup slots
	// onLoop is set while an engine loop sets the connection up: an end
	// that comes there (a refusal, no backend socket) is logged on a
	// goroutine, as the loop must not block.
	onLoop   bool
	admitted bool // counted in the rule's connection metrics
	backend  *backend.Backend
	entry    conntrack.Entry
	counters relay.Counters
	relay    *relay.Relay
	// The dial step's (see dial.go): the backends tried, and when the
	// first connect began.
	attempts backend.Attempts
	began    time.Time
	// rt is a routed rule's route step (see peek.go); nil on a rule
	// without routes, so that their connections stay as small.
	rt *routing
}

// start takes a new connection from the accept loop. Clients that must send
// a PROXY header wait for it apart (see awaitHeader); the others are
// admitted here, so a refused client costs no goroutine at all.
func (s *Service) start(c net.Conn, l *listening) {
	cn := &conn{rule: s.rule.Load(), c: c, port: l.port, start: time.Now(), onLoop: l.direct != nil}
	cn.client, cn.local = addrPort(c.RemoteAddr()), addrPort(c.LocalAddr())
	if name := cn.rule.Congestion.For(cn.client.Addr()); name != "" && name != l.algorithm() {
		setCongestion(c, name)
	}
	s.wg.Add(1)
	if trusted(cn.rule.TrustProxy, cn.client.Addr()) {
		s.awaitHeader(cn)
		return
	}
	if !s.admit(cn) {
		return
	}
	cn.onLoop = false
	switch {
	case cn.rule.routed():
		s.awaitPeek(cn)
	case cn.rule.TLS != nil:
		s.awaitHandshake(cn)
	default:
		s.setUp(cn, l)
	}
}

// setUp dials cn's backend on a goroutine once cn holds a setup slot.
// The net package's accept loop waits for the slot itself. An engine's
// loop must not block: a connection that finds no slot free waits on a
// goroutine of its own, and the listener is paused on every loop until it
// has one, so that new clients wait in the kernel's accept queue as
// before.
func (s *Service) setUp(cn *conn, l *listening) {
	if l.direct == nil {
		s.takeSetup(cn)
		s.spawn(func() { s.dial(cn) })
		return
	}
	select {
	case s.setups <- struct{}{}:
		cn.inSetup = true
		s.spawn(func() { s.dial(cn) })
	default:
		l.direct.pause()
		s.spawn(func() {
			s.takeSetup(cn)
			l.direct.resume()
			s.dial(cn)
		})
	}
}

// maxSetups bounds the connections of a service that are dialing a backend
// on the net package's path. Past it the accept loop waits and new clients
// wait in the kernel's accept queue: a burst of thousands of connects then
// costs a few hundred goroutines at a time, not thousands of goroutine
// stacks at once. A trusted sender's connection takes its slot only once
// its PROXY header is in, waiting in its own goroutine rather than in the
// accept loop.
const maxSetups = 256

// takeSetup waits for a setup slot for cn.
func (s *Service) takeSetup(cn *conn) {
	s.setups <- struct{}{}
	cn.inSetup = true
}

// setupDone gives cn's setup slot back, if it holds one.
func (s *Service) setupDone(cn *conn) {
	if cn.inSetup {
		cn.inSetup = false
		<-s.setups
	}
}

// admit applies the rule's access lists and limits. A refused client is
// closed at once with a reset and logged.
func (s *Service) admit(cn *conn) bool {
	if cn.rule.Gate == nil {
		cn.admitted = true
		cn.rule.Metrics.ConnOpened()
		return true
	}
	ticket, reason := cn.rule.Gate.Admit(cn.client.Addr())
	if reason != "" {
		s.reject(cn, reason, nil)
		return false
	}
	cn.ticket = ticket
	cn.admitted = true
	cn.rule.Metrics.ConnOpened()
	return true
}

// reject closes a refused client and writes its access line.
func (s *Service) reject(cn *conn, reason access.Reason, err error) {
	if cn.c == nil {
		rawsock.ResetClose(cn.fd)
	} else {
		if tc, ok := cn.c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		cn.c.Close()
	}
	cn.rule.Metrics.Rejected(reason)
	s.finish(cn, relay.Result{End: access.Rejected(reason), Err: err})
}

// run starts cn's relay, listed in the table already: at once to its end
// when a drain is cutting connections. At the end a connection that never
// connected lets go of the backend it was trying.
func (s *Service) run(cn *conn) {
	if s.relaying != nil {
		s.relaying(cn)
	}
	if s.cutting.Load() {
		cn.relay.Stop(access.Drained) // before Start is fine: it ends at once
	}
	cn.relay.Start(func(res relay.Result) {
		if cn.backend == nil {
			cn.attempts.Abandon()
		}
		s.deps.Table.Remove(cn.entry.ID, cn.settle)
		s.finish(cn, res)
	})
}

// relayOptions returns the options of cn's relay under its rule.
func (s *Service) relayOptions(cn *conn) relay.Options {
	rule := cn.rule
	bytesUp, bytesDown := rule.Metrics.Bytes()
	return relay.Options{
		IdleTimeout:      rule.IdleTimeout,
		HalfCloseTimeout: rule.DrainTimeout,
		Bandwidth:        rule.Bandwidth,
		Pools:            s.deps.Pools,
		Parker:           s.deps.Parker,
		Engine:           s.deps.Engine,
		Counters:         &cn.counters,
		RuleUp:           bytesUp,
		RuleDown:         bytesDown,
		Go:               s.spawn,
	}
}

// track lists cn, going to backend b (nil while it connects), in the
// service's table of live connections.
func (s *Service) track(cn *conn, b *backend.Backend) {
	cn.entry = conntrack.Entry{
		ID: s.deps.IDs.Next(), Rule: cn.rule.Name, Proto: "tcp",
		Client: access.ClientName(cn.client), Listen: cn.rule.listenPort(cn.port),
		Since: cn.start, Bytes: &cn.counters,
		Stop: func(reason access.End) { cn.relay.Stop(reason) },
	}
	if b != nil {
		cn.entry.Backend, cn.entry.Tally = b.Address().String(), b.Tally()
	}
	s.deps.Table.Add(&cn.entry)
}

// settle adds cn's bytes to its backend's totals as it leaves the table
// (see conntrack.Table.Remove); a connection that never connected has
// none to add.
func (cn *conn) settle() {
	if cn.backend != nil {
		cn.backend.Settle(cn.counters.Up.Load(), cn.counters.Down.Load())
	}
}

// finish releases what the connection held and writes its access line.
func (s *Service) finish(cn *conn, res relay.Result) {
	s.setupDone(cn)
	if cn.backend != nil {
		cn.backend.Release()
	}
	cn.ticket.Release()
	if cn.admitted {
		cn.rule.Metrics.ConnClosed()
	}
	if cn.onLoop {
		s.spawn(func() {
			s.logAccess(cn, res)
			s.wg.Done()
		})
		return
	}
	s.logAccess(cn, res)
	s.wg.Done()
}

// trusted reports whether addr may send a PROXY header.
func trusted(prefixes []netip.Prefix, addr netip.Addr) bool {
	if !addr.IsValid() {
		return false
	}
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// addrPort returns a TCP address as an AddrPort with IPv4-mapped addresses
// unmapped; zero for unix sockets.
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
