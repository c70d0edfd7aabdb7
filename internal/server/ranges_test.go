package server

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/testkit/loopback"
)

// echoRange starts an echo server on each of n consecutive loopback ports,
// each answering with "p<port>", and returns the first port.
func echoRange(t *testing.T, n int) uint16 {
	t.Helper()
	return loopback.PortRange(t, n, func(port uint16) (io.Closer, error) {
		ln, err := net.Listen("tcp", hostPort(port))
		if err != nil {
			return nil, err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					sc := bufio.NewScanner(c)
					for sc.Scan() {
						fmt.Fprintf(c, "p%d %s\n", port, sc.Text())
					}
				}()
			}
		}()
		return ln, nil
	})
}

// hostPort is the loopback address of port.
func hostPort(port uint16) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))) }

// portRange is "127.0.0.1:first-last" for n ports from first.
func portRange(first uint16, n int) string {
	return fmt.Sprintf("127.0.0.1:%d-%d", first, int(first)+n-1)
}

// refused reports whether nothing accepts on port.
func refused(port uint16) bool {
	c, err := net.DialTimeout("tcp", hostPort(port), time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// TestRangeMapsPorts: each port of a listen range reaches the same port of
// the backend's range.
func TestRangeMapsPorts(t *testing.T) {
	back := echoRange(t, 4)
	base := loopback.FreePorts(t, 4)
	startServer(t, parse(t, ruleTOML("r", portRange(base, 4), portRange(back, 4))))
	for i := range uint16(4) {
		if got, want := dial(t, hostPort(base+i)).ask(t, "x"), fmt.Sprintf("p%d x", back+i); got != want {
			t.Errorf("port %d: %q, want %q", base+i, got, want)
		}
	}
}

// TestRangeBindsAllOrNothing: a range with a port in use fails whole,
// naming that port, and leaves none of its ports bound.
func TestRangeBindsAllOrNothing(t *testing.T) {
	back := echoServer(t, "b")
	base := loopback.FreePorts(t, 6)
	busy, err := net.Listen("tcp", hostPort(base+4))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := New(Options{Logger: slog.New(slog.DiscardHandler)})
	err = s.Start(parse(t, ruleTOML("r", portRange(base, 6), back)))
	want := fmt.Sprintf(`rule "r": listen %s: port %d: address already in use (no port of the range is bound)`, portRange(base, 6), base+4)
	if err == nil || err.Error() != want {
		t.Fatalf("Start: %v\nwant %s", err, want)
	}
	for _, p := range []uint16{base, base + 3, base + 5} {
		if !refused(p) {
			t.Errorf("port %d accepts after the range failed", p)
		}
	}
}

// TestReloadShiftsRange: a reload that shifts a range keeps the sockets
// and connections of the ports in both ranges (and maps them anew), binds
// only the new ports, and closes the ports left out, whose connections
// carry on.
func TestReloadShiftsRange(t *testing.T) {
	back := echoRange(t, 4)
	base := loopback.FreePorts(t, 6)
	srv := startServer(t, parse(t, ruleTOML("r", portRange(base, 4), portRange(back, 4))))
	before := listenersByPort(srv, "r")
	kept, gone := dial(t, hostPort(base+2)), dial(t, hostPort(base))
	kept.ask(t, "hi")
	gone.ask(t, "hi")

	if _, err := srv.Reload(parse(t, ruleTOML("r", portRange(base+2, 4), portRange(back, 4)))); err != nil {
		t.Fatal(err)
	}
	after := listenersByPort(srv, "r")
	for _, p := range []uint16{base + 2, base + 3} {
		if after[p] == nil || after[p] != before[p] {
			t.Errorf("port %d: its listener was not kept", p)
		}
	}
	if len(after) != 4 || after[base] != nil || after[base+5] == nil {
		t.Errorf("listeners on %v after the shift", keys(after))
	}
	if !refused(base) || !refused(base+1) {
		t.Error("a port left out of the range still accepts")
	}
	if got, want := kept.ask(t, "x"), fmt.Sprintf("p%d x", back+2); got != want {
		t.Errorf("live connection on a kept port: %q, want %q", got, want)
	}
	if got, want := gone.ask(t, "x"), fmt.Sprintf("p%d x", back); got != want {
		t.Errorf("live connection on a port left out: %q, want %q", got, want)
	}
	for i := range uint16(4) {
		if got, want := dial(t, hostPort(base+2+i)).ask(t, "y"), fmt.Sprintf("p%d y", back+i); got != want {
			t.Errorf("port %d after the shift: %q, want %q", base+2+i, got, want)
		}
	}
}

// listenersByPort returns the TCP listeners of the running rule name, by
// port.
func listenersByPort(s *Server, name string) map[uint16]net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint16]net.Listener{}
	for _, r := range s.rules {
		if r.cfg.Name == name {
			for _, ln := range r.lns {
				out[portOf(ln.Addr())] = ln
			}
		}
	}
	return out
}

// keys lists a map's ports, for messages.
func keys(m map[uint16]net.Listener) string {
	var b strings.Builder
	for p := range m {
		fmt.Fprintf(&b, " %d", p)
	}
	return b.String()
}
