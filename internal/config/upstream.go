package config

import "time"

// defaultMaxQueue bounds a queue (queue_timeout) unless max_queue says.
const defaultMaxQueue = 1024

// durationOrOff reads a duration, or "off" (a rule or route lifting what
// it inherits) as zero.
func (s source) durationOrOff(key string, v any) opt[time.Duration] {
	if v == "off" {
		o := start[time.Duration](s, key, v)
		o.set = true
		return o
	}
	return s.duration(key, v)
}

// upstreamSpec is the backend-side keys of one table (a rule, [defaults] or
// a route) as read, before inheritance and defaults are applied.
type upstreamSpec struct {
	backends                   opt[[]backendAt]
	backendsFrom               opt[BackendsFrom]
	balance                    opt[string]
	connectTimeout, resolveTTL opt[time.Duration]
	retries, proxyProtocol     opt[int]
	health                     opt[*HealthCheck]
	tls                        opt[*TLS]
	backendTLS                 opt[*BackendTLS]
	slowStart, queueTimeout    opt[time.Duration]
	maxQueue                   opt[int]
	source                     opt[Source]
	mark                       opt[uint32]
}

// readUpstream reads the backend-side keys of a table.
func readUpstream(s source, r *rawUpstream) upstreamSpec {
	// Keys are read, and problems reported, in this order.
	return upstreamSpec{
		backends:       s.backends("backends", r.Backends),
		backendsFrom:   s.backendsFrom(r.BackendsFrom),
		balance:        s.enum("balance", r.Balance, "round-robin", "least-conn", "random", "source-hash", "first"),
		connectTimeout: s.duration("connect_timeout", r.ConnectTimeout),
		resolveTTL:     s.duration("resolve_ttl", r.ResolveTTL),
		retries:        s.integer("retries", r.Retries, 0),
		proxyProtocol:  s.proxyProtocol(r.ProxyProtocol),
		health:         s.health(r.HealthCheck),
		tls:            s.tls(r.TLS),
		backendTLS:     s.backendTLS(r.BackendTLS),
		slowStart:      s.durationOrOff("slow_start", r.SlowStart),
		queueTimeout:   s.durationOrOff("queue_timeout", r.QueueTimeout),
		maxQueue:       s.integer("max_queue", r.MaxQueue, 1),
		source:         s.source(r.Source),
		mark:           s.mark(r.Mark),
	}
}

// inherit returns u with every key it does not set taken from inh.
func (u *upstreamSpec) inherit(inh *upstreamSpec) upstreamSpec {
	return upstreamSpec{
		backends:       pick(u.backends, inh.backends),
		backendsFrom:   pick(u.backendsFrom, inh.backendsFrom),
		balance:        pick(u.balance, inh.balance),
		connectTimeout: pick(u.connectTimeout, inh.connectTimeout),
		resolveTTL:     pick(u.resolveTTL, inh.resolveTTL),
		retries:        pick(u.retries, inh.retries),
		proxyProtocol:  pick(u.proxyProtocol, inh.proxyProtocol),
		health:         pick(u.health, inh.health),
		tls:            pick(u.tls, inh.tls),
		backendTLS:     pick(u.backendTLS, inh.backendTLS),
		slowStart:      pick(u.slowStart, inh.slowStart),
		queueTimeout:   pick(u.queueTimeout, inh.queueTimeout),
		maxQueue:       pick(u.maxQueue, inh.maxQueue),
		source:         pick(u.source, inh.source),
		mark:           pick(u.mark, inh.mark),
	}
}

// upstream applies the built-in defaults to the keys u leaves out. Retries
// defaults to every other backend once, and with backends_from to at
// least defaultDiscoveredRetries.
func (u *upstreamSpec) upstream() Upstream {
	up := Upstream{
		BackendsFrom:   u.backendsFrom.val,
		Balance:        u.balance.or(defaultBalance),
		ConnectTimeout: u.connectTimeout.or(defaultConnectTimeout),
		ResolveTTL:     u.resolveTTL.or(defaultResolveTTL),
		ProxyProtocol:  u.proxyProtocol.val,
		HealthCheck:    u.health.val,
		TLS:            u.tls.val,
		BackendTLS:     u.backendTLS.val,
		SlowStart:      u.slowStart.val,
		QueueTimeout:   u.queueTimeout.val,
		MaxQueue:       u.maxQueue.or(defaultMaxQueue),
		Source:         u.source.val,
		Mark:           u.mark.val,
	}
	for _, b := range u.backends.val {
		up.Backends = append(up.Backends, b.Backend)
	}
	retries := max(len(up.Backends)-1, 0)
	if !up.BackendsFrom.IsZero() {
		retries = max(retries, defaultDiscoveredRetries)
	}
	up.Retries = u.retries.or(retries)
	return up
}

// checkBackendTLSName reports unix-socket backends that backend_tls would
// verify without a server_name: they have no host name to verify against.
func checkBackendTLSName(s source, u *Upstream, backends []backendAt) {
	bt := u.BackendTLS
	if bt == nil || bt.ServerName != "" || bt.InsecureSkipVerify {
		return
	}
	for _, b := range backends {
		if b.Address.Network == "unix" {
			s.errorAt(b.line, "backend %q: backend_tls needs server_name (a unix socket has no host name to verify)", b.Address.String())
		}
	}
}
