package tcp

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/metrics"
	"sluice/internal/relay"
	"sluice/internal/route"
	"sluice/internal/testkit/loopback"
)

// testRoute is a route of a routed test rule and its one backend.
type testRoute struct {
	name    string
	spec    route.Spec
	backend string // host:port; a host name makes a pool that is not Direct
}

// routedFixture is a running routed Service and what it saw.
type routedFixture struct {
	*fixture
	mu     sync.Mutex
	direct map[string]bool // by route name: whether a relay ran on the engine (no net.Conn)
}

// serveRouted starts a Service for rule with routes on the engine, the
// default route going to def (none when empty).
func serveRouted(t *testing.T, rule Rule, def string, routes ...testRoute) *routedFixture {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	var specs []route.Spec
	for _, r := range routes {
		specs = append(specs, r.spec)
		rule.Routes = append(rule.Routes, Route{Name: r.name, Pool: testPool(t, r.name, logger, r.backend)})
	}
	table, err := route.New(specs)
	if err != nil {
		t.Fatal(err)
	}
	rule.Name, rule.Table = "t", table
	if def != "" {
		rule.Pool = testPool(t, "t", logger, def)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	parker, err := relay.NewParker()
	if err != nil {
		t.Fatal(err)
	}
	engine := newEngine(t)
	svc := NewService(&rule, Deps{Logger: logger, Pools: relay.NewPools(0), Parker: parker, Engine: engine, IDs: &conntrack.IDs{}, Table: conntrack.NewTable()})
	f := &routedFixture{fixture: &fixture{addr: ln.Addr().String(), logs: logs, svc: svc}, direct: map[string]bool{}}
	svc.relaying = func(cn *conn) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.direct[cn.rt.name] = cn.c == nil
	}
	serve := svc.take(ln)
	served := make(chan struct{})
	go func() {
		defer close(served)
		serve()
	}()
	t.Cleanup(func() {
		svc.CloseListeners()
		<-served
		svc.Drain(5 * time.Second)
		parker.Close()
		if engine != nil {
			engine.Close()
		}
	})
	return f
}

// onEngine reports whether the last relay of the route named ran on the
// engine, with both sockets bare.
func (f *routedFixture) onEngine(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.direct[name]
}

// testPool returns a pool of the one backend at hostport.
func testPool(t *testing.T, name string, logger *slog.Logger, hostport string) *backend.Pool {
	t.Helper()
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return backend.NewPool(backend.Settings{Name: name, ConnectTimeout: 5 * time.Second, Backends: []backend.Target{
		{Address: backend.Address{Network: "tcp", Host: host, Port: uint16(p)}, Weight: 1},
	}}, nil, logger)
}

// namedEcho is a backend that says its name on a line, then echoes.
func namedEcho(t *testing.T, name string) string {
	return loopback.Serve(t, func(c net.Conn) {
		fmt.Fprintf(c, "%s\n", name)
		io.Copy(c, c)
	})
}

// clientHello returns the ClientHello crypto/tls sends for sni and alpn,
// small (one key share, X25519) when small is set.
func clientHello(t *testing.T, sni string, alpn []string, small bool) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	cfg := &tls.Config{ServerName: sni, NextProtos: alpn, InsecureSkipVerify: sni == ""}
	if small {
		cfg.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	go func() {
		tls.Client(client, cfg).Handshake() // fails when the pipe closes
		client.Close()
	}()
	var got []byte
	buf := make([]byte, 4096)
	for {
		server.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := server.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading the hello: %v", err)
		}
		if len(got) >= 5 && len(got) >= 5+int(got[3])<<8|int(got[4]) {
			return got
		}
	}
}

// exchange connects to addr, sends each of parts (the first bytes of a
// client, as separate writes), then a tail, and returns the backend's name
// and the echo of everything sent, checked intact.
func exchange(t *testing.T, addr string, gap time.Duration, parts ...[]byte) string {
	t.Helper()
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var sent []byte
	for _, p := range parts {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, p...)
		time.Sleep(gap) // paces the client: separate segments
	}
	tail := []byte("and the rest of the stream")
	c.Write(tail)
	sent = append(sent, tail...)
	r := bufio.NewReader(c)
	name, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no backend name: %v", err)
	}
	echo := make([]byte, len(sent))
	if _, err := io.ReadFull(r, echo); err != nil {
		t.Fatalf("%s: echo: %v", name, err)
	}
	if !bytes.Equal(echo, sent) {
		t.Fatalf("%s: the backend got %d bytes that differ from the %d sent", name, len(echo), len(sent))
	}
	return strings.TrimSpace(name)
}

// bytesOf splits b into its single bytes.
func bytesOf(b []byte) [][]byte {
	var out [][]byte
	for i := range b {
		out = append(out, b[i:i+1])
	}
	return out
}

func TestRoutesBySNI(t *testing.T) {
	routes := []testRoute{
		{"a", route.Spec{SNI: []string{"a.example.test"}}, namedEcho(t, "A")},
		{"wild", route.Spec{SNI: []string{"*.wild.test"}}, namedEcho(t, "W")},
		{"acme", route.Spec{ALPN: []string{"acme-tls/1"}}, namedEcho(t, "C")},
		{"named", route.Spec{SNI: []string{"n.example.test"}}, "localhost:" + portOf(namedEcho(t, "N"))},
	}
	def := namedEcho(t, "D")
	m, err := metrics.New(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f := serveRouted(t, Rule{Metrics: m.Rule("t")}, def, routes...)
	for _, c := range []struct {
		sni   string
		alpn  []string
		want  string
		route string
	}{
		{"a.example.test", []string{"h2"}, "A", "a"},
		{"A.Example.TEST", nil, "A", "a"},
		{"x.y.wild.test", nil, "W", "wild"},
		{"wild.test", nil, "D", "default"},
		{"other.test", []string{"h2", "acme-tls/1"}, "C", "acme"},
		{"n.example.test", nil, "N", "named"},
		{"other.test", nil, "D", "default"},
	} {
		hello := clientHello(t, c.sni, c.alpn, false)
		if got := exchange(t, f.addr, 0, hello); got != c.want {
			t.Errorf("%s %v: went to %s, want %s", c.sni, c.alpn, got, c.want)
		}
		if direct := f.onEngine(c.route); direct != (c.route != "named") {
			t.Errorf("%s: relayed on the engine %v, want %v", c.sni, direct, c.route != "named")
		}
	}
	lines := f.logs.waitAccess(t, 7)
	for i, l := range lines {
		if l["route"] == nil || l["sni"] == nil || l["end"] != "eof" {
			t.Errorf("access line %d without route or sni: %v", i, l)
		}
	}
	want := map[string]uint64{"a": 2, "wild": 1, "acme": 1, "named": 1, "default": 2}
	if got := m.Rule("t").RouteCounts(); !maps.Equal(got, want) {
		t.Errorf("connections by route %v, want %v", got, want)
	}
}

// portOf returns the port of hostport.
func portOf(hostport string) string {
	_, port, _ := net.SplitHostPort(hostport)
	return port
}

func TestRouteNoDefault(t *testing.T) {
	f := serveRouted(t, Rule{PeekTimeout: 500 * time.Millisecond}, "",
		testRoute{"a", route.Spec{SNI: []string{"a.example.test"}}, namedEcho(t, "A")})
	for _, c := range []struct {
		what   string
		send   []byte
		reason string
	}{
		{"unknown name", clientHello(t, "b.example.test", nil, false), "rejected:no-route"},
		{"garbage", []byte("EHLO example.com\r\n"), "rejected:no-route"},
		{"over 16 KiB", append([]byte{22, 3, 1, 0x40, 0}, bytes.Repeat([]byte{1}, 17<<10)...), "rejected:no-route"},
		{"truncated record", []byte{22, 3, 1, 0, 100, 1, 0, 0, 96, 3, 3}, "rejected:no-route"},
		{"silent", nil, "rejected:peek-timeout"},
	} {
		t.Run(c.what, func(t *testing.T) {
			f.logs.mu.Lock()
			f.logs.buf.Reset()
			f.logs.mu.Unlock()
			start := time.Now()
			cl, err := net.Dial("tcp4", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			cl.Write(c.send)
			cl.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := cl.Read(make([]byte, 1)); err == nil {
				t.Fatalf("read %d bytes, want the connection closed", n)
			}
			if took := time.Since(start); took > 500*time.Millisecond+2*time.Second {
				t.Errorf("closed after %v, want within the peek timeout", took)
			}
			l := f.logs.waitAccess(t, 1)[0]
			if l["end"] != c.reason || l["route"] != nil {
				t.Errorf("access line %v, want end %s and no route", l, c.reason)
			}
		})
	}
}

func TestRouteSlowClient(t *testing.T) {
	f := serveRouted(t, Rule{PeekTimeout: time.Second}, "",
		testRoute{"a", route.Spec{SNI: []string{"a.example.test"}}, namedEcho(t, "A")})
	hello := clientHello(t, "a.example.test", nil, true)
	c, err := net.Dial("tcp4", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		for _, b := range hello { // one byte a second (sort of)
			if _, err := c.Write([]byte{b}); err != nil {
				done <- err
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
		done <- nil
	}()
	l := f.logs.waitAccess(t, 1)[0]
	if l["end"] != "rejected:no-route" {
		t.Errorf("access line %v, want rejected:no-route", l)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("ended after %v, want within the peek timeout of 1s", took)
	}
	c.Close()
	<-done
}

func TestRouteSilentToDefault(t *testing.T) {
	def := loopback.Serve(t, func(c net.Conn) { fmt.Fprintf(c, "220 server speaks first\n") })
	f := serveRouted(t, Rule{PeekTimeout: 300 * time.Millisecond}, def,
		testRoute{"a", route.Spec{SNI: []string{"a.example.test"}}, namedEcho(t, "A")})
	c, err := net.Dial("tcp4", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "220 server speaks first\n" {
		t.Fatalf("read %q, %v; want the default backend's greeting", line, err)
	}
	if !f.onEngine("default") {
		t.Error("the default route's relay did not run on the engine")
	}
}

func TestRouteBytesApart(t *testing.T) {
	f := serveRouted(t, Rule{}, namedEcho(t, "D"),
		testRoute{"a", route.Spec{SNI: []string{"a.example.test"}}, namedEcho(t, "A")})
	hello := clientHello(t, "a.example.test", nil, true)
	if got := exchange(t, f.addr, 2*time.Millisecond, bytesOf(hello)...); got != "A" {
		t.Errorf("a hello one byte at a time went to %s", got)
	}
	// The same hello in two TLS records, sent apart.
	hs := hello[5:]
	cut := len(hs) / 3
	first := append([]byte{22, 3, 1, byte(cut >> 8), byte(cut)}, hs[:cut]...)
	second := append([]byte{22, 3, 1, byte((len(hs) - cut) >> 8), byte(len(hs) - cut)}, hs[cut:]...)
	if got := exchange(t, f.addr, 20*time.Millisecond, first, second); got != "A" {
		t.Errorf("a hello in two records went to %s", got)
	}
	big := bytes.Repeat([]byte("x"), 20<<10)
	if got := exchange(t, f.addr, 0, big); got != "D" {
		t.Errorf("20 KiB of garbage went to %s", got)
	}
	if !f.onEngine("a") || !f.onEngine("default") {
		t.Error("a routed relay did not run on the engine")
	}
}

func TestRouteDetect(t *testing.T) {
	f := serveRouted(t, Rule{}, "",
		testRoute{"ssh", route.Spec{Detect: []string{"ssh"}}, namedEcho(t, "S")},
		testRoute{"tls", route.Spec{Detect: []string{"tls"}}, namedEcho(t, "T")},
		testRoute{"http", route.Spec{Detect: []string{"http"}}, namedEcho(t, "H")},
		testRoute{"proxy", route.Spec{Detect: []string{"proxy"}}, namedEcho(t, "P")},
	)
	for send, want := range map[string]string{
		"SSH-2.0-OpenSSH_9.6\r\n":                    "S",
		string(clientHello(t, "x.test", nil, false)): "T",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n":          "H",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n":         "P",
	} {
		if got := exchange(t, f.addr, 0, []byte(send)); got != want {
			t.Errorf("%.10q went to %s, want %s", send, got, want)
		}
	}
}

// TestRouteNetPath: with a bandwidth limit every client takes the net
// package's path, where a goroutine reads the first bytes.
func TestRouteNetPath(t *testing.T) {
	f := serveRouted(t, Rule{Bandwidth: 1 << 30}, namedEcho(t, "D"),
		testRoute{"a", route.Spec{SNI: []string{"a.example.test"}}, namedEcho(t, "A")})
	hello := clientHello(t, "a.example.test", nil, true)
	if got := exchange(t, f.addr, time.Millisecond, bytesOf(hello)...); got != "A" {
		t.Errorf("went to %s, want A", got)
	}
	if got := exchange(t, f.addr, 0, []byte("garbage")); got != "D" {
		t.Errorf("garbage went to %s, want D", got)
	}
	if f.onEngine("a") {
		t.Error("a rule with a bandwidth limit relayed on the engine")
	}
}

// TestRouteClientResets: a client that resets while its bytes decide
// nothing yet ends "reset", at once.
func TestRouteClientResets(t *testing.T) {
	f := serveRouted(t, Rule{PeekTimeout: 10 * time.Second}, "",
		testRoute{"a", route.Spec{SNI: []string{"a.example.test"}}, namedEcho(t, "A")})
	c, err := net.Dial("tcp4", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{22, 3, 1, 0, 100})
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	l := f.logs.waitAccess(t, 1)[0]
	if l["end"] != "reset" {
		t.Errorf("access line %v, want end reset", l)
	}
}
