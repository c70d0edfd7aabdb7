package config

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// routesExample is a routed rule as docs/CONFIG.md shows it: a default
// route, routes by SNI (a wildcard among them), ALPN, detect (a list) and
// HTTP Host, each inheriting what it does not set from the rule and
// [defaults].
const routesExample = `[defaults]
connect_timeout = "2s"
peek_timeout    = "1s"
backend_tls     = { ca = "/etc/sluice/ca.pem" }

[[rule]]
name     = "edge"
listen   = ":443"
backends = ["10.0.0.9:443"]
health_check = { interval = "10s" }

[[rule.route]]
sni      = ["App.Example.com", "*.example.org"]
backends = ["10.0.0.5:443", "10.0.0.6:443"]
balance  = "least-conn"

[[rule.route]]
name     = "acme"
alpn     = ["acme-tls/1"]
backends = ["127.0.0.1:8443"]
retries  = 3
backend_tls = "off"

[[rule.route]]
detect   = ["ssh", "proxy"]
backends = ["127.0.0.1:22"]
health_check    = "off"
connect_timeout = "1s"
proxy_protocol  = "v1"
resolve_ttl     = "1m"

[[rule.route]]
name      = "Web_2"
http_host = ["WWW.example.com", "10.0.0.1", "[0:0::1]"]
detect    = "http"
backends  = ["127.0.0.1:8080", "127.0.0.1:8081"]
`

// wantRoutesExample is what routesExample parses to.
func wantRoutesExample() *Config {
	edge := wantRule("edge", tcpAddr("", 443), tcpAddr("10.0.0.9", 443))
	edge.ConnectTimeout, edge.PeekTimeout = 2*time.Second, time.Second
	edge.HealthCheck = &HealthCheck{Interval: 10 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3}
	edge.BackendTLS = &BackendTLS{CA: "/etc/sluice/ca.pem"}
	route := func(name string, backends ...Address) Route {
		r := Route{Name: name, Upstream: edge.Upstream}
		r.Backends = nil
		for _, b := range backends {
			r.Backends = append(r.Backends, Backend{Address: b, Weight: 1})
		}
		r.Retries = len(backends) - 1
		return r
	}
	sni := route("route-1", tcpAddr("10.0.0.5", 443), tcpAddr("10.0.0.6", 443))
	sni.SNI, sni.Balance = []string{"app.example.com", "*.example.org"}, "least-conn"
	acme := route("acme", tcpAddr("127.0.0.1", 8443))
	acme.ALPN, acme.Retries, acme.BackendTLS = []string{"acme-tls/1"}, 3, nil
	ssh := route("route-3", tcpAddr("127.0.0.1", 22))
	ssh.Detect, ssh.HealthCheck, ssh.ConnectTimeout = []string{"ssh", "proxy"}, nil, time.Second
	ssh.ProxyProtocol, ssh.ResolveTTL = 1, time.Minute
	web := route("Web_2", tcpAddr("127.0.0.1", 8080), tcpAddr("127.0.0.1", 8081))
	web.HTTPHost, web.Detect = []string{"www.example.com", "10.0.0.1", "::1"}, []string{"http"}
	edge.Routes = []Route{sni, acme, ssh, web}
	return wantConfig(edge)
}

// tlsExample terminates TLS with one pair for the rule, a list of pairs
// for one route, and none for another route that lifts the rule's.
const tlsExample = `[[rule]]
name     = "term"
listen   = ":443"
backends = ["127.0.0.1:80"]

[rule.tls]
cert = "certs/a.pem"
key  = "/etc/sluice/a.key"

[rule.backend_tls]
server_name = "App.internal"
cert = "client.pem"
key  = "client.key"
insecure_skip_verify = true

[[rule.route]]
sni      = ["b.example.com"]
backends = ["127.0.0.1:81"]

[rule.route.tls]
certificates = [{ cert = "b.pem", key = "b.key" }, { cert = "c.pem", key = "c.key" }]
min_version  = "1.3"
alpn         = ["h2", "http/1.1"]
client_ca    = "clients.pem"

[[rule.route]]
sni      = ["c.example.com"]
backends = ["127.0.0.1:82"]
tls      = "off"
`

// wantTLSExample is what tlsExample parses to.
func wantTLSExample() *Config {
	term := wantRule("term", tcpAddr("", 443), tcpAddr("127.0.0.1", 80))
	term.TLS = &TLS{Certificates: []CertKey{{Cert: "certs/a.pem", Key: "/etc/sluice/a.key"}}, MinVersion: tls.VersionTLS12}
	term.BackendTLS = &BackendTLS{ServerName: "App.internal", Cert: "client.pem", Key: "client.key", InsecureSkipVerify: true}
	b := Route{Name: "route-1", SNI: []string{"b.example.com"}, Upstream: term.Upstream}
	b.Backends = []Backend{{Address: tcpAddr("127.0.0.1", 81), Weight: 1}}
	b.TLS = &TLS{
		Certificates: []CertKey{{Cert: "b.pem", Key: "b.key"}, {Cert: "c.pem", Key: "c.key"}},
		MinVersion:   tls.VersionTLS13, ALPN: []string{"h2", "http/1.1"}, ClientCA: "clients.pem",
	}
	c := Route{Name: "route-2", SNI: []string{"c.example.com"}, Upstream: term.Upstream}
	c.Backends, c.TLS = []Backend{{Address: tcpAddr("127.0.0.1", 82), Weight: 1}}, nil
	term.Routes = []Route{b, c}
	return wantConfig(term)
}

// tlsDefaults sets tls, backend_tls and peek_timeout in [defaults]; a UDP
// rule lifts the first two with "off".
const tlsDefaults = `[defaults]
peek_timeout = "500ms"
tls          = { cert = "/a.pem", key = "/a.key", alpn = [] }
backend_tls  = {}

[[rule]]
name     = "t"
listen   = ":1"
backends = ["a:1"]

[[rule]]
name     = "u"
listen   = ":2"
protocol = "udp"
backends = ["a:1"]
tls      = "off"
backend_tls = "off"
`

// routeGoodCases are valid configs with routes, TLS and backend TLS.
func routeGoodCases(t *testing.T) []goodCase {
	noDefault := wantRule("sni", tcpAddr("127.0.0.1", 443))
	noDefault.Retries = 0
	noDefault.Routes = []Route{{Name: "route-1", SNI: []string{"*.a.example"}, Upstream: noDefault.Upstream}}
	noDefault.Routes[0].Backends = []Backend{{Address: unixAddr("/run/a.sock"), Weight: 1}}

	both := wantRule("both", tcpAddr("", 53), tcpAddr("a", 1))
	both.Protocol = TCPUDP
	both.Routes = []Route{{Name: "dot", Detect: []string{"tls"}, Upstream: both.Upstream}}
	both.Routes[0].Backends = []Backend{{Address: tcpAddr("b", 853), Weight: 1}}

	t1 := wantRule("t", tcpAddr("", 1), tcpAddr("a", 1))
	t1.PeekTimeout = 500 * time.Millisecond
	t1.TLS = &TLS{Certificates: []CertKey{{Cert: "/a.pem", Key: "/a.key"}}, MinVersion: tls.VersionTLS12}
	t1.BackendTLS = &BackendTLS{}
	u := wantRule("u", tcpAddr("", 2), tcpAddr("a", 1))
	u.Protocol, u.PeekTimeout = UDP, 500*time.Millisecond

	return []goodCase{
		{"routes inherit from the rule and defaults", routesExample, wantRoutesExample()},
		{"tls and backend_tls, per rule and per route", tlsExample, wantTLSExample()},
		{"tls, backend_tls and peek_timeout from defaults", tlsDefaults, wantConfig(t1, u)},
		{"routed rule without a default route", "[[rule]]\nname = \"sni\"\nlisten = \"127.0.0.1:443\"\n[[rule.route]]\nsni = [\"*.A.example\"]\nbackends = [\"unix:/run/a.sock\"]\n",
			wantConfig(noDefault)},
		{"tcp+udp rule with routes and its own backends", "[[rule]]\nname = \"both\"\nlisten = \":53\"\nprotocol = \"tcp+udp\"\nbackends = [\"a:1\"]\nroute = [{ name = \"dot\", detect = \"tls\", backends = [\"b:853\"] }]\n",
			wantConfig(both)},
	}
}

// TestTLSPathsFromFileDirectory: relative certificate, key and CA paths are
// taken from the directory of the config file; absolute ones are kept.
func TestTLSPathsFromFileDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.toml")
	doc := "[[rule]]\nname = \"t\"\nlisten = \":1\"\nbackends = [\"a:1\"]\n" +
		"tls = { certificates = [{ cert = \"certs/a.pem\", key = \"/k/a.key\" }], client_ca = \"./ca.pem\" }\n" +
		"backend_tls = { ca = \"../ca.pem\", cert = \"c.pem\", key = \"c.key\" }\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	r := c.Rules[0]
	wantTLS := &TLS{Certificates: []CertKey{{Cert: filepath.Join(dir, "certs/a.pem"), Key: "/k/a.key"}},
		MinVersion: tls.VersionTLS12, ClientCA: filepath.Join(dir, "ca.pem")}
	wantBackend := &BackendTLS{CA: filepath.Join(filepath.Dir(dir), "ca.pem"), Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "c.key")}
	if !reflect.DeepEqual(r.TLS, wantTLS) || !reflect.DeepEqual(r.BackendTLS, wantBackend) {
		t.Errorf("got tls %+v, backend_tls %+v\nwant %+v, %+v", r.TLS, r.BackendTLS, wantTLS, wantBackend)
	}
	again, err := Parse(filepath.Join(t.TempDir(), "elsewhere.toml"), []byte(c.Format()))
	if err != nil {
		t.Fatalf("Parse(Format()) in another directory: %v", err)
	}
	if !reflect.DeepEqual(again.Rules, c.Rules) {
		t.Errorf("the printed config names other files when read from another directory:\n%s", c.Format())
	}
}
