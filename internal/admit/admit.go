// Package admit decides, before any dial, whether a new client connection or
// UDP session may proceed under a rule's admission policy: CIDR allow and
// deny lists, a cap on live connections, a cap on live connections per client
// IP and a per-IP rate of new connections.
//
// One Gate serves one rule. It holds a single mutex, starts no goroutines and,
// once warm, allocates nothing on Admit or Release for a returning client.
package admit

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/access"
)

// Policy is a rule's admission settings. Every zero value means "no limit".
//
// Client addresses are normalised before any check: an IPv4-mapped IPv6
// address (::ffff:1.2.3.4) is treated as the IPv4 address it carries and an
// IPv6 zone is dropped. Prefixes are normalised the same way (::ffff:0:0/104
// is 0.0.0.0/8) and masked, so host bits are ignored. An IPv6 prefix shorter
// than /96 never matches an IPv4 client; in particular ::/0 means "every IPv6
// client", not "everyone". An invalid prefix matches no one, so a list that
// holds only invalid prefixes fails closed for Allow.
//
// The zero netip.Addr stands for a client without an IP address (a unix
// socket peer). Such a client is never subject to Allow, Deny,
// MaxConnectionsPerIP or RatePerIP, but it does count toward MaxConnections.
type Policy struct {
	// Allow lists the clients that may connect. Empty: every client may.
	Allow []netip.Prefix
	// Deny lists clients that are refused. Deny wins over Allow.
	Deny []netip.Prefix
	// MaxConnections caps the rule's live connections (or UDP sessions).
	// Zero or negative: unlimited.
	MaxConnections int
	// MaxConnectionsPerIP caps the live connections of one client IP.
	// Zero or negative: unlimited.
	MaxConnectionsPerIP int
	// RatePerIP is how many new connections per second one client IP may
	// open, enforced as a token bucket that refills at RatePerIP tokens per
	// second and holds at most max(1, ceil(RatePerIP)) tokens, starting full.
	// Zero, negative, NaN, +Inf or above 1e9: unlimited.
	RatePerIP float64
	// PerIPPrefixV6 is how many leading bits of an IPv6 client address
	// the per-IP limits count by: 64 makes every address of a /64 (what
	// one site or device is usually given) one client. Outside 1 to 128:
	// 128, the whole address. IPv4 clients always count by their address.
	PerIPPrefixV6 int
}

// The reasons a client may be refused: the <reason> of the access line's
// "rejected:<reason>" and the reason label of sluice_rejected_total (see
// access.Reason). Admit returns the empty reason when it admits.
const (
	// ReasonDenied: the client matched Deny, or Allow is set and the client
	// matched none of it.
	ReasonDenied access.Reason = "denied"
	// ReasonMaxConnections: the rule already has MaxConnections live.
	ReasonMaxConnections access.Reason = "max-connections"
	// ReasonMaxConnectionsPerIP: the client IP already has
	// MaxConnectionsPerIP live.
	ReasonMaxConnectionsPerIP access.Reason = "max-connections-per-ip"
	// ReasonRateLimited: the client IP's token bucket is empty.
	ReasonRateLimited access.Reason = "rate-limited"
	// ReasonProxyProtocol is never returned by a Gate; the TCP side uses it
	// when a PROXY protocol header is missing, malformed or untrusted.
	ReasonProxyProtocol access.Reason = "proxy-protocol"
	// ReasonProxyPending is never returned by a Gate either: the TCP side
	// uses it when a trusted PROXY sender already has as many connections
	// waiting for their header as one sender may.
	ReasonProxyPending access.Reason = "proxy-pending"
)

// defaultMaxIdle is how many idle clients (no live connection, token bucket
// not yet full) a Gate remembers before it forgets the oldest-idle one.
const defaultMaxIdle = 100_000

// Gate is the admission control of one rule. Make it with NewGate; all
// methods are safe for concurrent use.
//
// Per-IP state is kept only while it matters: an IP is tracked while it has a
// live connection, and afterwards only until its token bucket is full again.
// At most 100,000 such idle IPs are remembered; past that the oldest-idle one
// is forgotten, which gives that IP a full bucket on its next connection. An
// address spray therefore costs bounded memory and, at worst, lets the
// sprayed addresses each get a fresh burst; the idle IPs then take about
// 16 MiB (some 170 bytes each), which is given back once they are forgotten.
// Idle IPs are forgotten as their buckets refill, a few at each Admit, so no
// goroutine is needed. IPs with live connections are never forgotten; there
// are no more of them than live connections.
type Gate struct {
	now   func() time.Time // clock for token buckets
	epoch time.Time        // origin of the nanosecond times kept per IP

	// pol is the policy in force. It is read without mu for the ACL check
	// and stored only with mu held, so limits read under mu are consistent
	// with the per-IP table.
	pol atomic.Pointer[rules]

	mu      sync.Mutex // guards the following fields
	live    int        // admitted connections not yet released
	clients clientTable
}

// Ticket is the proof that a connection was admitted. It is a small value,
// so Admit does not allocate: keep the Ticket Admit returned (in a local
// variable or a struct field) and call Release on that same variable when the
// connection ends. Release through one variable is idempotent; copying a held
// Ticket and releasing both copies releases twice. The zero Ticket holds
// nothing and its Release does nothing.
type Ticket struct {
	g    *Gate      // nil once released, or when nothing is held
	addr netip.Addr // normalised client IP; zero when not tracked per IP
}

// NewGate returns a Gate enforcing p.
func NewGate(p Policy) *Gate {
	return newGate(p, time.Now, defaultMaxIdle)
}

// newGate is NewGate with the clock and the idle-client cap injected, for
// tests.
func newGate(p Policy, now func() time.Time, maxIdle int) *Gate {
	g := &Gate{now: now, epoch: now()}
	g.clients.init(maxIdle)
	g.pol.Store(compile(p))
	return g
}

// Admit decides for a new connection from client. On success it returns a
// Ticket holding one slot and the empty reason; the caller must Release the
// Ticket when the connection ends. On refusal it returns the zero Ticket and
// the reason, and holds nothing: a refused attempt takes no token either.
//
// When several limits would refuse, the reason reported is the first of:
// denied, rate-limited, max-connections-per-ip, max-connections.
func (g *Gate) Admit(client netip.Addr) (Ticket, access.Reason) {
	client = client.Unmap().WithZone("")
	if !client.IsValid() {
		return g.admitUnix()
	}
	// The ACL check and the clock read, the slow parts, run unlocked.
	r := g.pol.Load()
	if !r.permits(client) {
		return Ticket{}, ReasonDenied
	}
	now := g.clockFor(r)
	g.mu.Lock()
	defer g.mu.Unlock()
	if cur := g.pol.Load(); cur != r { // Update ran meanwhile
		r, now = cur, g.clockFor(cur)
		if !r.permits(client) {
			return Ticket{}, ReasonDenied
		}
	}
	return g.admitIPLocked(client, r, now)
}

// admitUnix admits a client without an IP address, subject only to
// MaxConnections.
func (g *Gate) admitUnix() (Ticket, access.Reason) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if r := g.pol.Load(); r.maxConns > 0 && g.live >= r.maxConns {
		return Ticket{}, ReasonMaxConnections
	}
	g.live++
	return Ticket{g: g}, ""
}

// admitIPLocked applies the per-IP and rule-wide limits of r at time now to
// a client with an IP address, and takes a slot and a token if they allow
// it.
func (g *Gate) admitIPLocked(client netip.Addr, r *rules, now int64) (Ticket, access.Reason) {
	client = r.perIPKey(client)
	if r.interval > 0 {
		g.clients.sweep(now, sweepPerOp)
	}
	c := g.clients.get(client)
	if c != nil && r.interval > 0 && !r.conforms(c.tat, now) {
		g.clients.touch(c)
		return Ticket{}, ReasonRateLimited
	}
	if c != nil && r.maxPerIP > 0 && c.live >= r.maxPerIP {
		return Ticket{}, ReasonMaxConnectionsPerIP
	}
	if r.maxConns > 0 && g.live >= r.maxConns {
		return Ticket{}, ReasonMaxConnections
	}
	if c == nil {
		c = g.clients.add(client)
	}
	if r.interval > 0 {
		c.tat = max(c.tat, now) + r.interval
	}
	g.clients.acquire(c)
	g.live++
	return Ticket{g: g, addr: client}, ""
}

// Release gives back the slot the Ticket holds. It is safe to call more than
// once on the same Ticket and on the zero Ticket; only the first call on a
// held Ticket does anything.
func (t *Ticket) Release() {
	g, addr := t.g, t.addr
	if g == nil {
		return
	}
	*t = Ticket{}
	g.release(addr)
}

// release undoes one successful Admit from addr (zero: a client without an
// IP address).
func (g *Gate) release(addr netip.Addr) {
	var r *rules
	var now int64
	if addr.IsValid() {
		r = g.pol.Load()
		now = g.clockFor(r)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.live > 0 {
		g.live--
	}
	if !addr.IsValid() {
		return
	}
	c := g.clients.get(addr)
	if c == nil || c.live == 0 {
		return // a Ticket copy released twice; nothing left to give back
	}
	c.live--
	if c.live > 0 {
		return
	}
	if cur := g.pol.Load(); cur != r { // Update ran meanwhile
		r, now = cur, g.clockFor(cur)
	}
	if r.interval > 0 && c.tat > now {
		g.clients.idle(c) // bucket not full yet: remember it for a while
		return
	}
	g.clients.remove(c)
}

// Update swaps the policy in force, as on a config reload. Live counts are
// kept, so new limits apply to new connections only: lowering
// MaxConnections below the live count refuses new clients until enough
// connections end, and closes none. Token buckets carry over as they are.
func (g *Gate) Update(p Policy) {
	r := compile(p)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pol.Store(r)
	if r.interval == 0 {
		g.clients.dropIdle() // no buckets to remember
	}
}

// Live returns how many admitted connections have not been released yet.
func (g *Gate) Live() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.live
}

// clockFor returns the gate's clock, as nanoseconds since the gate was made,
// when r limits the rate; otherwise 0, sparing the clock read.
func (g *Gate) clockFor(r *rules) int64 {
	if r.interval == 0 {
		return 0
	}
	return int64(g.now().Sub(g.epoch))
}
