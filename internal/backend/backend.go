package backend

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// passiveFall is how many consecutive connect failures mark a backend
	// down when the rule has no active health check.
	passiveFall = 3
	// cooldownMin and cooldownMax bound the pause before a passively downed
	// backend (with no active checks) gets a trial connection. The pause
	// doubles after every trial.
	cooldownMin = 5 * time.Second
	cooldownMax = 60 * time.Second
)

// counters are a backend's live numbers. After Pool.Inherit an old and a new
// Backend share one counters, so connections accounted in the old pool are
// released in the same place and metrics keep counting up across reloads.
type counters struct {
	active        atomic.Int64
	connectErrors atomic.Uint64
	total         atomic.Uint64 // connections connected (UDP: sessions begun)
	// up and down are the bytes of ended connections (see Settle); live
	// ones count in their own counters until then.
	up, down atomic.Int64
	pool     atomic.Pointer[Pool] // the newest pool with a Backend sharing them
}

// Backend is one upstream of a pool: its address, health and live
// connection count. All methods are safe for concurrent use.
type Backend struct {
	cfg  Target
	pool *Pool // rule-wide settings: name, logger, resolver, health thresholds, clock
	key  uint64
	// literal is the address to connect to without resolving, when
	// isLiteral: a host:port address whose host is an IP (or empty).
	literal   netip.AddrPort
	isLiteral bool

	ctr *counters
	rt  *adminState // admin state and weight; see state.go
	up  atomic.Bool

	// current is the smooth weighted round-robin state, and eff the
	// weight of the pick at hand (see effectiveWeight); guarded by pool.mu.
	current int
	eff     int

	mu           sync.Mutex    // guards the fields below
	passiveFails int           // consecutive failed connects reported
	checkFails   int           // consecutive failed active checks
	checkOKs     int           // consecutive passed active checks
	cooldown     time.Duration // passive only: pause before the next trial
	retryAt      time.Time     // passive only: when a down backend may get a trial
}

// newBackend returns a Backend that starts up.
func newBackend(cfg Target, p *Pool) *Backend {
	b := &Backend{cfg: cfg, pool: p, key: hashString(cfg.Address.String()), ctr: new(counters), rt: newAdminState(cfg.Weight)}
	b.literal, b.isLiteral = literalAddr(cfg.Address)
	b.up.Store(true)
	b.ctr.pool.Store(p)
	return b
}

// Literal returns the backend's IP address and port for the clients of
// port i of the rule's listen range (see PortFor) when its address needs
// no resolving (the host is an IP, or empty for 127.0.0.1), as ResolveAddr
// would give them.
func (b *Backend) Literal(i uint16) (netip.AddrPort, bool) {
	return netip.AddrPortFrom(b.literal.Addr(), b.PortFor(i)), b.isLiteral
}

// PortFor returns the backend's port for the clients of port i of the
// rule's listen range (from 0, its first port; 0 for a rule of one port):
// port i of the backend's own range, or its one port, which every listen
// port's clients share.
func (b *Backend) PortFor(i uint16) uint16 {
	if b.cfg.Address.Ranged() {
		return b.cfg.Address.Port + i
	}
	return b.cfg.Address.Port
}

// Address returns the backend's configured address.
func (b *Backend) Address() Address { return b.cfg.Address }

// Up reports whether the backend is healthy. Whether it takes new
// connections also depends on its State.
func (b *Backend) Up() bool { return b.up.Load() }

// Backup reports whether the backend only takes traffic while no primary
// backend is up.
func (b *Backend) Backup() bool { return b.cfg.Backup }

// Active returns the number of live connections or sessions on the backend.
func (b *Backend) Active() int64 { return b.ctr.active.Load() }

// ConnectErrors returns how many connects to the backend have failed.
func (b *Backend) ConnectErrors() uint64 { return b.ctr.connectErrors.Load() }

// ConnectionsTotal returns how many connections connected to the backend
// (for UDP: how many sessions it was picked for).
func (b *Backend) ConnectionsTotal() uint64 { return b.ctr.total.Load() }

// Settled returns the bytes of the backend's ended connections, up
// (client→backend) and down: what Settle added.
func (b *Backend) Settled() (up, down int64) { return b.ctr.up.Load(), b.ctr.down.Load() }

// Settle adds the final bytes of one of the backend's connections as it
// ends. The relay counts bytes in the connection's own counters only, so
// the hot path pays nothing per chunk for per-backend totals: a reader
// adds the live connections' bytes (see Tally) to Settled.
func (b *Backend) Settle(up, down int64) {
	b.ctr.up.Add(up)
	b.ctr.down.Add(down)
}

// Tally identifies the backend's counters, which Pool.Inherit shares
// across reloads: the key a connection table sums its live entries by
// (conntrack.Entry.Tally), the same for the backend in the old and the
// new pool.
func (b *Backend) Tally() any { return b.ctr }

// Release ends the accounting of one connection or session handed out by
// Pool.Dial or Pool.Pick. Call it exactly once per connection. A slot
// freed on a backend with max_connections goes to the first client
// waiting in the queue, if any.
func (b *Backend) Release() {
	b.ctr.active.Add(-1)
	if b.cfg.MaxConns > 0 {
		b.freed()
	}
}

// ReportFailure records a failed connect (or, for UDP, an ICMP unreachable).
// After the rule's fall count of consecutive failures an up backend is marked
// down at once; err is given as the reason.
func (b *Backend) ReportFailure(err error) {
	b.ctr.connectErrors.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.passiveFails++
	if b.up.Load() && b.passiveFails >= b.pool.fall {
		b.setDownLocked(fmt.Sprintf("%d consecutive connect failures, last: %v", b.passiveFails, err))
	}
}

// ReportSuccess records a successful connect or reply. It resets the count
// of consecutive failures and, when the rule has no active health check,
// brings a down backend back up.
func (b *Backend) ReportSuccess() {
	b.mu.Lock()
	b.passiveFails = 0
	cameUp := !b.up.Load() && b.pool.health == nil
	if cameUp {
		b.setUpLocked("connect succeeded")
	}
	b.mu.Unlock()
	if cameUp {
		b.freed()
	}
}

// checkResult records the outcome of one active health check.
func (b *Backend) checkResult(err error) {
	if b.checkResultLocked(err) {
		b.freed()
	}
}

// checkResultLocked is checkResult under b.mu; it reports whether the
// backend came up.
func (b *Backend) checkResultLocked(err error) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	hc := b.pool.health
	if err != nil {
		b.checkOKs = 0
		b.checkFails++
		if b.up.Load() && b.checkFails >= hc.Fall {
			b.setDownLocked(fmt.Sprintf("health check failed %d times, last: %v", b.checkFails, err))
		}
		return false
	}
	b.checkFails = 0
	b.checkOKs++
	if !b.up.Load() && b.checkOKs >= hc.Rise {
		b.setUpLocked(fmt.Sprintf("health check passed %d times", b.checkOKs))
		return true
	}
	return false
}

// setDownLocked marks the backend down and logs it once. It is logged under
// b.mu so that log lines come in the order the changes happened.
func (b *Backend) setDownLocked(reason string) {
	b.up.Store(false)
	b.checkOKs = 0
	b.cooldown = cooldownMin
	b.retryAt = b.pool.now().Add(b.cooldown)
	b.markChanged()
	b.pool.logger.Warn("backend down", "rule", b.pool.rule, "backend", b.cfg.Address.String(), "reason", reason)
}

// setUpLocked marks the backend up and logs it once.
func (b *Backend) setUpLocked(reason string) {
	b.up.Store(true)
	b.passiveFails = 0
	b.checkFails = 0
	b.cooldown = 0
	b.markChanged()
	b.pool.logger.Info("backend up", "rule", b.pool.rule, "backend", b.cfg.Address.String(), "reason", reason)
}

// grantTrial reports whether a down backend of a rule without active checks
// is due a trial connection at now. Granting one doubles the pause before
// the next, so only one trial is let through per pause, whatever becomes of
// it; a success (ReportSuccess) brings the backend up.
func (b *Backend) grantTrial(now time.Time) bool {
	if b.pool.health != nil || b.up.Load() || !b.usable() {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.up.Load() || now.Before(b.retryAt) {
		return false
	}
	b.cooldown = min(cooldownMax, max(cooldownMin, 2*b.cooldown))
	b.retryAt = now.Add(b.cooldown)
	b.pool.logger.Debug("backend trial", "rule", b.pool.rule, "backend", b.cfg.Address.String(),
		"next_trial_in", b.cooldown)
	return true
}

// inherit copies the health state and shares the counters and runtime
// settings of old, the same backend in an older pool.
func (b *Backend) inherit(old *Backend) {
	old.mu.Lock()
	up, pf, cf, co, cd, ra := old.up.Load(), old.passiveFails, old.checkFails, old.checkOKs, old.cooldown, old.retryAt
	old.mu.Unlock()

	b.mu.Lock()
	defer b.mu.Unlock()
	b.up.Store(up)
	b.passiveFails, b.checkFails, b.checkOKs, b.cooldown, b.retryAt = pf, cf, co, cd, ra
	b.ctr = old.ctr
	b.ctr.pool.Store(b.pool)
	b.inheritRuntime(old)
}

// ResolveAddr returns the IP address and port to send to now, for the
// clients of port i of the rule's listen range (see PortFor): the address
// itself for IP literals, otherwise the first address the name resolves to
// (through the pool's Resolver, with the rule's resolve TTL). An empty host
// means 127.0.0.1. Unix addresses have none and return an error.
func (b *Backend) ResolveAddr(ctx context.Context, i uint16) (netip.AddrPort, error) {
	a := b.cfg.Address
	if a.Network == "unix" {
		return netip.AddrPort{}, fmt.Errorf("backend %s: a unix socket has no IP address", a)
	}
	if a.Host == "" {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), b.PortFor(i)), nil
	}
	addrs, err := b.pool.resolver.Resolve(ctx, a.Host, b.pool.resolveTTL)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("backend %s: %w", a, err)
	}
	return netip.AddrPortFrom(addrs[0], b.PortFor(i)), nil
}
