package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/config"
	"sluice/internal/metrics"
	"sluice/internal/testkit/loopback"
	"sluice/internal/testkit/testca"
)

// lines collects the JSON records a server logs.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// access returns the access lines logged so far.
func (l *lines) access() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "access" {
			out = append(out, rec)
		}
	}
	return out
}

// waitAccess waits until n access lines are logged and returns them.
func (l *lines) waitAccess(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := l.access()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d access lines after 10 s, want %d: %v", len(got), n, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tlsServer is a server started for a TLS test, with its logs and metrics.
type tlsServer struct {
	*Server
	logs *lines
	reg  *prometheus.Registry
}

// startTLS starts a server for cfg that logs into its lines and counts
// into its registry.
func startTLS(t *testing.T, cfg *config.Config) *tlsServer {
	t.Helper()
	ts := &tlsServer{logs: &lines{}, reg: prometheus.NewRegistry()}
	m, err := metrics.New(ts.reg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = New(Options{Logger: slog.New(slog.NewJSONHandler(ts.logs, nil)), Metrics: m})
	if err := ts.Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Shutdown)
	return ts
}

// counter returns the value of the series of name whose labels include
// want; 0 when there is none.
func (ts *tlsServer) counter(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}

// tlsRule is a [[rule]] block that terminates TLS with the given extra
// lines (a [rule.tls] table and more).
func tlsRule(name, listen, backend, extra string) string {
	return fmt.Sprintf("[[rule]]\nname = %q\nlisten = %q\nbackends = [%q]\ndrain_timeout = \"5s\"\npeek_timeout = \"3s\"\n%s\n", name, listen, backend, extra)
}

// certsTOML is a [rule.tls] table of the leaves, with more lines.
func certsTOML(more string, leaves ...testca.Leaf) string {
	var pairs []string
	for _, l := range leaves {
		pairs = append(pairs, fmt.Sprintf("{ cert = %q, key = %q }", l.CertFile, l.KeyFile))
	}
	return fmt.Sprintf("[rule.tls]\ncertificates = [%s]\n%s", strings.Join(pairs, ", "), more)
}

// tlsAsk connects with TLS to addr as name, sends a line and returns the
// answer and the serial of the certificate sluice showed.
func tlsAsk(t *testing.T, addr string, cfg *tls.Config, line string) (string, int64, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, line); err != nil {
		return "", 0, err
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", 0, err
	}
	return strings.TrimSpace(answer), c.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// clientConfig trusts ca and asks for name.
func clientConfig(ca *testca.CA, name string) *tls.Config {
	return &tls.Config{RootCAs: ca.Pool(), ServerName: name}
}

func TestTLSTerminationBySNI(t *testing.T) {
	ca := testca.New(t, "ca")
	a, b := ca.Issue(t, "a", "a.test"), ca.Issue(t, "b", "b.test", "*.b.test")
	la := freeAddr(t)
	ts := startTLS(t, parse(t, tlsRule("edge", la, echoServer(t, "plain"), certsTOML("", a, b))))
	for _, tc := range []struct {
		name   string
		serial int64
	}{{"a.test", a.Serial}, {"b.test", b.Serial}, {"x.b.test", b.Serial}} {
		got, serial, err := tlsAsk(t, la, clientConfig(ca, tc.name), "hi")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != "plain hi" || serial != tc.serial {
			t.Errorf("%s: answer %q from certificate %d, want %q from %d", tc.name, got, serial, "plain hi", tc.serial)
		}
	}
	lines := ts.logs.waitAccess(t, 3)
	sort.Slice(lines, func(i, j int) bool { return fmt.Sprint(lines[i]["sni"]) < fmt.Sprint(lines[j]["sni"]) })
	for i, want := range []string{"a.test", "b.test", "x.b.test"} {
		l := lines[i]
		if l["end"] != "eof" {
			t.Errorf("line %d ended %v", i, l["end"])
		}
		if l["sni"] != want || l["tls_version"] != "1.3" || l["tls_cipher"] == nil || !strings.HasPrefix(l["tls_cipher"].(string), "TLS_") {
			t.Errorf("line %d: sni %v tls_version %v tls_cipher %v, want sni %s, 1.3 and a cipher", i, l["sni"], l["tls_version"], l["tls_cipher"], want)
		}
	}
	if n := ts.counter(t, "sluice_tls_handshakes_total", map[string]string{"rule": "edge", "side": "client", "result": "ok"}); n != 3 {
		t.Errorf("client handshakes ok: %v, want 3", n)
	}
	certs := ts.Rules()[0].Certificates
	if len(certs) != 2 || certs[0].Name != "a.test" || !certs[1].NotAfter.Equal(b.NotAfter.Truncate(time.Second)) {
		t.Errorf("certificates %+v, want a.test and b.test with their expiry", certs)
	}
	if n := ts.counter(t, "sluice_tls_certificate_expiry_timestamp_seconds", map[string]string{"rule": "edge", "name": "b.test"}); n != float64(b.NotAfter.Unix()) {
		t.Errorf("expiry metric of b.test: %v, want %d", n, b.NotAfter.Unix())
	}
}

func TestTLSClientCertificates(t *testing.T) {
	ca, clients := testca.New(t, "ca"), testca.New(t, "clients")
	srv, good := ca.Issue(t, "srv", "srv.test"), clients.Issue(t, "alice", "alice")
	stranger := testca.New(t, "strangers").Issue(t, "mallory", "mallory")
	la := freeAddr(t)
	extra := certsTOML(fmt.Sprintf("client_ca = %q\n", clients.File(t)), srv)
	ts := startTLS(t, parse(t, tlsRule("mtls", la, echoServer(t, "in"), extra)))
	cfg := clientConfig(ca, "srv.test")
	cfg.Certificates = []tls.Certificate{good.Pair(t)}
	if got, _, err := tlsAsk(t, la, cfg, "hi"); err != nil || got != "in hi" {
		t.Fatalf("client with a certificate: %q, %v", got, err)
	}
	for _, cert := range [][]tls.Certificate{nil, {stranger.Pair(t)}} {
		cfg := clientConfig(ca, "srv.test")
		cfg.Certificates = cert
		if got, _, err := tlsAsk(t, la, cfg, "hi"); err == nil {
			t.Errorf("client with certificates %d: answer %q, want refused", len(cert), got)
		}
	}
	lines := ts.logs.waitAccess(t, 3)
	for _, l := range lines[1:] {
		if l["end"] != "rejected:tls-handshake" || l["error"] == nil {
			t.Errorf("refused client's line: %v, want rejected:tls-handshake with an error", l)
		}
	}
	if n := ts.counter(t, "sluice_tls_handshakes_total", map[string]string{"side": "client", "result": "ok"}); n != 1 {
		t.Errorf("ok handshakes %v, want 1", n)
	}
}

// rawClient connects to addr and sends b, then waits for sluice to close.
// It returns what it read and how long the close took.
func rawClient(t *testing.T, addr string, b []byte) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(15 * time.Second))
	c.Write(b)
	got, _ := io.ReadAll(c)
	return string(got), time.Since(start)
}

func TestTLSHandshakeBadClients(t *testing.T) {
	ca := testca.New(t, "ca")
	la := freeAddr(t)
	toml := strings.Replace(tlsRule("edge", la, echoServer(t, "b"), certsTOML("", ca.Issue(t, "a", "a.test"))), `peek_timeout = "3s"`, `peek_timeout = "500ms"`, 1)
	ts := startTLS(t, parse(t, toml))
	if got, _ := rawClient(t, la, []byte("GET / HTTP/1.0\r\n\r\n")); strings.Contains(got, "b GET") {
		t.Fatalf("garbage reached the backend: %q", got)
	}
	_, took := rawClient(t, la, nil)
	if took < 400*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("silent client closed after %v, want about the peek timeout (500ms)", took)
	}
	lines := ts.logs.waitAccess(t, 2)
	for i, l := range lines {
		if l["end"] != "rejected:tls-handshake" || l["error"] == nil {
			t.Errorf("line %d: %v, want rejected:tls-handshake with an error", i, l)
		}
	}
	if e, _ := lines[1]["error"].(string); !strings.Contains(e, "timeout") {
		t.Errorf("silent client's error %q, want a timeout", e)
	}
	if n := ts.counter(t, "sluice_tls_handshakes_total", map[string]string{"side": "client", "result": "timeout"}); n != 1 {
		t.Errorf("timed-out handshakes %v, want 1", n)
	}
}

// tlsEcho is a TLS backend with leaf's certificate that answers lines
// with its name, like echoServer.
func tlsEcho(t *testing.T, name string, leaf testca.Leaf) string {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{leaf.Pair(t)}}
	return loopback.Serve(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		defer tc.Close()
		sc := bufio.NewScanner(tc)
		for sc.Scan() {
			fmt.Fprintf(tc, "%s %s\n", name, sc.Text())
		}
	})
}

func TestTLSToBackends(t *testing.T) {
	ca, other := testca.New(t, "ca"), testca.New(t, "other")
	wrong := tlsEcho(t, "wrong", other.Issue(t, "w", "127.0.0.1"))
	right := tlsEcho(t, "right", ca.Issue(t, "r", "127.0.0.1"))
	front := ca.Issue(t, "front", "front.test")
	la, lb := freeAddrs(t, 2)[0], freeAddrs(t, 2)[1]
	toml := fmt.Sprintf(`[[rule]]
name = "origin"
listen = %q
backends = [%q, %q]
balance = "first"
backend_tls = { ca = %q }

[[rule]]
name = "reencrypt"
listen = %q
backends = [%q]
backend_tls = { ca = %q }
%s
`, la, wrong, right, ca.File(t), lb, right, ca.File(t), certsTOML("", front))
	ts := startTLS(t, parse(t, toml))
	if got := dial(t, la).ask(t, "plain"); got != "right plain" {
		t.Errorf("plain client: %q, want the second backend's answer", got)
	}
	if got, _, err := tlsAsk(t, lb, clientConfig(ca, "front.test"), "tls"); err != nil || got != "right tls" {
		t.Errorf("re-encrypted: %q, %v", got, err)
	}
	if n := ts.counter(t, "sluice_tls_handshakes_total", map[string]string{"rule": "origin", "side": "backend", "result": "verify"}); n != 1 {
		t.Errorf("origin's backend handshakes that did not verify: %v, want 1", n)
	}
	if n := ts.counter(t, "sluice_tls_handshakes_total", map[string]string{"rule": "reencrypt", "side": "backend", "result": "ok"}); n != 1 {
		t.Errorf("reencrypt's backend handshakes: %v, want 1", n)
	}
	for _, b := range ts.Rules()[0].Backends {
		if b.Address == wrong && b.ConnectErrors == 0 {
			t.Errorf("the wrong CA's backend has no connect error: %+v", b)
		}
	}
}

func TestTLSRenewalByReload(t *testing.T) {
	ca := testca.New(t, "ca")
	old := ca.Issue(t, "site", "site.test")
	la := freeAddr(t)
	cfg := parse(t, tlsRule("edge", la, echoServer(t, "b"), certsTOML("", old)))
	ts := startTLS(t, cfg)
	live, err := tls.Dial("tcp", la, clientConfig(ca, "site.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	liveR := bufio.NewReader(live)
	askLive := func() string {
		live.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintln(live, "live")
		s, err := liveR.ReadString('\n')
		if err != nil {
			return err.Error()
		}
		return strings.TrimSpace(s)
	}
	if got := askLive(); got != "b live" {
		t.Fatalf("live connection: %q", got)
	}
	renewed := ca.Issue(t, "site", "site.test") // over the same files
	if renewed.Serial == old.Serial {
		t.Fatal("same serial")
	}
	if _, serial, _ := tlsAsk(t, la, clientConfig(ca, "site.test"), "x"); serial != old.Serial {
		t.Fatalf("before the reload: serial %d, want the old %d", serial, old.Serial)
	}
	if _, err := ts.Reload(parse(t, tlsRule("edge", la, echoServer(t, "b"), certsTOML("", old)))); err != nil {
		t.Fatal(err)
	}
	if _, serial, err := tlsAsk(t, la, clientConfig(ca, "site.test"), "x"); err != nil || serial != renewed.Serial {
		t.Fatalf("after the reload: serial %d (%v), want the renewed %d", serial, err, renewed.Serial)
	}
	if got := askLive(); got != "b live" {
		t.Fatalf("live connection after the reload: %q\n%v", got, ts.logs.access())
	}
}

func TestTLSReloadBadKeyChangesNothing(t *testing.T) {
	ca := testca.New(t, "ca")
	leaf := ca.Issue(t, "site", "site.test")
	la, lb := freeAddrs(t, 2)[0], freeAddrs(t, 2)[1]
	backend := echoServer(t, "b")
	ts := startTLS(t, parse(t, tlsRule("edge", la, backend, certsTOML("", leaf))))
	if err := os.WriteFile(leaf.KeyFile, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	next := parse(t, tlsRule("edge", la, backend, certsTOML("", leaf))+ruleTOML("more", lb, backend))
	_, err := ts.Reload(next)
	if err == nil || !strings.Contains(err.Error(), leaf.KeyFile) {
		t.Fatalf("reload error %v, want one naming %s", err, leaf.KeyFile)
	}
	if rules := ts.Rules(); len(rules) != 1 {
		t.Errorf("%d rules after a failed reload, want 1", len(rules))
	}
	if got, serial, err := tlsAsk(t, la, clientConfig(ca, "site.test"), "x"); err != nil || serial != leaf.Serial || got != "b x" {
		t.Errorf("after the failed reload: %q serial %d %v, want the same certificate", got, serial, err)
	}
	s := New(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer s.Shutdown()
	if err := s.Start(parse(t, tlsRule("edge", freeAddr(t), backend, certsTOML("", leaf)))); err == nil || !strings.Contains(err.Error(), leaf.KeyFile) {
		t.Errorf("start error %v, want one naming %s", err, leaf.KeyFile)
	}
}

func TestTLSRouteTerminates(t *testing.T) {
	ca := testca.New(t, "ca")
	term, pass := ca.Issue(t, "t", "t.test"), ca.Issue(t, "p", "p.test")
	la := freeAddr(t)
	toml := fmt.Sprintf(`[[rule]]
name = "edge"
listen = %q

[[rule.route]]
name = "term"
sni = ["t.test"]
backends = [%q]
%s
[[rule.route]]
name = "pass"
sni = ["p.test"]
backends = [%q]
`, la, echoServer(t, "plain"), strings.Replace(certsTOML("", term), "[rule.tls]", "[rule.route.tls]", 1), tlsEcho(t, "passed", pass))
	ts := startTLS(t, parse(t, toml))
	if got, serial, err := tlsAsk(t, la, clientConfig(ca, "t.test"), "hi"); err != nil || got != "plain hi" || serial != term.Serial {
		t.Errorf("terminated route: %q from %d, %v", got, serial, err)
	}
	if got, serial, err := tlsAsk(t, la, clientConfig(ca, "p.test"), "hi"); err != nil || got != "passed hi" || serial != pass.Serial {
		t.Errorf("passthrough route: %q from %d, %v", got, serial, err)
	}
	lines := ts.logs.waitAccess(t, 2)
	for _, l := range lines {
		if l["route"] == "term" && l["tls_version"] != "1.3" || l["route"] == "pass" && l["tls_version"] != nil {
			t.Errorf("line %v: tls_version only where sluice terminated", l)
		}
	}
	if c := ts.Rules()[0].Certificates; len(c) != 1 || c[0].Route != "term" {
		t.Errorf("certificates %+v, want the term route's", c)
	}
}

func TestTLSHalfClose(t *testing.T) {
	ca := testca.New(t, "ca")
	la := freeAddr(t)
	// The backend answers once the client has finished sending, then
	// closes: close_notify in, FIN to the backend, its answer and FIN
	// back, close_notify out.
	backend := loopback.Serve(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		fmt.Fprintf(c, "got %d bytes", len(b))
	})
	startTLS(t, parse(t, tlsRule("edge", la, backend, certsTOML("", ca.Issue(t, "a", "a.test")))))
	c, err := tls.Dial("tcp", la, clientConfig(ca, "a.test"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(make([]byte, 100000))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got 100000 bytes" {
		t.Fatalf("answer %q, %v: want the backend's whole answer and a close_notify", got, err)
	}
}

// TestBackendTLSRenewalByReload: a reload that leaves a rule's config as it
// is still reads its [backend_tls] files again, and a changed file (a CA
// that now trusts the backend) applies to new connections, on the rule's
// own backends and on a route's.
func TestBackendTLSRenewalByReload(t *testing.T) {
	ca, other := testca.New(t, "ca"), testca.New(t, "other")
	backend := tlsEcho(t, "b", other.Issue(t, "b", "127.0.0.1"))
	caFile := filepath.Join(t.TempDir(), "backend-ca.pem")
	copyFile(t, ca.File(t), caFile)
	la := freeAddr(t)
	toml := fmt.Sprintf(`[[rule]]
name = "origin"
listen = %q
backends = [%q]
backend_tls = { ca = %q }
health_check = "off"
`, la, backend, caFile)
	ts := startTLS(t, parse(t, toml))
	if got := tryAsk(la, "before"); got == "b before" {
		t.Fatal("the backend verified against a CA that did not sign it")
	}
	copyFile(t, other.File(t), caFile) // the operator installs the right CA
	if _, err := ts.Reload(parse(t, toml)); err != nil {
		t.Fatal(err)
	}
	if got := tryAsk(la, "after"); got != "b after" {
		t.Fatalf("after the reload with the new CA file: %q, want the backend's answer", got)
	}
}

// tryAsk sends a line to addr and returns the answer, or the error.
func tryAsk(addr, line string) string {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(c, line)
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(answer)
}

// copyFile copies the file at from to to.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
