package config

import (
	"strconv"
	"strings"
)

// schema says which keys a table of the document may hold.
type schema uint8

const (
	schemaAny    schema = iota // any key: a value decoded as it is, or inside an unknown key
	schemaTop                  // the top-level keys
	schemaRules                // the rule array: each element is a rule
	schemaRule                 // a rule, or [defaults]
	schemaHealth               // a health_check table
)

// child returns the schema of the key name in a table of schema s, and
// whether s does not allow that key.
func (s schema) child(name string) (schema, bool) {
	switch s {
	case schemaTop:
		switch name {
		case "defaults":
			return schemaRule, false
		case "rule":
			return schemaRules, false
		}
		return schemaAny, !isKnown(topKeys, name)
	case schemaRules:
		return schemaRule, false
	case schemaRule:
		if name == "health_check" {
			return schemaHealth, false
		}
		return schemaAny, !isKnown(ruleKeys, name)
	case schemaHealth:
		return schemaAny, !isKnown(healthKeys, name)
	}
	return schemaAny, false
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
// where it first appears, naming the rule it is in and hinting at the key
// it looks like. Keys inside an unknown key are not reported again.
func (ix *index) checkKeys(col *collector, raw *rawConfig) {
	for i := range ix.nodes {
		n := &ix.nodes[i]
		if !n.bad {
			continue
		}
		s, key := source{col: col}, n.name
		switch table := &ix.nodes[n.parent]; table.schema {
		case schemaRule:
			s.ctx = ix.ruleLabel(n.parent, raw)
			s.errorAt(int(n.line), "unknown key %q%s", key, hint(key, ruleKeys))
		case schemaHealth:
			s.ctx = ix.ruleLabel(table.parent, raw)
			s.errorAt(int(n.line), "unknown key %q%s", "health_check."+key, hintPrefixed("health_check.", key, healthKeys))
		default:
			s.errorAt(int(n.line), "unknown key %q%s", key, hint(key, topKeys))
		}
	}
}

// ruleLabel names the rule, or [defaults], at node id for messages.
func (ix *index) ruleLabel(id nodeID, raw *rawConfig) string {
	n := &ix.nodes[id]
	if n.parent == root {
		return "defaults"
	}
	i, _ := strconv.Atoi(n.name)
	return ruleLabel(raw, i)
}
