package backend

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"

	"sluice/internal/testkit/loopback"
)

// startNameRange starts a nameServer on each of n consecutive loopback
// ports, named "p0", "p1", ..., and returns their range as an address.
func startNameRange(t *testing.T, n int) Address {
	t.Helper()
	base := loopback.PortRange(t, n, func(port uint16) (io.Closer, error) {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err != nil {
			return nil, err
		}
		s := &nameServer{name: fmt.Sprintf("p%d", int(port)), ln: ln}
		go s.serve()
		return ln, nil
	})
	return Address{Network: "tcp", Host: "127.0.0.1", Port: base, LastPort: base + uint16(n) - 1}
}

// TestRangedBackendPorts: a backend with a range of ports is connected on
// port i of its range for a client of the rule's port i, by both drivers
// (Dial and Next); a backend of one port takes every port's clients.
func TestRangedBackendPorts(t *testing.T) {
	rng := startNameRange(t, 3)
	single := startNameServer(t, "single", "127.0.0.1:0")
	ranged := NewPool(Settings{Name: "r", Backends: backends([]Address{rng}, nil)}, nil, nil)
	one := NewPool(Settings{Name: "s", Backends: backends([]Address{single.addr}, nil)}, nil, nil)
	client := netip.MustParseAddr("127.0.0.1")
	for i := range uint16(3) {
		want := fmt.Sprintf("p%d", int(rng.Port+i))
		var a Attempts
		ranged.Begin(&a, client, nil, nil)
		a.AtPort(i)
		c, b, err := a.Dial(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := readName(t, c); got != want {
			t.Errorf("Dial for port %d: served by %s, want %s", i, got, want)
		}
		b.Release()
		if got := nextName(t, ranged, i); got != want {
			t.Errorf("Next for port %d: served by %s, want %s", i, got, want)
		}
		if got := nextName(t, one, i); got != "single" {
			t.Errorf("Next for port %d of a single-port backend: served by %s", i, got)
		}
	}
}

// nextName connects to p's backend for port i through Next, as the event
// loop does, and returns the name it sends.
func nextName(t *testing.T, p *Pool, i uint16) string {
	t.Helper()
	var a Attempts
	p.Begin(&a, netip.MustParseAddr("127.0.0.1"), nil, nil)
	a.AtPort(i)
	fd, err := a.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := waitConnect(t, fd); err != nil {
		t.Fatal(err)
	}
	b, err := a.Connected(fd)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	f := os.NewFile(uintptr(fd), "")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	return readName(t, c)
}

// TestRangedBackendHealthPort: a ranged backend is checked on its first
// port, and health_check.port sends every check to that port instead.
func TestRangedBackendHealthPort(t *testing.T) {
	first := startPingServer(t, "tcp", "127.0.0.1:0", "PONG\n")
	rng := first.addr
	rng.LastPort = rng.Port + 1 // the second port need not exist: it is never checked
	other := startPingServer(t, "tcp", "127.0.0.1:0", "PONG\n")
	refused := refusedAddr(t)

	hc := fastCheck()
	p := NewPool(Settings{Name: "first", HealthCheck: hc, Backends: backends([]Address{rng}, nil)}, nil, nil)
	p.Start()
	t.Cleanup(p.Stop)
	waitChecks(t, first, 3)

	hc2 := fastCheck()
	hc2.Port = other.addr.Port
	q := NewPool(Settings{Name: "port", HealthCheck: hc2, Backends: backends([]Address{refused}, nil)}, nil, nil)
	q.Start()
	t.Cleanup(q.Stop)
	waitChecks(t, other, int64(hc2.Fall)*3)
	q.Stop()
	if !q.backends[0].Up() {
		t.Error("a backend whose health_check.port answers was marked down")
	}
}
