package server

import (
	"slices"
	"sort"
	"strings"

	"sluice/internal/access"
	"sluice/internal/admin"
	"sluice/internal/backend"
	"sluice/internal/conntrack"
)

// Rules reports every running rule with its routes, backends,
// certificates and counters, in config order, for the admin API.
func (s *Server) Rules() []admin.RuleStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]admin.RuleStatus, 0, len(s.rules))
	for _, r := range s.rules {
		out = append(out, s.ruleStatusLocked(r))
	}
	return out
}

// ruleStatusLocked reports the rule r. s.mu must be held: it guards the
// rule's config and route pools. Its backends are read under the rule's
// table lock, once (see conntrack.Table.Traffic).
func (s *Server) ruleStatusLocked(r *rule) admin.RuleStatus {
	st := admin.RuleStatus{
		Name: r.cfg.Name, Listen: r.cfg.Listen.String(),
		Protocol: string(r.cfg.Protocol), Balance: r.cfg.Balance,
		Certificates: s.certificatesLocked(r),
		Counters:     admin.CountersOf(r.metrics.Counters()),
	}
	counts := r.metrics.RouteCounts()
	r.table.Traffic(func(live map[any]conntrack.Traffic) {
		st.Backends = backendViews(r.pool, live)
		for _, rt := range r.cfg.Routes {
			st.Routes = append(st.Routes, admin.RouteStatus{
				Name: rt.Name, SNI: slices.Clone(rt.SNI), ALPN: slices.Clone(rt.ALPN),
				HTTPHost: slices.Clone(rt.HTTPHost), Detect: slices.Clone(rt.Detect),
				Balance: rt.Balance, Backends: backendViews(r.routes[rt.Name], live),
				Connections: counts[rt.Name],
			})
		}
	})
	if len(r.cfg.Routes) > 0 {
		def := counts[access.DefaultRoute]
		st.DefaultRouteConnections = &def
	}
	return st
}

// backendStatus reports the backends of pool, whose rule's live
// connections table lists.
func backendStatus(pool *backend.Pool, table *conntrack.Table) []admin.BackendStatus {
	var out []admin.BackendStatus
	table.Traffic(func(live map[any]conntrack.Traffic) { out = backendViews(pool, live) })
	return out
}

// backendViews reports the backends of pool; live is the bytes of its
// rule's live connections by backend.
func backendViews(pool *backend.Pool, live map[any]conntrack.Traffic) []admin.BackendStatus {
	var out []admin.BackendStatus
	for _, b := range pool.Backends() {
		out = append(out, backendView(b, live))
	}
	return out
}

// Connections reports the live connections and UDP sessions of every rule,
// draining ones included, ordered by id.
func (s *Server) Connections() []conntrack.Snapshot {
	var out []conntrack.Snapshot
	for _, r := range s.allRules() {
		out = append(out, r.table.Snapshots()...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// CloseConnection stops the connection or session with id and reports
// whether it was live. Its access line says "closed".
func (s *Server) CloseConnection(id uint64) bool {
	for _, r := range s.allRules() {
		if r.table.Stop(id, access.Closed) {
			return true
		}
	}
	return false
}

// Healthy reports whether every rule is serving: no accept loop has died
// and the server is not shutting down (so that a load balancer probing
// /healthz moves traffic away while sluice drains).
func (s *Server) Healthy() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false, "draining: shutting down"
	}
	var down []string
	for _, r := range s.rules {
		down = append(down, r.failuresLocked()...)
	}
	if len(down) > 0 {
		return false, strings.Join(down, "; ")
	}
	return true, ""
}
