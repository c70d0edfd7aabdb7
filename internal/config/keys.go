package config

import (
	"strconv"
	"strings"
)

// schema says which keys a table of the document may hold.
type schema uint8

const (
	schemaAny        schema = iota // any key: a value decoded as it is, or inside an unknown key
	schemaTop                      // the top-level keys
	schemaRules                    // the rule array: each element is a rule
	schemaRule                     // a rule
	schemaDefaults                 // [defaults]: a rule's keys; routes are reported when built
	schemaRoutes                   // a rule's route array: each element is a route
	schemaRoute                    // a route
	schemaHealth                   // a health_check table
	schemaTLS                      // a tls table
	schemaBackendTLS               // a backend_tls table
)

// child returns the schema of the key name in a table of schema s, and
// whether s does not allow that key.
func (s schema) child(name string) (schema, bool) {
	switch s {
	case schemaTop:
		switch name {
		case "defaults":
			return schemaDefaults, false
		case "rule":
			return schemaRules, false
		}
		return schemaAny, !isKnown(topKeys, name)
	case schemaRules:
		return schemaRule, false
	case schemaRoutes:
		return schemaRoute, false
	case schemaRule, schemaDefaults, schemaRoute:
		return s.upstreamChild(name)
	case schemaHealth:
		return schemaAny, !isKnown(healthKeys, name)
	case schemaTLS:
		return schemaAny, !isKnown(tlsKeys, name)
	case schemaBackendTLS:
		return schemaAny, !isKnown(backendTLSKeys, name)
	}
	return schemaAny, false
}

// upstreamChild is child for a rule, [defaults] or a route: the tables
// they hold, and their own keys.
func (s schema) upstreamChild(name string) (schema, bool) {
	switch {
	case name == "health_check":
		return schemaHealth, false
	case name == "tls":
		return schemaTLS, false
	case name == "backend_tls":
		return schemaBackendTLS, false
	case name == "route" && s == schemaRule:
		return schemaRoutes, false
	case name == "route" && s == schemaDefaults:
		return schemaAny, false
	case s == schemaRoute:
		return schemaAny, !isKnown(routeKeys, name)
	}
	return schemaAny, !isKnown(ruleKeys, name)
}

// isKnown reports whether name is one of the space-separated known keys.
func isKnown(known, name string) bool {
	for known != "" {
		var k string
		k, known, _ = strings.Cut(known, " ")
		if k == name {
			return true
		}
	}
	return false
}

// checkKeys reports every key the schema does not know, once, on the line
// where it first appears, naming the rule (and route) it is in and hinting
// at the key it looks like. Keys inside an unknown key are not reported
// again.
func (ix *index) checkKeys(col *collector, raw *rawConfig) {
	for i := range ix.nodes {
		n := &ix.nodes[i]
		if !n.bad {
			continue
		}
		s, key := source{col: col}, n.name
		switch table := &ix.nodes[n.parent]; table.schema {
		case schemaRule, schemaDefaults:
			s.ctx = ix.ownerLabel(n.parent, raw)
			s.errorAt(int(n.line), "unknown key %q%s", key, hint(key, ruleKeys))
		case schemaRoute:
			s.ctx = ix.ownerLabel(n.parent, raw)
			if isKnown(ruleKeys, key) {
				s.errorAt(int(n.line), "%q is a key of the rule, not of a route (a route sets only sni, alpn, http_host, detect, name and backend-side keys)", key)
				continue
			}
			s.errorAt(int(n.line), "unknown key %q%s", key, hint(key, routeKeys))
		case schemaHealth, schemaTLS, schemaBackendTLS:
			s.ctx = ix.ownerLabel(table.parent, raw)
			prefix := table.name + "."
			s.errorAt(int(n.line), "unknown key %q%s", prefix+key, hintPrefixed(prefix, key, table.schema.keys()))
		default:
			s.errorAt(int(n.line), "unknown key %q%s", key, hint(key, topKeys))
		}
	}
}

// keys returns the known keys of a table of schema s that holds leaves.
func (s schema) keys() string {
	switch s {
	case schemaHealth:
		return healthKeys
	case schemaTLS:
		return tlsKeys
	case schemaBackendTLS:
		return backendTLSKeys
	}
	return ""
}

// ownerLabel names the rule, [defaults] or route at node id for messages:
// `rule "web"`, `defaults` or `rule "web": route "api"`.
func (ix *index) ownerLabel(id nodeID, raw *rawConfig) string {
	n := &ix.nodes[id]
	if n.parent == root {
		return "defaults"
	}
	j, _ := strconv.Atoi(n.name)
	if n.schema != schemaRoute {
		return ruleLabel(raw, j)
	}
	ruleID := ix.nodes[n.parent].parent
	i, _ := strconv.Atoi(ix.nodes[ruleID].name)
	label := ruleLabel(raw, i) + ": "
	if i < len(raw.Rules) && j < len(raw.Rules[i].Routes) {
		return label + routeLabel(raw.Rules[i].Routes[j].Name, j)
	}
	return label + routeLabel(nil, j)
}
