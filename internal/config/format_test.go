package config

import (
	"errors"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/congestion"
)

// TestFormatRoundTrip checks that the normalised output parses back to the
// same config, for every good case.
func TestFormatRoundTrip(t *testing.T) {
	for _, tt := range goodCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("sluice.toml", []byte(tt.doc))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out := c.Format()
			again, err := Parse("sluice.toml", []byte(out))
			if err != nil {
				t.Fatalf("Parse(Format()): %v\n%s", err, out)
			}
			if !reflect.DeepEqual(again, c) {
				t.Errorf("round trip changed the config\nformatted:\n%s\ngot  %+v\nwant %+v", out, again, c)
			}
			if again.Format() != out {
				t.Errorf("Format is not stable:\n%s\nthen\n%s", out, again.Format())
			}
		})
	}
}

// TestFormatOutput pins the exact output for a small config, so that a user
// reading `sluice check` sees every value in force.
func TestFormatOutput(t *testing.T) {
	doc := "admin = \"127.0.0.1:9900\"\n[[rule]]\nname = \"web\"\nlisten = \":8080\"\n" +
		"backends = [\"10.0.0.5:80\", { address = \"10.0.0.6:80\", backup = true }]\n" +
		"allow = [\"10.0.0.1\"]\nhealth_check = { send = \"\\u0000\\\"hi\\\"\\n\" }\n"
	c, err := Parse("sluice.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := `log_level = "info"
log_format = "text"
access_log = "stderr"
log_file = "stderr"
admin = "127.0.0.1:9900"

[[rule]]
name = "web"
listen = ":8080"
protocol = "tcp"
backends = [
  { address = "10.0.0.5:80", weight = 1, backup = false },
  { address = "10.0.0.6:80", weight = 1, backup = true },
]
balance = "round-robin"
retries = 1
connect_timeout = "5s"
resolve_ttl = "30s"
proxy_protocol = "off"
slow_start = "off"
queue_timeout = "off"
max_queue = 1024
source = "off"
mark = 0
health_check = { interval = "5s", timeout = "1s", rise = 2, fall = 3, send = "\u0000\"hi\"\n" }
tls = "off"
backend_tls = "off"
idle_timeout = "1h"
drain_timeout = "30s"
udp_session_timeout = "1m"
peek_timeout = "3s"
max_connections = 0
max_connections_per_ip = 0
per_ip_prefix_v6 = 128
max_sessions = 0
rate_per_ip = "unlimited"
bandwidth = "unlimited"
allow = ["10.0.0.1/32"]
deny = []
accept_proxy_protocol = []
congestion_control = "auto"
workers = WORKERS
`
	want = strings.Replace(want, "WORKERS", strconv.Itoa(runtime.GOMAXPROCS(0)), 1)
	if got := c.Format(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestFormatRoutesOutput pins the output for a routed rule: its routes
// follow it with every key in force, tls and backend_tls as tables.
func TestFormatRoutesOutput(t *testing.T) {
	doc := "[[rule]]\nname = \"edge\"\nlisten = \":443\"\nworkers = 1\n" +
		"tls = { cert = \"/a.pem\", key = \"/a.key\", alpn = [\"h2\"], client_ca = \"/ca.pem\" }\n" +
		"[[rule.route]]\nsni = [\"*.Example.org\"]\nalpn = [\"h2\"]\nbackends = [\"10.0.0.5:443\"]\n" +
		"backend_tls = { server_name = \"db.internal\" }\ntls = \"off\"\n"
	c, err := Parse("/etc/sluice/sluice.toml", []byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	_, out, _ := strings.Cut(c.Format(), "workers = 1\n")
	want := `
[rule.tls]
certificates = [
  { cert = "/a.pem", key = "/a.key" },
]
min_version = "1.2"
alpn = ["h2"]
client_ca = "/ca.pem"

[[rule.route]]
name = "route-1"
sni = ["*.example.org"]
alpn = ["h2"]
backends = [
  { address = "10.0.0.5:443", weight = 1, backup = false },
]
balance = "round-robin"
retries = 0
connect_timeout = "5s"
resolve_ttl = "30s"
proxy_protocol = "off"
slow_start = "off"
queue_timeout = "off"
max_queue = 1024
source = "off"
mark = 0
health_check = "off"
tls = "off"

[rule.route.backend_tls]
server_name = "db.internal"
insecure_skip_verify = false
`
	if out != want {
		t.Errorf("got:\n%s\nwant:\n%s", out, want)
	}
	if n := strings.Count(c.Format(), "backends ="); n != 1 {
		t.Errorf("a rule without backends of its own has a backends key:\n%s", c.Format())
	}
}

// TestFormatValues checks the formatting of values whose TOML form is chosen.
func TestFormatValues(t *testing.T) {
	durations := map[time.Duration]string{
		90 * time.Second: "1m30s", time.Hour: "1h", 90 * time.Minute: "1h30m",
		250 * time.Millisecond: "250ms", 10 * time.Second: "10s", 3*time.Hour + 5*time.Second: "3h0m5s",
	}
	for d, want := range durations {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	bandwidths := map[int64]string{
		10 << 20: `"10MiB/s"`, 500_000: `"500KB/s"`, 125_000_000: `"125MB/s"`, 3072: `"3KiB/s"`, 1536: "1536", 1001: "1001",
		3 << 40: `"3TiB/s"`, 7e12: `"7TB/s"`,
	}
	for n, want := range bandwidths {
		if got := formatBandwidth(n); got != want {
			t.Errorf("formatBandwidth(%d) = %s, want %s", n, got, want)
		}
	}
	floats := map[float64]string{2.5: "2.5", 3: "3.0", 1e21: "1e+21", 0.1: "0.1"}
	for f, want := range floats {
		if got := formatFloat(f); got != want {
			t.Errorf("formatFloat(%v) = %s, want %s", f, got, want)
		}
	}
}

// TestFromQuick checks quick-mode flags against the file's rules.
func TestFromQuick(t *testing.T) {
	c, err := FromQuick(Quick{Listen: ":8080", Remotes: []string{"10.0.0.5:80", "backend:80"}})
	if err != nil {
		t.Fatalf("FromQuick: %v", err)
	}
	want := &Config{LogLevel: "info", LogFormat: "text", AccessLog: "stderr", LogFile: "stderr",
		Rules: []Rule{wantRule("default", tcpAddr("", 8080), tcpAddr("10.0.0.5", 80), tcpAddr("backend", 80))}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}

	c, err = FromQuick(Quick{
		Listen: "[::1]:5353", Remotes: []string{"[::1]:53"}, Protocol: "tcp+udp", Balance: "least-conn",
		ConnectTimeout: "1s", IdleTimeout: "10m", ProxyProtocol: "v1", Allow: []string{"::1", "10.0.0.0/8"}, MaxConns: 7,
		Congestion: "system",
	})
	if err != nil {
		t.Fatalf("FromQuick: %v", err)
	}
	r := wantRule("default", tcpAddr("::1", 5353), tcpAddr("::1", 53))
	r.Protocol, r.Balance, r.ConnectTimeout, r.IdleTimeout = TCPUDP, "least-conn", time.Second, 10*time.Minute
	r.ProxyProtocol, r.MaxConnections = 1, 7
	r.Allow = prefixes(t, "::1/128", "10.0.0.0/8")
	r.CongestionControl, _ = congestion.Parse("system")
	if want := (&Config{LogLevel: "info", LogFormat: "text", AccessLog: "stderr", LogFile: "stderr", Rules: []Rule{r}}); !reflect.DeepEqual(c, want) {
		t.Errorf("got %+v\nwant %+v", c, want)
	}
	again, err := Parse("", []byte(c.Format()))
	if err != nil || !reflect.DeepEqual(again, c) {
		t.Errorf("quick config does not round-trip through Format: %v\n%s", err, c.Format())
	}
}

// TestFromQuickBad checks quick-mode messages: no file, line or rule name.
func TestFromQuickBad(t *testing.T) {
	tests := []struct {
		name string
		q    Quick
		want []string
	}{
		{"missing port", Quick{Listen: ":80", Remotes: []string{"10.0.0.5"}},
			[]string{`backend "10.0.0.5": missing port`}},
		{"bad congestion control", Quick{Listen: ":80", Remotes: []string{"10.0.0.5:80"}, Congestion: "Cubic"},
			[]string{`congestion_control "Cubic": not an algorithm name (want "auto", "system" or a name such as "cubic" or "bbr")`}},
		{"no remotes", Quick{Listen: ":80"}, []string{"missing backends"}},
		{"no listen", Quick{Remotes: []string{"a:1"}}, []string{"missing listen"}},
		{"listen name", Quick{Listen: "example.com:80", Remotes: []string{"a:1"}},
			[]string{`listen "example.com:80": host must be an IP address (listen addresses are not resolved)`}},
		{"every flag wrong", Quick{
			Listen: "unix:/run/s", Remotes: []string{"a:1", "a:1"}, Protocol: "udp", Balance: "fair",
			ConnectTimeout: "5", IdleTimeout: "0s", ProxyProtocol: "v9", Allow: []string{"10.0.0.0/33"}, MaxConns: -1,
		}, []string{
			`balance "fair": unknown value (want one of round-robin, least-conn, random, source-hash, first)`,
			`connect_timeout "5": invalid duration (want e.g. "90s", "5m", "1h")`,
			`proxy_protocol "v9": unknown value (want one of off, v1, v2)`,
			`idle_timeout "0s": must be greater than zero`,
			`max_connections -1: must not be negative`,
			`allow "10.0.0.0/33": invalid CIDR (want e.g. "10.0.0.0/8", "2001:db8::/32" or a single IP)`,
			`listen "unix:/run/s": unix sockets need protocol "tcp", not "udp"`,
			`backend "a:1" listed twice`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromQuick(tt.q)
			if err == nil {
				t.Fatalf("FromQuick accepted %+v: %+v", tt.q, c)
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want *Errors", err)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestValidateGlobals checks the global flags of quick mode.
func TestValidateGlobals(t *testing.T) {
	c := &Config{Admin: "[0:0::1]:9900"}
	if err := ValidateGlobals(c); err != nil {
		t.Fatalf("ValidateGlobals: %v", err)
	}
	if c.LogLevel != "info" || c.LogFormat != "text" || c.Admin != "[::1]:9900" {
		t.Errorf("got %+v, want defaults filled and admin normalised", c)
	}
	c = &Config{Admin: "0.0.0.0:9900", AdminToken: "t0ken", LogLevel: "warn", LogFormat: "json"}
	if err := ValidateGlobals(c); err != nil {
		t.Errorf("ValidateGlobals with token: %v", err)
	}

	bad := &Config{Path: "sluice.toml", LogLevel: "loud", LogFormat: "text", Admin: ":9900"}
	err := ValidateGlobals(bad)
	want := `log_level "loud": unknown value (want one of debug, info, warn, error)` + "\n" +
		`admin ":9900": admin_token is required when admin listens on a non-loopback address`
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	if bad.LogLevel != "loud" || bad.Admin != ":9900" {
		t.Errorf("ValidateGlobals changed an invalid config: %+v", bad)
	}
	if err := ValidateGlobals(&Config{Admin: "[::1]:99999"}); err == nil || err.Error() != `admin "[::1]:99999": port 99999 out of range (max 65535)` {
		t.Errorf("got %v", err)
	}
}
