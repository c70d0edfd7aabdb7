package tcp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/admit"
	"sluice/internal/backend"
	"sluice/internal/conntrack"
	"sluice/internal/relay"
	"sluice/internal/testkit/loopback"
)

// logBuffer collects JSON log lines safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// access returns the decoded access lines so far.
func (l *logBuffer) access() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "access" {
			out = append(out, m)
		}
	}
	return out
}

// waitAccess waits, boundedly, for n access lines and returns them.
func (l *logBuffer) waitAccess(t *testing.T, n int) []map[string]any {
	t.Helper()
	for i := 0; i < 500; i++ {
		if got := l.access(); len(got) >= n {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("want %d access lines, have %v", n, l.access())
	return nil
}

// fixture is a running Service in front of a backend.
type fixture struct {
	addr string // where clients connect
	logs *logBuffer
	svc  *Service
}

// serve starts a Service for rule (Pool filled in from backends) on network
// ("tcp4" or "tcp6") loopback.
func serve(t *testing.T, network string, rule Rule, backends ...string) *fixture {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	rc := backend.Settings{Name: "t", ConnectTimeout: time.Second}
	for _, b := range backends {
		ap := netip.MustParseAddrPort(b)
		rc.Backends = append(rc.Backends, backend.Target{Address: backend.Address{Network: "tcp", Host: ap.Addr().String(), Port: ap.Port()}, Weight: 1})
	}
	rc.Retries = len(backends) - 1
	rule.Name = "t"
	if len(backends) > 0 || rule.Table == nil { // a routed rule may have no default route
		rule.Pool = backend.NewPool(rc, nil, logger)
	}
	host := "127.0.0.1:0"
	if network == "tcp6" {
		host = "[::1]:0"
	}
	ln, err := net.Listen(network, host)
	if err != nil {
		t.Fatal(err)
	}
	parker, err := relay.NewParker()
	if err != nil {
		t.Fatal(err)
	}
	// The engine carries relays as in sluice: connections take the direct
	// path (see direct_linux.go).
	engine := newEngine(t)
	svc := NewService(&rule, Deps{Logger: logger, Pools: relay.NewPools(0), Parker: parker, Engine: engine, IDs: &conntrack.IDs{}, Table: conntrack.NewTable()})
	served := make(chan struct{})
	go func() {
		defer close(served)
		svc.Serve(ln)
	}()
	t.Cleanup(func() {
		svc.CloseListeners()
		<-served // as the server does: drain once the accept loop is done
		svc.Drain(time.Second)
		parker.Close()
		if engine != nil {
			engine.Close()
		}
	})
	return &fixture{addr: ln.Addr().String(), logs: logs, svc: svc}
}

// reporter is a reference backend written by hand for these tests: it reads
// an optional PROXY header byte by byte without the proxyproto package and
// answers with what it saw ("v1 TCP4 1.2.3.4 ..." or "v2 src dst" or "none").
func reporter(t *testing.T, expectHeader bool) string {
	return loopback.Serve(t, func(c net.Conn) {
		seen := "none"
		if expectHeader {
			seen = readReferenceHeader(c)
		}
		fmt.Fprintf(c, "%s\n", seen)
	})
}

// readReferenceHeader parses a PROXY header the plain way.
func readReferenceHeader(c net.Conn) string {
	first := make([]byte, 16)
	if _, err := io.ReadFull(c, first); err != nil {
		return "error: " + err.Error()
	}
	if bytes.HasPrefix(first, []byte("PROXY ")) {
		line := first
		for !bytes.HasSuffix(line, []byte("\r\n")) {
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil {
				return "error: " + err.Error()
			}
			line = append(line, b[0])
		}
		return "v1 " + strings.TrimSuffix(strings.TrimPrefix(string(line), "PROXY "), "\r\n")
	}
	sig := []byte("\r\n\r\n\x00\r\nQUIT\n")
	if !bytes.Equal(first[:12], sig) || first[12] != 0x21 {
		return fmt.Sprintf("error: bad v2 start % x", first)
	}
	rest := make([]byte, binary.BigEndian.Uint16(first[14:16]))
	if _, err := io.ReadFull(c, rest); err != nil {
		return "error: " + err.Error()
	}
	switch first[13] {
	case 0x11: // TCP over IPv4
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(rest[0:4])), binary.BigEndian.Uint16(rest[8:10]))
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(rest[4:8])), binary.BigEndian.Uint16(rest[10:12]))
		return "v2 " + src.String() + " " + dst.String()
	case 0x21: // TCP over IPv6
		src := netip.AddrPortFrom(netip.AddrFrom16([16]byte(rest[0:16])), binary.BigEndian.Uint16(rest[32:34]))
		dst := netip.AddrPortFrom(netip.AddrFrom16([16]byte(rest[16:32])), binary.BigEndian.Uint16(rest[34:36]))
		return "v2 " + src.String() + " " + dst.String()
	}
	return fmt.Sprintf("v2 family %#x", first[13])
}

// dialFrom connects to addr from the local IP src ("" for any) and returns
// the first line the far end sends, or the error that ended the read.
func dialFrom(t *testing.T, src, addr string) (string, net.Conn, error) {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		// A refused client may be reset before its connect returns.
		return "", nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSuffix(line, "\n"), c, err
}

func gate(p admit.Policy) *admit.Gate { return admit.NewGate(p) }

func prefixes(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestAdmission(t *testing.T) {
	for _, tc := range []struct {
		name, network, src string
		policy             admit.Policy
		wantRejected       string // "" means admitted
	}{
		{"v4 allowed", "tcp4", "127.0.0.2", admit.Policy{Allow: prefixes("127.0.0.0/30")}, ""},
		{"v4 not in allow", "tcp4", "127.0.0.9", admit.Policy{Allow: prefixes("127.0.0.0/30")}, "rejected:denied"},
		{"v4 deny wins", "tcp4", "127.0.0.2", admit.Policy{Allow: prefixes("127.0.0.0/8"), Deny: prefixes("127.0.0.2/32")}, "rejected:denied"},
		{"v6 allowed", "tcp6", "::1", admit.Policy{Allow: prefixes("::1/128")}, ""},
		{"v6 denied", "tcp6", "::1", admit.Policy{Deny: prefixes("::/0")}, "rejected:denied"},
		{"v6 not matched by v4 rules", "tcp6", "::1", admit.Policy{Allow: prefixes("127.0.0.0/8")}, "rejected:denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := serve(t, tc.network, Rule{Gate: gate(tc.policy)}, reporter(t, false))
			line, c, err := dialFrom(t, tc.src, f.addr)
			if tc.wantRejected == "" {
				if line != "none" {
					t.Fatalf("admitted client got %q, %v", line, err)
				}
				c.Close()
				if end := f.logs.waitAccess(t, 1)[0]["end"]; end != "eof" {
					t.Fatalf("admitted connection ended %v", end)
				}
				return
			}
			lines := f.logs.waitAccess(t, 1)
			if err == nil {
				t.Fatalf("refused client read %q", line)
			}
			if lines[0]["end"] != tc.wantRejected || !strings.HasPrefix(lines[0]["client"].(string), strings.Trim(net.JoinHostPort(tc.src, ""), ":")) {
				t.Fatalf("access line %v", lines[0])
			}
		})
	}
}

// TestMaxConnections: the limit holds at its number and frees on close.
func TestMaxConnections(t *testing.T) {
	f := serve(t, "tcp4", Rule{Gate: gate(admit.Policy{MaxConnections: 2, MaxConnectionsPerIP: 1})}, reporter(t, false))
	if line, _, _ := dialFrom(t, "127.0.0.2", f.addr); line != "none" {
		t.Fatalf("first: %q", line)
	}
	if _, _, err := dialFrom(t, "127.0.0.2", f.addr); err == nil {
		t.Fatal("second from the same IP admitted")
	}
	_, c3, err := dialFrom(t, "127.0.0.3", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dialFrom(t, "127.0.0.4", f.addr); err == nil {
		t.Fatal("third connection admitted over max_connections")
	}
	c3.Close()
	f.logs.waitAccess(t, 3) // c3's relay has ended and released its slot
	if line, _, err := dialFrom(t, "127.0.0.4", f.addr); line != "none" {
		t.Fatalf("after a close: %q %v", line, err)
	}
	var reasons []string
	for _, l := range f.logs.access() {
		reasons = append(reasons, l["end"].(string))
	}
	for _, want := range []string{"rejected:max-connections-per-ip", "rejected:max-connections"} {
		if !strings.Contains(strings.Join(reasons, " "), want) {
			t.Errorf("no %s in %v", want, reasons)
		}
	}
}

func TestProxyProtocolOut(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
		network string
		want    func(client, local string) string
	}{
		{"v1 ipv4", 1, "tcp4", func(c, l string) string { return "v1 TCP4 " + spaced(c, l) }},
		{"v2 ipv4", 2, "tcp4", func(c, l string) string { return "v2 " + c + " " + l }},
		{"v1 ipv6", 1, "tcp6", func(c, l string) string { return "v1 TCP6 " + spaced(c, l) }},
		{"v2 ipv6", 2, "tcp6", func(c, l string) string { return "v2 " + c + " " + l }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := serve(t, tc.network, Rule{SendProxy: tc.version}, reporter(t, true))
			line, c, err := dialFrom(t, "", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.want(c.LocalAddr().String(), c.RemoteAddr().String()); line != want {
				t.Fatalf("backend saw %q, want %q", line, want)
			}
		})
	}
}

// TestProxyProtocolOutBeforeData: the PROXY header reaches the backend
// before any of the client's bytes, on the direct path and on the net
// package's (a rule with a bandwidth limit takes it), also when the client
// sends first, while its backend is still connecting.
func TestProxyProtocolOutBeforeData(t *testing.T) {
	backendAddr := loopback.Serve(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		header := readReferenceHeader(c)
		data, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "%s|%s", header, data)
	})
	for _, tc := range []struct {
		name      string
		bandwidth int64
	}{
		{"direct", 0},
		{"net package", 1 << 30},
	} {
		for _, version := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s v%d", tc.name, version), func(t *testing.T) {
				f := serve(t, "tcp4", Rule{SendProxy: version, Bandwidth: tc.bandwidth}, backendAddr)
				c, err := net.Dial("tcp", f.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := io.WriteString(c, "hello\n"); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, err := bufio.NewReader(c).ReadString('\n')
				header, data, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "|")
				if err != nil || !strings.HasPrefix(header, fmt.Sprintf("v%d ", version)) || data != "hello" {
					t.Fatalf("backend saw %q, %v; want a v%d header, then hello", line, err, version)
				}
			})
		}
	}
}

// spaced formats two addresses as a v1 line does: "src dst sport dport".
func spaced(client, local string) string {
	c, l := netip.MustParseAddrPort(client), netip.MustParseAddrPort(local)
	return c.Addr().String() + " " + l.Addr().String() + " " + strconv.Itoa(int(c.Port())) + " " + strconv.Itoa(int(l.Port()))
}

// TestProxyProtocolChain: sluice A sends v2 to sluice B, which trusts A and
// sends v1 on: the backend sees the real client. B's admission judges the
// real client too.
func TestProxyProtocolChain(t *testing.T) {
	ref := reporter(t, true)
	b := serve(t, "tcp4", Rule{SendProxy: 1, TrustProxy: prefixes("127.0.0.1/32"), Gate: gate(admit.Policy{Deny: prefixes("127.0.0.66/32")})}, ref)
	a := serve(t, "tcp4", Rule{SendProxy: 2}, b.addr)

	line, c, err := dialFrom(t, "127.0.0.5", a.addr)
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1 TCP4 " + spaced(c.LocalAddr().String(), c.RemoteAddr().String()); line != want {
		t.Fatalf("backend saw %q, want %q", line, want)
	}
	if _, _, err := dialFrom(t, "127.0.0.66", a.addr); err == nil {
		t.Fatal("client denied at B got through A")
	}
	lines := b.logs.waitAccess(t, 1)
	if lines[0]["end"] != "rejected:denied" || !strings.HasPrefix(lines[0]["client"].(string), "127.0.0.66:") {
		t.Fatalf("B's access line %v", lines[0])
	}
}

// TestProxyProtocolMalformed: a trusted sender's bad header aborts the
// connection with a logged reason; an untrusted sender's header is data.
func TestProxyProtocolMalformed(t *testing.T) {
	f := serve(t, "tcp4", Rule{TrustProxy: prefixes("127.0.0.1/32")}, reporter(t, false))
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n"))
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection with a malformed header was relayed")
	}
	line := f.logs.waitAccess(t, 1)[0]
	if line["end"] != "rejected:proxy-protocol" || !strings.Contains(fmt.Sprint(line["error"]), "leading zero") {
		t.Fatalf("access line %v", line)
	}

	plain := serve(t, "tcp4", Rule{}, echoBackend(t))
	c2, err := net.Dial("tcp", plain.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	hdr := "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
	c2.Write([]byte(hdr))
	got := make([]byte, len(hdr))
	c2.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(c2, got); err != nil || string(got) != hdr {
		t.Fatalf("untrusted header not relayed as data: %q %v", got, err)
	}
}

// serveB starts a plain Service in front of backend for benchmarks and
// returns its address.
func serveB(b *testing.B, backendAddr string) string {
	logger := slog.New(slog.DiscardHandler)
	ap := netip.MustParseAddrPort(backendAddr)
	rc := backend.Settings{Name: "b", ConnectTimeout: time.Second, Backends: []backend.Target{{Address: backend.Address{Network: "tcp", Host: ap.Addr().String(), Port: ap.Port()}, Weight: 1}}}
	rule := &Rule{Name: "b", Pool: backend.NewPool(rc, nil, logger), Gate: admit.NewGate(admit.Policy{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	parker, err := relay.NewParker()
	if err != nil {
		b.Fatal(err)
	}
	engine := newEngine(b)
	svc := NewService(rule, Deps{Logger: logger, Pools: relay.NewPools(0), Parker: parker, Engine: engine, IDs: &conntrack.IDs{}, Table: conntrack.NewTable()})
	served := make(chan struct{})
	go func() {
		defer close(served)
		svc.Serve(ln)
	}()
	b.Cleanup(func() {
		svc.CloseListeners()
		<-served
		svc.Drain(time.Second)
		parker.Close()
		if engine != nil {
			engine.Close()
		}
	})
	return ln.Addr().String()
}

// newEngine returns an engine with two loops, as sluice runs, or nil where
// the platform has none (relays then take the net package's path). On
// Linux an engine that cannot start fails the test: the tests must not
// fall back silently to the other path.
func newEngine(t testing.TB) *relay.Engine {
	t.Helper()
	engine, err := relay.NewEngine(2)
	if err != nil && runtime.GOOS == "linux" {
		t.Fatalf("NewEngine on Linux: %v", err)
	}
	return engine
}

// echoBackend echoes everything back.
func echoBackend(t *testing.T) string { return echoBackendB(t) }

// echoBackendB echoes everything back.
func echoBackendB(t testing.TB) string {
	return loopback.Serve(t, func(c net.Conn) { io.Copy(c, c) })
}

// TestRejectedCostNoGoroutine: refused clients are closed in the accept
// loop; nothing of theirs outlives the refusal.
func TestRejectedCostNoGoroutine(t *testing.T) {
	f := serve(t, "tcp4", Rule{Gate: gate(admit.Policy{Deny: prefixes("127.0.0.0/8")})}, reporter(t, false))
	baseline := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		if line, _, err := dialFrom(t, "", f.addr); err == nil || errors.Is(err, io.ErrNoProgress) {
			t.Fatalf("refused client %d read %q, %v", i, line, err)
		}
	}
	f.logs.waitAccess(t, 50)
	if n := runtime.NumGoroutine(); n > baseline {
		t.Fatalf("%d goroutines after 50 refusals, %d before", n, baseline)
	}
}

// killableEcho is an echo backend that can be killed: its listener and
// every connection it holds are closed at once.
type killableEcho struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newKillableEcho(t *testing.T) *killableEcho {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &killableEcho{ln: ln}
	t.Cleanup(k.kill)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			k.mu.Lock()
			k.conns = append(k.conns, c)
			k.mu.Unlock()
			go io.Copy(c, c)
		}
	}()
	return k
}

func (k *killableEcho) kill() {
	k.ln.Close()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		c.Close()
	}
}

// TestBackendKilledMidRun: once a backend dies, every client that connects
// afterwards is served by the others, without an error.
func TestBackendKilledMidRun(t *testing.T) {
	a, b, c := newKillableEcho(t), newKillableEcho(t), newKillableEcho(t)
	f := serve(t, "tcp4", Rule{}, a.ln.Addr().String(), b.ln.Addr().String(), c.ln.Addr().String())
	roundTrip := func() error {
		conn, err := net.DialTimeout("tcp", f.addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		msg := []byte("ping")
		if _, err := conn.Write(msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("echo %q, want %q", got, msg)
		}
		return nil
	}
	for i := 0; i < 30; i++ {
		if err := roundTrip(); err != nil {
			t.Fatalf("before the kill, client %d: %v", i, err)
		}
	}
	b.kill()
	for i := 0; i < 300; i++ {
		if err := roundTrip(); err != nil {
			t.Fatalf("after the kill, client %d: %v", i, err)
		}
	}
	ends := map[any]int{}
	for _, l := range f.logs.access() {
		ends[l["end"]]++
	}
	if ends["connect-failed"] != 0 {
		t.Fatalf("access lines by end: %v", ends)
	}
}
