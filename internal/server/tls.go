package server

import (
	"errors"
	"fmt"
	"time"

	"sluice/internal/admin"
	"sluice/internal/config"
	"sluice/internal/metrics"
	"sluice/internal/tlsconf"
)

// A rule's TLS files are read when it starts and at every reload, before
// anything changes (see Reload): a reload that finds an unreadable or
// mismatched file fails as a whole, naming the file. Each rule and route
// that terminates TLS keeps one tlsconf.Holder for as long as it runs;
// a reload swaps the newly read Server into it, so that new handshakes
// take a renewed certificate, live connections keep theirs, and session
// tickets issued before the reload still resume.

// tlsFiles is what a rule's [tls] tables made, read at one start or
// reload.
type tlsFiles struct {
	rule   *tlsconf.Server            // the rule's own; nil: it does not terminate
	routes map[string]*tlsconf.Server // each terminating route's, by route name
	// backends are the clients of the [backend_tls] tables, by route
	// name ("" for the rule's own); none for plain TCP.
	backends map[string]*tlsconf.Client
}

// loadTLS reads the TLS files of every rule of cfg, [tls] and
// [backend_tls], and returns what they made, by rule name. The error names
// every rule, route and file at fault.
func loadTLS(cfg *config.Config) (map[string]tlsFiles, error) {
	out := make(map[string]tlsFiles, len(cfg.Rules))
	var errs []error
	for _, rc := range cfg.Rules {
		f, err := loadRuleTLS(rc)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", rc.Name, err))
			continue
		}
		out[rc.Name] = f
	}
	return out, errors.Join(errs...)
}

// loadRuleTLS reads the TLS files of the rule rc and of its routes.
func loadRuleTLS(rc config.Rule) (tlsFiles, error) {
	f := tlsFiles{routes: map[string]*tlsconf.Server{}, backends: map[string]*tlsconf.Client{}}
	srv, client, err := loadUpstreamTLS(rc.Upstream)
	if err != nil {
		return f, err
	}
	f.rule, f.backends[""] = srv, client
	for _, rt := range rc.Routes {
		srv, client, err := loadUpstreamTLS(rt.Upstream)
		if err != nil {
			return f, fmt.Errorf("route %q: %w", rt.Name, err)
		}
		f.routes[rt.Name], f.backends[rt.Name] = srv, client
	}
	return f, nil
}

// loadUpstreamTLS reads the files of u's [tls] table and of its
// [backend_tls]; nil for a table u does not have.
func loadUpstreamTLS(u config.Upstream) (*tlsconf.Server, *tlsconf.Client, error) {
	var client *tlsconf.Client
	if b := u.BackendTLS; b != nil {
		var err error
		if client, err = tlsconf.NewClient(tlsconf.ClientFiles(*b)); err != nil {
			return nil, nil, fmt.Errorf("backend_tls: %w", err)
		}
	}
	if u.TLS == nil {
		return nil, client, nil
	}
	srv, err := tlsconf.LoadServer(serverFiles(u.TLS))
	if err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	return srv, client, nil
}

// serverFiles converts a [tls] table.
func serverFiles(t *config.TLS) tlsconf.ServerFiles {
	f := tlsconf.ServerFiles{MinVersion: t.MinVersion, ALPN: t.ALPN, ClientCA: t.ClientCA}
	for _, p := range t.Certificates {
		f.Certificates = append(f.Certificates, tlsconf.CertKey(p))
	}
	return f
}

// setTLS makes f the rule's TLS servers: swapped into the holders the rule
// and its routes have, new holders for those that start terminating, none
// for those that stop; and the clients its pools speak TLS to backends
// with. Called before the rule's TCP side is (re)built,
// with the server's mu held once the rule runs.
func (r *rule) setTLS(f tlsFiles) {
	r.tls = hold(r.tls, f.rule)
	old := r.routeTLS
	r.routeTLS = make(map[string]*tlsconf.Holder, len(f.routes))
	for name, srv := range f.routes {
		if h := hold(old[name], srv); h != nil {
			r.routeTLS[name] = h
		}
	}
	r.backendTLS = f.backends
}

// backendTLSChanged reports whether the [backend_tls] files read in f
// differ from those the rule's pools were built with, by settings or by
// the files' contents. Only reloads, which run one at a time, write them.
func (r *rule) backendTLSChanged(f tlsFiles) bool {
	if len(f.backends) != len(r.backendTLS) {
		return true
	}
	for route, c := range f.backends {
		if !c.Equal(r.backendTLS[route]) {
			return true
		}
	}
	return false
}

// hold returns h holding srv (a new Holder when h is nil); nil when srv
// is nil.
func hold(h *tlsconf.Holder, srv *tlsconf.Server) *tlsconf.Holder {
	switch {
	case srv == nil:
		return nil
	case h == nil:
		return tlsconf.NewHolder(srv)
	}
	h.Swap(srv)
	return h
}

// certificatesLocked reports the certificates the rule r serves where it
// terminates TLS: its own [rule.tls] ones (Route empty) and its routes',
// in config order. s.mu is held.
func (s *Server) certificatesLocked(r *rule) []admin.CertStatus {
	var out []admin.CertStatus
	add := func(h *tlsconf.Holder, route string) {
		if h == nil {
			return
		}
		for _, e := range h.Server().Expiry() {
			out = append(out, admin.CertStatus{Name: e.Name, NotAfter: e.NotAfter, Route: route})
		}
	}
	add(r.tls, "")
	for _, rt := range r.cfg.Routes {
		add(r.routeTLS[rt.Name], rt.Name)
	}
	return out
}

// certificates reports every served certificate's expiry, for the
// metrics.
func (s *Server) certificates() []metrics.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metrics.Certificate
	for _, r := range s.rules {
		for _, c := range s.certificatesLocked(r) {
			out = append(out, metrics.Certificate{Rule: r.cfg.Name, Name: c.Name, NotAfter: c.NotAfter})
		}
	}
	return out
}

// observeBackendTLS returns the function a pool of the rule tells its
// backend handshakes to, counting them in the rule's metrics.
func (s *Server) observeBackendTLS(name string) func(string, time.Duration) {
	m := s.metrics.Rule(name)
	return func(result string, d time.Duration) { m.TLSHandshake(metrics.SideBackend, result, d) }
}
