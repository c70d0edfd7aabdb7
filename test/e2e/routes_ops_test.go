package e2e

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// The route tests of operations: a reload that changes routes under a live
// routed connection, and sluice check printing routes. Their helpers are in
// routes_test.go.

// reloadRoutesConfig is a rule "edge" with a default route to def, a route
// "a" for a.example.com to a, and, when b is not empty, a route "b" for
// b.example.com to b.
func reloadRoutesConfig(listen, def, a, b string) string {
	text := fmt.Sprintf(`log_format = "json"

[[rule]]
name = "edge"
listen = %q
backends = [%q]

[[rule.route]]
name = "a"
sni = ["a.example.com"]
backends = [%q]
`, listen, def, a)
	if b != "" {
		text += fmt.Sprintf("\n[[rule.route]]\nname = \"b\"\nsni = [\"b.example.com\"]\nbackends = [%q]\n", b)
	}
	return text
}

// helloThrough opens a connection to addr that sends a ClientHello for
// sni, reads it back from an echo backend and closes, and returns the
// connection's access line.
func helloThrough(t *testing.T, p *proc, addr, sni string) record {
	t.Helper()
	c := dial(t, addr)
	if err := roundTrip(c, string(clientHello(t, sni))); err != nil {
		t.Errorf("ClientHello for %s: %v", sni, err)
	}
	c.Close()
	return p.waitAccess(c)
}

// TestRouteReload: a SIGHUP that adds a route and moves another to new
// backends applies both to new clients at once, while a client routed
// before the reload keeps its connection to the old backend, bytes flowing
// both ways.
func TestRouteReload(t *testing.T) {
	t.Parallel()
	def, a1, a2, b := startBackend(t, echo), startBackend(t, echo), startBackend(t, echo), startBackend(t, echo)
	var path string
	p, addr := launch(t, sluiceBin, func(listen string) []string {
		path = writeConfig(t, reloadRoutesConfig(listen, def.addr, a1.addr, ""))
		return []string{"-c", path}
	})

	live := dial(t, addr)
	if err := roundTrip(live, string(clientHello(t, "a.example.com"))); err != nil {
		t.Fatal(err)
	}
	checkRouted(t, helloThrough(t, p, addr, "b.example.com"), "default", def.addr, "eof")

	rewriteFile(t, path, reloadRoutesConfig(addr, def.addr, a2.addr, b.addr))
	p.signal(syscall.SIGHUP)
	if rec := p.wait("reloaded", isMsg("reloaded")); !slices.Contains(strs(rec["changed"]), "edge") {
		t.Errorf("reload logged %v, want rule edge changed", rec)
	}

	checkRouted(t, helloThrough(t, p, addr, "a.example.com"), "a", a2.addr, "eof")
	checkRouted(t, helloThrough(t, p, addr, "b.example.com"), "b", b.addr, "eof")
	for i := range 3 {
		if err := roundTrip(live, fmt.Sprintf("still flowing %d\n", i)); err != nil {
			t.Fatalf("the connection routed before the reload: %v", err)
		}
	}
	live.Close()
	rec := p.waitAccess(live)
	checkRouted(t, rec, "a", a1.addr, "eof")
	if a1.accepted.Load() != 1 {
		t.Errorf("route a's old backend got %d connections, want only the one from before the reload", a1.accepted.Load())
	}
}

// TestRouteCheckPrintsRoutes: `sluice check` prints each route after its
// rule with its matchers and every backend-side key in force (inherited
// ones too), numbers unnamed routes, and its output is a fixed point.
func TestRouteCheckPrintsRoutes(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, `[defaults]
connect_timeout = "7s"

[[rule]]
name = "edge"
listen = "127.0.0.1:8443"
backends = ["127.0.0.1:9000"]
balance = "least-conn"
peek_timeout = "4s"

[[rule.route]]
sni = ["App.Example.com", "*.example.org"]
backends = ["127.0.0.1:9001", "127.0.0.1:9002"]

[[rule.route]]
name = "acme"
alpn = ["acme-tls/1"]
backends = ["127.0.0.1:9003"]
balance = "first"

[[rule.route]]
name = "shell"
detect = ["ssh", "proxy"]
backends = ["127.0.0.1:9004"]

[[rule.route]]
http_host = ["www.example.com"]
backends = ["127.0.0.1:9005"]
`)
	first := runSluice(t, nil, "check", "-c", path)
	if first.code != 0 {
		t.Fatalf("check of a config with routes: %v", first)
	}
	routes := strings.Split(first.stdout, "[[rule.route]]\n")
	if len(routes) != 5 {
		t.Fatalf("check printed %d route tables, want 4:\n%s", len(routes)-1, first.stdout)
	}
	if !strings.Contains(routes[0], `peek_timeout = "4s"`) {
		t.Errorf("the rule lacks its peek_timeout:\n%s", routes[0])
	}
	for i, want := range [][]string{
		{`name = "route-1"`, `sni = ["app.example.com", "*.example.org"]`, `"127.0.0.1:9001"`, `"127.0.0.1:9002"`, `balance = "least-conn"`, `connect_timeout = "7s"`, "retries = 1"},
		{`name = "acme"`, `alpn = ["acme-tls/1"]`, `"127.0.0.1:9003"`, `balance = "first"`, "retries = 0"},
		{`name = "shell"`, `detect = ["ssh", "proxy"]`, `"127.0.0.1:9004"`},
		{`name = "route-4"`, `http_host = ["www.example.com"]`, `"127.0.0.1:9005"`},
	} {
		for _, w := range want {
			if !strings.Contains(routes[i+1], w) {
				t.Errorf("route %d lacks %s:\n%s", i+1, w, routes[i+1])
			}
		}
	}
	second := runSluice(t, nil, "check", "-c", writeConfig(t, first.stdout))
	if second.code != 0 || second.stdout != first.stdout {
		t.Errorf("checking the printed config again: %v\nwant exit 0 and the same output:\n%s", second, first.stdout)
	}
}
