package udp

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// drain runs f's Drain and fails the test if it does not return.
func drain(t *testing.T, f *fixture) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		f.svc.Drain()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatalf("Drain did not return within %v", waitLimit)
	}
}

// TestDrainLetsRepliesFinish stops reading while a backend is still
// answering: the answer reaches the client, a client that sends afterwards
// gets no session, and the session ends "drained" once quiet.
func TestDrainLetsRepliesFinish(t *testing.T) {
	answer := make(chan struct{})
	got := make(chan string, 4)
	be := startBackend(t, "127.0.0.1", func(p []byte) []byte {
		got <- string(p)
		<-answer
		return p
	})
	f := start(t, options{cfg: backends("", be.addr())})
	c, late := client(t, ""), client(t, "")
	if _, err := c.WriteToUDP([]byte("question"), f.addr); err != nil {
		t.Fatal(err)
	}
	if q := <-got; q != "question" {
		t.Fatalf("backend got %q", q)
	}
	f.svc.StopReading()
	if _, err := late.WriteToUDP([]byte("too late"), f.addr); err != nil {
		t.Fatal(err)
	}
	close(answer)
	if reply, err := receive(c, f.addr, make([]byte, 64), waitLimit); err != nil || string(reply) != "question" {
		t.Fatalf("reply %q, %v; want the answer to arrive during the drain", reply, err)
	}
	drain(t, f)
	rec := f.logs.find(accessOf(c.LocalAddr(), "drained"))
	if len(rec) != 1 || rec[0].Int(t, "dgrams_down") != 1 {
		t.Fatalf("access lines %v, want one drained session with the reply", rec)
	}
	if n := len(f.logs.find(accessOf(late.LocalAddr(), ""))); n != 0 || be.sourceCount() != 1 || len(got) != 0 {
		t.Fatalf("the late client got a session (%d lines, backend saw %d sources)", n, be.sourceCount())
	}
}

// TestDrainCutsAtDeadline drains a session whose backend never stops
// sending: it is cut at the drain timeout.
func TestDrainCutsAtDeadline(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	be := startBackend(t, "127.0.0.1", func([]byte) []byte { return nil })
	f := start(t, options{cfg: backends("", be.addr()), rule: Rule{DrainTimeout: 300 * time.Millisecond}})
	c := client(t, "")
	if _, err := c.WriteToUDP([]byte("go"), f.addr); err != nil {
		t.Fatal(err)
	}
	go stream(be.conn, waitSource(t, be), stop)
	if _, err := receive(c, f.addr, make([]byte, 64), waitLimit); err != nil {
		t.Fatal(err)
	}
	f.svc.StopReading()
	drain(t, f)
	rec := f.logs.find(accessOf(c.LocalAddr(), "drained"))
	if len(rec) != 1 || rec[0].Int(t, "dgrams_down") < 1 {
		t.Fatalf("access lines %v, want one drained session", rec)
	}
}

// stream sends a datagram to dst every few milliseconds until stop closes.
func stream(c *net.UDPConn, dst netip.AddrPort, stop <-chan struct{}) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if _, err := c.WriteToUDPAddrPort([]byte("tick"), dst); err != nil {
				return
			}
		}
	}
}

// TestDrainLogsRefusals writes the access lines of remembered refusals at
// once when a drain starts.
func TestDrainLogsRefusals(t *testing.T) {
	f := start(t, options{cfg: backends("", deadAddr(t)), rule: Rule{MaxSessions: -1}})
	f.pool.Backends()[0].ReportFailure(net.ErrClosed)
	f.pool.Backends()[0].ReportFailure(net.ErrClosed)
	f.pool.Backends()[0].ReportFailure(net.ErrClosed)
	c := client(t, "")
	if _, err := c.WriteToUDP([]byte("x"), f.addr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal", func() bool { return f.svc.Stats().Refused == 1 })
	drain(t, f)
	if rec := f.logs.find(accessOf(c.LocalAddr(), "connect-failed")); len(rec) != 1 {
		t.Fatalf("access lines %v, want the refusal's", rec)
	}
}

// TestHotPathAllocatesNothing round-trips datagrams through a live session
// and counts the allocations of the whole process.
func TestHotPathAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates by itself")
	}
	ioModes(t, func(t *testing.T, portable bool) {
		be := startBackend(t, "127.0.0.1", echo)
		f := start(t, options{portable: portable, cfg: backends("", be.addr())})
		c := client(t, "")
		f.mustExchange(t, c, "warm", "warm")
		if err := c.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
			t.Fatal(err)
		}
		to := netip.AddrPortFrom(f.addr.AddrPort().Addr().Unmap(), f.addr.AddrPort().Port())
		msg, buf := []byte("ping"), make([]byte, 64)
		var err error
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err = c.WriteToUDPAddrPort(msg, to); err == nil {
				_, _, err = c.ReadFromUDPAddrPort(buf)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if allocs != 0 {
			t.Fatalf("%v allocations per round trip, want none", allocs)
		}
	})
}
