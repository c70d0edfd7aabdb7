// Package server turns a validated configuration into running rules: it
// binds every listener, wires each rule's backends, TCP side and connection
// table, and stops them gracefully.
package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"

	"sluice/internal/backend"
	"sluice/internal/config"
	"sluice/internal/conntrack"
	"sluice/internal/relay"
	"sluice/internal/tcp"
)

// Server runs the rules of a configuration.
type Server struct {
	logger   *slog.Logger
	pools    *relay.Pools
	parker   *relay.Parker // nil where the platform has none
	resolver *backend.Resolver
	ids      conntrack.IDs

	mu    sync.Mutex // guards the following fields
	rules []*rule
}

// rule is one running rule.
type rule struct {
	cfg    config.Rule
	pool   *backend.Pool
	table  *conntrack.Table
	tcp    *tcp.Service
	lns    []net.Listener
	udp    *udpSide       // nil unless the rule forwards UDP
	serves sync.WaitGroup // accept loops
}

// New returns a server that logs to logger.
func New(logger *slog.Logger) *Server {
	parker, err := relay.NewParker()
	if err != nil {
		logger.Warn("idle connections will each keep two goroutines: cannot create the parker", "error", err.Error())
		parker = nil
	}
	return &Server{
		logger:   logger,
		pools:    relay.NewPools(0),
		parker:   parker,
		resolver: backend.NewResolver(nil, logger),
	}
}

// Start binds every listener of cfg and starts serving. If any listener
// cannot be bound, none is left open and the error names the rule and address.
func (s *Server) Start(cfg *config.Config) error {
	var rules []*rule
	var errs []error
	for _, rc := range cfg.Rules {
		r, err := s.bind(rc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	if len(errs) > 0 {
		for _, r := range rules {
			r.closeListeners()
		}
		return errors.Join(errs...)
	}
	s.mu.Lock()
	s.rules = append(s.rules, rules...)
	s.mu.Unlock()
	for _, r := range rules {
		s.run(r)
	}
	return nil
}

// bind opens a rule's listeners without serving them yet.
func (s *Server) bind(rc config.Rule) (*rule, error) {
	r := &rule{cfg: rc, table: conntrack.NewTable()}
	if rc.Protocol.HasTCP() {
		ln, err := listen(rc.Listen)
		if err != nil {
			return nil, fmt.Errorf("rule %q: listen %s: %w", rc.Name, rc.Listen, err)
		}
		r.lns = append(r.lns, ln)
	}
	if rc.Protocol.HasUDP() {
		u, err := bindUDP(s, rc)
		if err != nil {
			r.closeListeners()
			return nil, fmt.Errorf("rule %q: listen %s (udp): %w", rc.Name, rc.Listen, err)
		}
		r.udp = u
	}
	return r, nil
}

// run starts a bound rule: health checks, then its accept loops.
func (s *Server) run(r *rule) {
	logger := s.logger.With("rule", r.cfg.Name)
	r.pool = backend.NewPool(r.cfg, s.resolver, logger)
	r.pool.Start()
	r.tcp = tcp.NewService(tcpRule(r.cfg, r.pool), tcp.Deps{
		Logger: s.logger, Pools: s.pools, Parker: s.parker, IDs: &s.ids, Table: r.table,
	})
	for _, ln := range r.lns {
		r.serves.Add(1)
		go func() {
			defer r.serves.Done()
			if err := r.tcp.Serve(ln); err != nil {
				logger.Error("accept loop stopped", "listen", ln.Addr().String(), "error", err.Error())
			}
		}()
		logger.Info("listening", "listen", r.cfg.Listen.String(), "proto", "tcp", "backends", len(r.cfg.Backends))
	}
	if r.udp != nil {
		r.udp.start(s, r, logger)
		logger.Info("listening", "listen", r.cfg.Listen.String(), "proto", "udp", "backends", len(r.cfg.Backends))
	}
}

// tcpRule is the TCP side's view of a rule.
func tcpRule(rc config.Rule, pool *backend.Pool) *tcp.Rule {
	return &tcp.Rule{Name: rc.Name, Pool: pool, IdleTimeout: rc.IdleTimeout, DrainTimeout: rc.DrainTimeout}
}

// Shutdown stops accepting on every rule, lets live connections finish for
// up to each rule's drain_timeout, cuts the rest and returns when all are gone.
func (s *Server) Shutdown() {
	s.mu.Lock()
	rules := s.rules
	s.rules = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range rules {
		r.closeListeners()
	}
	for _, r := range rules {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.stop()
		}()
	}
	wg.Wait()
	s.pools.Close()
	if s.parker != nil {
		s.parker.Close()
	}
}

// Live returns the number of live connections over all rules.
func (s *Server) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.rules {
		n += r.table.Len()
	}
	return n
}

// closeListeners stops a rule accepting.
func (r *rule) closeListeners() {
	if r.tcp != nil {
		r.tcp.CloseListeners()
	}
	for _, ln := range r.lns {
		ln.Close()
	}
	if r.udp != nil {
		r.udp.closeListener()
	}
}

// stop drains a rule whose listeners are closed and stops its health checks.
func (r *rule) stop() {
	r.serves.Wait()
	if r.tcp != nil {
		r.tcp.Drain(r.cfg.DrainTimeout)
	}
	if r.udp != nil {
		r.udp.drain(r)
	}
	if r.pool != nil {
		r.pool.Stop()
	}
}

// listen binds addr. Errors are the bare cause, e.g. "address already in use".
func listen(addr config.Address) (net.Listener, error) {
	ln, err := net.Listen(addr.Network, addr.DialAddress())
	if err != nil && addr.Network == "unix" && errors.Is(err, syscall.EADDRINUSE) && removeStaleSocket(addr.Path) {
		ln, err = net.Listen(addr.Network, addr.DialAddress())
	}
	if err != nil {
		return nil, bareError(err)
	}
	return ln, nil
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
