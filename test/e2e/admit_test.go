package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// dialFromIP connects to addr from the loopback address ip. A refused
// client may be reset before its connect returns: the error is returned,
// not fatal.
func dialFromIP(ip, addr string) (*net.TCPConn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitLimit}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// servedFrom reports whether a client from ip gets its message echoed
// through addr; a refused one is closed with nothing relayed.
func servedFrom(t *testing.T, ip, addr string) bool {
	t.Helper()
	c, err := dialFromIP(ip, addr)
	if err != nil {
		return false
	}
	defer c.Close()
	if err := roundTrip(c, "ping\n"); err != nil {
		return false
	}
	return true
}

// TestRatePerIP: through the binary, rate_per_ip = 0.2 (a burst of one,
// then one new connection per 5 s per client IP) serves a client's first
// connection and refuses its next at once with end=rejected:rate-limited,
// while a client from another IP is served; once the bucket has refilled,
// the first client is served again, and not before.
func TestRatePerIP(t *testing.T) {
	t.Parallel()
	be := startBackend(t, echo)
	p, addr := launchConfig(t, func(listen string) string {
		return fmt.Sprintf("log_format = \"json\"\n\n[[rule]]\nname = \"rated\"\nlisten = %q\nbackends = [%q]\nrate_per_ip = 0.2\n",
			listen, be.addr)
	})
	const a, b = "127.0.0.21", "127.0.0.22"
	first := time.Now()
	if !servedFrom(t, a, addr) {
		t.Fatalf("first connection from %s not served", a)
	}
	if servedFrom(t, a, addr) {
		t.Fatalf("second connection from %s at once was served; want it rate-limited", a)
	}
	rec := p.wait("rate-limited access line", func(r record) bool {
		return r.str("msg") == "access" && strings.HasPrefix(r.str("client"), a+":") && r.str("end") == "rejected:rate-limited"
	})
	if rec.str("rule") != "rated" || rec.num("up") != 0 || rec.num("down") != 0 {
		t.Errorf("refused client's access line %v", rec)
	}
	if !servedFrom(t, b, addr) {
		t.Fatalf("a client from %s was refused: the limit is per IP", b)
	}

	deadline := time.Now().Add(5*time.Second + waitLimit)
	for !servedFrom(t, a, addr) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not served again once its bucket refilled", a)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if waited := time.Since(first); waited < 5*time.Second {
		t.Errorf("%s served again after %v, before one token (5 s) refilled", a, waited)
	}
}
