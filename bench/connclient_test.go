package main

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestConnCycleAlloc: the connection-rate client must stay cheap, or it,
// not the forwarder, bounds the figure.
func TestConnCycleAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates by itself")
	}
	bk := testBackends(t)
	target, err := newConnTarget(bk.addr(echoBackend))
	if err != nil {
		t.Fatal(err)
	}
	msg, buf := randomMsg(), make([]byte, msgSize)
	deadline := time.Now().Add(replyTimeout)
	allocs := testing.AllocsPerRun(200, func() {
		if err := target.cycle(msg, buf, deadline); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.1f allocations per connection cycle", allocs)
	if allocs > maxCycleAllocs {
		t.Fatalf("%.1f allocations per connection cycle, want at most %d", allocs, maxCycleAllocs)
	}
}

// maxCycleAllocs bounds the allocations per connection cycle, both ends
// together: the client's os.File (2) and the echo backend's accepted
// net.TCPConn with its addresses (7). With net.Dial the cycle took 32.
const maxCycleAllocs = 10

// TestNewConnTarget: the client connects to IPv4 and IPv6 loopback
// addresses, and rejects what is not an address and port.
func TestNewConnTarget(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Logf("no %s here: %v", addr, err)
			continue
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
		target, err := newConnTarget(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		msg, buf := randomMsg(), make([]byte, msgSize)
		if err := target.cycle(msg, buf, time.Now().Add(replyTimeout)); err != nil {
			t.Errorf("%s: %v", ln.Addr(), err)
		}
	}
	if _, err := newConnTarget("localhost:80"); err == nil {
		t.Error("a host name was taken for an address")
	}
}
