package config

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// sourceDoc sets source and mark in [defaults], lifts and overrides them
// in rules, and sets them per route.
const sourceDoc = `[defaults]
source = "client"
mark = 1

[[rule]]
name = "transparent"
listen = ":1"
protocol = "tcp+udp"
backends = ["10.0.0.5:80", "db.internal:80"]

[[rule.route]]
sni = ["v6.example"]
backends = ["[2001:db8::5]:443"]
source = "2001:db8::7"
mark = 0xffffffff

[[rule]]
name = "fixed"
listen = ":2"
backends = ["10.0.0.5:80", ":81"]
source = "::ffff:10.0.0.7"
mark = 0

[[rule]]
name = "plain"
listen = ":3"
backends = ["unix:/run/app.sock"]
source = "off"
`

// TestParseSourceKeys checks source and mark: read, inherited by rule and
// route, lifted with "off" and 0, and written back by Format to the same
// config.
func TestParseSourceKeys(t *testing.T) {
	got, err := Parse("sluice.toml", []byte(sourceDoc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	tr := got.Rules[0]
	if tr.Source != (Source{Client: true}) || tr.Mark != 1 {
		t.Errorf("rule transparent: source %+v, mark %d; want the client's, 1", tr.Source, tr.Mark)
	}
	rt := tr.Routes[0]
	if rt.Source != (Source{Addr: netip.MustParseAddr("2001:db8::7")}) || rt.Mark != 0xffffffff {
		t.Errorf("route: source %+v, mark %d; want 2001:db8::7, 4294967295", rt.Source, rt.Mark)
	}
	fixed := got.Rules[1]
	if fixed.Source != (Source{Addr: netip.MustParseAddr("10.0.0.7")}) || fixed.Mark != 0 {
		t.Errorf("rule fixed: source %+v, mark %d; want 10.0.0.7 (unmapped), 0", fixed.Source, fixed.Mark)
	}
	if plain := got.Rules[2]; plain.Source != (Source{}) || plain.Mark != 1 {
		t.Errorf("rule plain: source %+v, mark %d; want none, 1", plain.Source, plain.Mark)
	}
	out := got.Format()
	for _, want := range []string{`source = "client"`, `source = "2001:db8::7"`, `source = "10.0.0.7"`, `source = "off"`, "mark = 4294967295", "mark = 0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("Format lacks %s:\n%s", want, out)
		}
	}
	again, err := Parse("sluice.toml", []byte(out))
	if err != nil {
		t.Fatalf("Parse(Format()): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(again.Rules, got.Rules) {
		t.Errorf("Format does not round-trip:\n%+v\n%+v", again.Rules, got.Rules)
	}
}

// TestParseSourceKeysBad checks that the mistakes source and mark can
// hold are errors naming file and line: of the key, or of the backend a
// fixed source cannot reach.
func TestParseSourceKeysBad(t *testing.T) {
	for _, tt := range []badCase{
		{"source a host name", "[[rule]]\n" + ok + "source = \"gw.example\"\n",
			[]string{`sluice.toml:5: rule "web": source "gw.example": want an IP address or "client"`}},
		{"source not a string", "[[rule]]\n" + ok + "source = 7\n",
			[]string{`sluice.toml:5: rule "web": source 7: want a string, not an integer`}},
		{"source unspecified", "[[rule]]\n" + ok + "source = \"0.0.0.0\"\n",
			[]string{`sluice.toml:5: rule "web": source "0.0.0.0": the unspecified address binds nothing (leave source out, or "off")`}},
		{"source multicast", "[[rule]]\n" + ok + "source = \"224.0.0.1\"\n",
			[]string{`sluice.toml:5: rule "web": source "224.0.0.1": a multicast address cannot send a connection`}},
		{"source with a zone", "[[rule]]\n" + ok + "source = \"fe80::1%eth0\"\n",
			[]string{`sluice.toml:5: rule "web": source "fe80::1%eth0": want an IP address or "client"`}},
		{"source with a port", "[[rule]]\n" + ok + "source = \"10.0.0.7:5000\"\n",
			[]string{`sluice.toml:5: rule "web": source "10.0.0.7:5000": want an IP address or "client"`}},
		{"mark negative", "[[rule]]\n" + ok + "mark = -1\n",
			[]string{`sluice.toml:5: rule "web": mark -1: want 0 to 4294967295`}},
		{"mark too large", "[[rule]]\n" + ok + "mark = 4294967296\n",
			[]string{`sluice.toml:5: rule "web": mark 4294967296: want 0 to 4294967295`}},
		{"mark a string", "[[rule]]\n" + ok + "mark = \"1\"\n",
			[]string{`sluice.toml:5: rule "web": mark "1": want an integer, not a string`}},
		{"IPv6 source, IPv4 backend", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nsource = \"::1\"\nbackends = [\n  \"[::2]:80\",\n  \"10.0.0.5:80\",\n  \":81\",\n]\n",
			[]string{`sluice.toml:7: rule "web": backend "10.0.0.5:80": source "::1" is IPv6, the backend IPv4 (a socket of one family cannot connect to the other)`,
				`sluice.toml:8: rule "web": backend ":81": source "::1" is IPv6, the backend IPv4 (a socket of one family cannot connect to the other)`}},
		{"IPv4 source from defaults, IPv6 route backend", "[defaults]\nsource = \"10.0.0.7\"\n[[rule]]\n" + ok + "[[rule.route]]\nsni = [\"a\"]\nbackends = [\"[::1]:80\"]\n",
			[]string{`sluice.toml:9: rule "web": route "route-1": backend "[::1]:80": source "10.0.0.7" is IPv4, the backend IPv6 (a socket of one family cannot connect to the other)`}},
		{"source with a unix backend", "[[rule]]\nname = \"web\"\nlisten = \":80\"\nsource = \"10.0.0.7\"\nbackends = [\"unix:/run/a.sock\"]\n",
			[]string{`sluice.toml:5: rule "web": backend "unix:/run/a.sock": a unix socket has no source address (source "10.0.0.7")`}},
		{"client source on a unix listener", "[[rule]]\nname = \"web\"\nlisten = \"unix:/run/in.sock\"\nsource = \"client\"\nbackends = [\"10.0.0.5:80\"]\n",
			[]string{`sluice.toml:4: rule "web": source "client": the clients of a unix socket have no IP address`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("sluice.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse succeeded; want %q", tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
}
