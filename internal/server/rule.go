package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"sluice/internal/admit"
	"sluice/internal/backend"
	"sluice/internal/config"
	"sluice/internal/congestion"
	"sluice/internal/conntrack"
	"sluice/internal/metrics"
	"sluice/internal/tcp"
	"sluice/internal/tlsconf"
	"sluice/internal/udp"
)

// rule is one running rule. cfg and pool change on reload, under the
// server's mu; the TCP and UDP sides get their own immutable snapshots.
type rule struct {
	s      *Server
	logger *slog.Logger
	cfg    config.Rule
	pool   *backend.Pool
	routes map[string]*backend.Pool // each route's pool, by route name (see routes.go)
	// tls terminates TLS for the rule's own clients, routeTLS for each
	// route's, by route name; backendTLS are the clients its pools speak
	// TLS to backends with, by route name ("" the rule's own). Set from
	// the files read at start and at each reload (see tls.go).
	tls        *tlsconf.Holder
	routeTLS   map[string]*tlsconf.Holder
	backendTLS map[string]*tlsconf.Client
	gate       *admit.Gate
	metrics    *metrics.Rule
	table      *conntrack.Table
	tcp        *tcp.Service
	lns        []net.Listener // one per port of the listen address (see ports.go)
	udp        []*udpSide     // one per port; none unless the rule forwards UDP
	sessions   atomic.Int64   // the live UDP sessions of every port, against max_sessions
	udpPorts   *udp.Ports     // what the UDP sides of a range's ports share; made by the first side started
	serves     sync.WaitGroup // accept loops
	// failed says why a listener of lns stopped serving, by listener; a
	// listener that is no longer the rule's fails nothing. Guarded by the
	// server's mu.
	failed map[net.Listener]string
}

// newRule prepares a rule; bind and run start it.
func (s *Server) newRule(rc config.Rule) *rule {
	return &rule{
		s:       s,
		logger:  s.logger.With("rule", rc.Name),
		cfg:     rc,
		gate:    admit.NewGate(policy(rc)),
		metrics: s.metrics.Rule(rc.Name),
		table:   conntrack.NewTable(),
	}
}

// policy is the admission part of a rule.
func policy(rc config.Rule) admit.Policy {
	return admit.Policy{
		Allow: rc.Allow, Deny: rc.Deny,
		MaxConnections: rc.MaxConnections, MaxConnectionsPerIP: rc.MaxConnectionsPerIP,
		RatePerIP: rc.RatePerIP, PerIPPrefixV6: rc.PerIPPrefixV6,
	}
}

// bind opens the rule's listeners, on every port of its listen address,
// without serving them yet.
func (r *rule) bind() error {
	var tcp, udp []config.Address
	if r.cfg.Protocol.HasTCP() {
		tcp = listenPorts(r.cfg.Listen)
	}
	if r.cfg.Protocol.HasUDP() {
		udp = listenPorts(r.cfg.Listen)
	}
	return r.bindSides(tcp, udp)
}

// bindSides opens the rule's TCP listeners on the addresses tcp and its UDP
// sockets on the addresses udp (each of one port, or a unix path). They
// are bound all or none: when one fails, it closes those it bound and
// returns the error of the first that failed.
func (r *rule) bindSides(tcp, udp []config.Address) error {
	rc := r.cfg
	if rc.Protocol.HasTCP() {
		if err := congestion.Check(rc.CongestionControl); err != nil {
			return fmt.Errorf("rule %q: %w", rc.Name, err)
		}
	}
	if err := checkOrigins(rc); err != nil {
		return fmt.Errorf("rule %q: %w", rc.Name, err)
	}
	if err := r.s.checkDiscovery(rc); err != nil {
		return fmt.Errorf("rule %q: %w", rc.Name, err)
	}
	cc := r.s.effective(rc).CongestionControl
	for _, a := range tcp {
		ln, err := r.s.listen(a, cc)
		if err != nil {
			r.unbind()
			return listenError(rc, a, "", err)
		}
		r.lns = append(r.lns, ln)
	}
	for _, a := range udp {
		u, err := bindUDP(r.s, rc, a)
		if err != nil {
			r.unbind()
			return listenError(rc, a, " (udp)", err)
		}
		r.udp = append(r.udp, u)
	}
	return nil
}

// unbind closes the sockets of a rule that has not started, and forgets
// them.
func (r *rule) unbind() {
	r.closeListeners()
	r.lns, r.udp = nil, nil
}

// run starts a bound rule: health checks, then its accept loops.
func (r *rule) run() {
	r.metrics.SetUDP(r.cfg.Protocol.HasUDP())
	r.pool = r.s.startPool(r.s.poolSettings(r.cfg, r.backendTLS[""]), r.cfg.BackendsFrom, nil, r.cfg.Name, "")
	r.updateRoutes()
	r.s.restore(r)
	r.tcp = tcp.NewService(r.tcpRule(), tcp.Deps{
		Logger: r.s.logger, AccessLogger: r.s.access, Pools: r.s.pools, Parker: r.s.parker, Engine: r.s.engine, Workers: r.s.workers, IDs: &r.s.ids, Table: r.table,
	})
	for _, ln := range r.lns {
		r.serve(ln)
	}
	if len(r.lns) > 0 {
		r.logger.Info("listening", "listen", r.cfg.Listen.String(), "proto", "tcp", "backends", len(r.cfg.Backends))
	}
	for _, u := range r.udp {
		u.start(r.s, r, r.logger)
	}
	if len(r.udp) > 0 {
		r.logger.Info("listening", "listen", r.cfg.Listen.String(), "proto", "udp", "backends", len(r.cfg.Backends))
	}
}

// serve makes the rule's TCP side accept on ln. Where the engine's loops
// accept, no goroutine waits for ln: the service tells the rule when it
// stops accepting on it.
func (r *rule) serve(ln net.Listener) {
	r.serves.Add(1)
	logger, name := r.logger, r.cfg.Name // r's fields change on reload
	// ended is told nil when sluice closed ln itself: a stop, an upgrade,
	// or a reload that moved or removed it. It must not block (see
	// tcp.Service.Take): a failure is told on a goroutine of its own.
	r.tcp.Take(ln, func(err error) {
		defer r.serves.Done()
		if err != nil {
			logger.Error("accept loop stopped", "listen", ln.Addr().String(), "error", err.Error())
			r.fail(ln, fmt.Sprintf("rule %q: listen %s: %v", name, ln.Addr(), err))
		}
	})
}

// fail records that ln stopped serving, for Healthy, while it is one of
// the rule's listeners.
func (r *rule) fail(ln net.Listener, why string) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if !slices.Contains(r.lns, ln) {
		return // replaced by a reload meanwhile
	}
	if r.failed == nil {
		r.failed = make(map[net.Listener]string)
	}
	r.failed[ln] = why
}

// failuresLocked returns why listeners of the rule stopped serving. Called
// with the server's mu held.
func (r *rule) failuresLocked() []string {
	var out []string
	for _, ln := range r.lns {
		if why, ok := r.failed[ln]; ok {
			out = append(out, why)
		}
	}
	return out
}

// checkOrigins reports a source or mark of the rule's, or of one of its
// routes', that this process lacks the capability for (see
// backend.CheckOrigin), so that such a rule does not start, nor a reload
// apply, to fail every connection.
func checkOrigins(rc config.Rule) error {
	if err := backend.CheckOrigin(backend.Source(rc.Source), rc.Mark); err != nil {
		return err
	}
	for _, rt := range rc.Routes {
		if err := backend.CheckOrigin(backend.Source(rt.Source), rt.Mark); err != nil {
			return fmt.Errorf("route %q: %w", rt.Name, err)
		}
	}
	return nil
}

// poolSettings is what the rule's backend pool is built from, speaking
// TLS to its backends with client (nil: plain TCP).
func (s *Server) poolSettings(rc config.Rule, client *tlsconf.Client) backend.Settings {
	rc = s.effective(rc)
	st := backend.Settings{
		Name: rc.Name, Balance: rc.Balance, Retries: rc.Retries,
		ConnectTimeout: rc.ConnectTimeout, ResolveTTL: rc.ResolveTTL,
		CongestionControl: rc.CongestionControl,
		SlowStart:         rc.SlowStart, QueueTimeout: rc.QueueTimeout, MaxQueue: rc.MaxQueue,
		Source: backend.Source(rc.Source), Mark: rc.Mark,
		From: rc.BackendsFrom.String(),
	}
	if client != nil {
		st.TLS, st.ObserveTLS = client, s.observeBackendTLS(rc.Name)
	}
	for _, b := range rc.Backends {
		st.Backends = append(st.Backends, backend.Target{Address: b.Address, Weight: b.Weight, Backup: b.Backup, MaxConns: b.MaxConnections})
	}
	if hc := rc.HealthCheck; hc != nil {
		h := backend.HealthCheck(*hc)
		st.HealthCheck = &h
	}
	return st
}

// tcpRule is the TCP side's view of the rule.
func (r *rule) tcpRule() *tcp.Rule {
	rc := r.cfg
	tr := &tcp.Rule{
		Name: rc.Name, Pool: r.pool, Gate: r.gate, Metrics: r.metrics,
		IdleTimeout: rc.IdleTimeout, DrainTimeout: rc.DrainTimeout,
		Bandwidth: rc.Bandwidth, SendProxy: rc.ProxyProtocol, TrustProxy: rc.AcceptProxyProtocol,
		Congestion: r.s.effective(rc).CongestionControl,
		Workers:    rc.Workers,
		TLS:        r.tls, PeekTimeout: rc.PeekTimeout,
	}
	if rc.Listen.Ranged() {
		tr.FirstPort, tr.LastPort = rc.Listen.Port, rc.Listen.LastPort
	}
	r.tcpRoutes(tr)
	return tr
}

// closeListeners stops the rule accepting.
func (r *rule) closeListeners() {
	if r.tcp != nil {
		r.tcp.CloseListeners()
	}
	for _, ln := range r.lns {
		ln.Close()
	}
	for _, u := range r.udp {
		u.closeListener()
	}
}

// stop drains a rule whose listeners are closed and stops its health checks.
func (r *rule) stop() {
	r.serves.Wait()
	if r.tcp != nil {
		r.tcp.Drain(r.cfg.DrainTimeout)
	}
	for _, u := range r.udp {
		u.drain()
	}
	if r.pool != nil {
		r.pool.Stop()
	}
	r.stopRoutes()
}

// listen binds addr, or takes the socket a previous process handed over.
// Errors are the bare cause, e.g. "address already in use".
func (s *Server) listen(addr config.Address, cc congestion.Choice) (net.Listener, error) {
	if ln := inheritedListener(s.inherited, addr); ln != nil {
		return ln, nil
	}
	// No TCP keepalive on accepted connections: it costs four setsockopt
	// calls each, and idle_timeout already bounds a silent client. A
	// congestion control that every connection of the rule gets is set
	// before the socket listens, so that every accepted socket inherits it.
	lc := net.ListenConfig{KeepAlive: -1, Control: cc.ListenControl()}
	ln, err := lc.Listen(context.Background(), addr.Network, addr.DialAddress())
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		// One of our own rules first: probing the path for staleness
		// would open a connection through it.
		if shared := s.sharedListener(addr); shared != nil {
			return shared, nil
		}
		if addr.Network == "unix" && removeStaleSocket(addr.Path) {
			ln, err = lc.Listen(context.Background(), addr.Network, addr.DialAddress())
		}
	}
	if err != nil {
		return nil, bareError(err)
	}
	return ln, nil
}

// sharedListener returns a duplicate of the listening socket (TCP or unix)
// that a running rule has on addr, or nil. A reload that moves addr from
// one rule to another (swapping two rules' ports, say) would find it in
// use: the config cannot give one address to two rules, so the rule
// holding it now lets it go when the reload applies, and the socket, with
// the clients waiting in its queue, carries on with the rule that takes
// it. Until then both accept from it. A duplicate unix listener leaves its
// path in place when it closes, so that a reload that fails after making
// it removes nothing; handOverUnixPaths moves that duty once the reload
// applies.
func (s *Server) sharedListener(addr config.Address) net.Listener {
	if addr.Network != "tcp" && addr.Network != "unix" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		if !samePlace(r.cfg.Listen, addr) || addr.Network != "unix" && !r.cfg.Listen.Contains(addr.Port) {
			continue
		}
		for _, ln := range r.lns {
			if portOf(ln.Addr()) != addr.Port {
				continue
			}
			fl, ok := ln.(interface{ File() (*os.File, error) })
			if !ok {
				continue
			}
			f, err := fl.File()
			if err != nil {
				return nil
			}
			return fileListener(f)
		}
	}
	return nil
}

// handOverUnixPaths readies the unix listening sockets that a reload about
// to apply moves between rules: the rule giving one up must not remove its
// path when it closes its listener, and the rule taking it over (holding a
// duplicate from sharedListener) must, when its turn comes.
func (s *Server) handOverUnixPaths(changes []*change) {
	taken := make(map[string]*net.UnixListener)
	for _, ch := range changes {
		for _, ln := range ch.new.lns {
			if ul, ok := ln.(*net.UnixListener); ok {
				taken[ul.Addr().String()] = ul
			}
		}
	}
	if len(taken) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		for _, ln := range r.lns {
			ul, ok := ln.(*net.UnixListener)
			if !ok || taken[ul.Addr().String()] == nil {
				continue
			}
			ul.SetUnlinkOnClose(false)
			taken[ul.Addr().String()].SetUnlinkOnClose(true)
		}
	}
}

// removeStaleSocket removes a unix socket file nobody listens on any more
// and reports whether it did.
func removeStaleSocket(path string) bool {
	if fi, err := os.Stat(path); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return false
	}
	return os.Remove(path) == nil
}

// bareError strips Go's "listen tcp 1.2.3.4:80: bind:" prefix, leaving the
// cause a user can act on.
func bareError(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
