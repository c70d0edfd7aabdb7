package server

import (
	"encoding/json"
	"fmt"
	"time"

	"sluice/internal/admin"
	"sluice/internal/backend"
	"sluice/internal/conntrack"
)

// Backends reports the backends of the rule named rule, or of its route
// when route is not empty, for the admin API.
func (s *Server) Backends(rule, route string) ([]admin.BackendStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, pool, err := s.poolLocked(rule, route)
	if err != nil {
		return nil, err
	}
	return backendStatus(pool, r.table), nil
}

// SetBackend sets the admin state or runtime weight of the backend with
// address (as configured) of rule, or of its route, for the admin API.
// Both are checked before either is set. s.mu is held throughout, so a
// reload applies before or after it, whole.
func (s *Server) SetBackend(rule, route, address string, ch admin.BackendChange) (admin.BackendStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, pool, err := s.poolLocked(rule, route)
	if err != nil {
		return admin.BackendStatus{}, err
	}
	b := findBackend(pool, address)
	if b == nil {
		return admin.BackendStatus{}, fmt.Errorf("%s has no backend %q: %w", where(rule, route), address, admin.ErrNotFound)
	}
	state := b.State()
	if ch.State != nil {
		if state, err = backend.ParseState(*ch.State); err != nil {
			return admin.BackendStatus{}, fmt.Errorf("%w: %w", admin.ErrInvalid, err)
		}
	}
	if ch.Weight != nil {
		if err := b.SetWeight(*ch.Weight); err != nil {
			return admin.BackendStatus{}, fmt.Errorf("%w: %w", admin.ErrInvalid, err)
		}
	}
	b.SetState(state)
	var view admin.BackendStatus
	r.table.Traffic(func(live map[any]conntrack.Traffic) { view = backendView(b, live) })
	return view, nil
}

// poolLocked returns the rule named rule and its pool, or its route's
// when route is not empty. s.mu is held.
func (s *Server) poolLocked(rule, route string) (*rule, *backend.Pool, error) {
	for _, r := range s.rules {
		if r.cfg.Name != rule {
			continue
		}
		if route == "" {
			return r, r.pool, nil
		}
		if p := r.routes[route]; p != nil {
			return r, p, nil
		}
		return nil, nil, fmt.Errorf("rule %q has no route %q: %w", rule, route, admin.ErrNotFound)
	}
	return nil, nil, fmt.Errorf("no rule %q: %w", rule, admin.ErrNotFound)
}

// where names a rule or one of its routes in an error.
func where(rule, route string) string {
	if route == "" {
		return fmt.Sprintf("rule %q", rule)
	}
	return fmt.Sprintf("route %q of rule %q", route, rule)
}

// findBackend returns the backend of pool whose address as configured is
// address: "host:port", or for a unix socket "unix:/path" or the bare
// path; nil if there is none.
func findBackend(pool *backend.Pool, address string) *backend.Backend {
	for _, b := range pool.Backends() {
		a := b.Address()
		if a.String() == address || (a.Network == "unix" && a.Path == address) {
			return b
		}
	}
	return nil
}

// backendView reports one backend for the admin API; live is the bytes
// of its rule's live connections by backend (see conntrack.Table.Traffic).
func backendView(b *backend.Backend, live map[any]conntrack.Traffic) admin.BackendStatus {
	st := admin.BackendStatus{
		Address: b.Address().String(), State: b.State().String(), Up: b.Up(), Health: "up",
		Weight: b.Weight(), ConfigWeight: b.ConfigWeight(), Backup: b.Backup(),
		Active: b.Active(), ConnectErrors: b.ConnectErrors(), ConnectionsTotal: b.ConnectionsTotal(),
	}
	st.BytesUp, st.BytesDown = traffic(b, live)
	switch {
	case b.State() == backend.Maint:
		st.Health = "maint"
	case !st.Up:
		st.Health = "down"
	}
	if t := b.LastChange(); !t.IsZero() {
		t = t.UTC()
		st.LastChange = &t
	}
	return st
}

// savedBackend is what a process hands its successor (hitless upgrade) of
// one backend it runs: what was set on it at runtime.
type savedBackend struct {
	Rule         string    `json:"rule"`
	Route        string    `json:"route,omitempty"` // empty: the rule's own backends
	Address      string    `json:"address"`
	State        string    `json:"state"`
	Weight       int       `json:"weight"`
	ConfigWeight int       `json:"config_weight"` // the file's weight, when saved
	Changed      time.Time `json:"changed,omitzero"`
}

// BackendStates returns what was set at runtime on every backend whose
// state or weight differs from the file's, as JSON for the process that
// replaces this one (see RestoreBackends).
func (s *Server) BackendStates() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	saved := []savedBackend{}
	add := func(rule, route string, pool *backend.Pool) {
		for _, b := range pool.Backends() {
			if b.State() == backend.Ready && b.Weight() == b.ConfigWeight() {
				continue
			}
			saved = append(saved, savedBackend{Rule: rule, Route: route, Address: b.Address().String(),
				State: b.State().String(), Weight: b.Weight(), ConfigWeight: b.ConfigWeight(), Changed: b.LastChange()})
		}
	}
	for _, r := range s.rules {
		add(r.cfg.Name, "", r.pool)
		for _, rt := range r.cfg.Routes {
			add(r.cfg.Name, rt.Name, r.routes[rt.Name])
		}
	}
	out, _ := json.Marshal(saved) // plain structs: cannot fail
	return out
}

// decodeSaved reads what the previous process handed over (see
// BackendStates); nothing, or what cannot be read, restores nothing.
func (s *Server) decodeSaved(data []byte) []savedBackend {
	if len(data) == 0 {
		return nil
	}
	var saved []savedBackend
	if err := json.Unmarshal(data, &saved); err != nil {
		s.logger.Warn("upgrade: backend states from the previous process not restored", "error", err.Error())
		return nil
	}
	return saved
}

// restore sets on the rule r's backends what the previous process had
// set on them (Options.Inherited), before r serves; only while Start runs.
// A backend the config no longer has is skipped; a weight whose file
// value changed is not restored.
func (s *Server) restore(r *rule) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sb := range s.saved {
		if sb.Rule != r.cfg.Name {
			continue
		}
		pool := r.pool
		if sb.Route != "" {
			pool = r.routes[sb.Route]
		}
		st, err := backend.ParseState(sb.State)
		if pool == nil || err != nil {
			continue
		}
		if b := findBackend(pool, sb.Address); b != nil {
			b.Restore(st, sb.Weight, sb.ConfigWeight, sb.Changed)
			s.logger.Info("backend state kept from the previous process", "rule", sb.Rule, "route", sb.Route,
				"backend", sb.Address, "state", sb.State, "weight", b.Weight())
		}
	}
}
