package tcp

import (
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/proxyproto"
)

// dialIdle opens n connections from the local IP src to addr that send
// nothing, and closes them when the test ends. They are all established
// (in sluice's accept queue at least) when it returns.
func dialIdle(t *testing.T, src, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	const dialers = 16
	for w := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			for i := w; i < n; i += dialers {
				conns[i], errs[i] = d.Dial("tcp", addr)
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("idle connection %d of %d: %v", i, n, err)
		}
	}
	return conns
}

// echoOnce sends msg on c and reads it back, within limit.
func echoOnce(c net.Conn, msg string, limit time.Duration) error {
	c.SetDeadline(time.Now().Add(limit))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return &echoMismatch{got: string(got), want: msg}
	}
	return nil
}

// echoMismatch is an echo that came back different.
type echoMismatch struct{ got, want string }

func (e *echoMismatch) Error() string { return "echo " + e.got + ", want " + e.want }

// proxyV2 returns a PROXY v2 header for a TCP client src going to dst.
func proxyV2(src, dst string) []byte {
	h := proxyproto.Header{Command: proxyproto.Proxy, Transport: proxyproto.TCP,
		Source: mustAddrPort(src), Destination: mustAddrPort(dst)}
	return h.AppendV2(nil)
}

// TestPendingHeadersDoNotStallOthers: more connections from a trusted PROXY
// sender than there are setup slots, all silent, do not keep a client that
// is not a trusted sender from being served. The header timeout is 30 s:
// the client must be served while every silent one still waits for its
// header, not once their timeouts have freed something.
func TestPendingHeadersDoNotStallOthers(t *testing.T) {
	const idle = 1200 // well over maxSetups
	rule := Rule{TrustProxy: prefixes("127.0.0.2/32"), ProxyHeaderTimeout: 30 * time.Second, MaxPendingHeaders: 2 * idle}
	f := serve(t, "tcp4", rule, echoBackend(t))
	baseline := runtime.NumGoroutine()
	silent := dialIdle(t, "127.0.0.2", f.addr, idle)

	began := time.Now()
	c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echoOnce(c, "hello", 20*time.Second); err != nil {
		t.Fatalf("untrusted client not served while %d trusted connections wait for a header: %v", idle, err)
	}
	t.Logf("untrusted client: connect to echo in %v under %d pending headers", time.Since(began), idle)
	for _, line := range f.logs.access() {
		t.Fatalf("a connection ended before the untrusted client was served: %v", line)
	}
	// Waiting costs them no goroutine where the parker watches them.
	waitPending(t, f.svc, "127.0.0.2", idle)
	if n := runtime.NumGoroutine(); n > baseline+idle/10 {
		t.Errorf("%d goroutines with %d connections waiting for a header, %d before", n, idle, baseline)
	}

	// The silent ones were only waiting: a header and data go through.
	last := silent[len(silent)-1]
	hdr := proxyV2("192.0.2.1:4000", "192.0.2.2:80")
	if _, err := last.Write(hdr); err != nil {
		t.Fatal(err)
	}
	if err := echoOnce(last, "late", 20*time.Second); err != nil {
		t.Fatalf("a waiting trusted connection, header sent: %v", err)
	}
}

// TestPendingHeadersPerSource: a trusted sender may have only so many
// connections waiting for their header; one more is refused with
// rejected:proxy-pending and counted, while another trusted sender is not
// affected, and the sender may connect again once one of its connections
// has sent its header.
func TestPendingHeadersPerSource(t *testing.T) {
	const limit = 8
	rule := Rule{TrustProxy: prefixes("127.0.0.2/31"), ProxyHeaderTimeout: 30 * time.Second, MaxPendingHeaders: limit}
	f := serve(t, "tcp4", rule, echoBackend(t))
	waiting := dialIdle(t, "127.0.0.2", f.addr, limit)
	waitPending(t, f.svc, "127.0.0.2", limit)

	// A refused client may be reset before its connect returns.
	if over, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", f.addr); err == nil {
		defer over.Close()
		over.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := over.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("connection over the per-source bound: read %d, %v; want it closed", n, err)
		}
	}
	line := f.logs.waitAccess(t, 1)[0]
	if line["end"] != "rejected:proxy-pending" || !strings.HasPrefix(line["client"].(string), "127.0.0.2:") {
		t.Fatalf("access line %v", line)
	}

	other := dialIdle(t, "127.0.0.3", f.addr, 1)[0]
	other.Write(proxyV2("192.0.2.1:4000", "192.0.2.2:80"))
	if err := echoOnce(other, "other sender", 10*time.Second); err != nil {
		t.Fatalf("another trusted sender: %v", err)
	}

	waiting[0].Write(proxyV2("192.0.2.1:4001", "192.0.2.2:80"))
	if err := echoOnce(waiting[0], "header in", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	again := dialIdle(t, "127.0.0.2", f.addr, 1)[0]
	again.Write(proxyV2("192.0.2.1:4002", "192.0.2.2:80"))
	if err := echoOnce(again, "again", 10*time.Second); err != nil {
		t.Fatalf("after a header freed a place: %v", err)
	}
}

// waitPending waits, boundedly, until n connections from src wait for
// their PROXY header.
func waitPending(t *testing.T, s *Service, src string, n int) {
	t.Helper()
	addr := mustAddrPort(src + ":0").Addr()
	deadline := time.Now().Add(10 * time.Second)
	for s.pending.count(addr) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections from %s wait for a header, want %d", s.pending.count(addr), src, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
