package server

import (
	"context"
	"fmt"
	"net/netip"

	"sluice/internal/backend"
	"sluice/internal/config"
	"sluice/internal/discovery"
)

// A rule or route with backends_from has its pool fed by a discovery
// (internal/discovery) for as long as the pool runs: its discovered
// backends join the configured ones. A pool built anew by a reload from
// the same place starts with the old pool's (backend.Pool.Inherit), so no
// connection finds it empty while its own feed makes its first reading.

// startPool builds the pool of settings st, which takes old's state (nil:
// none), starts its health checks and, when from names a place, its feed;
// where names the rule (and route) in logs.
func (s *Server) startPool(st backend.Settings, from config.BackendsFrom, old *backend.Pool, rule, route string) *backend.Pool {
	p := backend.NewPool(st, s.resolver, s.logger)
	p.Inherit(old)
	p.Start()
	where := rule
	if route != "" {
		where = rule + "/" + route
	}
	if follow := s.discovery(st, from, where); follow != nil {
		p.SetRecall(s.recall(rule, route))
		p.Feed(follow)
	}
	return p
}

// recall is what a pool of the rule (and route) asks of a backend that
// discovery adds: the state Options.Stored keeps for it; nil for none.
func (s *Server) recall(rule, route string) backend.Recall {
	if s.stored == nil {
		return nil
	}
	return func(a backend.Address) (backend.State, int, bool) {
		ch, ok := s.stored(rule, route, a.String())
		if !ok {
			return backend.Ready, 0, false
		}
		state, w := backend.Ready, 0
		if ch.State != nil {
			var err error
			if state, err = backend.ParseState(*ch.State); err != nil {
				return backend.Ready, 0, false
			}
		}
		if ch.Weight != nil {
			w = *ch.Weight
		}
		return state, w, true
	}
}

// discovery returns what feeds a pool of settings st the backends that
// from names, nil for none.
func (s *Server) discovery(st backend.Settings, from config.BackendsFrom, where string) func(context.Context, func([]backend.Target)) {
	logger := s.logger.With("rule", where)
	switch {
	case from.Kind == config.FromEtcd && s.follow != nil:
		k := &discovery.Keys{Prefix: from.Name, Logger: logger}
		return func(ctx context.Context, set func([]backend.Target)) {
			k.Follow(ctx, s.follow, func(bs []discovery.Backend) { set(targets(bs)) })
		}
	case from.Kind == config.FromSRV:
		srv := discovery.SRV{Name: from.Name, Server: from.Server, Every: st.ResolveTTL, Logger: logger}
		return func(ctx context.Context, set func([]backend.Target)) {
			srv.Follow(ctx, func(bs []discovery.Backend) { set(targets(bs)) })
		}
	}
	return nil
}

// targets are discovered backends as a pool takes them.
func targets(bs []discovery.Backend) []backend.Target {
	out := make([]backend.Target, len(bs))
	for i, b := range bs {
		out[i] = backend.Target{Address: tcpAddress(b.Addr), Weight: b.Weight, Backup: b.Backup}
	}
	return out
}

// tcpAddress is the backend address of an IP address and port.
func tcpAddress(ap netip.AddrPort) backend.Address {
	return backend.Address{Network: "tcp", Host: ap.Addr().String(), Port: ap.Port()}
}

// checkDiscovery reports a backends_from of the rule's, or of one of its
// routes', that this process cannot follow: etcd keys without --etcd.
func (s *Server) checkDiscovery(rc config.Rule) error {
	if s.follow != nil {
		return nil
	}
	check := func(from config.BackendsFrom) error {
		if from.Kind == config.FromEtcd {
			return fmt.Errorf("backends_from %q: sluice is not connected to etcd: it follows etcd keys only when run with --etcd (use \"srv:\" or backends otherwise)", from.String())
		}
		return nil
	}
	if err := check(rc.BackendsFrom); err != nil {
		return err
	}
	for _, rt := range rc.Routes {
		if err := check(rt.BackendsFrom); err != nil {
			return fmt.Errorf("route %q: %w", rt.Name, err)
		}
	}
	return nil
}
