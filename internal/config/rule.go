package config

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"time"

	"sluice/internal/congestion"
)

// Built-in defaults for rule keys that neither the rule nor [defaults] set.
const (
	defaultBalance           = "round-robin"
	defaultConnectTimeout    = 5 * time.Second
	defaultIdleTimeout       = time.Hour
	defaultDrainTimeout      = 30 * time.Second
	defaultResolveTTL        = 30 * time.Second
	defaultPeekTimeout       = 3 * time.Second
	defaultUDPSessionTimeout = 60 * time.Second
	defaultHealthInterval    = 5 * time.Second
	defaultHealthTimeout     = time.Second
	defaultHealthRise        = 2
	defaultHealthFall        = 3
)

// defaultWorkers is the built-in default of workers: one event loop per
// processor the Go runtime runs goroutines on (GOMAXPROCS, read when the
// config is built).
func defaultWorkers() int { return runtime.GOMAXPROCS(0) }

// ruleSpec is the rule keys of one table ([[rule]], [defaults] or quick-mode
// flags) as read, before inheritance and defaults are applied.
type ruleSpec struct {
	listen   opt[Address]
	protocol opt[Protocol]
	upstreamSpec
	idleTimeout, drainTimeout, udpSessTimeout, peekTimeout  opt[time.Duration]
	maxConns, maxPerIP, maxSessions, perIPv6Prefix, workers opt[int]
	ratePerIP                                               opt[float64]
	bandwidth                                               opt[int64]
	allow, deny, acceptProxy                                opt[[]netip.Prefix]
	congestion                                              opt[congestion.Choice]
	routes                                                  []rawRoute // read by buildRule; never inherited
}

// backendAt is a backend and the line it is written on.
type backendAt struct {
	Backend
	line int
}

// readSpec reads every rule key but name and route from r.
func readSpec(s source, r *rawRule) ruleSpec {
	// Keys are read, and problems reported, in this order.
	return ruleSpec{
		listen:         s.address("listen", "listen", r.Listen, roleListen),
		protocol:       s.protocol(r.Protocol),
		upstreamSpec:   readUpstream(s, &r.rawUpstream),
		idleTimeout:    s.duration("idle_timeout", r.IdleTimeout),
		drainTimeout:   s.duration("drain_timeout", r.DrainTimeout),
		udpSessTimeout: s.duration("udp_session_timeout", r.UDPSessionTimeout),
		peekTimeout:    s.duration("peek_timeout", r.PeekTimeout),
		maxConns:       s.integer("max_connections", r.MaxConnections, 0),
		maxPerIP:       s.integer("max_connections_per_ip", r.MaxConnectionsPerIP, 0),
		perIPv6Prefix:  s.prefixBits("per_ip_prefix_v6", r.PerIPPrefixV6),
		maxSessions:    s.integer("max_sessions", r.MaxSessions, 0),
		ratePerIP:      s.rate("rate_per_ip", r.RatePerIP),
		bandwidth:      s.bandwidth("bandwidth", r.Bandwidth),
		allow:          s.prefixes("allow", r.Allow),
		deny:           s.prefixes("deny", r.Deny),
		acceptProxy:    s.prefixes("accept_proxy_protocol", r.AcceptProxyProtocol),
		congestion:     s.congestion(r.CongestionControl),
		workers:        s.integer("workers", r.Workers, 1),
		routes:         r.Routes,
	}
}

// protocol reads a rule's protocol.
func (s source) protocol(v any) opt[Protocol] {
	o := s.enum("protocol", v, string(TCP), string(UDP), string(TCPUDP))
	return convert(o, func(p string) Protocol { return Protocol(p) })
}

// proxyProtocol reads "v1" or "v2" as the PROXY protocol version, and
// "off" (a rule lifting what [defaults] sets) as 0.
func (s source) proxyProtocol(v any) opt[int] {
	o := s.enum("proxy_protocol", v, "off", "v1", "v2")
	return convert(o, func(p string) int {
		if p == "off" {
			return 0
		}
		return int(p[1] - '0')
	})
}

// congestion reads congestion_control: "auto", "system" or an algorithm.
func (s source) congestion(v any) opt[congestion.Choice] {
	o := s.str("congestion_control", v)
	out := convert(o, func(string) congestion.Choice { return congestion.Choice{} })
	if o.set {
		c, err := congestion.Parse(o.val)
		if err != nil {
			s.errorf("congestion_control", "congestion_control %v", err)
			out.set = false
		}
		out.val = c
	}
	return out
}

// convert maps the value of an opt.
func convert[A, B any](o opt[A], f func(A) B) opt[B] {
	out := opt[B]{present: o.present, set: o.set, line: o.line}
	if o.set {
		out.val = f(o.val)
	}
	return out
}

// valid reports whether the key is absent or has a valid value.
func (o opt[T]) valid() bool { return !o.present || o.set }

// readName reads a rule name and checks its characters.
func readName(s source, v any) opt[string] {
	o := s.str("name", v)
	if o.set && !checkName(o.val) {
		s.errorf("name", `name %q: invalid (want letters, digits, "_", "." or "-")`, o.val)
		o.set = false
	}
	return o
}

// backends reads a non-empty list of backends.
func (s source) backends(key string, v any) opt[[]backendAt] {
	o := start[[]backendAt](s, key, v)
	var out []backendAt
	valid := true
	listed := s.list(key, v, func(elem string, v any) {
		b, ok := s.backend(elem, v)
		valid = valid && ok
		out = append(out, b)
	})
	if listed && len(out) == 0 {
		s.errorf(key, "backends: empty list (want at least one backend)")
		valid = false
	}
	o.val, o.set = out, listed && valid
	return o
}

// backend reads one backend: "host:port" or { address, weight, backup, max_connections }.
func (s source) backend(elem string, v any) (backendAt, bool) {
	switch b := v.(type) {
	case string:
		a := s.address(elem, "backend", b, roleBackend)
		return backendAt{Backend{Address: a.val, Weight: 1}, a.line}, a.set
	case map[string]any:
		return s.backendTable(elem, b)
	}
	s.errorf(elem, `backend %s: want "host:port" or a table { address, weight, backup, max_connections }, not %s`, show(v), typeName(v))
	return backendAt{}, false
}

// backendTable reads a backend written as a table.
func (s source) backendTable(elem string, t map[string]any) (backendAt, bool) {
	addr := s.address(joinPath(elem, "address"), "backend", t["address"], roleBackend)
	ctx := fmt.Sprintf("backend %s", show(t["address"]))
	if !addr.present {
		ctx = "backend"
		s.errorf(elem, "backend: missing address")
	}
	bs := s.sub(ctx, elem)
	ok := bs.knownKeys(t, backendKeys) && addr.set
	weight := bs.integer("weight", t["weight"], 1)
	backup := bs.boolean("backup", t["backup"])
	maxConns := bs.integer("max_connections", t["max_connections"], 0)
	b := Backend{Address: addr.val, Weight: weight.or(1), Backup: backup.or(false), MaxConnections: maxConns.val}
	return backendAt{b, s.line(elem)}, ok && weight.valid() && backup.valid() && maxConns.valid()
}

// knownKeys reports the keys of an inline table that are not among known,
// in sorted order; it returns whether there were none.
func (s source) knownKeys(t map[string]any, known string) bool {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ok := true
	for _, k := range keys {
		if !isKnown(known, k) {
			s.errorf(k, "unknown key %q%s", k, hint(k, known))
			ok = false
		}
	}
	return ok
}

// offWord reads a table key (health_check, tls, backend_tls) written as a
// string: "off" sets it to none, lifting what [defaults] sets.
func offWord[T any](s source, key, word string, o opt[T]) opt[T] {
	if word != "off" {
		s.errorf(key, "%s %q: want a table, or \"off\"", key, word)
		return o
	}
	o.set = true // and none: val stays the zero value
	return o
}

// health reads a health_check table.
func (s source) health(h *rawHealth) opt[*HealthCheck] {
	o := opt[*HealthCheck]{present: h != nil, line: s.line("health_check")}
	if h == nil {
		return o
	}
	if h.word != nil {
		return offWord(s, "health_check", *h.word, o)
	}
	hs := s.sub("health_check", "health_check")
	interval := hs.duration("interval", h.Interval)
	timeout := hs.duration("timeout", h.Timeout)
	rise := hs.integer("rise", h.Rise, 1)
	fall := hs.integer("fall", h.Fall, 1)
	send := hs.str("send", h.Send)
	expect := hs.str("expect", h.Expect)
	port := hs.integer("port", h.Port, 1)
	if port.val > 65535 {
		hs.errorf("port", "port %d: out of range (max 65535)", port.val)
		port.set = false
	}
	hc := &HealthCheck{
		Interval: interval.or(defaultHealthInterval),
		Timeout:  timeout.or(defaultHealthTimeout),
		Rise:     rise.or(defaultHealthRise),
		Fall:     fall.or(defaultHealthFall),
		Send:     send.val,
		Expect:   expect.val,
		Port:     uint16(port.val),
	}
	o.set = interval.valid() && timeout.valid() && rise.valid() && fall.valid() && send.valid() && expect.valid() && port.valid()
	// Checked whatever else is wrong in the table, so that every problem
	// is reported at once; a bad interval or timeout has its own message.
	if interval.valid() && timeout.valid() && hc.Timeout > hc.Interval {
		hs.errorf("timeout", "timeout %q is longer than interval %q", formatDuration(hc.Timeout), formatDuration(hc.Interval))
		o.set = false
	}
	o.val = hc
	return o
}

// built is a checked rule with what the checks across rules need.
type built struct {
	Rule
	src        source // for messages; its ctx names the rule
	named      bool   // Name is valid
	nameLine   int
	listenOK   bool // Listen is valid
	listenLine int
}

// buildRule applies inheritance (own wins over inherited) and the built-in
// defaults, reads the rule's routes, and checks what involves more than one
// key.
func buildRule(s source, own, inh *ruleSpec) built {
	listen := pick(own.listen, inh.listen)
	up := own.upstreamSpec.inherit(&inh.upstreamSpec)
	r := Rule{
		Listen:              listen.val,
		Protocol:            pick(own.protocol, inh.protocol).or(TCP),
		Upstream:            up.upstream(),
		PeekTimeout:         pick(own.peekTimeout, inh.peekTimeout).or(defaultPeekTimeout),
		IdleTimeout:         pick(own.idleTimeout, inh.idleTimeout).or(defaultIdleTimeout),
		DrainTimeout:        pick(own.drainTimeout, inh.drainTimeout).or(defaultDrainTimeout),
		Allow:               pick(own.allow, inh.allow).val,
		Deny:                pick(own.deny, inh.deny).val,
		MaxConnections:      pick(own.maxConns, inh.maxConns).val,
		MaxConnectionsPerIP: pick(own.maxPerIP, inh.maxPerIP).val,
		PerIPPrefixV6:       pick(own.perIPv6Prefix, inh.perIPv6Prefix).or(128),
		RatePerIP:           pick(own.ratePerIP, inh.ratePerIP).val,
		Bandwidth:           pick(own.bandwidth, inh.bandwidth).val,
		AcceptProxyProtocol: pick(own.acceptProxy, inh.acceptProxy).val,
		UDPSessionTimeout:   pick(own.udpSessTimeout, inh.udpSessTimeout).or(defaultUDPSessionTimeout),
		MaxSessions:         pick(own.maxSessions, inh.maxSessions).val,
		CongestionControl:   pick(own.congestion, inh.congestion).val,
		Workers:             pick(own.workers, inh.workers).or(defaultWorkers()),
	}
	r.Routes = readRoutes(s, own.routes, &up, listen)
	if !listen.present {
		s.errorf("", "missing listen")
	}
	checkBackends(s, r.Protocol, len(r.Routes) > 0, up.backends.present || up.backendsFrom.present)
	checkTCPOnly(s, r.Protocol, own, &up)
	checkUnix(s, r.Protocol, listen, up.backends.val)
	checkDuplicateBackends(s, up.backends.val)
	checkBackendRanges(s, listen, up.backends.val)
	checkBackendTLSName(s, &r.Upstream, up.backends.val)
	checkSource(s, listen, up.source, up.backends.val)
	return built{Rule: r, src: s, listenOK: listen.set, listenLine: listen.line}
}

// checkBackends reports a rule without backends (listed, or discovered:
// has says whether it has either), unless routes take its clients: a
// routed TCP rule needs none (unmatched clients are refused), but a routed
// tcp+udp rule's UDP clients still go to the rule's own.
func checkBackends(s source, p Protocol, routed bool, has bool) {
	switch {
	case has:
	case !routed:
		s.errorf("", "missing backends")
	case p == TCPUDP:
		s.errorf("", "missing backends (a %q rule's UDP clients go to them; routes take only TCP clients)", TCPUDP)
	}
}

// checkTCPOnly reports routes, tls and backend_tls on a UDP rule: they
// work on TCP streams only. A table inherited from [defaults] is reported
// where [defaults] sets it, with the way to lift it.
func checkTCPOnly(s source, p Protocol, own *ruleSpec, up *upstreamSpec) {
	if p.HasTCP() {
		return
	}
	if len(own.routes) > 0 {
		s.errorf("route", "route: routes need protocol %q or %q, not %q", TCP, TCPUDP, p)
	}
	if up.tls.val != nil {
		s.errorAt(up.tls.line, "tls: needs protocol %q or %q, not %q%s", TCP, TCPUDP, p, liftHint("tls", own.tls.present))
	}
	if up.backendTLS.val != nil {
		s.errorAt(up.backendTLS.line, "backend_tls: needs protocol %q or %q, not %q%s", TCP, TCPUDP, p, liftHint("backend_tls", own.backendTLS.present))
	}
}

// liftHint is what a message about a table a rule inherits from [defaults]
// adds: how the rule lifts it. It is empty for the rule's own table.
func liftHint(key string, own bool) string {
	if own {
		return ""
	}
	return fmt.Sprintf(` (%s = "off" lifts the one [defaults] sets)`, key)
}

// checkUnix reports unix sockets in rules that forward more than TCP.
func checkUnix(s source, p Protocol, listen opt[Address], backends []backendAt) {
	if p == TCP {
		return
	}
	if listen.set && listen.val.Network == "unix" {
		s.errorAt(listen.line, "listen %q: unix sockets need protocol %q, not %q", listen.val.String(), TCP, p)
	}
	for _, b := range backends {
		if b.Address.Network == "unix" {
			s.errorAt(b.line, "backend %q: unix sockets need protocol %q, not %q", b.Address.String(), TCP, p)
		}
	}
}

// checkDuplicateBackends reports a backend listed twice in one rule: it would
// share metrics labels and API entries with its twin.
func checkDuplicateBackends(s source, backends []backendAt) {
	first := make(map[Address]int)
	for _, b := range backends {
		if b.Address == (Address{}) {
			continue
		}
		line, dup := first[b.Address]
		if !dup {
			first[b.Address] = b.line
			continue
		}
		if line > 0 {
			s.errorAt(b.line, "backend %q listed twice (first at line %d)", b.Address.String(), line)
		} else {
			s.errorAt(b.line, "backend %q listed twice", b.Address.String())
		}
	}
}

// checkBackendRanges reports a backend whose range of ports is not as long
// as the rule's listen range: port first+i of the listen range goes to
// port first+i of the backend's, so the two must have as many ports. A
// backend of one port takes every port's clients.
func checkBackendRanges(s source, listen opt[Address], backends []backendAt) {
	if !listen.set {
		return
	}
	for _, b := range backends {
		if !b.Address.Ranged() || b.Address.Ports() == listen.val.Ports() {
			continue
		}
		if !listen.val.Ranged() {
			s.errorAt(b.line, "backend %q: a range of ports needs a listen range as long (listen %q is one port)", b.Address.String(), listen.val.String())
			continue
		}
		s.errorAt(b.line, "backend %q: a range of %d ports, but listen %q has %d (want a range of %d ports, or one port)",
			b.Address.String(), b.Address.Ports(), listen.val.String(), listen.val.Ports(), listen.val.Ports())
	}
}
