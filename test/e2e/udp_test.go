package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// udpEcho is a loopback UDP server that answers every datagram with itself.
type udpEcho struct {
	conn *net.UDPConn
	done chan struct{}
}

// startUDPEcho serves on addr (host:port; port 0 for any) until the test
// ends. It returns nil when addr cannot be bound.
func startUDPEcho(t *testing.T, addr string) *udpEcho {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil
	}
	e := &udpEcho{conn: c, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		buf := make([]byte, 1<<16)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if _, err := c.WriteToUDPAddrPort(buf[:n], from); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-e.done
	})
	return e
}

// echoBothWays returns a TCP echo backend and a UDP echo backend on the
// same loopback port.
func echoBothWays(t *testing.T) (*backend, *udpEcho) {
	t.Helper()
	for range 10 {
		be := startBackend(t, echo)
		if ue := startUDPEcho(t, be.addr); ue != nil {
			return be, ue
		}
		be.close()
	}
	t.Fatal("found no loopback port free for both TCP and UDP in 10 tries")
	return nil, nil
}

// udpClient opens a client socket on 127.0.0.1.
func udpClient(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpRoundTrip sends msg from c to addr and checks that the same bytes come
// back from addr. Loopback drops datagrams when the machine is flooded, so
// an unanswered datagram is sent again (up to 8 times, 500 ms apart).
func udpRoundTrip(c *net.UDPConn, addr string, msg []byte) error {
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<16)
	for range 8 {
		if _, err := c.WriteToUDP(msg, to); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				return err
			}
			if from.Port() != uint16(to.Port) {
				return fmt.Errorf("reply from %v, want from the listening address %v", from, to)
			}
			if bytes.Equal(buf[:n], msg) {
				return nil
			}
		}
	}
	return fmt.Errorf("%s: no echo of %d bytes from %s", c.LocalAddr(), len(msg), addr)
}

// TestTCPAndUDPOnOnePort runs a tcp+udp rule: one port number forwards TCP
// connections and UDP datagrams to the same backend port, each logged with
// its proto.
func TestTCPAndUDPOnOnePort(t *testing.T) {
	t.Parallel()
	be, _ := echoBothWays(t)
	p, addr := launchQuick(t, sluiceBin, []string{"-p", "tcp+udp"}, be.addr)
	tc := dial(t, addr)
	if err := roundTrip(tc, "over tcp"); err != nil {
		t.Fatal(err)
	}
	uc := udpClient(t)
	big := bytes.Repeat([]byte("datagram"), 65_507/8)
	for _, msg := range [][]byte{[]byte("over udp"), {}, big} {
		if err := udpRoundTrip(uc, addr, msg); err != nil {
			t.Fatal(err)
		}
	}
	tc.Close()
	if rec := p.waitAccess(tc); rec.str("proto") != "tcp" {
		t.Errorf("tcp access line %v", rec)
	}
	p.signal(syscall.SIGTERM)
	if code, err := p.waitExit(waitLimit); code != 0 {
		t.Fatalf("sluice exit code %d (%v), want 0", code, err)
	}
	rec := p.waitAccess(uc)
	if rec.str("proto") != "udp" || rec.str("end") != "drained" || rec.num("dgrams_up") < 3 || rec.num("up") < int64(len(big)+8) {
		t.Errorf("udp access line %v: want proto udp, 3 datagrams, drained", rec)
	}
}

// udpConfig is a config with one UDP rule to backend.
func udpConfig(backend, timeout string, maxSessions int) func(listen string) string {
	return func(listen string) string {
		return fmt.Sprintf(`log_format = "json"

[[rule]]
name = "dns"
listen = %q
protocol = "udp"
backends = [%q]
udp_session_timeout = %q
max_sessions = %d
`, listen, backend, timeout, maxSessions)
	}
}

// TestUDPSessionsFromConfig: udp_session_timeout ends idle sessions, and a
// client past max_sessions is refused and logged, then served once a
// session has ended. The first client keeps its session busy until the
// second has been refused, so that a slow machine cannot let it expire
// first.
func TestUDPSessionsFromConfig(t *testing.T) {
	t.Parallel()
	be := startUDPEcho(t, "127.0.0.1:0")
	p, addr := launchConfig(t, udpConfig(be.conn.LocalAddr().String(), "2s", 1))
	first, second := udpClient(t), udpClient(t)
	if err := udpRoundTrip(first, addr, []byte("first")); err != nil {
		t.Fatal(err)
	}
	to, _ := net.ResolveUDPAddr("udp", addr)
	stop := keepSending(t, first, to, []byte("first"))
	if _, err := second.WriteToUDP([]byte("second"), to); err != nil {
		t.Fatal(err)
	}
	if rec := p.waitAccess(second); rec.str("end") != "rejected:max-sessions" || rec.num("dropped") < 1 {
		t.Errorf("refused client's access line %v", rec)
	}
	stop()
	rec := p.waitAccess(first)
	if rec.str("end") != "idle-timeout" || rec.str("rule") != "dns" || rec.str("backend") != be.conn.LocalAddr().String() ||
		rec.num("dgrams_down") < 1 || rec.num("down") < 5 {
		t.Errorf("session's access line %v", rec)
	}
	if err := udpRoundTrip(second, addr, []byte("second")); err != nil {
		t.Fatalf("after the first session ended: %v", err)
	}
}

// keepSending sends msg from c to to every 100 ms, far inside any session
// timeout the tests use, until the function it returns is called.
func keepSending(t *testing.T, c *net.UDPConn, to *net.UDPAddr, msg []byte) (stop func()) {
	t.Helper()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if _, err := c.WriteToUDP(msg, to); err != nil {
					t.Errorf("keep-alive from %s: %v", c.LocalAddr(), err)
					return
				}
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(done)
			<-stopped
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestUDPBackendUnreachable: a backend port with nothing on it answers with
// ICMP port unreachable; the session is logged connect-failed with the
// cause.
func TestUDPBackendUnreachable(t *testing.T) {
	t.Parallel()
	dead := startUDPEcho(t, "127.0.0.1:0")
	deadAddr := dead.conn.LocalAddr().String()
	dead.conn.Close()
	<-dead.done
	p, addr := launchConfig(t, udpConfig(deadAddr, "60s", 0))
	c := udpClient(t)
	to, _ := net.ResolveUDPAddr("udp", addr)
	if _, err := c.WriteToUDP([]byte("anyone?"), to); err != nil {
		t.Fatal(err)
	}
	rec := p.waitAccess(c)
	if rec.str("end") != "connect-failed" || !bytes.Contains([]byte(rec.str("error")), []byte("refused")) {
		t.Errorf("access line %v: want connect-failed, connection refused", rec)
	}
}
