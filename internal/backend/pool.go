// Package backend manages a rule's upstreams: name resolution with a TTL
// cache, balancing strategies, backup backends, active and passive health,
// and dialing with a timeout and retry on the next backend.
//
// A Pool belongs to one rule and holds its Backends. Pool.Dial (TCP) and
// Pool.Pick (UDP) hand out a backend among the usable ones: the primaries
// that are up or, while none is, the backups that are up. Every handed-out
// backend must be Released once when its connection ends.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"sluice/internal/congestion"
	"sluice/internal/tlsconf"
)

// ErrNoBackend is wrapped by the error of Dial and Pick when no backend of
// the rule is usable.
var ErrNoBackend = errors.New("no usable backend")

// Pool is the set of backends of one rule. It is safe for concurrent use.
type Pool struct {
	rule           string
	balance        string
	retries        int
	connectTimeout time.Duration
	resolveTTL     time.Duration
	settings       Settings     // what the pool was built from
	health         *HealthCheck // nil: passive health only
	fall           int          // consecutive connect failures that mark a backend down
	resolver       *Resolver
	logger         *slog.Logger
	dialer         net.Dialer
	congestion     congestion.Choice                    // for sockets Attempts opens
	direct         bool                                 // see Direct
	tls            *tlsconf.Client                      // nil: plain TCP
	observeTLS     func(result string, d time.Duration) // nil: not observed
	now            func() time.Time                     // the clock; tests replace it
	slowStart      time.Duration                        // zero: off
	source         Source                               // see Origin
	mark           uint32                               // SO_MARK of sockets to IP backends; zero: none

	mu sync.Mutex // guards backends, discovered, balancer state (Backend.current, eff) and the queue
	// backends are the configured ones in config order, then the
	// discovered ones (see discovered.go).
	backends   []*Backend
	discovered []Target // as SetDiscovered was last given them
	queue      queue    // clients waiting for a full backend's slot; see queue.go

	runMu   sync.Mutex // guards the fields below, and changes of backends
	checks  context.Context
	cancel  context.CancelFunc // ends checks
	stopped bool
	checkOf map[*Backend]context.CancelFunc // each backend's health check
	feeds   []context.CancelFunc            // see Feed
	recall  Recall                          // see SetRecall; nil: none
	wg      sync.WaitGroup                  // health check and feed goroutines
}

// NewPool returns the pool of the backends that st lists, all starting up.
// Host names resolve through r (nil: a private Resolver using the
// system's). A nil logger discards logs.
func NewPool(st Settings, r *Resolver, logger *slog.Logger) *Pool {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if r == nil {
		r = NewResolver(nil, logger)
	}
	p := &Pool{
		settings:       st,
		rule:           st.Name,
		balance:        st.Balance,
		retries:        max(0, st.Retries),
		connectTimeout: st.ConnectTimeout,
		resolveTTL:     st.ResolveTTL,
		health:         st.HealthCheck,
		fall:           passiveFall,
		resolver:       r,
		logger:         logger,
		now:            time.Now,
		// No TCP keepalive: it costs four setsockopt calls per connection,
		// and idle_timeout already bounds how long a silent peer is kept.
		dialer:     net.Dialer{KeepAlive: -1, Control: st.CongestionControl.DialControl()},
		congestion: st.CongestionControl,
		tls:        st.TLS,
		observeTLS: st.ObserveTLS,
		slowStart:  st.SlowStart,
		source:     st.Source,
		mark:       st.Mark,
	}
	p.queue.timeout, p.queue.max = st.QueueTimeout, st.MaxQueue
	if p.queue.max <= 0 {
		p.queue.max = DefaultMaxQueue
	}
	switch p.balance {
	case RoundRobin, LeastConn, Random, SourceHash, First:
	default:
		logger.Warn("unknown balance strategy, using round-robin", "rule", st.Name, "balance", st.Balance)
		p.balance = RoundRobin
	}
	if p.health != nil {
		p.fall = p.health.Fall
	}
	p.backends = make([]*Backend, len(st.Backends))
	for i, t := range st.Backends {
		p.backends[i] = newBackend(t, p)
	}
	p.direct = canConnect && st.TLS == nil && direct(p.backends)
	return p
}

// Settings returns what the pool was built from.
func (p *Pool) Settings() Settings { return p.settings }

// Backends returns the pool's backends: in config order, then the
// discovered ones. The slice is the caller's own; the backends are shared.
func (p *Pool) Backends() []*Backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.backends)
}

// Inherit copies the health state of the backends in old with the same
// address (in order, for repeated addresses), and shares their connection
// and error counters and their runtime state and weight, so a config
// reload neither resets health nor what an operator set, nor loses count
// of connections still open on the old pool. A backend whose weight in the
// file changed takes the file's weight instead of the runtime one. When
// both pools discover backends from the same place, p starts with the old
// pool's discovered backends, until its own Feed tells it anew. Call it
// before the pool is used (before Start, Feed, Dial and Pick).
func (p *Pool) Inherit(old *Pool) {
	if old == nil || old == p {
		return
	}
	if p.settings.From != "" && p.settings.From == old.settings.From {
		p.SetDiscovered(old.Discovered())
	}
	olds := old.Backends()
	taken := make([]bool, len(olds))
	for _, b := range p.Backends() {
		for i, ob := range olds {
			if !taken[i] && ob.cfg.Address == b.cfg.Address {
				taken[i] = true
				b.inherit(ob)
				break
			}
		}
	}
}

// Pick chooses a backend for client without dialing (for UDP sessions), by
// the rule's strategy among the usable backends, and counts it as active
// until Release and in ConnectionsTotal. With none usable it fails with an error wrapping
// ErrNoBackend.
func (p *Pool) Pick(client netip.Addr) (*Backend, error) {
	b, err := p.pick(client, nil)
	if err == nil {
		b.ctr.total.Add(1)
	}
	return b, err
}

// pick chooses a backend not in exclude. A first pick (exclude empty)
// finds every backend full while clients wait in the queue: they came
// first.
func (p *Pool) pick(client netip.Addr, exclude []*Backend) (*Backend, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(exclude) == 0 && p.queue.waiters.Len() > 0 {
		return nil, fmt.Errorf("rule %q: %w", p.rule, ErrFull)
	}
	return p.pickLocked(client, exclude)
}

// pickLocked chooses a backend not in exclude and counts it as active. A
// passively downed backend whose pause has run out takes the pick as its
// one trial, ahead of the strategy. A full backend (max_connections) is
// passed over; when primaries are up but full, the backups are not
// tried, and the error wraps ErrFull. The caller holds p.mu.
func (p *Pool) pickLocked(client netip.Addr, exclude []*Backend) (*Backend, error) {
	now := p.now()
	cands := make([]*Backend, 0, len(p.backends))
	full := false
	for _, backup := range []bool{false, true} {
		cands = cands[:0]
		for _, b := range p.backends {
			if b.cfg.Backup != backup || slices.Contains(exclude, b) {
				continue
			}
			if !b.usable() {
				continue // drained or in maintenance
			}
			if b.full() {
				full = full || b.Up()
				continue
			}
			if b.Up() {
				cands = append(cands, b)
			} else if b.grantTrial(now) {
				b.ctr.active.Add(1)
				return b, nil
			}
		}
		if len(cands) > 0 {
			for _, b := range cands {
				b.eff = p.effectiveWeight(b, now)
			}
			b := p.chooseLocked(cands, client)
			b.ctr.active.Add(1)
			return b, nil
		}
		if full {
			return nil, fmt.Errorf("rule %q: %w", p.rule, ErrFull)
		}
	}
	return nil, fmt.Errorf("rule %q: %w", p.rule, ErrNoBackend)
}

// Dial picks a backend for client (by the rule's strategy among usable
// backends), dials it within the rule's connect timeout, and on failure
// tries the next pick, up to 1+Retries distinct backends: Attempts.Dial
// with no prelude.
func (p *Pool) Dial(ctx context.Context, client netip.Addr) (net.Conn, *Backend, error) {
	var a Attempts
	p.Begin(&a, client, nil, nil)
	return a.Dial(ctx)
}

// dial connects to the backend within ctx on port (a unix backend has
// none: its path), for client (invalid: none, as for a health check),
// from the pool's source. A host name is resolved and its addresses of the
// source's family are tried in order, each getting a fair share of the
// time left.
func (b *Backend) dial(ctx context.Context, client netip.Addr, port uint16) (net.Conn, error) {
	a := b.cfg.Address
	if a.Network == "unix" || b.isLiteral {
		var conn net.Conn
		var err error
		if a.Network == "unix" {
			conn, err = b.dialUnix(ctx)
		} else {
			conn, err = b.dialIP(ctx, client, netip.AddrPortFrom(b.literal.Addr(), port))
		}
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", a, err)
		}
		return conn, nil
	}
	resolved, err := b.pool.resolver.Resolve(ctx, a.Host, b.pool.resolveTTL)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", a, err)
	}
	addrs := b.pool.sameFamily(client, resolved)
	if len(addrs) == 0 {
		_, err := b.pool.tcpOrigin(client, resolved[0])
		return nil, fmt.Errorf("backend %s: resolves to %s only: %w", a, addrsString(resolved), err)
	}
	for i, ip := range addrs {
		actx, cancel := partialDeadline(ctx, len(addrs)-i)
		conn, err := b.dialIP(actx, client, netip.AddrPortFrom(ip, port))
		cancel()
		if err == nil {
			return conn, nil
		}
		if len(addrs) == 1 {
			return nil, fmt.Errorf("backend %s: %w", a, err)
		}
		if i == len(addrs)-1 || ctx.Err() != nil {
			return nil, fmt.Errorf("backend %s: %d of %d addresses tried, last: %w", a, i+1, len(addrs), err)
		}
	}
	panic("backend: dial ran past the address list")
}

// dialIP connects to the IP address to within ctx, for client, from the
// pool's source.
func (b *Backend) dialIP(ctx context.Context, client netip.Addr, to netip.AddrPort) (net.Conn, error) {
	o, err := b.pool.tcpOrigin(client, to.Addr())
	if err != nil {
		return nil, err
	}
	return b.pool.dialerFor(o).DialContext(ctx, "tcp", to.String())
}

// Waits between connects to a unix backend whose listen queue is full.
const (
	queueWaitMin = time.Millisecond
	queueWaitMax = 50 * time.Millisecond
)

// dialUnix connects to the backend's unix socket within ctx. A full listen
// queue (EAGAIN) means the backend is busy, not gone: as a blocking
// connect would, dialUnix waits for room, trying again at growing,
// jittered intervals until a connect gets in or ctx ends (a TCP client's
// SYN is retried by the kernel the same way). Then it returns the EAGAIN,
// which shortageOf does not hold against the backend.
func (b *Backend) dialUnix(ctx context.Context) (net.Conn, error) {
	path := b.cfg.Address.Path
	began := time.Now()
	var full error // the EAGAIN of a connect before
	stillFull := func() error {
		return fmt.Errorf("listen queue still full after %v: %w", time.Since(began).Round(time.Millisecond), full)
	}
	for wait := queueWaitMin; ; wait = min(2*wait, queueWaitMax) {
		conn, err := b.pool.dialer.DialContext(ctx, "unix", path)
		switch {
		case err == nil:
			return conn, nil
		case errors.Is(err, syscall.EAGAIN):
			full = err
		case full != nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)):
			// Time ran out in this connect. The dialer may see the
			// deadline pass before ctx's timer has fired and set its Err.
			return nil, stillFull()
		default:
			return nil, err
		}
		if wait == queueWaitMin {
			b.pool.logger.Debug("listen queue full, waiting", "rule", b.pool.rule, "backend", b.cfg.Address.String())
		}
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, stillFull()
		case <-t.C:
		}
	}
}

// partialDeadline gives one of left remaining addresses its share of the
// time until ctx's deadline: an even split, but no less than 2s (or what is
// left) so that a slow first address does not starve a good second one.
func partialDeadline(ctx context.Context, left int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok || left <= 1 {
		return context.WithCancel(ctx)
	}
	remaining := time.Until(deadline)
	share := max(remaining/time.Duration(left), min(remaining, 2*time.Second))
	return context.WithTimeout(ctx, share)
}
