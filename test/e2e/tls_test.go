package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testkit/loopback"
	"sluice/internal/testkit/testca"
)

// The TLS tests run sluice with [rule.tls] (termination) and
// [rule.backend_tls] (TLS to backends) and real TLS clients: Go's
// crypto/tls where a test checks exact values (the serial number of the
// certificate served), openssl s_client and curl as users run them. The
// certificates are made in the test (testca).

// tlsDial connects to addr as a Go TLS client with cfg and completes the
// handshake. The test's cleanup closes the connection.
func tlsDial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	raw := dial(t, addr)
	c := tls.Client(raw, cfg)
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	err := c.Handshake()
	_ = c.SetDeadline(time.Time{})
	return c, err
}

// servedSerial returns the serial number of the certificate the server
// of c showed.
func servedSerial(c *tls.Conn) int64 {
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// serialFor makes a handshake with the server name sni (none when empty),
// verifying nothing, and returns the serial number of the certificate
// served; the connection is closed again.
func serialFor(t *testing.T, addr, sni string) int64 {
	t.Helper()
	c, err := tlsDial(t, addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with sluice for %q: %v", sni, err)
	}
	defer c.Close()
	return servedSerial(c)
}

// getOver sends a GET for / on c, an HTTP/1.1 connection, and returns the
// answer's body once the server has closed.
func getOver(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(waitLimit))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: sluice.test\r\nConnection: close\r\n\r\n"); err != nil {
		return "", err
	}
	answer, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	_, body, ok := strings.Cut(string(answer), "\r\n\r\n")
	if !ok {
		return "", fmt.Errorf("no HTTP answer: %q", answer)
	}
	return body, nil
}

// tlsEcho is a TLS echo server on loopback.
type tlsEcho struct {
	addr   string
	served atomic.Int64 // handshakes completed
	failed atomic.Int64 // handshakes failed
}

// startTLSEcho starts a TLS echo server that shows cert; with clientCAs,
// clients must show a certificate one of them signed.
func startTLSEcho(t *testing.T, cert tls.Certificate, clientCAs *x509.CertPool) *tlsEcho {
	t.Helper()
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: clientCAs}
	if clientCAs != nil {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	e := &tlsEcho{}
	e.addr = loopback.Serve(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		_ = tc.SetDeadline(time.Now().Add(waitLimit))
		if err := tc.Handshake(); err != nil {
			e.failed.Add(1)
			return
		}
		_ = tc.SetDeadline(time.Time{})
		e.served.Add(1)
		if _, err := io.Copy(tc, tc); err == nil {
			_ = tc.CloseWrite()
		}
	})
	return e
}

// pairText is a { cert, key } table of leaf's files.
func pairText(l testca.Leaf) string {
	return fmt.Sprintf("{ cert = %q, key = %q }", l.CertFile, l.KeyFile)
}

// terminateConfig is a rule "term" that terminates TLS with the given
// certificates (as [rule.tls] keys, extra appended) for backend.
func terminateConfig(backend, tlsKeys string) func(string) string {
	return func(listen string) string {
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "term"
listen = %q
backends = [%q]

[rule.tls]
%s
`, listen, backend, tlsKeys)
	}
}

// TestTLSTerminationBySNI: sluice terminates TLS with the certificate whose
// names match the client's server name, the first one for any other name
// or none, and passes the plaintext on to a plain HTTP backend: Go's
// client sees the exact serial numbers, openssl s_client the second
// certificate, and curl, verifying the chain, gets the backend's answer.
// Access lines carry the TLS version and cipher.
func TestTLSTerminationBySNI(t *testing.T) {
	t.Parallel()
	needTools(t, "openssl", "curl")
	ca := testca.New(t, "edge")
	a, b := ca.Issue(t, "a", "a.example.com"), ca.Issue(t, "b", "b.example.com", "*.b.example.org")
	backend := startPlainSite(t, "plain backend\n")
	p, addr := launchConfig(t, terminateConfig(backend, "certificates = ["+pairText(a)+", "+pairText(b)+"]"))

	for _, tc := range []struct {
		sni  string
		want testca.Leaf
	}{
		{"a.example.com", a}, {"b.example.com", b}, {"x.b.example.org", b},
		{"B.Example.COM", b}, {"other.example.com", a}, {"", a},
	} {
		if got := serialFor(t, addr, tc.sni); got != tc.want.Serial {
			t.Errorf("server name %q: served serial %d, want %d", tc.sni, got, tc.want.Serial)
		}
	}

	c, err := tlsDial(t, addr, &tls.Config{ServerName: "b.example.com", RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("verified handshake for b.example.com: %v", err)
	}
	if body, err := getOver(c); err != nil || body != "plain backend\n" {
		t.Errorf("GET through termination: %q, %v; want the backend's body", body, err)
	}
	c.Close()
	rec := p.waitAccess(c)
	if rec.str("tls_version") != "1.3" || rec.str("tls_cipher") == "" || rec.str("backend") != backend || rec.str("end") != "eof" {
		t.Errorf("access %v\nwant tls_version=1.3, a tls_cipher, backend=%s, end=eof", rec, backend)
	}

	if cert, out := sClient(t, addr, "-servername", "b.example.com"); cert == nil || cert.SerialNumber.Int64() != b.Serial {
		t.Errorf("openssl s_client -servername b.example.com: want serial %d; got:\n%s", b.Serial, out)
	}
	out, err := runTool(t, "curl", append([]string{"--cacert", ca.File(t)}, curlResolve("a.example.com", addr)...)...)
	if err != nil || out != "plain backend\n" {
		t.Errorf("curl through termination: %v\n%s\nwant the backend's body", err, out)
	}
}

// mtlsConfig terminates TLS with server's certificate and requires client
// certificates signed by the CA in the file clientCA.
func mtlsConfig(backend string, server testca.Leaf, clientCA string) func(string) string {
	return terminateConfig(backend, fmt.Sprintf("cert = %q\nkey = %q\nclient_ca = %q", server.CertFile, server.KeyFile, clientCA))
}

// TestTLSClientCertificate: with client_ca, curl with a certificate the CA
// signed gets through; a client without one, or with one another CA
// signed, is refused: its access line ends rejected:tls-handshake with the
// reason, and no backend is dialed for it.
func TestTLSClientCertificate(t *testing.T) {
	t.Parallel()
	needTools(t, "curl")
	ca, clients, rogue := testca.New(t, "edge"), testca.New(t, "clients"), testca.New(t, "rogue")
	server := ca.Issue(t, "server", "mtls.example.com")
	good, bad := clients.Issue(t, "alice", "alice.example.com"), rogue.Issue(t, "mallory", "mallory.example.com")
	backend := startBackend(t, func(c *net.TCPConn) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nwelcome")
		_, _ = io.Copy(io.Discard, c)
	})
	p, addr := launchConfig(t, mtlsConfig(backend.addr, server, clients.File(t)))

	curl := append([]string{"--cacert", ca.File(t)}, curlResolve("mtls.example.com", addr)...)
	if out, err := runTool(t, "curl", append([]string{"--cert", good.CertFile, "--key", good.KeyFile}, curl...)...); err != nil || out != "welcome" {
		t.Errorf("curl with a client certificate: %v\n%s\nwant the backend's answer", err, out)
	}
	if out, err := runTool(t, "curl", curl...); err == nil {
		t.Errorf("curl without a client certificate got through:\n%s", out)
	}

	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
	}{{"no certificate", nil}, {"another CA's certificate", []tls.Certificate{bad.Pair(t)}}} {
		c, err := tlsDial(t, addr, &tls.Config{ServerName: "mtls.example.com", RootCAs: ca.Pool(), Certificates: tc.certs})
		if err == nil {
			// TLS 1.3: the server judges the client's certificate after
			// the client's side of the handshake is done.
			_, err = getOver(c)
		}
		if err == nil || isTimeout(err) {
			t.Errorf("client with %s: %v, want the handshake refused", tc.name, err)
		}
		rec := p.waitAccess(c)
		if rec.str("end") != "rejected:tls-handshake" || rec.str("error") == "" || rec.str("backend") != "" {
			t.Errorf("client with %s: access %v\nwant end=rejected:tls-handshake with an error and no backend", tc.name, rec)
		}
	}
	if n := backend.accepted.Load(); n != 1 {
		t.Errorf("the backend got %d connections, want 1 (the client with a good certificate)", n)
	}
}

// renewalConfig terminates TLS with leaf (cert and key directly) for an
// echo backend.
func renewalConfig(backend string, leaf testca.Leaf) func(string) string {
	return terminateConfig(backend, fmt.Sprintf("cert = %q\nkey = %q", leaf.CertFile, leaf.KeyFile))
}

// liveTLS opens a verified TLS connection through sluice to an echo
// backend and checks that bytes flow.
func liveTLS(t *testing.T, addr string, ca *testca.CA, sni string) *tls.Conn {
	t.Helper()
	c, err := tlsDial(t, addr, &tls.Config{ServerName: sni, RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	if err := roundTrip(c, "before the reload\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestTLSCertificateRenewed: a certificate renewed on disk is served to the
// next handshake once SIGHUP has reloaded it, while a connection made with
// the old one keeps flowing.
func TestTLSCertificateRenewed(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "edge")
	old := ca.Issue(t, "site", "site.example.com")
	backend := startBackend(t, echo)
	p, addr := launchConfig(t, renewalConfig(backend.addr, old))
	live := liveTLS(t, addr, ca, "site.example.com")
	if got := servedSerial(live); got != old.Serial {
		t.Fatalf("served serial %d, want %d", got, old.Serial)
	}

	renewed := ca.Issue(t, "site", "site.example.com") // the same files
	p.signal(syscall.SIGHUP)
	p.wait("reloaded", isMsg("reloaded"))
	if got := serialFor(t, addr, "site.example.com"); got != renewed.Serial {
		t.Errorf("after the reload: served serial %d, want the renewed %d (the old was %d)", got, renewed.Serial, old.Serial)
	}
	for i := range 3 {
		if err := roundTrip(live, fmt.Sprintf("after the reload %d\n", i)); err != nil {
			t.Fatalf("the connection made before the renewal: %v", err)
		}
	}
	live.Close()
	if rec := p.waitAccess(live); rec.str("tls_version") == "" || rec.str("backend") != backend.addr {
		t.Errorf("access %v\nwant a tls_version and backend=%s", rec, backend.addr)
	}
}

// TestTLSReloadBadKeyKeepsCertificate: a SIGHUP while the key file holds
// garbage, and again while it holds another certificate's key, is
// rejected naming the file, and the old certificate goes on being served.
func TestTLSReloadBadKeyKeepsCertificate(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "edge")
	leaf := ca.Issue(t, "site", "site.example.com")
	other := ca.Issue(t, "other", "other.example.com")
	backend := startBackend(t, echo)
	p, addr := launchConfig(t, renewalConfig(backend.addr, leaf))
	p.allowErrors("the test reloads a broken key file, which sluice rejects at level ERROR")
	live := liveTLS(t, addr, ca, "site.example.com")

	otherKey, err := os.ReadFile(other.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"garbage", []byte("not a key\n")}, {"another certificate's key", otherKey}} {
		if err := os.WriteFile(leaf.KeyFile, tc.key, 0o600); err != nil {
			t.Fatal(err)
		}
		from := p.count(func(record) bool { return true })
		p.signal(syscall.SIGHUP)
		rec, _ := p.waitFrom(from, "reload rejected", isMsg("reload rejected: config unchanged"))
		if msg := rec.str("error"); !strings.Contains(msg, leaf.KeyFile) && !strings.Contains(msg, leaf.CertFile) {
			t.Errorf("reload with %s in the key file logged %v, want the file named", tc.name, rec)
		}
		if got := serialFor(t, addr, "site.example.com"); got != leaf.Serial {
			t.Errorf("after the reload with %s: served serial %d, want the old %d", tc.name, got, leaf.Serial)
		}
	}
	if err := roundTrip(live, "after the failed reloads\n"); err != nil {
		t.Errorf("the connection made before: %v", err)
	}
	if n := p.count(isMsg("reloaded")); n != 0 {
		t.Errorf("sluice logged %d reloads, want none", n)
	}
}

// originConfig is a rule "origin" for plaintext clients that speaks TLS to
// its backends, tried in order (balance first), verified against the CA in
// the file ca.
func originConfig(ca string, backends ...string) func(string) string {
	return func(listen string) string {
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "origin"
listen = %q
backends = [%q, %q]
balance = "first"

[rule.backend_tls]
ca = %q
`, listen, backends[0], backends[1], ca)
	}
}

// TestTLSBackendVerified: a plaintext client's bytes go to a backend over
// TLS (origination), verified against the configured CA for the backend's
// IP address. A backend whose certificate another CA signed is a failed
// connect, logged with the reason, and the next backend serves the client.
func TestTLSBackendVerified(t *testing.T) {
	t.Parallel()
	internal, other := testca.New(t, "internal"), testca.New(t, "other")
	wrong := startTLSEcho(t, other.Issue(t, "wrong", "127.0.0.1").Pair(t), nil)
	right := startTLSEcho(t, internal.Issue(t, "right", "127.0.0.1").Pair(t), nil)
	p, addr := launchConfig(t, originConfig(internal.File(t), wrong.addr, right.addr))

	c := dial(t, addr)
	if err := roundTrip(c, "plaintext in, TLS out\n"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	rec := p.waitAccess(c)
	if rec.str("backend") != right.addr || rec.str("end") != "eof" {
		t.Errorf("access %v\nwant backend=%s (the one whose certificate verifies), end=eof", rec, right.addr)
	}
	failed := p.wait("backend TLS handshake failed", func(r record) bool {
		return r.str("msg") == "backend TLS handshake failed" && r.str("backend") == wrong.addr
	})
	if failed.str("error") == "" || failed.str("rule") != "origin" {
		t.Errorf("the failed backend handshake logged %v, want the rule and the reason", failed)
	}
	if right.served.Load() != 1 || wrong.served.Load() != 0 {
		t.Errorf("handshakes completed: %d by the right backend, %d by the wrong one; want 1 and 0",
			right.served.Load(), wrong.served.Load())
	}
}

// reencryptConfig terminates TLS with edge and speaks TLS again to backend,
// verified against the CA in the file ca for the name backend.internal.
func reencryptConfig(backend string, edge testca.Leaf, ca string) func(string) string {
	return func(listen string) string {
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "reencrypt"
listen = %q
backends = [%q]

[rule.tls]
cert = %q
key = %q

[rule.backend_tls]
ca = %q
server_name = "backend.internal"
`, listen, backend, edge.CertFile, edge.KeyFile, ca)
	}
}

// TestTLSReencryption: curl, verifying sluice's certificate, reaches an
// HTTPS backend through sluice, which terminates the client's TLS and
// speaks TLS anew to the backend for server_name (which the backend
// sees as the server name), verified against the internal CA.
func TestTLSReencryption(t *testing.T) {
	t.Parallel()
	needTools(t, "curl")
	edgeCA, internal := testca.New(t, "edge"), testca.New(t, "internal")
	edge := edgeCA.Issue(t, "edge-site", "edge.example.com") // not "edge": openssl takes a leaf named as its CA for self-signed
	site := startSite(t, internal, "inner", "backend.internal")
	p, addr := launchConfig(t, reencryptConfig(siteAddr(site), edge, internal.File(t)))

	out, err := runTool(t, "curl", append([]string{"--cacert", edgeCA.File(t)}, curlResolve("edge.example.com", addr)...)...)
	if err != nil || out != "inner sni=backend.internal\n" {
		t.Errorf("curl through re-encryption: %v\n%s\nwant the inner site's answer for backend.internal", err, out)
	}
	rec := p.wait("access", isMsg("access"))
	if rec.str("backend") != siteAddr(site) || rec.str("tls_version") == "" || rec.str("sni") != "edge.example.com" {
		t.Errorf("access %v\nwant backend=%s, a tls_version and sni=edge.example.com", rec, siteAddr(site))
	}

	c, err := tlsDial(t, addr, &tls.Config{ServerName: "edge.example.com", RootCAs: edgeCA.Pool()})
	if err != nil {
		t.Fatalf("TLS handshake with sluice: %v", err)
	}
	if body, err := getOver(c); err != nil || body != "inner sni=backend.internal\n" {
		t.Errorf("GET through re-encryption: %q, %v; want the inner site's answer", body, err)
	}
}

// routeTLSConfig is a rule "mixed" with a route that terminates TLS for
// term.example.com (for a plain backend) and one that passes
// pass.example.com's TLS through to site.
func routeTLSConfig(plain, site string, leaf testca.Leaf) func(string) string {
	return func(listen string) string {
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "mixed"
listen = %q

[[rule.route]]
name = "term"
sni = ["term.example.com"]
backends = [%q]

[rule.route.tls]
cert = %q
key = %q

[[rule.route]]
name = "pass"
sni = ["pass.example.com"]
backends = [%q]
`, listen, plain, leaf.CertFile, leaf.KeyFile, site)
	}
}

// TestTLSRouteTermination: on one port, curl reaches a route that
// terminates TLS with the route's own certificate and a route that passes
// TLS through to a site that shows its own; both verify.
func TestTLSRouteTermination(t *testing.T) {
	t.Parallel()
	needTools(t, "curl")
	edgeCA, siteCA := testca.New(t, "edge"), testca.New(t, "sites")
	plain := startPlainSite(t, "terminated\n")
	site := startSite(t, siteCA, "passed", "pass.example.com")
	p, addr := launchConfig(t, routeTLSConfig(plain, siteAddr(site), edgeCA.Issue(t, "term", "term.example.com")))

	for _, tc := range []struct {
		name, ca, want, route string
		tls                   bool
	}{
		{"term.example.com", edgeCA.File(t), "terminated\n", "term", true},
		{"pass.example.com", siteCA.File(t), "passed sni=pass.example.com\n", "pass", false},
	} {
		out, err := runTool(t, "curl", append([]string{"--cacert", tc.ca}, curlResolve(tc.name, addr)...)...)
		if err != nil || out != tc.want {
			t.Errorf("curl https://%s/: %v\n%s\nwant %q", tc.name, err, out, tc.want)
		}
		rec := p.wait("access for sni="+tc.name, routedAccess("mixed", tc.name))
		if rec.str("route") != tc.route || (rec.str("tls_version") != "") != tc.tls {
			t.Errorf("access %v\nwant route=%s, a tls_version only when sluice terminated", rec, tc.route)
		}
	}
}
