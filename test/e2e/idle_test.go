package e2e

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestIdleTimeout: a silent connection is closed after --idle-timeout with
// end=idle-timeout, while connections with traffic every 300 ms, either both
// ways or only from the backend, outlive a 1 s idle timeout several times
// over.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	const interval, ticks = 300 * time.Millisecond, 10 // 3 s of traffic
	flags := []string{"--idle-timeout", "1s"}
	echoBE := startBackend(t, echo)
	slowBE := startBackend(t, trickle(interval, ticks))
	pEcho, addrEcho := launchQuick(t, sluiceBin, flags, echoBE.addr)
	pSlow, addrSlow := launchQuick(t, sluiceBin, flags, slowBE.addr)

	quiet := dial(t, addrEcho)
	if err := roundTrip(quiet, "then silence"); err != nil {
		t.Fatal(err)
	}
	busy := dial(t, addrEcho)
	slow := dial(t, addrSlow)
	slowRead := make(chan error, 1)
	go func() {
		got, err := readAll(slow)
		if err == nil && len(got) != ticks {
			err = fmt.Errorf("read %d bytes, want %d", len(got), ticks)
		}
		if err == nil {
			err = slow.CloseWrite() // both ways done: a clean end
		}
		slowRead <- err
	}()

	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := 0; i < ticks; i++ {
		<-tick.C
		if err := roundTrip(busy, "."); err != nil {
			t.Fatalf("busy connection, tick %d: %v", i, err)
		}
	}
	if err := busy.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := readEnd(busy); n != 0 || err != nil {
		t.Errorf("busy connection end: %d bytes, %v; want EOF", n, err)
	}
	if err := <-slowRead; err != nil {
		t.Errorf("slow backend connection: %v", err)
	}
	if n, err := readEnd(quiet); n != 0 || isTimeout(err) {
		t.Errorf("quiet connection: %d bytes, %v; want it closed by sluice", n, err)
	}
	for _, tc := range []struct {
		p    *proc
		c    net.Conn
		want string
	}{{pEcho, quiet, "idle-timeout"}, {pEcho, busy, "eof"}, {pSlow, slow, "eof"}} {
		if rec := tc.p.wait("access", accessOf(tc.c.LocalAddr())); rec.str("end") != tc.want {
			t.Errorf("access line %v: want end=%s", rec, tc.want)
		}
	}
}
