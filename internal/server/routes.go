package server

import (
	"sluice/internal/backend"
	"sluice/internal/config"
	"sluice/internal/route"
	"sluice/internal/tcp"
	"sluice/internal/tlsconf"
)

// A routed rule's routes each have a backend pool of their own, built as
// the rule's is from the route's backend side (config.Route's Upstream,
// which inherits what it does not set from the rule), named "rule/route"
// in logs. A reload diffs them by name, as it diffs rules: a route whose
// settings are unchanged keeps its pool, with its health state and live
// counts; a changed one gets a new pool that inherits the old one's
// state; a removed one's pool stops.

// routeSettings is what the pool of the route rt of rule rc is built from,
// speaking TLS to its backends with client (nil: plain TCP).
func (s *Server) routeSettings(rc config.Rule, rt config.Route, client *tlsconf.Client) backend.Settings {
	rc.Upstream = rt.Upstream
	st := s.poolSettings(rc, client)
	st.Name = rc.Name + "/" + rt.Name
	return st
}

// updateRoutes gives the rule a pool for each route of its config, keeping
// those of running routes whose settings are unchanged, and stops the
// pools of the routes that are gone or changed. Called when the rule
// starts (no pools yet) and on reload, with the server's mu held then.
func (r *rule) updateRoutes() {
	old := r.routes
	r.routes = make(map[string]*backend.Pool, len(r.cfg.Routes))
	for _, rt := range r.cfg.Routes {
		st := r.s.routeSettings(r.cfg, rt, r.backendTLS[rt.Name])
		p := old[rt.Name]
		if p != nil && st.Equal(p.Settings()) {
			r.routes[rt.Name] = p
			delete(old, rt.Name)
			continue
		}
		r.routes[rt.Name] = r.s.startPool(st, rt.BackendsFrom, p, r.cfg.Name, rt.Name)
	}
	for _, p := range old {
		p.Stop()
	}
}

// stopRoutes stops the health checks of every route's pool.
func (r *rule) stopRoutes() {
	for _, p := range r.routes {
		p.Stop()
	}
}

// tcpRoutes fills in the routes of the TCP side's view of the rule: each
// with its pool, the table that chooses among them, and the default route
// (the rule's own pool) only when the rule has backends of its own,
// listed or discovered.
func (r *rule) tcpRoutes(tr *tcp.Rule) {
	rc := r.cfg
	if len(rc.Routes) == 0 {
		return
	}
	specs := make([]route.Spec, len(rc.Routes))
	tr.Routes = make([]tcp.Route, len(rc.Routes))
	for i, rt := range rc.Routes {
		specs[i] = route.Spec{SNI: rt.SNI, ALPN: rt.ALPN, HTTPHost: rt.HTTPHost, Detect: rt.Detect}
		tr.Routes[i] = tcp.Route{Name: rt.Name, Pool: r.routes[rt.Name], SendProxy: rt.ProxyProtocol, TLS: r.routeTLS[rt.Name]}
	}
	table, err := route.New(specs)
	if err != nil { // validation refuses such a config; never route blindly
		r.logger.Error("routes ignored: "+err.Error(), "rule", rc.Name)
		table, _ = route.New(nil)
	}
	tr.Table = table
	if len(rc.Backends) == 0 && rc.BackendsFrom.IsZero() {
		tr.Pool = nil
	}
}
