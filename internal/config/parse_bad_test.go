package config

import (
	"errors"
	"strings"
	"testing"
)

// ok is a valid rule body that bad cases add one mistake to.
const ok = "name = \"web\"\nlisten = \":8080\"\nbackends = [\"10.0.0.5:80\"]\n"

// badCase is a config with mistakes and the exact messages for them, one
// line per problem, in order.
type badCase struct {
	name string
	doc  string
	want []string
}

// badDocumentCases lists mistakes in the TOML document itself: syntax, unknown keys and tables of the wrong kind.
func badDocumentCases() []badCase {
	return []badCase{
		{"unknown top-level key", "listne = 3\n[[rule]]\n" + ok,
			[]string{`sluice.toml:1: unknown key "listne"`}},
		{"unknown rule key with hint", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nlistne = \":81\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:4: rule "web": unknown key "listne" (did you mean "listen"?)`}},
		{"unknown key in defaults", "[defaults]\nconect_timeout = \"1s\"\n[[rule]]\n" + ok,
			[]string{`sluice.toml:2: defaults: unknown key "conect_timeout" (did you mean "connect_timeout"?)`}},
		{"unknown key in health_check table", "[[rule]]\n" + ok + "[rule.health_check]\nintervl = \"1s\"\n",
			[]string{`sluice.toml:6: rule "web": unknown key "health_check.intervl" (did you mean "health_check.interval"?)`}},
		{"unknown key in backend table", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\n  \"a:1\",\n  { address = \"b:2\", wieght = 2 },\n]\n",
			[]string{`sluice.toml:6: rule "web": backend "b:2": unknown key "wieght" (did you mean "weight"?)`}},
		{"syntax error has a column", "[[rule]]\nname = \"web\nlisten = \":80\"\n",
			[]string{`sluice.toml:2:12: invalid TOML: basic strings cannot have new lines`}},
		{"CRLF line endings", "[[rule]]\r\nname = \"web\"\r\nlisten = \":80\"\r\nbackends = [\"b\"]\r\n",
			[]string{`sluice.toml:4: rule "web": backend "b": missing port`}},
		{"dotted unknown key reported once", "[[rule]]\n" + ok + "foo.bar = 1\nfoo.baz = 2\n[rule.foo.x]\n",
			[]string{`sluice.toml:5: rule "web": unknown key "foo"`}},
		{"unknown health_check key with more parts", "[[rule]]\n" + ok + "health_check.intervl.x = 1\n",
			[]string{`sluice.toml:5: rule "web": unknown key "health_check.intervl" (did you mean "health_check.interval"?)`}},
		{"unknown keys in every rule", "[[rule]]\n" + ok + "colour = 1\n[[rule]]\nname = \"b\"\nlisten = \":81\"\nbackends = [\"a:1\"]\ncolour = 2\n",
			[]string{`sluice.toml:5: rule "web": unknown key "colour"`, `sluice.toml:10: rule "b": unknown key "colour"`}},
		{"duplicate key", "log_level = \"info\"\nlog_level = \"warn\"\n",
			[]string{`sluice.toml:2:1: invalid TOML: key log_level is already defined`}},
	}
}

// badAddressCases lists mistakes in listen and backend addresses.
func badAddressCases() []badCase {
	return []badCase{
		{"backend missing port", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\n  \"10.0.0.6:80\",\n  \"10.0.0.5\",\n]\n",
			[]string{`sluice.toml:6: rule "web": backend "10.0.0.5": missing port`}},
		{"backend port 0", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\"db:0\"]\n",
			[]string{`sluice.toml:4: rule "web": backend "db:0": port 0 is not allowed for a backend`}},
		{"port out of range", "[[rule]]\nname = \"web\"\nlisten = \":70000\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:3: rule "web": listen ":70000": port 70000 out of range (max 65535)`}},
		{"port not a number", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\"a:http\"]\n",
			[]string{`sluice.toml:4: rule "web": backend "a:http": invalid port "http" (want a number)`}},
		{"bad brackets", "[[rule]]\nname = \"web\"\nlisten = \"[::1:80\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:3: rule "web": listen "[::1:80": bad brackets (want "[v6]:port")`}},
		{"IPv6 without brackets", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\"::1:80\"]\n",
			[]string{`sluice.toml:4: rule "web": backend "::1:80": IPv6 address needs brackets (want "[v6]:port")`}},
		{"empty unix path", "[[rule]]\nname = \"web\"\nlisten = \"unix:\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:3: rule "web": listen "unix:": empty unix socket path`}},
		{"unix listen path too long", "[[rule]]\nname = \"web\"\nlisten = \"unix:/" + strings.Repeat("a", 129) + "\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:3: rule "web": listen "unix:/` + strings.Repeat("a", 129) + `": unix socket path is 130 bytes; the limit is 107`}},
		{"unix backend path too long", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\n  \"a:1\",\n  { address = \"unix:/run/" + strings.Repeat("b", 103) + "\" },\n]\n",
			[]string{`sluice.toml:6: rule "web": backend "unix:/run/` + strings.Repeat("b", 103) + `": unix socket path is 108 bytes; the limit is 107`}},
		{"unix listen with udp", "[[rule]]\nname = \"web\"\nlisten = \"unix:/run/s\"\nprotocol = \"udp\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:3: rule "web": listen "unix:/run/s": unix sockets need protocol "tcp", not "udp"`}},
		{"unix backend with tcp+udp", "[[rule]]\nname = \"web\"\nlisten = \":53\"\nprotocol = \"tcp+udp\"\nbackends = [\"unix:/run/b\"]\n",
			[]string{`sluice.toml:5: rule "web": backend "unix:/run/b": unix sockets need protocol "tcp", not "tcp+udp"`}},
		{"listen host name", "[[rule]]\nname = \"web\"\nlisten = \"localhost:80\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:3: rule "web": listen "localhost:80": host must be an IP address (listen addresses are not resolved)`}},
		{"bad IP", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\"10.0.0.300:1\"]\n",
			[]string{`sluice.toml:4: rule "web": backend "10.0.0.300:1": invalid IP address "10.0.0.300"`}},
	}
}

// badValueCases lists values of the wrong type or out of range.
func badValueCases() []badCase {
	return []badCase{
		{"invalid duration", "[[rule]]\n" + ok + "\n\nidle_timeout = \"5 minutes\"\n",
			[]string{`sluice.toml:7: rule "web": idle_timeout "5 minutes": invalid duration (want e.g. "90s", "5m", "1h")`}},
		{"zero duration", "[[rule]]\n" + ok + "connect_timeout = \"0s\"\n",
			[]string{`sluice.toml:5: rule "web": connect_timeout "0s": must be greater than zero`}},
		{"negative duration", "[[rule]]\n" + ok + "drain_timeout = \"-1s\"\n",
			[]string{`sluice.toml:5: rule "web": drain_timeout "-1s": must be greater than zero`}},
		{"duration as number", "[[rule]]\n" + ok + "resolve_ttl = 30\n",
			[]string{`sluice.toml:5: rule "web": resolve_ttl 30: want a string, not an integer`}},
		{"negative count", "[[rule]]\n" + ok + "max_connections = -1\n",
			[]string{`sluice.toml:5: rule "web": max_connections -1: must not be negative`}},
		{"IPv6 prefix of 0 bits", "[[rule]]\n" + ok + "per_ip_prefix_v6 = 0\n",
			[]string{`sluice.toml:5: rule "web": per_ip_prefix_v6 0: must be at least 1`}},
		{"IPv6 prefix too long", "[defaults]\nper_ip_prefix_v6 = 129\n\n[[rule]]\n" + ok,
			[]string{`sluice.toml:2: defaults: per_ip_prefix_v6 129: an IPv6 prefix has at most 128 bits`}},
		{"IPv6 prefix as CIDR", "[[rule]]\n" + ok + "per_ip_prefix_v6 = \"/64\"\n",
			[]string{`sluice.toml:5: rule "web": per_ip_prefix_v6 "/64": want an integer, not a string`}},
		{"count as string", "[[rule]]\n" + ok + "retries = \"2\"\n",
			[]string{`sluice.toml:5: rule "web": retries "2": want an integer, not a string`}},
		{"weight 0", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [{ address = \"a:1\", weight = 0 }]\n",
			[]string{`sluice.toml:4: rule "web": backend "a:1": weight 0: must be at least 1`}},
		{"backend table without address", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [{ weight = 2 }]\n",
			[]string{`sluice.toml:4: rule "web": backend: missing address`}},
		{"backend of wrong type", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [80]\n",
			[]string{`sluice.toml:4: rule "web": backend 80: want "host:port" or a table { address, weight, backup, max_connections }, not an integer`}},
		{"rise and fall below 1", "[[rule]]\n" + ok + "health_check = { rise = 0, fall = -2 }\n",
			[]string{
				`sluice.toml:5: rule "web": health_check: rise 0: must be at least 1`,
				`sluice.toml:5: rule "web": health_check: fall -2: must be at least 1`,
			}},
		{"health timeout over interval", "[[rule]]\n" + ok + "[rule.health_check]\ninterval = \"1s\"\ntimeout = \"2s\"\n",
			[]string{`sluice.toml:7: rule "web": health_check: timeout "2s" is longer than interval "1s"`}},
		{"every health_check problem reported", "[[rule]]\n" + ok + "health_check = { rise = 0, interval = \"1s\", timeout = \"2s\", fall = 1.5 }\n",
			[]string{
				`sluice.toml:5: rule "web": health_check: rise 0: must be at least 1`,
				`sluice.toml:5: rule "web": health_check: fall 1.5: want an integer, not a float`,
				`sluice.toml:5: rule "web": health_check: timeout "2s" is longer than interval "1s"`,
			}},
		{"health timeout over the default interval", "[defaults]\nhealth_check = { timeout = \"6s\", send = 1 }\n[[rule]]\n" + ok,
			[]string{
				`sluice.toml:2: defaults: health_check: send 1: want a string, not an integer`,
				`sluice.toml:2: defaults: health_check: timeout "6s" is longer than interval "5s"`,
			}},
		{"unknown balance", "[[rule]]\n" + ok + "balance = \"fastest\"\n",
			[]string{`sluice.toml:5: rule "web": balance "fastest": unknown value (want one of round-robin, least-conn, random, source-hash, first)`}},
		{"unknown protocol", "[[rule]]\n" + ok + "protocol = \"sctp\"\n",
			[]string{`sluice.toml:5: rule "web": protocol "sctp": unknown value (want one of tcp, udp, tcp+udp)`}},
		{"unknown proxy_protocol", "[[rule]]\n" + ok + "proxy_protocol = \"v3\"\n",
			[]string{`sluice.toml:5: rule "web": proxy_protocol "v3": unknown value (want one of off, v1, v2)`}},
		{"unknown log values", "log_level = \"verbose\"\nlog_format = \"xml\"\n[[rule]]\n" + ok,
			[]string{
				`sluice.toml:1: log_level "verbose": unknown value (want one of debug, info, warn, error)`,
				`sluice.toml:2: log_format "xml": unknown value (want one of text, json)`,
			}},
		{"rate_per_ip zero", "[[rule]]\n" + ok + "rate_per_ip = 0.0\n",
			[]string{`sluice.toml:5: rule "web": rate_per_ip 0: must be a number greater than zero`}},
		{"rate_per_ip word", "[[rule]]\n" + ok + "rate_per_ip = \"fast\"\n",
			[]string{`sluice.toml:5: rule "web": rate_per_ip "fast": want a number, or "unlimited"`}},
		{"bandwidth unknown unit", "[[rule]]\n" + ok + "bandwidth = \"10mbps/s\"\n",
			[]string{`sluice.toml:5: rule "web": bandwidth "10mbps/s": unknown unit "mbps" (want e.g. "10MiB/s", "500KB/s", "1Gbit/s", an integer in bytes per second, or "unlimited")`}},
		{"bandwidth below a byte", "[[rule]]\n" + ok + "bandwidth = \"1bit/s\"\n",
			[]string{`sluice.toml:5: rule "web": bandwidth "1bit/s": less than 1 byte per second`}},
		{"bad CIDRs", "[[rule]]\n" + ok + "allow = [\"10.0.0.1/8\", \"10.0.0.0/33\"]\ndeny = [\"nope\"]\n",
			[]string{
				`sluice.toml:5: rule "web": allow "10.0.0.1/8": host bits set (did you mean "10.0.0.0/8"?)`,
				`sluice.toml:5: rule "web": allow "10.0.0.0/33": invalid CIDR (want e.g. "10.0.0.0/8", "2001:db8::/32" or a single IP)`,
				`sluice.toml:6: rule "web": deny "nope": invalid CIDR (want e.g. "10.0.0.0/8", "2001:db8::/32" or a single IP)`,
			}},
		{"bad congestion_control", "[[rule]]\n" + ok + "congestion_control = \"BBR v2\"\n",
			[]string{`sluice.toml:5: rule "web": congestion_control "BBR v2": not an algorithm name (want "auto", "system" or a name such as "cubic" or "bbr")`}},
		{"congestion_control not a string", "[[rule]]\n" + ok + "congestion_control = 1\n",
			[]string{`sluice.toml:5: rule "web": congestion_control 1: want a string, not an integer`}},
		{"workers 0", "[[rule]]\n" + ok + "workers = 0\n",
			[]string{`sluice.toml:5: rule "web": workers 0: must be at least 1`}},
		{"workers not an integer", "[defaults]\nworkers = \"2\"\n[[rule]]\n" + ok,
			[]string{`sluice.toml:2: defaults: workers "2": want an integer, not a string`}},
		{"CIDR list as string", "[[rule]]\n" + ok + "accept_proxy_protocol = \"10.0.0.0/8\"\n",
			[]string{`sluice.toml:5: rule "web": accept_proxy_protocol "10.0.0.0/8": want a list, not a string`}},
	}
}

// badRuleCases lists mistakes in globals, across keys and across rules.
func badRuleCases() []badCase {
	return []badCase{
		{"admin without token", "admin = \"0.0.0.0:9900\"\n[[rule]]\n" + ok,
			[]string{`sluice.toml:1: admin "0.0.0.0:9900": admin_token is required when admin listens on a non-loopback address`}},
		{"admin on all addresses without token", "admin = \":9900\"\nadmin_token = \"\"\n[[rule]]\n" + ok,
			[]string{`sluice.toml:1: admin ":9900": admin_token is required when admin listens on a non-loopback address`}},
		{"admin not host:port", "admin = \"unix:/run/admin\"\n[[rule]]\n" + ok,
			[]string{`sluice.toml:1: admin "unix:/run/admin": want host:port, not a unix socket`}},
		{"admin token with a space", "admin = \"127.0.0.1:9900\"\nadmin_token = \"a b\"\n[[rule]]\n" + ok,
			[]string{`sluice.toml:2: admin_token: must be printable ASCII without spaces`}},
		{"duplicate rule name", "[[rule]]\n" + ok + "\n[[rule]]\nname = \"web\"\nlisten = \":8081\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:7: rule "web": duplicate rule name (first at line 2)`}},
		{"listen clash, all addresses", "[[rule]]\n" + ok + "[[rule]]\nname = \"api\"\nlisten = \"0.0.0.0:8080\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:7: rule "api": listen "0.0.0.0:8080" already used by rule "web"`}},
		{"listen clash, wildcard and one IPv4", "[[rule]]\nname = \"a\"\nlisten = \"0.0.0.0:80\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"b\"\nlisten = \"127.0.0.1:80\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:7: rule "b": listen "127.0.0.1:80" already used by rule "a"`}},
		{"listen clash, IPv6 any and IPv4", "[[rule]]\nname = \"a\"\nlisten = \"[::]:80\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"b\"\nlisten = \"127.0.0.1:80\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:7: rule "b": listen "127.0.0.1:80" already used by rule "a"`}},
		{"listen clash, tcp+udp and udp", "[[rule]]\nname = \"a\"\nlisten = \":53\"\nprotocol = \"tcp+udp\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"b\"\nlisten = \":53\"\nprotocol = \"udp\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:8: rule "b": listen ":53" already used by rule "a"`}},
		{"listen clash, unix path", "[[rule]]\nname = \"a\"\nlisten = \"unix:/run/s\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"b\"\nlisten = \"unix:/run//s\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:7: rule "b": listen "unix:/run//s" already used by rule "a"`}},
		{"listen clash names the first rule", "[[rule]]\nname = \"a\"\nlisten = \"127.0.0.1:80\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"b\"\nlisten = \"[::1]:80\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"c\"\nlisten = \"0.0.0.0:80\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"d\"\nlisten = \":80\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"e\"\nlisten = \"[::1]:80\"\nprotocol = \"udp\"\nbackends = [\"a:1\"]\n",
			[]string{
				`sluice.toml:11: rule "c": listen "0.0.0.0:80" already used by rule "a"`,
				`sluice.toml:15: rule "d": listen ":80" already used by rule "a"`,
			}},
		{"duplicate backend", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\n  \"a:1\",\n  { address = \"a:1\", backup = true },\n]\n",
			[]string{`sluice.toml:6: rule "web": backend "a:1" listed twice (first at line 5)`}},
		{"missing keys", "[[rule]]\nlisten = \":80\"\n[[rule]]\nname = \"b\"\n",
			[]string{
				`sluice.toml:1: rule #1: missing name`,
				`sluice.toml:1: rule #1: missing backends`,
				`sluice.toml:3: rule "b": missing listen`,
				`sluice.toml:3: rule "b": missing backends`,
			}},
		{"empty backends", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = []\n",
			[]string{`sluice.toml:4: rule "web": backends: empty list (want at least one backend)`}},
		{"bad name", "[[rule]]\nname = \"my web\"\nlisten = \":80\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:2: rule #1: name "my web": invalid (want letters, digits, "_", "." or "-")`}},
		{"no rules", "log_level = \"info\"\n",
			[]string{`sluice.toml: no rules (add a [[rule]] table)`}},
		{"rule as a table", "[rule]\n" + ok,
			[]string{`sluice.toml:1: rule: want an array of tables ([[rule]]), not a table`}},
		{"defaults not a table", "defaults = 5\n[[rule]]\n" + ok,
			[]string{`sluice.toml:1: defaults: want a table ([defaults]), not an integer`}},
		{"health_check not a table", "[[rule]]\n" + ok + "health_check = true\n",
			[]string{`sluice.toml:5: rule #1: health_check: want a table, or "off", not a boolean`}},
		{"bad default reported once, in defaults", "[defaults]\nidle_timeout = \"forever\"\n[[rule]]\n" + ok + "[[rule]]\nname = \"b\"\nlisten = \":81\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:2: defaults: idle_timeout "forever": invalid duration (want e.g. "90s", "5m", "1h")`}},
		{"inherited value checked in the rule", "[defaults]\nlisten = \"unix:/run/s\"\n[[rule]]\nname = \"a\"\nprotocol = \"udp\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:2: rule "a": listen "unix:/run/s": unix sockets need protocol "tcp", not "udp"`}},
		{"every problem reported, in line order", "log_format = \"yaml\"\n[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\"b\"]\nretries = -1\n[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\"c:1\"]\nmax_sessions = 1.5\n",
			[]string{
				`sluice.toml:1: log_format "yaml": unknown value (want one of text, json)`,
				`sluice.toml:5: rule "web": backend "b": missing port`,
				`sluice.toml:6: rule "web": retries -1: must not be negative`,
				`sluice.toml:8: rule "web": duplicate rule name (first at line 3)`,
				`sluice.toml:9: rule "web": listen ":80" already used by rule "web"`,
				`sluice.toml:11: rule "web": max_sessions 1.5: want an integer, not a float`,
			}},
	}
}

// TestParseBad checks the exact message, line included, for every kind of
// mistake the parser catches.
func TestParseBad(t *testing.T) {
	var tests []badCase
	for _, cases := range [][]badCase{badDocumentCases(), badAddressCases(), badValueCases(), badRuleCases(), badRouteCases(), badTLSCases(), badRangeCases(), badDiscoverCases()} {
		tests = append(tests, cases...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("sluice.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s\ngot config %+v", tt.doc, c)
			}
			if c != nil {
				t.Errorf("Parse returned a config along with the error")
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want *Errors: %v", err, err)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("document:\n%s\ngot:\n%s\nwant:\n%s", tt.doc, got, want)
			}
			if len(*errs) != len(tt.want) {
				t.Errorf("got %d errors, want %d", len(*errs), len(tt.want))
			}
		})
	}
}

// TestErrorFields checks that the parts of a message are also fields.
func TestErrorFields(t *testing.T) {
	_, err := Parse("x.toml", []byte("[[rule]]\nname = \"web\nlisten = \":80\"\n"))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(*Error) failed for %v", err)
	}
	if e.File != "x.toml" || e.Line != 2 || e.Column != 12 || !strings.HasPrefix(e.Message, "invalid TOML: ") {
		t.Errorf("got %+v", *e)
	}
}

// TestErrorString checks how each known part of a position is shown.
func TestErrorString(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "a.toml", Line: 3, Column: 7, Message: "m"}, "a.toml:3:7: m"},
		{Error{File: "a.toml", Line: 3, Message: "m"}, "a.toml:3: m"},
		{Error{File: "a.toml", Message: "m"}, "a.toml: m"},
		{Error{Line: 3, Column: 7, Message: "m"}, "line 3:7: m"},
		{Error{Line: 3, Message: "m"}, "line 3: m"},
		{Error{Message: "m"}, "m"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.e, got, tt.want)
		}
	}
}
