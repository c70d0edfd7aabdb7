package server

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"sluice/internal/testkit/loopback"
)

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(entries)
}

// TestListenersCostOneDescriptorEach: rules added by a reload cost one
// descriptor and no goroutine per listening port while they are idle;
// each still carries a connection, and a reload that removes them gives
// their descriptors back.
func TestListenersCostOneDescriptorEach(t *testing.T) {
	const n = 200
	a1 := echoServer(t, "a1")
	addrs := freeAddrs(t, n+1)
	one := parse(t, ruleTOML("r0", addrs[0], a1))
	srv := startServer(t, one)
	if srv.engine == nil {
		t.Skip("no engine on this platform: every listener has its accept goroutine")
	}
	var text strings.Builder
	text.WriteString(ruleTOML("r0", addrs[0], a1))
	for i, a := range addrs[1:] {
		text.WriteString(ruleTOML(fmt.Sprintf("r%d", i+1), a, a1))
	}
	many := parse(t, text.String())
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	if _, err := srv.Reload(many); err != nil {
		t.Fatal(err)
	}
	if got := openFDs(t) - fds; got > n+n/20 {
		t.Errorf("%d listeners added %d descriptors, want at most %d", n, got, n+n/20)
	}
	if got := runtime.NumGoroutine() - goroutines; got > n/10 {
		t.Errorf("%d idle listeners added %d goroutines, want at most %d", n, got, n/10)
	}
	for i, a := range addrs {
		c := dial(t, a)
		if got := c.ask(t, "hi"); got != "a1 hi" {
			t.Fatalf("listener %d (%s): %q", i, a, got)
		}
		c.c.Close()
	}
	if _, err := srv.Reload(one); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for openFDs(t) > fds+n/20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open 10 s after the reload removed %d listeners, %d before they were added", openFDs(t), n, fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUDPRangeCostsOneDescriptorPerPort: the ports of a UDP range share
// the rule's event loops and its sweeper, so each idle port costs its
// socket and no goroutine, whatever workers says; every port still
// carries datagrams to its backend, and stopping gives every descriptor
// back.
func TestUDPRangeCostsOneDescriptorPerPort(t *testing.T) {
	const n, workers = 1000, 2
	back := udpEcho(t)
	base := loopback.FreePorts(t, n)
	cfg := parse(t, fmt.Sprintf("[[rule]]\nname = \"r\"\nlisten = %q\nprotocol = \"udp\"\nworkers = %d\nbackends = [%q]\n",
		portRange(base, n), workers, back))
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	s := New(Options{Logger: slog.New(slog.DiscardHandler)})
	if err := s.Start(cfg); err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint16{base, base + n/2, base + n - 1} {
		if got := udpAsk(t, p, "hi"); got != "hi" {
			t.Fatalf("port %d: %q", p, got)
		}
	}
	// Each datagram opened a session: one backend socket each.
	t.Logf("a %d-port UDP range, workers = %d: %d descriptors, %d goroutines", n, workers, openFDs(t)-fds-3, runtime.NumGoroutine()-goroutines)
	if got, want := openFDs(t)-fds-3, n+n/20; got > want {
		t.Errorf("a %d-port UDP range with workers = %d holds %d descriptors (%.2f per port), want at most %d",
			n, workers, got, float64(got)/n, want)
	}
	if got := runtime.NumGoroutine() - goroutines; got > n/10 {
		t.Errorf("a %d-port UDP range added %d goroutines, want at most %d", n, got, n/10)
	}
	s.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for openFDs(t) > fds+5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d descriptors open 10 s after the stop, %d before the start", openFDs(t), fds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// udpEcho starts a UDP server on loopback that sends every datagram back,
// and returns its address.
func udpEcho(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:k], from)
		}
	}()
	return pc.LocalAddr().String()
}

// udpAsk sends text to port on loopback and returns the reply, failing the
// test when none comes within 5 seconds.
func udpAsk(t *testing.T, port uint16, text string) string {
	t.Helper()
	c, err := net.Dial("udp", hostPort(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	k, err := c.Read(buf)
	if err != nil {
		t.Fatalf("port %d: no reply: %v", port, err)
	}
	return string(buf[:k])
}
