package config

import (
	"net/netip"
	"testing"
)

// discoverGoodCases are valid configs with backends_from.
func discoverGoodCases() []goodCase {
	etcdOnly := wantRule("web", tcpAddr("", 80))
	etcdOnly.Backends = nil
	etcdOnly.BackendsFrom = BackendsFrom{Kind: FromEtcd, Name: "/services/web/"}
	etcdOnly.Retries = 3
	union := wantRule("db", tcpAddr("", 81), tcpAddr("10.0.0.5", 5432))
	union.BackendsFrom = BackendsFrom{Kind: FromSRV, Name: "_pg._tcp.example.org", Server: netip.MustParseAddrPort("127.0.0.1:5353")}
	union.Retries = 3
	v6 := wantRule("v6", tcpAddr("", 82))
	v6.Backends = nil
	v6.BackendsFrom = BackendsFrom{Kind: FromSRV, Name: "_x._tcp.example.org", Server: netip.MustParseAddrPort("[::1]:53")}
	v6.Retries = 1
	routed := wantRule("routed", tcpAddr("", 83))
	routed.Backends = nil
	routed.Retries = 0
	routed.Routes = []Route{{Name: "api", SNI: []string{"api.example.org"}, Upstream: routed.Upstream}}
	routed.Routes[0].BackendsFrom = BackendsFrom{Kind: FromEtcd, Name: "/services/api/"}
	routed.Routes[0].Retries = 3
	return []goodCase{
		{"backends_from etcd alone", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nbackends_from = \"etcd:/services/web/\"\n", wantConfig(etcdOnly)},
		{"backends_from srv with a DNS server, and backends", "[[rule]]\nname = \"db\"\nlisten = \":81\"\nbackends = [\"10.0.0.5:5432\"]\nbackends_from = \"srv:_pg._tcp.example.org@127.0.0.1:5353\"\n", wantConfig(union)},
		{"backends_from srv, DNS server on port 53, retries set", "[[rule]]\nname = \"v6\"\nlisten = \":82\"\nbackends_from = \"srv:_x._tcp.example.org@::1\"\nretries = 1\n", wantConfig(v6)},
		{"a route's own backends_from", "[[rule]]\nname = \"routed\"\nlisten = \":83\"\n[[rule.route]]\nname = \"api\"\nsni = [\"api.example.org\"]\nbackends_from = \"etcd:/services/api/\"\n", wantConfig(routed)},
	}
}

// badDiscoverCases lists mistakes in backends_from.
func badDiscoverCases() []badCase {
	rule := "[[rule]]\nname = \"web\"\nlisten = \":80\"\n"
	return []badCase{
		{"backends_from unknown kind", rule + "backends_from = \"consul:web\"\n",
			[]string{`sluice.toml:4: rule "web": backends_from "consul:web": want "etcd:/key/prefix/" or "srv:_service._proto.name" (optionally "@ip:port" of the DNS server)`}},
		{"backends_from etcd without prefix", rule + "backends_from = \"etcd:\"\n",
			[]string{`sluice.toml:4: rule "web": backends_from "etcd:": no key prefix after "etcd:"`}},
		{"backends_from srv with a DNS server by name", rule + "backends_from = \"srv:_web._tcp.example.org@dns.example.org:53\"\n",
			[]string{`sluice.toml:4: rule "web": backends_from "srv:_web._tcp.example.org@dns.example.org:53": DNS server "dns.example.org:53": want an IP address, with a port unless 53`}},
		{"backends_from srv without a name", rule + "backends_from = \"srv:@127.0.0.1\"\n",
			[]string{`sluice.toml:4: rule "web": backends_from "srv:@127.0.0.1": "" is not a DNS name`}},
		{"backends_from not a string", rule + "backends_from = 3\n",
			[]string{`sluice.toml:4: rule "web": backends_from 3: want a string, not an integer`}},
		{"a route with neither backends nor backends_from", rule + "backends_from = \"etcd:/web/\"\n[[rule.route]]\nsni = [\"a.example.org\"]\n",
			[]string{`sluice.toml:5: rule "web": route "route-1": missing backends (a route does not inherit the rule's backends or backends_from: those are the default route)`}},
	}
}

// TestBackendsFromString: the printed form reads back as the same value.
func TestBackendsFromString(t *testing.T) {
	for _, in := range []string{"etcd:/services/web/", "srv:_web._tcp.example.org", "srv:_web._tcp.example.org@127.0.0.1:5353", "srv:_x._tcp.example.org@[::1]:53"} {
		b, err := parseBackendsFrom(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if b.String() != in {
			t.Errorf("%q printed as %q", in, b.String())
		}
	}
}
