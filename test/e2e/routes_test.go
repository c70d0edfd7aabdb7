package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"sluice/internal/testkit/testca"
)

// The route tests run sluice with [[rule.route]] tables and real clients:
// openssl s_client and curl for TLS and HTTP, small Go clients for the
// rest. A backend shows who it is in what it sends: a TLS site's
// certificate names it, an HTTP backend's body does, and a line backend
// prefixes its answer with its tag.

// needTools skips the test when one of the tools is not installed
// (.ci/run installs them).
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// startSite starts an HTTPS server on loopback whose certificate, issued
// by ca for names, has name as its common name, and whose every answer is
// "<name> sni=<the server name the client sent>\n". It accepts the ALPN
// protocols http/1.1 and acme-tls/1.
func startSite(t *testing.T, ca *testca.CA, name string, names ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s sni=%s\n", name, r.TLS.ServerName)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Issue(t, name, names...).Pair(t)},
		NextProtos:   []string{"http/1.1", "acme-tls/1"},
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // clients that hang up mid-handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// siteAddr returns the host:port a test server listens on.
func siteAddr(srv *httptest.Server) string { return srv.Listener.Addr().String() }

// startPlainSite starts a plain HTTP server on loopback whose every answer
// is body.
func startPlainSite(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return siteAddr(srv)
}

// tagged returns a line backend: it reads the client's first line and
// answers "<tag> <that line>\n", then echoes the rest.
func tagged(tag string) func(*net.TCPConn) {
	return func(c *net.TCPConn) {
		r := bufio.NewReader(c)
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprintf(c, "%s %s\n", tag, strings.TrimRight(line, "\r\n"))
		_, _ = io.Copy(c, r)
	}
}

// greeter is a backend of a protocol in which the server speaks first: it
// greets at once, then echoes.
func greeter(c *net.TCPConn) {
	if _, err := io.WriteString(c, "220 greeter ready\r\n"); err == nil {
		echo(c)
	}
}

// runTool runs a client tool with stdin empty, bounded by waitLimit, and
// returns its stdout and stderr together, and how it ended.
func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %q still running after %v:\n%s", name, args, waitLimit, out)
	}
	return string(out), err
}

// sClient connects openssl s_client to addr with the given options
// (-servername, -alpn, ...), lets it finish the handshake and hang up, and
// returns the certificate the server showed, nil when there was none, and
// the tool's output.
func sClient(t *testing.T, addr string, opts ...string) (*x509.Certificate, string) {
	t.Helper()
	out, _ := runTool(t, "openssl", append([]string{"s_client", "-connect", addr}, opts...)...)
	return firstCert(t, out), out
}

// firstCert returns the first PEM certificate in out, nil when there is
// none.
func firstCert(t *testing.T, out string) *x509.Certificate {
	t.Helper()
	at := strings.Index(out, "-----BEGIN CERTIFICATE-----")
	if at < 0 {
		return nil
	}
	block, _ := pem.Decode([]byte(out[at:]))
	if block == nil {
		t.Fatalf("cannot decode the certificate in:\n%s", out)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse the certificate shown: %v", err)
	}
	return cert
}

// curlResolve returns curl's arguments for https://name:port/ (port is
// addr's) connecting to addr, whatever name resolves to.
func curlResolve(name, addr string) []string {
	_, port, _ := net.SplitHostPort(addr)
	return []string{"--silent", "--show-error", "--max-time", "20",
		"--resolve", name + ":" + port + ":127.0.0.1", "https://" + name + ":" + port + "/"}
}

// clientHello returns the records a Go client sends first for the server
// name sni (none when empty) offering the protocols alpn: its ClientHello,
// in one record, or in several when it is over 16 KiB.
func clientHello(t *testing.T, sni string, alpn ...string) []byte {
	t.Helper()
	ours, theirs := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// It fails once the test hangs up: only the ClientHello matters.
		_ = tls.Client(theirs, &tls.Config{ServerName: sni, NextProtos: alpn, InsecureSkipVerify: true}).Handshake()
	}()
	defer func() { ours.Close(); theirs.Close(); <-done }()
	_ = ours.SetDeadline(time.Now().Add(waitLimit))
	var records, msg []byte
	for len(msg) < 4 || len(msg) < 4+(int(msg[1])<<16|int(msg[2])<<8|int(msg[3])) {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(ours, hdr); err != nil {
			t.Fatalf("read a record header of the ClientHello: %v", err)
		}
		body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
		if _, err := io.ReadFull(ours, body); err != nil {
			t.Fatalf("read the ClientHello: %v", err)
		}
		records = append(append(records, hdr...), body...)
		msg = append(msg, body...)
	}
	return records
}

// routedAccess matches the access lines of rule whose sni field is sni,
// in any case.
func routedAccess(rule, sni string) func(record) bool {
	return func(r record) bool {
		return r.str("msg") == "access" && r.str("rule") == rule && strings.EqualFold(r.str("sni"), sni)
	}
}

// checkRouted checks that an access line took route over backend and
// ended with end; an empty end stands for eof or reset, the ends of a
// connection that openssl s_client closes (it resets it when the server's
// session tickets are still unread), or curl.
func checkRouted(t *testing.T, rec record, route, backend, end string) {
	t.Helper()
	ended := rec.str("end") == end || end == "" && (rec.str("end") == "eof" || rec.str("end") == "reset")
	if rec.str("route") != route || rec.str("backend") != backend || !ended {
		t.Errorf("access %v\nwant route=%s backend=%s end=%s", rec, route, backend, end)
	}
}

// sniSites are the TLS sites of the SNI tests: three routes' and the
// default route's, each with a certificate of its own name.
type sniSites struct {
	ca                            *testca.CA // issued the sites' certificates
	app, org, api, acme, fallback *httptest.Server
}

// startSNISites starts the sites of the SNI tests.
func startSNISites(t *testing.T) sniSites {
	ca := testca.New(t, "sites")
	return sniSites{
		ca:       ca,
		app:      startSite(t, ca, "app", "app.example.com"),
		org:      startSite(t, ca, "org", "*.example.org"),
		api:      startSite(t, ca, "api", "api.example.net"),
		acme:     startSite(t, ca, "acme", "acme.example.com"),
		fallback: startSite(t, ca, "fallback", "fallback.example.com"),
	}
}

// sniConfig is a rule "edge" with an ALPN route, three SNI routes (one a
// wildcard) and, when withDefault, the fallback site as its default route.
func sniConfig(s sniSites, withDefault bool) func(string) string {
	return func(listen string) string {
		def := ""
		if withDefault {
			def = fmt.Sprintf("backends = [%q]\n", siteAddr(s.fallback))
		}
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "edge"
listen = %q
%speek_timeout = "10s"

[[rule.route]]
name = "acme"
alpn = ["acme-tls/1"]
backends = [%q]

[[rule.route]]
name = "app"
sni = ["app.example.com"]
backends = [%q]

[[rule.route]]
name = "org"
sni = ["*.example.org"]
backends = [%q]

[[rule.route]]
name = "api"
sni = ["api.example.net"]
backends = [%q]
`, listen, def, siteAddr(s.acme), siteAddr(s.app), siteAddr(s.org), siteAddr(s.api))
	}
}

// sniCase is one openssl s_client through the edge rule: its server name
// and options, the site that must answer (by its certificate's common
// name) and the route it must take.
type sniCase struct {
	sni   string
	opts  []string
	site  string
	route string
}

// checkSNICases runs each case with openssl s_client against addr and
// checks the certificate shown and the access line, found by its sni.
func checkSNICases(t *testing.T, p *proc, addr string, sites map[string]string, cases []sniCase) {
	t.Helper()
	for _, tc := range cases {
		cert, out := sClient(t, addr, append([]string{"-servername", tc.sni}, tc.opts...)...)
		if cert == nil || cert.Subject.CommonName != tc.site {
			t.Errorf("openssl s_client -servername %s %q: want the certificate of %q; got:\n%s", tc.sni, tc.opts, tc.site, out)
			continue
		}
		rec := p.wait("access for sni="+tc.sni, routedAccess("edge", tc.sni))
		checkRouted(t, rec, tc.route, sites[tc.site], "")
	}
}

// addrs maps the SNI sites' names to their addresses.
func (s sniSites) addrs() map[string]string {
	return map[string]string{
		"app": siteAddr(s.app), "org": siteAddr(s.org), "api": siteAddr(s.api),
		"acme": siteAddr(s.acme), "fallback": siteAddr(s.fallback),
	}
}

// TestRouteBySNI: openssl s_client and curl reach the site of the server
// name they send, over three SNI routes, and a name no route lists reaches
// the default route; the TLS bytes pass through untouched (the sites'
// own certificates are shown, and curl verifies them). Each access line
// names the route, the server name and the backend.
func TestRouteBySNI(t *testing.T) {
	t.Parallel()
	needTools(t, "openssl", "curl")
	s := startSNISites(t)
	p, addr := launchConfig(t, sniConfig(s, true))
	checkSNICases(t, p, addr, s.addrs(), []sniCase{
		{sni: "app.example.com", site: "app", route: "app"},
		{sni: "x.example.org", site: "org", route: "org"},
		{sni: "api.example.net", site: "api", route: "api"},
		{sni: "unknown.example.com", site: "fallback", route: "default"},
	})

	// curl verifies the site's certificate for the name: passed through.
	out, err := runTool(t, "curl", append([]string{"--cacert", s.ca.File(t)}, curlResolve("api.example.net", addr)...)...)
	if err != nil || out != "api sni=api.example.net\n" {
		t.Errorf("curl https://api.example.net through the edge rule: %v\n%s\nwant the api site's answer", err, out)
	}
	rec := p.waitN(2, "second access for sni=api.example.net", routedAccess("edge", "api.example.net"))[1]
	checkRouted(t, rec, "api", siteAddr(s.api), "")
	if rec.str("alpn") == "" {
		t.Errorf("curl's access line %v has no alpn, though curl offers protocols", rec)
	}
}

// TestRouteWildcardSNI: "*.example.org" takes any name that ends in
// ".example.org", however deep and in any case, but not example.org
// itself, which goes to the default route; "APP.Example.COM" takes the
// route of app.example.com.
func TestRouteWildcardSNI(t *testing.T) {
	t.Parallel()
	needTools(t, "openssl")
	s := startSNISites(t)
	p, addr := launchConfig(t, sniConfig(s, true))
	checkSNICases(t, p, addr, s.addrs(), []sniCase{
		{sni: "a.example.org", site: "org", route: "org"},
		{sni: "deep.sub.example.org", site: "org", route: "org"},
		{sni: "Mixed.EXAMPLE.org", site: "org", route: "org"},
		{sni: "example.org", site: "fallback", route: "default"},
		{sni: "example.org.evil.net", site: "fallback", route: "default"},
		{sni: "APP.Example.COM", site: "app", route: "app"},
	})
}

// TestRouteALPN: a client offering acme-tls/1 takes the ALPN route, which
// comes first, whatever name it sends; the same name offering http/1.1
// takes its SNI route. The access line lists the protocols offered.
func TestRouteALPN(t *testing.T) {
	t.Parallel()
	needTools(t, "openssl")
	s := startSNISites(t)
	p, addr := launchConfig(t, sniConfig(s, true))
	checkSNICases(t, p, addr, s.addrs(), []sniCase{
		{sni: "app.example.com", opts: []string{"-alpn", "acme-tls/1"}, site: "acme", route: "acme"},
		{sni: "api.example.net", opts: []string{"-alpn", "http/1.1"}, site: "api", route: "api"},
	})
	for _, want := range []struct{ sni, alpn string }{{"app.example.com", "acme-tls/1"}, {"api.example.net", "http/1.1"}} {
		if rec := p.wait("access for sni="+want.sni, routedAccess("edge", want.sni)); rec.str("alpn") != want.alpn {
			t.Errorf("access %v\nwant alpn=%s", rec, want.alpn)
		}
	}
}

// TestRouteNoRoute: on a rule with routes and no backends of its own, a
// server name no route lists is closed before any backend is dialed
// (rejected:no-route, no certificate shown), while a listed one is served.
func TestRouteNoRoute(t *testing.T) {
	t.Parallel()
	needTools(t, "openssl")
	s := startSNISites(t)
	p, addr := launchConfig(t, sniConfig(s, false))
	checkSNICases(t, p, addr, s.addrs(), []sniCase{{sni: "app.example.com", site: "app", route: "app"}})

	if cert, out := sClient(t, addr, "-servername", "nobody.example.com"); cert != nil {
		t.Errorf("openssl s_client -servername nobody.example.com was shown a certificate:\n%s", out)
	}
	rec := p.wait("access for sni=nobody.example.com", routedAccess("edge", "nobody.example.com"))
	if rec.str("end") != "rejected:no-route" || rec.str("backend") != "" || rec.str("route") != "" {
		t.Errorf("access %v\nwant end=rejected:no-route, no backend and no route", rec)
	}
}

// detectConfig is a rule "sniff" that tells SSH, TLS, HTTP and PROXY
// clients apart by their first bytes, with no default route.
func detectConfig(ssh, tlsSite, httpSite, proxy string) func(string) string {
	return func(listen string) string {
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "sniff"
listen = %q
peek_timeout = "3s"

[[rule.route]]
name = "ssh"
detect = "ssh"
backends = [%q]

[[rule.route]]
name = "tls"
detect = "tls"
backends = [%q]

[[rule.route]]
name = "http"
detect = "http"
backends = [%q]

[[rule.route]]
name = "proxy"
detect = "proxy"
backends = [%q]
`, listen, ssh, tlsSite, httpSite, proxy)
	}
}

// lineThrough sends first on a new connection to addr, reads one line
// back and closes, returning the line and the connection's local address.
func lineThrough(t *testing.T, addr, first string) (string, net.Addr) {
	t.Helper()
	c := dial(t, addr)
	defer c.Close()
	if _, err := io.WriteString(c, first); err != nil {
		t.Fatalf("write %q: %v", first, err)
	}
	line, err := readLine(c)
	if err != nil {
		t.Errorf("after %q: read: %v", first, err)
	}
	return line, c.LocalAddr()
}

// TestRouteDetect: one port tells an SSH client (its version banner), a TLS
// client (openssl s_client), an HTTP client (curl) and a client with a
// PROXY v1 header apart, each reaching its own backend with its first bytes
// intact; a client that speaks none of them is closed (rejected:no-route).
func TestRouteDetect(t *testing.T) {
	t.Parallel()
	needTools(t, "openssl", "curl")
	sshB := startBackend(t, tagged("ssh-backend"))
	proxyB := startBackend(t, tagged("proxy-backend"))
	site := startSite(t, testca.New(t, "detect"), "tls-backend", "tls.example.com")
	httpSite := startPlainSite(t, "http-backend\n")
	p, addr := launchConfig(t, detectConfig(sshB.addr, siteAddr(site), httpSite, proxyB.addr))

	line, local := lineThrough(t, addr, "SSH-2.0-x\r\n")
	if line != "ssh-backend SSH-2.0-x\n" {
		t.Errorf("SSH client got %q, want the SSH backend's answer to its banner", line)
	}
	checkRouted(t, p.wait("SSH client's access", accessOf(local)), "ssh", sshB.addr, "eof")

	header := "PROXY TCP4 192.0.2.1 192.0.2.2 5000 443\r\n"
	// The backend answers the header line and echoes the rest: both are
	// read before closing, or the close would reset (unread data).
	pc := dial(t, addr)
	if _, err := io.WriteString(pc, header+"after the header\n"); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(waitLimit))
	pr := bufio.NewReader(pc)
	line, _ = pr.ReadString('\n')
	if echo, err := pr.ReadString('\n'); echo != "after the header\n" {
		t.Errorf("PROXY client's echo: %q, %v", echo, err)
	}
	local = pc.LocalAddr()
	pc.Close()
	if line != "proxy-backend "+strings.TrimRight(header, "\r\n")+"\n" {
		t.Errorf("PROXY client got %q, want the PROXY backend's answer to its header", line)
	}
	checkRouted(t, p.wait("PROXY client's access", accessOf(local)), "proxy", proxyB.addr, "eof")

	if cert, out := sClient(t, addr, "-servername", "tls.example.com"); cert == nil || cert.Subject.CommonName != "tls-backend" {
		t.Errorf("openssl s_client: want the TLS backend's certificate; got:\n%s", out)
	}
	checkRouted(t, p.wait("TLS client's access", routedAccess("sniff", "tls.example.com")), "tls", siteAddr(site), "")

	if out, err := runTool(t, "curl", "--silent", "--show-error", "--max-time", "20", "http://"+addr+"/"); err != nil || out != "http-backend\n" {
		t.Errorf("curl http://%s/: %v\n%s\nwant the HTTP backend's answer", addr, err, out)
	}
	p.wait("HTTP client's access", func(r record) bool {
		return r.str("msg") == "access" && r.str("route") == "http" && r.str("backend") == httpSite
	})

	c := dial(t, addr)
	if _, err := io.WriteString(c, "HELO there, none of the above\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := readEnd(c); isTimeout(err) {
		t.Errorf("a client speaking none of the protocols was not closed: %v", err)
	}
	if rec := p.waitAccess(c); rec.str("end") != "rejected:no-route" {
		t.Errorf("access %v\nwant end=rejected:no-route", rec)
	}
}

// silentConfig is a rule with one SNI route and, when def is not empty, a
// default route to def; its peek timeout is 2 s.
func silentConfig(route, def string) func(string) string {
	return func(listen string) string {
		backends := ""
		if def != "" {
			backends = fmt.Sprintf("backends = [%q]\n", def)
		}
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "mixed"
listen = %q
%speek_timeout = "2s"

[[rule.route]]
name = "web"
sni = ["web.example.com"]
backends = [%q]
`, listen, backends, route)
	}
}

// routePeekTimeout is silentConfig's peek timeout.
const routePeekTimeout = 2 * time.Second

// TestRouteSilentClientDefault: a client that waits for the server to speak
// first (SMTP, MySQL) reaches the default route once the peek timeout has
// passed, and gets the backend's greeting; the connection then relays both
// ways as any other.
func TestRouteSilentClientDefault(t *testing.T) {
	t.Parallel()
	web := startBackend(t, echo)
	greet := startBackend(t, greeter)
	p, addr := launchConfig(t, silentConfig(web.addr, greet.addr))

	began := time.Now()
	c := dial(t, addr)
	line, err := readLine(c)
	if err != nil || line != "220 greeter ready\r\n" {
		t.Fatalf("silent client read %q, %v; want the greeting of the default route's backend", line, err)
	}
	if waited := time.Since(began); waited < routePeekTimeout {
		t.Errorf("greeting came after %v, before the peek timeout of %v", waited, routePeekTimeout)
	}
	if err := roundTrip(c, "QUIT\r\n"); err != nil {
		t.Error(err)
	}
	c.Close()
	checkRouted(t, p.waitAccess(c), "default", greet.addr, "eof")
}

// TestRouteSlowClient: a client that sends a ClientHello one byte a second
// has not chosen a route when the peek timeout passes: it is closed soon
// after (rejected:no-route), not kept for as long as it trickles. A client
// that sends nothing, on a rule without a default route, is closed too
// (rejected:peek-timeout).
func TestRouteSlowClient(t *testing.T) {
	t.Parallel()
	web := startBackend(t, echo)
	p, addr := launchConfig(t, silentConfig(web.addr, ""))
	hello := clientHello(t, "web.example.com")

	began := time.Now()
	c := dial(t, addr)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for _, b := range hello {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	if _, err := readEnd(c); isTimeout(err) {
		t.Fatalf("the slow client was not closed within %v: %v", waitLimit, err)
	}
	// The margin covers a loaded machine; the trickle would last minutes.
	if took, limit := time.Since(began), routePeekTimeout+8*time.Second; took > limit {
		t.Errorf("the slow client was closed after %v, want within %v", took, limit)
	}
	if rec := p.waitAccess(c); rec.str("end") != "rejected:no-route" || rec.str("backend") != "" {
		t.Errorf("access %v\nwant end=rejected:no-route and no backend", rec)
	}
	if web.accepted.Load() != 0 {
		t.Errorf("the route's backend got %d connections, want none", web.accepted.Load())
	}

	silent := dial(t, addr)
	if _, err := readEnd(silent); isTimeout(err) {
		t.Fatalf("the silent client was not closed within %v: %v", waitLimit, err)
	}
	if rec := p.waitAccess(silent); rec.str("end") != "rejected:peek-timeout" {
		t.Errorf("access %v\nwant end=rejected:peek-timeout", rec)
	}
}
