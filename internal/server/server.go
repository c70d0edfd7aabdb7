// Package server turns a validated configuration into running rules: it
// binds every listener, wires each rule's backends, admission, TCP and UDP
// sides and connection table, reloads them by diff, and stops them
// gracefully.
package server

import (
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"sluice/internal/access"
	"sluice/internal/admin"
	"sluice/internal/backend"
	"sluice/internal/config"
	"sluice/internal/congestion"
	"sluice/internal/conntrack"
	"sluice/internal/discovery"
	"sluice/internal/handover"
	"sluice/internal/metrics"
	"sluice/internal/relay"
	"sluice/internal/workers"
)

// Options are what a Server is built from. Only Logger is required.
type Options struct {
	Logger *slog.Logger
	// AccessLogger takes the access lines; nil: Logger.
	AccessLogger *slog.Logger
	// Metrics receives the counters of every rule; nil: not counted.
	Metrics *metrics.Metrics
	// Inherited are listening sockets handed over by the process this one
	// replaces (hitless upgrade); nil: bind everything anew.
	Inherited *handover.Inherited
	// Follow follows the keys under an etcd prefix, for backends_from
	// "etcd:..."; nil (sluice runs without etcd): a rule with such a
	// backends_from fails to start, and a reload bringing one fails.
	Follow discovery.Follower
	// Stored returns the runtime state the fleet stored for a backend of
	// a rule (and route; "" for the rule's own), which a backend that
	// discovery adds starts with; nil: none (it starts ready).
	Stored func(rule, route, address string) (admin.BackendChange, bool)
}

// Server runs the rules of a configuration.
type Server struct {
	logger    *slog.Logger
	access    *slog.Logger // the access lines' logger
	metrics   *metrics.Metrics
	inherited *handover.Inherited
	pools     *relay.Pools
	parker    *relay.Parker // nil where the platform has none
	engine    *relay.Engine // nil where the platform has none
	workers   *workers.Pool
	resolver  *backend.Resolver
	follow    discovery.Follower                                            // nil: no etcd
	stored    func(rule, route, address string) (admin.BackendChange, bool) // nil: none
	// loopbackCC is why this process may not give loopback connections
	// congestion.LoopbackAlgorithm (nil: it may), found once at New.
	loopbackCC error
	ccWarning  sync.Once // says so once, when a rule under auto starts
	ids        conntrack.IDs
	reloading  sync.Mutex // one reload at a time

	mu       sync.Mutex // guards the following fields
	cfg      *config.Config
	rules    []*rule        // in config order
	retired  map[*rule]bool // removed by a reload, still draining
	drains   sync.WaitGroup // retired rules draining
	stopping bool           // Shutdown has begun
	// saved is what the previous process set on backends at runtime,
	// restored by Start and then dropped (see backends.go).
	saved []savedBackend
}

// effective returns rc as this process runs it: under congestion_control
// auto, a process that may not choose the loopback algorithm leaves
// loopback connections with the system's instead of failing to set it on
// every one (and says so once).
func (s *Server) effective(rc config.Rule) config.Rule {
	if s.loopbackCC == nil || !rc.CongestionControl.IsAuto() {
		return rc
	}
	s.ccWarning.Do(func() {
		s.logger.Warn("congestion_control auto: connections to loopback keep the system's algorithm: this process may not choose "+congestion.LoopbackAlgorithm+
			" (add it to net.ipv4.tcp_allowed_congestion_control, or grant CAP_NET_ADMIN)", "error", s.loopbackCC.Error())
	})
	rc.CongestionControl = rc.CongestionControl.WithoutLoopback()
	return rc
}

// New returns a server with no rules; Start gives it its first config.
func New(opts Options) *Server {
	logger := opts.Logger
	parker, err := relay.NewParker()
	if err != nil {
		logger.Warn("idle connections will each keep two goroutines: cannot create the parker", "error", err.Error())
		parker = nil
	}
	engine, err := relay.NewEngine(runtime.GOMAXPROCS(0))
	if err != nil {
		logger.Warn("each connection will be relayed by two goroutines: cannot start the event loops", "error", err.Error())
		engine = nil
	}
	access := opts.AccessLogger
	if access == nil {
		access = logger
	}
	s := &Server{
		logger:     logger,
		access:     access,
		metrics:    opts.Metrics,
		inherited:  opts.Inherited,
		follow:     opts.Follow,
		stored:     opts.Stored,
		pools:      relay.NewPools(0),
		parker:     parker,
		engine:     engine,
		workers:    workers.New(64, 2*time.Second),
		resolver:   backend.NewResolver(nil, logger),
		retired:    make(map[*rule]bool),
		loopbackCC: congestion.Allowed(congestion.LoopbackAlgorithm),
	}
	s.saved = s.decodeSaved(opts.Inherited.State())
	s.metrics.SetBackendSource(s.backendStates)
	s.metrics.SetQueueSource(s.queueLengths)
	s.metrics.SetCertificateSource(s.certificates)
	return s
}

// Start reads every TLS file of cfg, binds every listener and starts
// serving. If a file cannot be read or a listener cannot be bound, none is
// left open and the error names each rule and file or address that
// failed.
func (s *Server) Start(cfg *config.Config) error {
	files, err := loadTLS(cfg)
	if err != nil {
		return err
	}
	var rules []*rule
	var errs []error
	for _, rc := range cfg.Rules {
		r := s.newRule(rc)
		r.setTLS(files[rc.Name])
		if err := r.bind(); err != nil {
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
	s.cfg = cfg
	s.rules = rules
	s.mu.Unlock()
	for _, r := range rules {
		r.run()
	}
	s.mu.Lock()
	s.saved = nil
	s.mu.Unlock()
	s.closeUnusedInherited()
	return nil
}

// Shutdown stops accepting on every rule, lets live connections finish for
// up to each rule's drain_timeout, cuts the rest and returns when all are gone.
// Until then the rules stay listed (Rules, Connections, Live), so that an
// operator sees what the drain waits for and can close it, and reloads are
// refused.
func (s *Server) Shutdown() {
	s.reloading.Lock() // a reload under way applies first, whole
	s.mu.Lock()
	rules := s.rules
	s.stopping = true
	s.mu.Unlock()
	s.reloading.Unlock()
	for _, r := range rules {
		r.closeListeners()
	}
	var wg sync.WaitGroup
	for _, r := range rules {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.stop()
		}()
	}
	wg.Wait()
	s.drains.Wait()
	s.pools.Close()
	s.workers.Close()
	if s.parker != nil {
		s.parker.Close()
	}
	if s.engine != nil {
		s.engine.Close()
	}
}

// Live returns the number of live connections and UDP sessions.
func (s *Server) Live() int {
	n := 0
	for _, r := range s.allRules() {
		n += r.table.Len()
	}
	return n
}

// allRules returns the running rules followed by the retired ones that are
// still draining.
func (s *Server) allRules() []*rule {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]*rule(nil), s.rules...)
	for r := range s.retired {
		out = append(out, r)
	}
	return out
}

// backendStates reports every backend's health and traffic for the
// metrics. A backend's bytes are its ended connections' plus its live
// ones' so far, read under the rule's table lock (see
// conntrack.Table.Traffic), so that a total never goes back.
func (s *Server) backendStates() []metrics.BackendState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metrics.BackendState
	for _, r := range s.rules {
		own := ""
		if len(r.cfg.Routes) > 0 {
			own = access.DefaultRoute
		}
		r.table.Traffic(func(live map[any]conntrack.Traffic) {
			out = appendBackendStates(out, r.cfg.Name, own, r.pool, live)
			for _, rt := range r.cfg.Routes {
				out = appendBackendStates(out, r.cfg.Name, rt.Name, r.routes[rt.Name], live)
			}
		})
	}
	return out
}

// appendBackendStates appends the health and traffic of pool's backends,
// the backends of route of rule, to out; live is the bytes of the rule's
// live connections by backend.
func appendBackendStates(out []metrics.BackendState, rule, route string, pool *backend.Pool, live map[any]conntrack.Traffic) []metrics.BackendState {
	if pool == nil {
		return out
	}
	for _, b := range pool.Backends() {
		up, down := traffic(b, live)
		out = append(out, metrics.BackendState{
			Rule: rule, Route: route, Backend: b.Address().String(),
			Up: b.Up(), ConnectErrors: b.ConnectErrors(), State: b.State().String(),
			Connections: b.ConnectionsTotal(), Active: b.Active(), BytesUp: up, BytesDown: down,
		})
	}
	return out
}

// traffic returns the bytes of b: those of its ended connections plus
// those of its live ones so far (live, by backend tally).
func traffic(b *backend.Backend, live map[any]conntrack.Traffic) (up, down int64) {
	up, down = b.Settled()
	l := live[b.Tally()]
	return up + l.Up, down + l.Down
}
