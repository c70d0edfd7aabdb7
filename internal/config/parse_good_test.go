package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"sluice/internal/congestion"
)

// tcpAddr is a host:port Address for expected values.
func tcpAddr(host string, port uint16) Address {
	return Address{Network: "tcp", Host: host, Port: port}
}

// unixAddr is a unix socket Address for expected values.
func unixAddr(path string) Address {
	return Address{Network: "unix", Path: path}
}

// wantRule is a rule with every documented default, written out here rather
// than taken from the package so that a changed default fails the tests.
func wantRule(name string, listen Address, backends ...Address) Rule {
	r := Rule{
		Name:     name,
		Listen:   listen,
		Protocol: TCP,
		Upstream: Upstream{
			Balance:        "round-robin",
			ConnectTimeout: 5 * time.Second,
			ResolveTTL:     30 * time.Second,
			MaxQueue:       1024,
			Retries:        len(backends) - 1,
		},
		IdleTimeout:       time.Hour,
		DrainTimeout:      30 * time.Second,
		UDPSessionTimeout: 60 * time.Second,
		PerIPPrefixV6:     128,
		Workers:           runtime.GOMAXPROCS(0),
		PeekTimeout:       3 * time.Second,
	}
	for _, b := range backends {
		r.Backends = append(r.Backends, Backend{Address: b, Weight: 1})
	}
	return r
}

// wantConfig is a config with default globals holding rules.
func wantConfig(rules ...Rule) *Config {
	return &Config{Path: "sluice.toml", LogLevel: "info", LogFormat: "text", AccessLog: "stderr", LogFile: "stderr", Rules: rules}
}

// prefixes parses CIDRs for expected values.
func prefixes(t *testing.T, cidrs ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, c := range cidrs {
		out = append(out, netip.MustParsePrefix(c))
	}
	return out
}

// fullExample is a config in the shape docs/CONFIG.md opens with (top-level
// keys, [defaults], a TCP rule and a UDP rule), with more keys set and each
// key's choices in its comment.
const fullExample = `log_level  = "info"              # debug | info | warn | error
log_format = "text"              # text | json
admin      = "127.0.0.1:9900"    # optional admin/metrics/dashboard HTTP server
admin_token = ""                 # required when admin listens on a non-loopback address

[defaults]                       # any rule key may be set here and overridden per rule
connect_timeout = "5s"
idle_timeout    = "1h"
drain_timeout   = "30s"

[[rule]]
name     = "web"                 # unique; used in logs, metrics and the API
listen   = "0.0.0.0:8080"
protocol = "tcp"                 # tcp | udp | tcp+udp
backends = ["10.0.0.5:80", "10.0.0.6:80"]
balance  = "round-robin"         # round-robin | least-conn | random | source-hash | first

[[rule]]
name     = "dns"
listen   = ":5353"
protocol = "udp"
backends = [{ address = "10.0.0.9:53", weight = 3 }, { address = "10.0.0.10:53", backup = true }]
udp_session_timeout = "60s"
`

// everyKey sets every rule key to a value other than its default.
const everyKey = `log_level = "debug"
log_format = "json"
access_log = "/var/log/sluice/access.log"
log_file = "sluice.log"
admin = "[::]:9900"
admin_token = "s3cret"

[[rule]]
name = "all.keys_1"
listen = "[0:0::1]:443"
protocol = "tcp+udp"
backends = ["backend.example.com:443", { address = "[2001:db8::1]:443", weight = 5, backup = true }]
balance = "source-hash"
connect_timeout = "250ms"
idle_timeout = "90s"
drain_timeout = "1m30s"
retries = 0
resolve_ttl = "2m"
allow = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:172.16.0.0/108", "::ffff:198.51.100.1"]
deny = ["10.9.0.0/16", "2001:db8::1"]
max_connections = 1000
max_connections_per_ip = 10
per_ip_prefix_v6 = 64
rate_per_ip = 2.5
bandwidth = "1Gbit/s"
proxy_protocol = "v2"
accept_proxy_protocol = ["127.0.0.1"]
health_check = { interval = "10s", timeout = "2s", rise = 1, fall = 5, send = "PING\r\n", expect = "+PONG" }
udp_session_timeout = "5m"
max_sessions = 500
workers = 3
`

// goodCase is a valid config and what it parses to.
type goodCase struct {
	name string
	doc  string
	want *Config
}

// webRule is the rule "web" of fullExample.
func webRule() Rule {
	return wantRule("web", tcpAddr("0.0.0.0", 8080), tcpAddr("10.0.0.5", 80), tcpAddr("10.0.0.6", 80))
}

// wantFullExample is what fullExample parses to.
func wantFullExample() *Config {
	dns := wantRule("dns", tcpAddr("", 5353))
	dns.Protocol = UDP
	dns.Backends = []Backend{
		{Address: tcpAddr("10.0.0.9", 53), Weight: 3},
		{Address: tcpAddr("10.0.0.10", 53), Weight: 1, Backup: true},
	}
	dns.Retries = 1
	want := wantConfig(webRule(), dns)
	want.Admin = "127.0.0.1:9900"
	return want
}

// wantEveryKey is what everyKey parses to.
func wantEveryKey(t *testing.T) *Config {
	all := wantRule("all.keys_1", tcpAddr("::1", 443))
	all.Protocol = TCPUDP
	all.Backends = []Backend{
		{Address: tcpAddr("backend.example.com", 443), Weight: 1},
		{Address: tcpAddr("2001:db8::1", 443), Weight: 5, Backup: true},
	}
	all.Balance = "source-hash"
	all.ConnectTimeout, all.IdleTimeout, all.DrainTimeout = 250*time.Millisecond, 90*time.Second, 90*time.Second
	all.Retries, all.ResolveTTL = 0, 2*time.Minute
	all.Allow = prefixes(t, "10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "172.16.0.0/12", "198.51.100.1/32")
	all.Deny = prefixes(t, "10.9.0.0/16", "2001:db8::1/128")
	all.MaxConnections, all.MaxConnectionsPerIP, all.RatePerIP = 1000, 10, 2.5
	all.PerIPPrefixV6 = 64
	all.Bandwidth, all.ProxyProtocol = 125_000_000, 2
	all.AcceptProxyProtocol = prefixes(t, "127.0.0.1/32")
	all.HealthCheck = &HealthCheck{Interval: 10 * time.Second, Timeout: 2 * time.Second, Rise: 1, Fall: 5, Send: "PING\r\n", Expect: "+PONG"}
	all.UDPSessionTimeout, all.MaxSessions = 5*time.Minute, 500
	all.Workers = 3
	return &Config{Path: "sluice.toml", LogLevel: "debug", LogFormat: "json", AccessLog: "/var/log/sluice/access.log", LogFile: "sluice.log", Admin: "[::]:9900", AdminToken: "s3cret", Rules: []Rule{all}}
}

// goodCases are valid configs and what they parse to.
func goodCases(t *testing.T) []goodCase {
	return append([]goodCase{
		{"full example", fullExample, wantFullExample()},
		{"every key", everyKey, wantEveryKey(t)},
		{"minimal rule gets every default", "[[rule]]\nname = \"web\"\nlisten = \"0.0.0.0:8080\"\nbackends = [\"10.0.0.5:80\", \"10.0.0.6:80\"]\n", wantConfig(webRule())},
		{"rules as an inline array", "rule = [{ name = \"web\", listen = \"0.0.0.0:8080\", backends = [\"10.0.0.5:80\", \"10.0.0.6:80\"] }]\n", wantConfig(webRule())},
	}, append(append(append(moreGoodCases(), rangeGoodCases()...), discoverGoodCases()...), routeGoodCases(t)...)...)
}

// moreGoodCases are valid configs that exercise one feature each.
func moreGoodCases() []goodCase {
	one := func(name string, listen Address, edit func(*Rule)) Rule {
		r := wantRule(name, listen, tcpAddr("a", 1))
		if edit != nil {
			edit(&r)
		}
		return r
	}
	bw := func(bytes int64) func(*Rule) { return func(r *Rule) { r.Bandwidth = bytes } }
	sock := wantRule("sock", unixAddr("/run/in.sock"), unixAddr("/run/out.sock"), tcpAddr("db", 5432))
	sock.HealthCheck = &HealthCheck{Interval: 5 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
	tables := wantRule("tables", tcpAddr("", 80), tcpAddr("a", 1), tcpAddr("b", 2))
	tables.Backends[1].Weight = 4
	tables.HealthCheck = &HealthCheck{Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, Expect: "OK"}
	localAdmin := wantConfig(one("x", tcpAddr("", 1), nil))
	localAdmin.Admin = "localhost:9900"

	return []goodCase{
		{"tcp and udp share a port", "[[rule]]\nname = \"t\"\nlisten = \":53\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"u\"\nlisten = \":53\"\nprotocol = \"udp\"\nbackends = [\"a:1\"]\n",
			wantConfig(one("t", tcpAddr("", 53), nil), one("u", tcpAddr("", 53), func(r *Rule) { r.Protocol = UDP }))},
		{"0.0.0.0 and an IPv6 address share a port", "[[rule]]\nname = \"v4\"\nlisten = \"0.0.0.0:80\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"v6\"\nlisten = \"[::1]:80\"\nbackends = [\"a:1\"]\n",
			wantConfig(one("v4", tcpAddr("0.0.0.0", 80), nil), one("v6", tcpAddr("::1", 80), nil))},
		{"port 0 never clashes", "[[rule]]\nname = \"f1\"\nlisten = \"127.0.0.1:0\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"f2\"\nlisten = \"127.0.0.1:0\"\nbackends = [\"a:1\"]\n",
			wantConfig(one("f1", tcpAddr("127.0.0.1", 0), nil), one("f2", tcpAddr("127.0.0.1", 0), nil))},
		{"unix sockets with tcp", "[[rule]]\nname = \"sock\"\nlisten = \"unix:/run/in.sock\"\nbackends = [\"unix:/run/out.sock\", \"db:5432\"]\nhealth_check = {}\n", wantConfig(sock)},
		{"backends and health_check as table headers", "[[rule]]\nname = \"tables\"\nlisten = \":80\"\n[rule.health_check]\ninterval = \"2s\"\nexpect = \"OK\"\n[[rule.backends]]\naddress = \"a:1\"\n[[rule.backends]]\naddress = \"b:2\"\nweight = 4\n", wantConfig(tables)},
		{"bandwidth units", "[[rule]]\nname = \"a\"\nlisten = \":1\"\nbackends = [\"a:1\"]\nbandwidth = \"10MiB/s\"\n[[rule]]\nname = \"b\"\nlisten = \":2\"\nbackends = [\"a:1\"]\nbandwidth = \"500KB/s\"\n[[rule]]\nname = \"c\"\nlisten = \":3\"\nbackends = [\"a:1\"]\nbandwidth = \"1.5 Mbit/s\"\n[[rule]]\nname = \"d\"\nlisten = \":4\"\nbackends = [\"a:1\"]\nbandwidth = 1000\n",
			wantConfig(one("a", tcpAddr("", 1), bw(10<<20)), one("b", tcpAddr("", 2), bw(500_000)), one("c", tcpAddr("", 3), bw(187_500)), one("d", tcpAddr("", 4), bw(1000)))},
		{"workers from defaults, and a rule's own", "[defaults]\nworkers = 4\n[[rule]]\nname = \"a\"\nlisten = \":1\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"b\"\nlisten = \":2\"\nbackends = [\"a:1\"]\nworkers = 1\n",
			wantConfig(one("a", tcpAddr("", 1), func(r *Rule) { r.Workers = 4 }), one("b", tcpAddr("", 2), func(r *Rule) { r.Workers = 1 }))},
		{"admin on localhost needs no token", "admin = \"localhost:9900\"\n[[rule]]\nname = \"x\"\nlisten = \":1\"\nbackends = [\"a:1\"]\n", localAdmin},
	}
}

// TestParseGood checks parsed values, with every default filled in.
func TestParseGood(t *testing.T) {
	for _, tt := range goodCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("sluice.toml", []byte(tt.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestDefaultsInheritance checks that [defaults] fills what a rule leaves
// out, that a rule's own value wins, and that tables are inherited whole.
func TestDefaultsInheritance(t *testing.T) {
	doc := `[defaults]
connect_timeout = "2s"
backends = ["shared:80", "shared2:80", "shared3:80"]
allow = ["10.0.0.0/8"]
health_check = { interval = "10s", rise = 5 }
protocol = "tcp+udp"
congestion_control = "system"
proxy_protocol = "v2"
bandwidth = "1MiB/s"
rate_per_ip = 5

[[rule]]
name = "inherits"
listen = ":1"

[[rule]]
name = "overrides"
listen = ":2"
connect_timeout = "3s"
backends = ["own:80"]
allow = []
health_check = { timeout = "2s" }
protocol = "tcp"
congestion_control = "bbr"
proxy_protocol = "off"
bandwidth = "unlimited"
rate_per_ip = "unlimited"

[[rule]]
name = "unchecked"
listen = ":3"
health_check = "off"
`
	c, err := Parse("sluice.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	in := wantRule("inherits", tcpAddr("", 1), tcpAddr("shared", 80), tcpAddr("shared2", 80), tcpAddr("shared3", 80))
	in.ConnectTimeout = 2 * time.Second
	in.Allow = prefixes(t, "10.0.0.0/8")
	in.HealthCheck = &HealthCheck{Interval: 10 * time.Second, Timeout: time.Second, Rise: 5, Fall: 3}
	in.Protocol = TCPUDP
	in.CongestionControl, _ = congestion.Parse("system")
	in.ProxyProtocol, in.Bandwidth, in.RatePerIP = 2, 1<<20, 5
	over := wantRule("overrides", tcpAddr("", 2), tcpAddr("own", 80))
	over.ConnectTimeout = 3 * time.Second
	over.HealthCheck = &HealthCheck{Interval: 5 * time.Second, Timeout: 2 * time.Second, Rise: 2, Fall: 3}
	over.CongestionControl, _ = congestion.Parse("bbr")
	unchecked := in
	unchecked.Name, unchecked.Listen, unchecked.HealthCheck = "unchecked", tcpAddr("", 3), nil
	if want := wantConfig(in, over, unchecked); !reflect.DeepEqual(c, want) {
		t.Errorf("got\n%+v\nwant\n%+v", c, want)
	}
	if c.Rules[0].Retries != 2 || c.Rules[1].Retries != 0 {
		t.Errorf("retries = %d, %d; want one per other backend: 2, 0", c.Rules[0].Retries, c.Rules[1].Retries)
	}
}

// TestLoad reads a real file and reports a missing one as such.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(path, []byte(fullExample), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Path != path || len(c.Rules) != 2 {
		t.Errorf("Load gave Path %q and %d rules", c.Path, len(c.Rules))
	}
	_, err = Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(path, []byte("[[rule]]\nname = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if want := path + ":1: rule \"x\": missing listen\n" + path + ":1: rule \"x\": missing backends"; err == nil || err.Error() != want {
		t.Errorf("Load of a bad file: %v, want %q", err, want)
	}
}
