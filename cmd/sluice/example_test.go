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
// example, and what it prints is itself a valid config with the same rules.
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
		{"[[rule]] or [defaults]", config.Rule{}, []string{"Routes", "PeekTimeout", "TLS", "BackendTLS"}},
		{"health_check", config.HealthCheck{}, nil},
		{"a backend table", config.Backend{}, nil},
	} {
		typ := reflect.TypeOf(tc.typ)
		for _, f := range reflect.VisibleFields(typ) {
			if f.Anonymous || slices.Contains(tc.skip, f.Name) {
				continue
			}
			key := snakeCase(f.Name)
			if !written[tc.table][key] {
				t.Errorf("%s: key %q (config.%s.%s) is not in the example under %s; add it with a comment",
					examplePath, key, typ.Name(), f.Name, tc.table)
			}
		}
	}
}

// writtenKeys collects the keys the example writes, by where they are.
func writtenKeys(doc map[string]any) map[string]map[string]bool {
	keys := map[string]map[string]bool{
		"top level": {}, "[[rule]] or [defaults]": {}, "health_check": {}, "a backend table": {},
	}
	var tables []map[string]any
	for k, v := range doc {
		keys["top level"][k] = true
		switch v := v.(type) {
		case map[string]any: // [defaults]
			tables = append(tables, v)
		case []any: // [[rule]]
			for _, r := range v {
				if r, ok := r.(map[string]any); ok {
					tables = append(tables, r)
				}
			}
		}
	}
	for _, rule := range tables {
		for k, v := range rule {
			keys["[[rule]] or [defaults]"][k] = true
			switch k {
			case "health_check":
				if hc, ok := v.(map[string]any); ok {
					for hk := range hc {
						keys["health_check"][hk] = true
					}
				}
			case "backends":
				list, _ := v.([]any)
				for _, b := range list {
					if bt, ok := b.(map[string]any); ok {
						for bk := range bt {
							keys["a backend table"][bk] = true
						}
					}
				}
			}
		}
	}
	return keys
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
	} {
		if got := snakeCase(name); got != want {
			t.Errorf("snakeCase(%q) = %q, want %q", name, got, want)
		}
	}
}
