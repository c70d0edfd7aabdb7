package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"sluice/internal/access"
)

// The protocols detect may name, in the order messages list them.
var detectable = []string{"tls", "http", "ssh", "proxy"}

// readRoutes reads a rule's [[rule.route]] tables in order. Each route
// takes from up, the rule's backend side (its own keys and those of
// [defaults]), every key it does not set but backends and backends_from.
// listen is the rule's, which a backend's range of ports must match.
func readRoutes(s source, raws []rawRoute, up *upstreamSpec, listen opt[Address]) []Route {
	if len(raws) == 0 {
		return nil
	}
	routes := make([]Route, 0, len(raws))
	first := make(map[string]int, len(raws)) // route name -> its line
	for j := range raws {
		rs := s.sub(routeLabel(raws[j].Name, j), "route."+strconv.Itoa(j))
		r, name := readRoute(rs, &raws[j], j, up, listen)
		routes = append(routes, r)
		if !name.valid() {
			continue
		}
		line := name.line
		if !name.present {
			line = rs.line("")
		}
		if at, dup := first[r.Name]; dup {
			rs.errorAt(line, "duplicate route name (first at line %d)", at)
			continue
		}
		first[r.Name] = line
	}
	return routes
}

// readRoute reads route j of a rule, and returns it with its name as read.
func readRoute(rs source, raw *rawRoute, j int, up *upstreamSpec, listen opt[Address]) (Route, opt[string]) {
	name := readName(rs, raw.Name)
	if name.set && name.val == access.DefaultRoute {
		rs.errorf("name", "name %q is reserved: logs, metrics and the API call the rule's own backends so", access.DefaultRoute)
		name.set = false
	}
	r := Route{
		Name:     name.or(defaultRouteName(j)),
		SNI:      rs.hostList("sni", raw.SNI, false),
		ALPN:     rs.stringList("alpn", raw.ALPN, false, checkALPN),
		HTTPHost: rs.hostList("http_host", raw.HTTPHost, true),
		Detect:   rs.detect(raw.Detect),
	}
	own := readUpstream(rs, &raw.rawUpstream)
	u := own.inherit(up)
	u.backends = own.backends // the rule's are the default route, not the route's
	u.backendsFrom = own.backendsFrom
	r.Upstream = u.upstream()
	if !own.backends.present && !own.backendsFrom.present {
		rs.errorf("", "missing backends (a route does not inherit the rule's backends or backends_from: those are the default route)")
	}
	if raw.SNI == nil && raw.ALPN == nil && raw.HTTPHost == nil && raw.Detect == nil {
		rs.errorf("", "no matcher (set sni, alpn, http_host or detect)")
	}
	checkDuplicateBackends(rs, own.backends.val)
	checkBackendRanges(rs, listen, own.backends.val)
	checkBackendTLSName(rs, &r.Upstream, own.backends.val)
	checkSource(rs, opt[Address]{}, u.source, own.backends.val)
	return r, name
}

// defaultRouteName is the name of route j (from 0) of a rule that names
// it not.
func defaultRouteName(j int) string {
	return "route-" + strconv.Itoa(j+1)
}

// routeLabel names route j of a rule for messages, from its name as
// decoded: `route "api"`, `route "route-2"` for an unnamed one, or
// `route #2` when the name is not valid.
func routeLabel(name any, j int) string {
	switch n := name.(type) {
	case nil:
		return fmt.Sprintf("route %q", defaultRouteName(j))
	case string:
		if checkName(n) {
			return fmt.Sprintf("route %q", n)
		}
	}
	return "route #" + strconv.Itoa(j+1)
}

// stringList reads a list of strings, each checked and normalised by check.
// Unless empty is allowed, a list must hold at least one.
func (s source) stringList(key string, v any, empty bool, check func(string) (string, error)) []string {
	var out []string
	n := 0
	listed := s.list(key, v, func(elem string, v any) {
		n++
		str, ok := v.(string)
		if !ok {
			s.errorf(elem, "%s entry %s: want a string, not %s", key, show(v), typeName(v))
			return
		}
		norm, err := check(str)
		if err != nil {
			s.errorf(elem, "%s %q: %v", key, str, err)
			return
		}
		out = append(out, norm)
	})
	if listed && n == 0 && !empty {
		s.errorf(key, "%s: empty list (want at least one)", key)
	}
	return out
}

// hostList reads the names of an sni or http_host matcher, lower-cased.
func (s source) hostList(key string, v any, http bool) []string {
	return s.stringList(key, v, false, func(name string) (string, error) {
		return matchName(name, http)
	})
}

// detect reads detect: one protocol, or a list of them.
func (s source) detect(v any) []string {
	switch d := v.(type) {
	case nil:
		return nil
	case string:
		if _, err := checkDetect(d); err != nil {
			s.errorf("detect", "detect %q: %v", d, err)
			return nil
		}
		return []string{d}
	case []any:
		return s.stringList("detect", v, false, checkDetect)
	}
	s.errorf("detect", "detect %s: want a string or a list of strings, not %s", show(v), typeName(v))
	return nil
}

// checkDetect checks a protocol detect names.
func checkDetect(p string) (string, error) {
	if !contains(detectable, p) {
		return "", fmt.Errorf("unknown value (want one of %s)", strings.Join(detectable, ", "))
	}
	return p, nil
}

// checkALPN checks an ALPN protocol ID (RFC 7301: 1 to 255 bytes); it is
// kept as written.
func checkALPN(p string) (string, error) {
	if len(p) < 1 || len(p) > 255 {
		return "", errors.New("must be 1 to 255 bytes long")
	}
	return p, nil
}

// errWildcard says where the wildcard of a server name may be.
var errWildcard = errors.New(`a wildcard must be the whole first label (as in "*.example.org")`)

// matchName checks a name an sni (http false) or http_host matcher compares
// with what a client sends, and returns it lower-cased. Both take host
// names, with "*." as a whole first label for any name under the rest;
// http_host also takes IP addresses (an IPv6 one with or without brackets,
// kept without, as the Host header's host is compared). Neither takes a
// port.
func matchName(name string, http bool) (string, error) {
	lower := strings.ToLower(name)
	if http {
		if ip, ok, err := hostIP(lower); ok || err != nil {
			return ip, err
		}
	} else if _, err := netip.ParseAddr(strings.Trim(lower, "[]")); err == nil {
		return "", errors.New("an IP address (clients send no server name for one)")
	}
	if strings.ContainsAny(lower, ":[]") {
		if http {
			return "", errors.New("no port (the Host header is matched without its port)")
		}
		return "", errors.New("no port (a server name has none)")
	}
	rest := strings.TrimPrefix(lower, "*.")
	switch {
	case strings.Contains(rest, "*"):
		return "", errWildcard
	case strings.HasSuffix(rest, "."):
		return "", fmt.Errorf("invalid host name %q", name)
	}
	if err := checkHostName(rest); err != nil {
		return "", err
	}
	return lower, nil
}

// hostIP reads an IP address as http_host takes it; ok is false when the
// name is not one (and may be a host name).
func hostIP(name string) (ip string, ok bool, err error) {
	if inner, bracketed := strings.CutPrefix(name, "["); bracketed {
		inner, closed := strings.CutSuffix(inner, "]")
		if !closed {
			return "", false, nil // "[::1]:80": the caller reports the port
		}
		a, perr := netip.ParseAddr(inner)
		if perr != nil || !a.Is6() || a.Zone() != "" {
			return "", false, fmt.Errorf("invalid IPv6 address %q", inner)
		}
		return a.String(), true, nil
	}
	a, perr := netip.ParseAddr(name)
	if perr != nil {
		return "", false, nil
	}
	if a.Zone() != "" {
		return "", false, fmt.Errorf("invalid IP address %q (no zone)", name)
	}
	return a.String(), true, nil
}
