package relay

import (
	"io"
	"net"
	"testing"
	"time"

	"sluice/internal/access"
)

// idleSlack is how late past its limit an idle or half-close timeout may
// close a relay: the slack that README.md and docs/CONFIG.md promise.
const idleSlack = time.Second

// carrier is one way a relay can carry its directions while they wait for
// data: a goroutine each, parked goroutines, an engine's loop, or (for
// connections relay cannot drive directly) the net package's reads.
type carrier struct {
	name  string
	opts  func(t *testing.T) Options
	plain bool // the relay sees wrapped connections, not sockets
}

// carriers are the ways a relay may wait that the platform has.
var carriers = []carrier{
	{name: "goroutines", opts: func(*testing.T) Options { return Options{} }},
	{name: "parked", opts: func(t *testing.T) Options {
		return Options{Parker: newParker(t), ParkAfter: 10 * time.Millisecond}
	}},
	{name: "engine", opts: func(t *testing.T) Options { return Options{Engine: newEngine(t, 1)} }},
	{name: "net", opts: func(*testing.T) Options { return Options{} }, plain: true},
}

// wrapped hides a TCP connection's socket from the relay, which then reads
// and writes through the net package (as for a connection whose PROXY
// header was read through a buffer).
type wrapped struct{ *net.TCPConn }

// start starts a relay over TCP that this carrier carries, with limits.
func (c carrier) start(t *testing.T, limits Options) *pair {
	t.Helper()
	opts := c.opts(t)
	opts.IdleTimeout, opts.HalfCloseTimeout = limits.IdleTimeout, limits.HalfCloseTimeout
	client, front := connPair(t, "tcp")
	back, server := connPair(t, "tcp")
	if c.plain {
		front, back = wrapped{front.(*net.TCPConn)}, wrapped{back.(*net.TCPConn)}
	}
	return startPairOf(t, client, front, back, server, opts)
}

// eachCarrier runs test, in parallel, on every carrier: each waits out a
// timeout of seconds.
func eachCarrier(t *testing.T, test func(t *testing.T, c carrier)) {
	for _, c := range carriers {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			test(t, c)
		})
	}
}

// checkOnTime fails the test unless a relay whose last byte was sent at
// sent and delivered at delivered, and that then stayed silent, closed at
// closed: no earlier than the limit after the byte was sent, and no later
// than the limit and the slack after it was delivered.
func checkOnTime(t *testing.T, sent, delivered, closed time.Time, limit time.Duration) {
	t.Helper()
	if early := sent.Add(limit).Sub(closed); early > 0 {
		t.Errorf("closed %v after the last byte: %v before the limit", closed.Sub(sent), early)
	}
	if late := closed.Sub(delivered) - limit; late > idleSlack {
		t.Errorf("closed %v after the last byte: %v past the %v limit, more than the %v slack",
			closed.Sub(delivered), late, limit, idleSlack)
	}
}

// transfer writes one byte to w and reads it from r, and returns when it
// was sent and when it arrived.
func transfer(t *testing.T, w, r net.Conn) (sent, delivered time.Time) {
	t.Helper()
	sent = time.Now()
	if _, err := w.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return sent, time.Now()
}

// TestIdleTimeoutOnTime: a relay that moves one byte a while after it
// started, and then nothing, closes the idle limit after that byte, not
// when a check that came later noticed it.
func TestIdleTimeoutOnTime(t *testing.T) { eachCarrier(t, testIdleTimeoutOnTime) }

func testIdleTimeoutOnTime(t *testing.T, c carrier) {
	const limit = 2 * time.Second
	p := c.start(t, Options{IdleTimeout: limit})
	time.Sleep(300 * time.Millisecond) // the traffic under test: one byte, late
	sent, delivered := transfer(t, p.client, p.server)
	r := p.wait(t)
	closed := time.Now()
	if r.End != access.IdleTimeout || r.Up != 1 {
		t.Fatalf("result %+v, want idle-timeout after 1 byte", r)
	}
	checkOnTime(t, sent, delivered, closed, limit)
}

// TestHalfCloseTimeoutOnTime: after the client's FIN, the backend answers
// with one byte a while later, and then nothing: the half-close limit
// counts from that byte.
func TestHalfCloseTimeoutOnTime(t *testing.T) { eachCarrier(t, testHalfCloseTimeoutOnTime) }

func testHalfCloseTimeoutOnTime(t *testing.T, c carrier) {
	const limit = 2 * time.Second
	p := c.start(t, Options{IdleTimeout: time.Hour, HalfCloseTimeout: limit})
	if err := p.client.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := p.server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("backend read %d bytes, %v; want the client's FIN", n, err)
	}
	time.Sleep(300 * time.Millisecond) // the traffic under test: one byte, late
	sent, delivered := transfer(t, p.server, p.client)
	r := p.wait(t)
	closed := time.Now()
	if r.End != access.IdleTimeout || r.Down != 1 {
		t.Fatalf("result %+v, want idle-timeout after 1 byte down", r)
	}
	checkOnTime(t, sent, delivered, closed, limit)
}

// TestHalfCloseCountsFromFIN: a FIN is activity. A connection silent for
// longer than the half-close limit and then half-closed stays open for the
// limit after the FIN, so that the other side has that long to answer.
func TestHalfCloseCountsFromFIN(t *testing.T) { eachCarrier(t, testHalfCloseCountsFromFIN) }

func testHalfCloseCountsFromFIN(t *testing.T, c carrier) {
	const limit = time.Second
	p := c.start(t, Options{IdleTimeout: time.Hour, HalfCloseTimeout: limit})
	transfer(t, p.client, p.server)
	time.Sleep(limit + 500*time.Millisecond) // the traffic under test: silence, then a FIN
	sent := time.Now()
	if err := p.client.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := p.server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("backend read %d bytes, %v; want the client's FIN", n, err)
	}
	delivered := time.Now()
	r := p.wait(t)
	closed := time.Now()
	if r.End != access.IdleTimeout {
		t.Fatalf("result %+v, want idle-timeout", r)
	}
	checkOnTime(t, sent, delivered, closed, limit)
}
