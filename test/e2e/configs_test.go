package e2e

// badConfig is a config sluice must reject, and the messages it must print.
type badConfig struct {
	name   string
	config string
	want   []string // lines expected in stderr; FILE stands for the config's path
}

// badConfigs are checked by TestBadConfigs. The messages are the exact ones
// internal/config's own tests pin down (parse_bad_test.go); here they are
// checked end to end, through the binary, with the path the user passed.
var badConfigs = []badConfig{
	{
		name:   "backend without port",
		config: "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\n  \"10.0.0.6:80\",\n  \"10.0.0.5\",\n]\n",
		want:   []string{`FILE:6: rule "web": backend "10.0.0.5": missing port`},
	},
	{
		name:   "unknown key with a hint",
		config: "[[rule]]\nname = \"web\"\nlisten = \":80\"\nlistne = \":81\"\nbackends = [\"a:1\"]\n",
		want:   []string{`FILE:4: rule "web": unknown key "listne" (did you mean "listen"?)`},
	},
	{
		name:   "TOML syntax error with a column",
		config: "[[rule]]\nname = \"web\nlisten = \":80\"\n",
		want:   []string{`FILE:2:12: invalid TOML: basic strings cannot have new lines`},
	},
	{
		name:   "invalid duration",
		config: "[[rule]]\nname = \"web\"\nlisten = \":8080\"\nbackends = [\"10.0.0.5:80\"]\n\n\nidle_timeout = \"5 minutes\"\n",
		want:   []string{`FILE:7: rule "web": idle_timeout "5 minutes": invalid duration (want e.g. "90s", "5m", "1h")`},
	},
	{
		name:   "unknown balance",
		config: "[[rule]]\nname = \"web\"\nlisten = \":8080\"\nbackends = [\"10.0.0.5:80\"]\nbalance = \"fastest\"\n",
		want: []string{`FILE:5: rule "web": balance "fastest": unknown value ` +
			`(want one of round-robin, least-conn, random, source-hash, first)`},
	},
	{
		name:   "no rules",
		config: "log_level = \"info\"\n",
		want:   []string{`FILE: no rules (add a [[rule]] table)`},
	},
	{
		name: "every problem reported, in line order",
		config: "log_format = \"yaml\"\n[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\"b\"]\nretries = -1\n" +
			"[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\"c:1\"]\nmax_sessions = 1.5\n",
		want: []string{
			`FILE:1: log_format "yaml": unknown value (want one of text, json)`,
			`FILE:5: rule "web": backend "b": missing port`,
			`FILE:6: rule "web": retries -1: must not be negative`,
			`FILE:8: rule "web": duplicate rule name (first at line 3)`,
			`FILE:9: rule "web": listen ":80" already used by rule "web"`,
			`FILE:11: rule "web": max_sessions 1.5: want an integer, not a float`,
		},
	},
}
