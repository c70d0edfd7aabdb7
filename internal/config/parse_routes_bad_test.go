package config

import "strings"

// route is a valid [[rule.route]] that follows "[[rule]]\n" + ok, on lines
// 5 to 7; bad cases add one mistake after it.
const route = "[[rule.route]]\nsni = [\"a.example\"]\nbackends = [\"10.0.0.6:80\"]\n"

// badRouteCases lists mistakes in [[rule.route]] tables and peek_timeout.
func badRouteCases() []badCase {
	return []badCase{
		{"unknown route key with hint", "[[rule]]\n" + ok + route + "balence = \"first\"\n",
			[]string{`sluice.toml:8: rule "web": route "route-1": unknown key "balence" (did you mean "balance"?)`}},
		{"rule key in a route", "[[rule]]\n" + ok + route + "allow = [\"10.0.0.0/8\"]\nidle_timeout = \"1m\"\n",
			[]string{
				`sluice.toml:8: rule "web": route "route-1": "allow" is a key of the rule, not of a route (a route sets only sni, alpn, http_host, detect, name and backend-side keys)`,
				`sluice.toml:9: rule "web": route "route-1": "idle_timeout" is a key of the rule, not of a route (a route sets only sni, alpn, http_host, detect, name and backend-side keys)`,
			}},
		{"unknown key in a route's tls", "[[rule]]\n" + ok + "[[rule.route]]\nname = \"api\"\nsni = [\"a.example\"]\nbackends = [\"b:1\"]\ntls.certificate = []\n",
			[]string{
				`sluice.toml:9: rule "web": route "api": unknown key "tls.certificate" (did you mean "tls.certificates"?)`,
				`sluice.toml:9: rule "web": route "api": tls: no certificate (want certificates = [{ cert, key }], or cert and key)`,
			}},
		{"route in defaults", "[defaults]\n[[defaults.route]]\nsni = [\"a.example\"]\n[[rule]]\n" + ok,
			[]string{`sluice.toml:2: defaults: route: routes belong in a rule ([[rule.route]]), not in [defaults]`}},
		{"route not an array of tables", "[[rule]]\n" + ok + "route = 5\n",
			[]string{`sluice.toml:5: rule #1: route: want an array of tables ([[rule.route]]), not an integer`}},
		{"route as a table", "[[rule]]\n" + ok + "[rule.route]\nsni = [\"a.example\"]\n",
			[]string{`sluice.toml:5: rule #1: route: want an array of tables ([[rule.route]]), not a table`}},
		{"route element not a table", "[[rule]]\n" + ok + "route = [\"a\"]\n",
			[]string{`sluice.toml:5: rule #1: route #1: want a table, not a string`}},
		{"route's health_check not a table", "[[rule]]\n" + ok + route + "health_check = 1\n",
			[]string{`sluice.toml:8: rule #1: route #1: health_check: want a table, or "off", not an integer`}},
		{"no matcher", "[[rule]]\n" + ok + "[[rule.route]]\nbackends = [\"b:1\"]\n",
			[]string{`sluice.toml:5: rule "web": route "route-1": no matcher (set sni, alpn, http_host or detect)`}},
		{"route without backends", "[[rule]]\n" + ok + "[[rule.route]]\nsni = [\"a.example\"]\n",
			[]string{`sluice.toml:5: rule "web": route "route-1": missing backends (a route does not inherit the rule's backends or backends_from: those are the default route)`}},
		{"bad route name", "[[rule]]\n" + ok + route + "name = \"a b\"\n",
			[]string{`sluice.toml:8: rule "web": route #1: name "a b": invalid (want letters, digits, "_", "." or "-")`}},
		{"route named default", "[[rule]]\n" + ok + route + "name = \"default\"\n",
			[]string{`sluice.toml:8: rule "web": route "default": name "default" is reserved: logs, metrics and the API call the rule's own backends so`}},
		{"duplicate route names", "[[rule]]\n" + ok + route + "[[rule.route]]\nname = \"route-1\"\ndetect = \"ssh\"\nbackends = [\"b:1\"]\n",
			[]string{`sluice.toml:9: rule "web": route "route-1": duplicate route name (first at line 5)`}},
		{"duplicate default route name", "[[rule]]\n" + ok + "[[rule.route]]\nname = \"route-2\"\ndetect = \"ssh\"\nbackends = [\"b:1\"]\n" + route,
			[]string{`sluice.toml:9: rule "web": route "route-2": duplicate route name (first at line 6)`}},
		{"bad server names", "[[rule]]\n" + ok + "[[rule.route]]\nbackends = [\"b:1\"]\nsni = [\n  \"a..b\",\n  \"a.*.b\",\n  \"*\",\n  \"a.b:443\",\n  \"10.0.0.1\",\n  \"a.b.\",\n  5,\n]\n",
			[]string{
				`sluice.toml:8: rule "web": route "route-1": sni "a..b": invalid host name "a..b"`,
				`sluice.toml:9: rule "web": route "route-1": sni "a.*.b": a wildcard must be the whole first label (as in "*.example.org")`,
				`sluice.toml:10: rule "web": route "route-1": sni "*": a wildcard must be the whole first label (as in "*.example.org")`,
				`sluice.toml:11: rule "web": route "route-1": sni "a.b:443": no port (a server name has none)`,
				`sluice.toml:12: rule "web": route "route-1": sni "10.0.0.1": an IP address (clients send no server name for one)`,
				`sluice.toml:13: rule "web": route "route-1": sni "a.b.": invalid host name "a.b."`,
				`sluice.toml:14: rule "web": route "route-1": sni entry 5: want a string, not an integer`,
			}},
		{"sni not a list", "[[rule]]\n" + ok + "[[rule.route]]\nbackends = [\"b:1\"]\nsni = \"a.example\"\n",
			[]string{`sluice.toml:7: rule "web": route "route-1": sni "a.example": want a list, not a string`}},
		{"empty matcher lists", "[[rule]]\n" + ok + "[[rule.route]]\nbackends = [\"b:1\"]\nsni = []\nalpn = []\nhttp_host = []\ndetect = []\n",
			[]string{
				`sluice.toml:7: rule "web": route "route-1": sni: empty list (want at least one)`,
				`sluice.toml:8: rule "web": route "route-1": alpn: empty list (want at least one)`,
				`sluice.toml:9: rule "web": route "route-1": http_host: empty list (want at least one)`,
				`sluice.toml:10: rule "web": route "route-1": detect: empty list (want at least one)`,
			}},
		{"http_host with a port", "[[rule]]\n" + ok + "[[rule.route]]\nbackends = [\"b:1\"]\nhttp_host = [\"www.a.example:8080\", \"[::1]:80\", \"a_b.*\"]\n",
			[]string{
				`sluice.toml:7: rule "web": route "route-1": http_host "www.a.example:8080": no port (the Host header is matched without its port)`,
				`sluice.toml:7: rule "web": route "route-1": http_host "[::1]:80": no port (the Host header is matched without its port)`,
				`sluice.toml:7: rule "web": route "route-1": http_host "a_b.*": a wildcard must be the whole first label (as in "*.example.org")`,
			}},
		{"bad detect", "[[rule]]\n" + ok + "[[rule.route]]\nbackends = [\"b:1\"]\ndetect = [\"ssh\", \"ftp\"]\n[[rule.route]]\nbackends = [\"b:1\"]\ndetect = 1\n",
			[]string{
				`sluice.toml:7: rule "web": route "route-1": detect "ftp": unknown value (want one of tls, http, ssh, proxy)`,
				`sluice.toml:10: rule "web": route "route-2": detect 1: want a string or a list of strings, not an integer`,
			}},
		{"bad alpn", "[[rule]]\n" + ok + "[[rule.route]]\nbackends = [\"b:1\"]\nalpn = [\"\", \"" + strings.Repeat("x", 256) + "\"]\n",
			[]string{
				`sluice.toml:7: rule "web": route "route-1": alpn "": must be 1 to 255 bytes long`,
				`sluice.toml:7: rule "web": route "route-1": alpn "` + strings.Repeat("x", 256) + `": must be 1 to 255 bytes long`,
			}},
		{"routes on a udp rule", "[[rule]]\n" + ok + "protocol = \"udp\"\n" + route,
			[]string{`sluice.toml:6: rule "web": route: routes need protocol "tcp" or "tcp+udp", not "udp"`}},
		{"tcp+udp routes without the rule's backends", "[[rule]]\nname = \"web\"\nlisten = \":53\"\nprotocol = \"tcp+udp\"\n" + route,
			[]string{`sluice.toml:1: rule "web": missing backends (a "tcp+udp" rule's UDP clients go to them; routes take only TCP clients)`}},
		{"bad route backend-side keys", "[[rule]]\n" + ok + route + "balance = \"fair\"\nretries = -1\nconnect_timeout = \"0s\"\n",
			[]string{
				`sluice.toml:8: rule "web": route "route-1": balance "fair": unknown value (want one of round-robin, least-conn, random, source-hash, first)`,
				`sluice.toml:9: rule "web": route "route-1": retries -1: must not be negative`,
				`sluice.toml:10: rule "web": route "route-1": connect_timeout "0s": must be greater than zero`,
			}},
		{"duplicate backend in a route", "[[rule]]\n" + ok + "[[rule.route]]\nsni = [\"a.example\"]\nbackends = [\n  \"b:1\",\n  \"b:1\",\n]\n",
			[]string{`sluice.toml:9: rule "web": route "route-1": backend "b:1" listed twice (first at line 8)`}},
		{"bad peek_timeout", "[defaults]\npeek_timeout = \"3\"\n[[rule]]\n" + ok + "peek_timeout = \"0s\"\n",
			[]string{
				`sluice.toml:2: defaults: peek_timeout "3": invalid duration (want e.g. "90s", "5m", "1h")`,
				`sluice.toml:7: rule "web": peek_timeout "0s": must be greater than zero`,
			}},
		{"rule with neither backends nor routes", "[[rule]]\nname = \"web\"\nlisten = \":80\"\npeek_timeout = \"1s\"\n",
			[]string{`sluice.toml:1: rule "web": missing backends`}},
	}
}

// badTLSCases lists mistakes in tls and backend_tls tables.
func badTLSCases() []badCase {
	return []badCase{
		{"unknown tls key with hint", "[[rule]]\n" + ok + "[rule.tls]\ncert = \"a\"\nkey = \"b\"\nmin_verison = \"1.3\"\n",
			[]string{`sluice.toml:8: rule "web": unknown key "tls.min_verison" (did you mean "tls.min_version"?)`}},
		{"unknown backend_tls key with hint", "[defaults]\nbackend_tls = { servername = \"a\" }\n[[rule]]\n" + ok,
			[]string{`sluice.toml:2: defaults: unknown key "backend_tls.servername" (did you mean "backend_tls.server_name"?)`}},
		{"unknown key in a certificate", "[[rule]]\n" + ok + "tls.certificates = [{ cert = \"a\", kye = \"b\" }]\n",
			[]string{
				`sluice.toml:5: rule "web": tls: certificate 1: unknown key "kye" (did you mean "key"?)`,
				`sluice.toml:5: rule "web": tls: certificate 1: missing key`,
			}},
		{"tls not a table", "[[rule]]\n" + ok + "tls = true\nbackend_tls = [1]\n",
			[]string{
				`sluice.toml:5: rule #1: tls: want a table, or "off", not a boolean`,
				`sluice.toml:6: rule #1: backend_tls: want a table, or "off", not an array`,
			}},
		{"tls word", "[[rule]]\n" + ok + "tls = \"on\"\nbackend_tls = \"yes\"\n",
			[]string{
				`sluice.toml:5: rule "web": tls "on": want a table, or "off"`,
				`sluice.toml:6: rule "web": backend_tls "yes": want a table, or "off"`,
			}},
		{"tls without a certificate", "[[rule]]\n" + ok + "[rule.tls]\nmin_version = \"1.3\"\n",
			[]string{`sluice.toml:5: rule "web": tls: no certificate (want certificates = [{ cert, key }], or cert and key)`}},
		{"certificates and cert", "[[rule]]\n" + ok + "[rule.tls]\ncertificates = [{ cert = \"a\", key = \"b\" }]\ncert = \"c\"\nkey = \"d\"\n",
			[]string{`sluice.toml:7: rule "web": tls: cert: give certificates, or cert and key, not both`}},
		{"cert without key", "[[rule]]\n" + ok + "tls = { cert = \"a\" }\nbackend_tls = { key = \"b\" }\n",
			[]string{
				`sluice.toml:5: rule "web": tls: cert without key`,
				`sluice.toml:6: rule "web": backend_tls: key without cert`,
			}},
		{"bad certificates", "[[rule]]\n" + ok + "[rule.tls]\ncertificates = [\n  \"a.pem\",\n  { key = \"b\" },\n  { cert = \"\", key = 1 },\n]\n",
			[]string{
				`sluice.toml:7: rule "web": tls: certificate 1: want a table { cert, key }, not a string`,
				`sluice.toml:8: rule "web": tls: certificate 2: missing cert`,
				`sluice.toml:9: rule "web": tls: certificate 3: cert "": empty path`,
				`sluice.toml:9: rule "web": tls: certificate 3: key 1: want a string, not an integer`,
			}},
		{"empty certificates", "[[rule]]\n" + ok + "tls = { certificates = [] }\n",
			[]string{`sluice.toml:5: rule "web": tls: certificates: empty list (want at least one { cert, key })`}},
		{"bad min_version", "[[rule]]\n" + ok + "tls = { cert = \"a\", key = \"b\", min_version = \"1.1\" }\n[[rule]]\nname = \"b\"\nlisten = \":81\"\nbackends = [\"a:1\"]\ntls = { cert = \"a\", key = \"b\", min_version = 1.3 }\n",
			[]string{
				`sluice.toml:5: rule "web": tls: min_version "1.1": unknown value (want one of 1.2, 1.3)`,
				`sluice.toml:10: rule "b": tls: min_version 1.3: want a string ("1.2" or "1.3"), not a float`,
			}},
		{"bad paths", "[[rule]]\n" + ok + "tls = { cert = \"a\", key = \"b\", client_ca = \"\", alpn = [\"\"] }\nbackend_tls = { ca = \"x\\u0000\" }\n",
			[]string{
				`sluice.toml:5: rule "web": tls: alpn "": must be 1 to 255 bytes long`,
				`sluice.toml:5: rule "web": tls: client_ca "": empty path`,
				`sluice.toml:6: rule "web": backend_tls: ca "x\x00": invalid path`,
			}},
		{"bad backend_tls values", "[[rule]]\n" + ok + "[rule.backend_tls]\nserver_name = \"a b\"\ninsecure_skip_verify = \"yes\"\ncert = 1\n",
			[]string{
				`sluice.toml:6: rule "web": backend_tls: server_name "a b": invalid host name "a b"`,
				`sluice.toml:7: rule "web": backend_tls: insecure_skip_verify "yes": want true or false, not a string`,
				`sluice.toml:8: rule "web": backend_tls: cert 1: want a string, not an integer`,
				`sluice.toml:8: rule "web": backend_tls: cert without key`,
			}},
		{"tls on a udp rule", "[[rule]]\n" + ok + "protocol = \"udp\"\ntls = { cert = \"a\", key = \"b\" }\nbackend_tls = {}\n",
			[]string{
				`sluice.toml:6: rule "web": tls: needs protocol "tcp" or "tcp+udp", not "udp"`,
				`sluice.toml:7: rule "web": backend_tls: needs protocol "tcp" or "tcp+udp", not "udp"`,
			}},
		{"backend_tls to a unix socket without server_name", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends = [\"unix:/run/b.sock\"]\nbackend_tls = {}\n" +
			"[[rule.route]]\nsni = [\"a.example\"]\nbackends = [\"a:1\", \"unix:/run/c.sock\"]\n[[rule.route]]\nsni = [\"b.example\"]\nbackends = [\"unix:/run/d.sock\"]\nbackend_tls = { insecure_skip_verify = true }\n",
			[]string{
				`sluice.toml:4: rule "web": backend "unix:/run/b.sock": backend_tls needs server_name (a unix socket has no host name to verify)`,
				`sluice.toml:8: rule "web": route "route-1": backend "unix:/run/c.sock": backend_tls needs server_name (a unix socket has no host name to verify)`,
			}},
		{"tls inherited by a udp rule", "[defaults]\ntls = { cert = \"a\", key = \"b\" }\n[[rule]]\n" + ok + "protocol = \"udp\"\n",
			[]string{`sluice.toml:2: rule "web": tls: needs protocol "tcp" or "tcp+udp", not "udp" (tls = "off" lifts the one [defaults] sets)`}},
	}
}
