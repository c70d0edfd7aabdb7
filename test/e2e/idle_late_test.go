package e2e

import (
	"io"
	"net"
	"testing"
	"time"
)

// idleSlack is how late past idle_timeout or drain_timeout sluice may close
// a silent connection (README.md, docs/CONFIG.md); lateMargin is what a
// loaded machine adds to it here.
const (
	idleSlack  = time.Second
	lateMargin = 1500 * time.Millisecond
)

// checkClosedOnTime fails the test unless a connection whose last byte was
// sent at sent and delivered at delivered, and that then stayed silent,
// closed at closed: not before the limit after the byte was sent, and not
// later than the limit, the slack and the margin after it was delivered.
func checkClosedOnTime(t *testing.T, sent, delivered, closed time.Time, limit time.Duration) {
	t.Helper()
	if early := sent.Add(limit).Sub(closed); early > 0 {
		t.Errorf("closed %v after the last byte: %v before the %v limit", closed.Sub(sent), early, limit)
	}
	if late := closed.Sub(delivered) - limit; late > idleSlack+lateMargin {
		t.Errorf("closed %v after the last byte: %v past the %v limit", closed.Sub(delivered), late, limit)
	}
}

// sendByte writes one byte to w and reads it from r within waitLimit, and
// returns when it was sent and when it arrived.
func sendByte(t *testing.T, w, r net.Conn) (sent, delivered time.Time) {
	t.Helper()
	if err := r.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		t.Fatal(err)
	}
	defer r.SetReadDeadline(time.Time{})
	sent = time.Now()
	if _, err := w.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return sent, time.Now()
}

// TestIdleTimeoutNotLate: a connection that moves one byte half a second
// after it opened and then falls silent is closed idle_timeout after that
// byte, not up to twice that (as when a check that came later counted the
// byte as new).
func TestIdleTimeoutNotLate(t *testing.T) {
	t.Parallel()
	const limit = 5 * time.Second
	be, conns := startHandoffBackend(t)
	p, addr := launchQuick(t, sluiceBin, []string{"--idle-timeout", limit.String()}, be.addr)
	c := dial(t, addr)
	bc := next(t, conns)
	time.Sleep(500 * time.Millisecond) // the traffic under test: one byte, late
	sent, delivered := sendByte(t, c, bc)
	if n, err := readEnd(c); n != 0 || err != nil {
		t.Fatalf("connection end: %d bytes, %v; want it closed by sluice", n, err)
	}
	checkClosedOnTime(t, sent, delivered, time.Now(), limit)
	if rec := p.waitAccess(c); rec.str("end") != "idle-timeout" {
		t.Errorf("access line %v: want end=idle-timeout", rec)
	}
}

// TestDrainTimeoutNotLate: after the client's FIN, the backend sends one
// byte half a second later and then nothing: drain_timeout, the idle limit
// of a half-closed connection, counts from that byte.
func TestDrainTimeoutNotLate(t *testing.T) {
	t.Parallel()
	const limit = 5 * time.Second
	be, conns := startHandoffBackend(t)
	p, addr := launchConfig(t, drainConfig(be.addr, limit.String()))
	c := dial(t, addr)
	bc := next(t, conns)
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := readEnd(bc); n != 0 || err != nil {
		t.Fatalf("backend: %d bytes, %v; want the client's FIN", n, err)
	}
	time.Sleep(500 * time.Millisecond) // the traffic under test: one byte, late
	sent, delivered := sendByte(t, bc, c)
	if n, err := readEnd(c); n != 0 || err != nil {
		t.Fatalf("connection end: %d bytes, %v; want it closed by sluice", n, err)
	}
	checkClosedOnTime(t, sent, delivered, time.Now(), limit)
	if rec := p.waitAccess(c); rec.str("end") != "idle-timeout" {
		t.Errorf("access line %v: want end=idle-timeout", rec)
	}
}
