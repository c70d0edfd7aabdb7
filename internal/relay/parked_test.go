package relay

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"sluice/internal/access"
)

// newParker returns a parker that is closed when the test ends.
func newParker(t *testing.T) *Parker {
	t.Helper()
	p, err := NewParker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// waitParked waits, boundedly, until n directions are parked.
func waitParked(t *testing.T, p *Parker, n int) {
	t.Helper()
	for i := 0; i < 400 && p.Parked() != n; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if got := p.Parked(); got != n {
		t.Fatalf("%d directions parked, want %d", got, n)
	}
}

// TestParkedRelayWakes: an idle relay gives up both goroutines, and data
// in either direction wakes it again, many times over.
func TestParkedRelayWakes(t *testing.T) {
	parker := newParker(t)
	p := startPair(t, "tcp", Options{Parker: parker, ParkAfter: 20 * time.Millisecond})
	buf := make([]byte, 5)
	for i := 0; i < 5; i++ {
		waitParked(t, parker, 2)
		p.client.Write([]byte("hello"))
		if _, err := io.ReadFull(p.server, buf); err != nil || string(buf) != "hello" {
			t.Fatalf("round %d up: %q %v", i, buf, err)
		}
		waitParked(t, parker, 2)
		p.server.Write([]byte("world"))
		if _, err := io.ReadFull(p.client, buf); err != nil || string(buf) != "world" {
			t.Fatalf("round %d down: %q %v", i, buf, err)
		}
	}
	waitParked(t, parker, 2)
	p.client.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadAll(p.server); err != nil {
		t.Fatal(err)
	}
	p.server.Close()
	if r := p.wait(t); r.End != access.EOF || r.Up != 25 || r.Down != 25 {
		t.Fatalf("result %+v", r)
	}
	waitParked(t, parker, 0)
}

// TestParkedIdleTimeout: the idle limit holds while both directions are parked.
func TestParkedIdleTimeout(t *testing.T) {
	parker := newParker(t)
	p := startPair(t, "tcp", Options{Parker: parker, ParkAfter: 10 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	waitParked(t, parker, 2)
	if r := p.wait(t); r.End != access.IdleTimeout {
		t.Fatalf("result %+v", r)
	}
	waitParked(t, parker, 0)
}

// TestParkedStop: stopping a parked relay finishes it exactly once.
func TestParkedStop(t *testing.T) {
	parker := newParker(t)
	p := startPair(t, "tcp", Options{Parker: parker, ParkAfter: 10 * time.Millisecond})
	waitParked(t, parker, 2)
	p.relay.Stop(access.Drained)
	if r := p.wait(t); r.End != access.Drained {
		t.Fatalf("result %+v", r)
	}
	select {
	case r := <-p.result:
		t.Fatalf("relay finished twice: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
}

// TestParkedReset: a reset reaching a parked relay is passed on.
func TestParkedReset(t *testing.T) {
	parker := newParker(t)
	p := startPair(t, "tcp", Options{Parker: parker, ParkAfter: 10 * time.Millisecond})
	waitParked(t, parker, 2)
	p.server.(*net.TCPConn).SetLinger(0)
	p.server.Close()
	p.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.client.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client got %v, want connection reset", err)
	}
	if r := p.wait(t); r.End != access.Reset {
		t.Fatalf("result %+v", r)
	}
}
