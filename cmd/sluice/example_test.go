package main

import (
	"bytes"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/pelletier/go-toml/v2"

	"sluice/internal/config"
)

// examplePath is the example config shipped at the top of the repository.
const examplePath = "../../sluice.example.toml"

// TestExampleChecks: `sluice check -c sluice.example.toml` accepts the
// example, and what it prints is itself a valid config with the same rules,
// routes and TLS settings.
func TestExampleChecks(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := check([]string{"-c", examplePath}, &out, &errOut); code != exitOK {
		t.Fatalf("sluice check -c %s: exit %d, want %d\nstderr:\n%s", examplePath, code, exitOK, errOut.String())
	}
	if errOut.Len() != 0 {
		t.Errorf("sluice check -c %s wrote to stderr:\n%s", examplePath, errOut.String())
	}
	example, err := config.Load(examplePath)
	if err != nil {
		t.Fatalf("load %s: %v", examplePath, err)
	}
	printed, err := config.Parse("check output", out.Bytes())
	if err != nil {
		t.Fatalf("the output of sluice check does not parse: %v\noutput:\n%s", err, out.String())
	}
	if got, want := ruleNames(printed), ruleNames(example); !slices.Equal(got, want) {
		t.Errorf("sluice check printed rules %q, want %q", got, want)
	}
	// Routes, tls and backend_tls included: the printed rules are the
	// example's, every value in force (relative paths resolved).
	if !reflect.DeepEqual(printed.Rules, example.Rules) {
		t.Errorf("the rules sluice check printed differ from the example's:\n%s", out.String())
	}
}

// ruleNames lists the names of a config's rules in order.
func ruleNames(c *config.Config) []string {
	var names []string
	for _, r := range c.Rules {
		names = append(names, r.Name)
	}
	return names
}

// TestExampleShowsEveryKey: every key the config accepts is written in the
// example at least once, so a key added to internal/config but not to the
// example fails here. The keys are derived from the exported config types
// (a field LikeThisIP is the key like_this_ip), and the example is read as
// plain TOML to see which keys it really writes, not which ones got
// defaults.
func TestExampleShowsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", examplePath, err)
	}
	written := writtenKeys(doc)
	for _, tc := range []struct {
		table string // where the keys go, for messages
		typ   any    // the config type whose fields are the keys
		skip  []string
	}{
		{"top level", config.Config{}, []string{"Path", "Rules"}}, // Rules is [[rule]]; Path is not a key
		{"[[rule]] or [defaults]", config.Rule{}, nil},
		{"health_check", config.HealthCheck{}, nil},
		{"a backend table", config.Backend{}, nil},
		{"[[rule.route]]", config.Route{}, nil},
		{"tls", config.TLS{}, nil},
		{"a certificate table", config.CertKey{}, nil},
		{"backend_tls", config.BackendTLS{}, nil},
	} {
		typ := reflect.TypeOf(tc.typ)
		for _, f := range reflect.VisibleFields(typ) {
			if f.Anonymous || slices.Contains(tc.skip, f.Name) {
				continue
			}
			key := snakeCase(f.Name)
			if f.Name == "Routes" {
				key = "route" // written [[rule.route]], one table per route
			}
			if !written[tc.table][key] {
				t.Errorf("%s: key %q (config.%s.%s) is not in the example under %s; add it with a comment",
					examplePath, key, typ.Name(), f.Name, tc.table)
			}
		}
	}
}

// writtenKeys collects the keys the example writes, by where they are.
func writtenKeys(doc map[string]any) map[string]map[string]bool {
	keys := map[string]map[string]bool{"top level": {}}
	var rules []map[string]any
	for k, v := range doc {
		keys["top level"][k] = true
		switch v := v.(type) {
		case map[string]any: // [defaults]
			rules = append(rules, v)
		case []any: // [[rule]]
			rules = append(rules, tables(v)...)
		}
	}
	for _, rule := range rules {
		collectKeys(keys, "[[rule]] or [defaults]", rule)
		for _, route := range tables(rule["route"]) {
			collectKeys(keys, "[[rule.route]]", route)
		}
	}
	return keys
}

// collectKeys records the keys of a rule or route table under name, and
// those of the tables inside it under theirs.
func collectKeys(keys map[string]map[string]bool, name string, table map[string]any) {
	add := func(name string, t map[string]any) {
		if keys[name] == nil {
			keys[name] = map[string]bool{}
		}
		for k := range t {
			keys[name][k] = true
		}
	}
	add(name, table)
	for _, sub := range []string{"health_check", "tls", "backend_tls"} {
		if t, ok := table[sub].(map[string]any); ok {
			add(sub, t)
		}
	}
	for _, b := range tables(table["backends"]) {
		add("a backend table", b)
	}
	if t, ok := table["tls"].(map[string]any); ok {
		for _, c := range tables(t["certificates"]) {
			add("a certificate table", c)
		}
	}
}

// tables returns the tables in a decoded TOML array (of tables, or mixed).
func tables(v any) []map[string]any {
	list, _ := v.([]any)
	var out []map[string]any
	for _, item := range list {
		if t, ok := item.(map[string]any); ok {
			out = append(out, t)
		}
	}
	return out
}

// snakeCase turns a Go field name into its config key: MaxConnectionsPerIP
// becomes max_connections_per_ip and UDPSessionTimeout udp_session_timeout.
func snakeCase(name string) string {
	rs := []rune(name)
	var b strings.Builder
	for i, r := range rs {
		if i > 0 && unicode.IsUpper(r) {
			prevLower := unicode.IsLower(rs[i-1])
			acronymEnd := unicode.IsUpper(rs[i-1]) && i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || acronymEnd {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// TestSnakeCase: the field-to-key mapping the example test relies on gives
// the keys config really accepts.
func TestSnakeCase(t *testing.T) {
	for name, want := range map[string]string{
		"Name":                "name",
		"MaxConnectionsPerIP": "max_connections_per_ip",
		"UDPSessionTimeout":   "udp_session_timeout",
		"ResolveTTL":          "resolve_ttl",
		"RatePerIP":           "rate_per_ip",
		"AdminToken":          "admin_token",
		"HTTPHost":            "http_host",
		"ClientCA":            "client_ca",
		"BackendTLS":          "backend_tls",
		"InsecureSkipVerify":  "insecure_skip_verify",
	} {
		if got := snakeCase(name); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", name, got, want)
		}
	}
}
