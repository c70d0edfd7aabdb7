package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// rangeAddr is a host:first-last Address for expected values.
func rangeAddr(host string, first, last uint16) Address {
	return Address{Network: "tcp", Host: host, Port: first, LastPort: last}
}

// TestParsePortRange checks the forms of a range of ports and their
// messages.
func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in   string
		role addrRole
		want string // String() of the result, or the error
	}{
		{"0.0.0.0:20000-20999", roleListen, "0.0.0.0:20000-20999"},
		{":1-65535", roleListen, ":1-65535"},
		{"[::1]:7-7", roleListen, "[::1]:7-7"},
		{"10.0.0.5:30000-30999", roleBackend, "10.0.0.5:30000-30999"},
		{"db.internal:30000-30009", roleBackend, "db.internal:30000-30009"},
		{":20-10", roleListen, "port range 20-10 runs backwards (want first-last, first ≤ last)"},
		{":0-10", roleListen, "port range 0-10 holds port 0 (want first-last, each 1-65535)"},
		{":1-65536", roleListen, "port range 1-65536: port 65536 out of range (max 65535) (want first-last, each 1-65535)"},
		{":1-", roleListen, "port range 1-: missing port (want first-last, each 1-65535)"},
		{":1-2-3", roleListen, `port range 1-2-3: invalid port "2-3" (want a number) (want first-last, each 1-65535)`},
		{"localhost:1-2", roleAdmin, `invalid port "1-2" (want a number)`},
	}
	for _, tt := range tests {
		a, err := parseAddress(tt.in, tt.role)
		got := a.String()
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("parseAddress(%q, %d) = %q, want %q", tt.in, tt.role, got, tt.want)
		}
	}
}

// rangeGoodCases are valid configs with ranges of ports (also run through
// Format's round trip).
func rangeGoodCases() []goodCase {
	mapped := wantRule("game", rangeAddr("0.0.0.0", 20000, 20999), rangeAddr("10.0.0.5", 30000, 30999), tcpAddr("10.0.0.6", 7000))
	mapped.Protocol = TCPUDP
	mapped.HealthCheck = &HealthCheck{Interval: 5 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, Port: 8080}
	single := wantRule("ftp", rangeAddr("", 50000, 50009), tcpAddr("10.0.0.7", 21))
	neighbours := wantRule("next", tcpAddr("0.0.0.0", 21000), tcpAddr("a", 1))
	return []goodCase{
		{"a listen range to a backend range and a single port", "[[rule]]\nname = \"game\"\nlisten = \"0.0.0.0:20000-20999\"\nprotocol = \"tcp+udp\"\n" +
			"backends = [\"10.0.0.5:30000-30999\", \"10.0.0.6:7000\"]\nhealth_check = { port = 8080 }\n" +
			"[[rule]]\nname = \"ftp\"\nlisten = \":50000-50009\"\nbackends = [\"10.0.0.7:21\"]\n" +
			"[[rule]]\nname = \"next\"\nlisten = \"0.0.0.0:21000\"\nbackends = [\"a:1\"]\n",
			wantConfig(mapped, single, neighbours)},
	}
}

// badRangeCases are mistakes with ranges of ports, each with its file:line.
func badRangeCases() []badCase {
	return []badCase{
		{"backend range of another length", "[[rule]]\nname = \"g\"\nlisten = \":20000-20999\"\nbackends = [\n  \"10.0.0.5:30000-30009\",\n]\n",
			[]string{`sluice.toml:5: rule "g": backend "10.0.0.5:30000-30009": a range of 10 ports, but listen ":20000-20999" has 1000 (want a range of 1000 ports, or one port)`}},
		{"backend range for one listen port", "[[rule]]\nname = \"g\"\nlisten = \":20000\"\nbackends = [{ address = \"10.0.0.5:30000-30001\" }]\n",
			[]string{`sluice.toml:4: rule "g": backend "10.0.0.5:30000-30001": a range of ports needs a listen range as long (listen ":20000" is one port)`}},
		{"route backend range of another length", "[[rule]]\nname = \"g\"\nlisten = \":20000-20001\"\nbackends = [\"a:1\"]\n[[rule.route]]\nsni = [\"x.example\"]\nbackends = [\"b:1-3\"]\n",
			[]string{`sluice.toml:7: rule "g": route "route-1": backend "b:1-3": a range of 3 ports, but listen ":20000-20001" has 2 (want a range of 2 ports, or one port)`}},
		{"backwards listen range", "[[rule]]\nname = \"g\"\nlisten = \":2-1\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:3: rule "g": listen ":2-1": port range 2-1 runs backwards (want first-last, first ≤ last)`}},
		{"ranges overlap", "[[rule]]\nname = \"a\"\nlisten = \":20000-20999\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"b\"\nlisten = \"127.0.0.1:20500-21499\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:7: rule "b": listen "127.0.0.1:20500-21499": port 20500 already used by rule "a"`}},
		{"a range takes a single port", "[[rule]]\nname = \"a\"\nlisten = \"127.0.0.1:20700\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"b\"\nlisten = \"0.0.0.0:20000-20999\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:7: rule "b": listen "0.0.0.0:20000-20999": port 20700 already used by rule "a"`}},
		{"a single port inside a range", "[[rule]]\nname = \"a\"\nlisten = \":20000-20999\"\nprotocol = \"udp\"\nbackends = [\"a:1\"]\n[[rule]]\nname = \"b\"\nlisten = \"[::1]:20999\"\nprotocol = \"tcp+udp\"\nbackends = [\"a:1\"]\n",
			[]string{`sluice.toml:8: rule "b": listen "[::1]:20999" already used by rule "a"`}},
		{"health_check port out of range", "[[rule]]\nname = \"g\"\nlisten = \":1\"\nbackends = [\"a:1\"]\nhealth_check = { port = 70000 }\n",
			[]string{`sluice.toml:5: rule "g": health_check: port 70000: out of range (max 65535)`}},
		{"health_check port 0", "[[rule]]\nname = \"g\"\nlisten = \":1\"\nbackends = [\"a:1\"]\nhealth_check = { port = 0 }\n",
			[]string{`sluice.toml:5: rule "g": health_check: port 0: must be at least 1`}},
	}
}

// TestRangesApart checks that ranges that do not share a port, or share
// one on other transports or other addresses, are no clash.
func TestRangesApart(t *testing.T) {
	doc := "[[rule]]\nname = \"a\"\nlisten = \"0.0.0.0:20000-20999\"\nbackends = [\"a:1\"]\n" +
		"[[rule]]\nname = \"b\"\nlisten = \"0.0.0.0:21000-21999\"\nbackends = [\"a:1\"]\n" +
		"[[rule]]\nname = \"c\"\nlisten = \"0.0.0.0:20000-20999\"\nprotocol = \"udp\"\nbackends = [\"a:1\"]\n" +
		"[[rule]]\nname = \"d\"\nlisten = \"[::1]:20000-20999\"\nbackends = [\"a:1\"]\n"
	if _, err := Parse("sluice.toml", []byte(doc)); err != nil {
		t.Fatal(err)
	}
}

// TestManyPortsParse parses a config of 10,000 single-port rules beside a
// 10,000-port range, and one whose range overlaps the last of them: the
// checks take time linear in the ports, not in their pairs (a pair loop
// would take minutes here).
func TestManyPortsParse(t *testing.T) {
	var b strings.Builder
	for i := range 10_000 {
		fmt.Fprintf(&b, "[[rule]]\nname = \"r%d\"\nlisten = \"127.0.0.1:%d\"\nbackends = [\"a:1\"]\n", i, 10_000+i)
	}
	b.WriteString("[[rule]]\nname = \"big\"\nlisten = \"127.0.0.1:30000-39999\"\nbackends = [\"a:40000-49999\"]\n")
	c, err := Parse("sluice.toml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Rules[len(c.Rules)-1].Listen.Ports(); got != 10_000 {
		t.Errorf("the range has %d ports, want 10000", got)
	}
	b.WriteString("[[rule]]\nname = \"late\"\nlisten = \"0.0.0.0:19999-20000\"\nbackends = [\"a:1\"]\n")
	_, err = Parse("sluice.toml", []byte(b.String()))
	if want := `rule "late": listen "0.0.0.0:19999-20000": port 19999 already used by rule "r9999"`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestFromQuickRange checks -l with a range and -r with one of its length.
func TestFromQuickRange(t *testing.T) {
	c, err := FromQuick(Quick{Listen: ":20000-20099", Remotes: []string{"10.0.0.5:30000-30099"}, Protocol: "udp"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Rules[0].Listen; got != rangeAddr("", 20000, 20099) {
		t.Errorf("listen = %#v", got)
	}
	if !strings.Contains(c.Format(), `listen = ":20000-20099"`) {
		t.Errorf("Format does not print the range as written:\n%s", c.Format())
	}
	_, err = FromQuick(Quick{Listen: ":20000-20099", Remotes: []string{"10.0.0.5:30000-30098"}})
	if err == nil || !strings.Contains(err.Error(), "a range of 99 ports") {
		t.Errorf("a remote range of another length: got %v", err)
	}
}
