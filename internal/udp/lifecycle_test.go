package udp

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"sluice/internal/admit"
	"sluice/internal/backend"
)

// nothingWaiting fails the test when a datagram is waiting on c.
func nothingWaiting(t *testing.T, c *net.UDPConn) {
	t.Helper()
	if got, err := receive(c, &net.UDPAddr{}, make([]byte, 512), time.Millisecond); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("%s: got %q (%v), want nothing", c.LocalAddr(), got, err)
	}
}

// TestSessionExpiresAndIsRecreated checks that an idle session ends with
// its access line and releases its backend socket, and that the client's
// next datagram opens a new session with a new socket. The timeout is
// longer than exchange's resend interval, so that a datagram sent again
// goes to the same session.
func TestSessionExpiresAndIsRecreated(t *testing.T) {
	be := startBackend(t, "127.0.0.1", echo)
	f := start(t, options{cfg: backends("", be.addr()), rule: Rule{SessionTimeout: time.Second}})
	c := client(t, "")
	f.mustExchange(t, c, "one", "one")
	rec := f.logs.waitN(t, 1, "the first session's end", accessOf(c.LocalAddr(), "idle-timeout"))[0]
	if (f.lossFree() && (rec.Int(t, "up") != 3 || rec.Int(t, "down") != 3 || rec.Int(t, "dgrams_up") != 1 || rec.Int(t, "dgrams_down") != 1)) ||
		rec.Attrs["proto"] != "udp" || rec.Attrs["rule"] != "test" || rec.Attrs["backend"] != be.addr().String() {
		t.Fatalf("access line %v", rec.Attrs)
	}
	if st := f.svc.Stats(); st.Sessions != 0 || f.table.Len() != 0 {
		t.Fatalf("after expiry: %d sessions, %d in the table", st.Sessions, f.table.Len())
	}
	if n := f.pool.Backends()[0].Active(); n != 0 {
		t.Fatalf("backend still counts %d active sessions", n)
	}
	f.mustExchange(t, c, "two", "two")
	if n := be.sourceCount(); n != 2 {
		t.Fatalf("backend saw %d source sockets, want 2: one per session", n)
	}
	f.logs.waitN(t, 2, "the second session's end", accessOf(c.LocalAddr(), "idle-timeout"))
}

// TestTrafficEitherWayKeepsSessionAlive sends for longer than the session
// timeout, first from the client, then only from the backend, and checks
// that each is one session.
func TestTrafficEitherWayKeepsSessionAlive(t *testing.T) {
	const timeout, gap, count = 600 * time.Millisecond, 50 * time.Millisecond, 30
	t.Run("client", func(t *testing.T) {
		be := startBackend(t, "127.0.0.1", echo)
		f := start(t, options{cfg: backends("", be.addr()), rule: Rule{SessionTimeout: timeout}})
		c := client(t, "")
		tick := time.NewTicker(gap)
		defer tick.Stop()
		for range count {
			f.mustExchange(t, c, "x", "x")
			<-tick.C
		}
		rec := f.logs.waitN(t, 1, "the session's end", accessOf(c.LocalAddr(), "idle-timeout"))
		if len(rec) != 1 || rec[0].Int(t, "dgrams_up") < count || be.sourceCount() != 1 {
			t.Fatalf("want one session of %d datagrams; access lines %v", count, rec)
		}
	})
	t.Run("backend", func(t *testing.T) {
		be := startBackend(t, "127.0.0.1", func([]byte) []byte { return nil })
		f := start(t, options{cfg: backends("", be.addr()), rule: Rule{SessionTimeout: timeout}})
		c := client(t, "")
		if _, err := c.WriteToUDP([]byte("start"), f.addr); err != nil {
			t.Fatal(err)
		}
		src := waitSource(t, be)
		tick := time.NewTicker(gap)
		defer tick.Stop()
		buf := make([]byte, 64)
		sent := 0
		for received := 0; received < count; {
			if sent == maxSends*count {
				t.Fatalf("the client received %d of %d datagrams", received, sent)
			}
			if _, err := be.conn.WriteToUDPAddrPort([]byte("tick"), src); err != nil {
				t.Fatal(err)
			}
			sent++
			if _, err := receive(c, f.addr, buf, resendAfter); err == nil {
				received++
			}
			<-tick.C
		}
		rec := f.logs.waitN(t, 1, "the session's end", accessOf(c.LocalAddr(), "idle-timeout"))
		if down := rec[0].Int(t, "dgrams_down"); len(rec) != 1 || down < count || down > int64(sent) || rec[0].Int(t, "dgrams_up") != 1 {
			t.Fatalf("want one session with %d datagrams down; access lines %v", count, rec)
		}
	})
}

// waitSource waits for the backend's first datagram and returns its source.
func waitSource(t *testing.T, be *udpBackend) netip.AddrPort {
	t.Helper()
	select {
	case src := <-be.first:
		return src
	case <-time.After(waitLimit):
		t.Fatal("the backend received nothing")
		return netip.AddrPort{}
	}
}

// TestSessionCap refuses a client past max_sessions: its datagrams are
// dropped, it is logged once, and it gets through once a session has ended.
// The sessions have the default timeout, so none expires by itself while
// the test runs, however slowly: the cap is certainly full while the third
// client sends, and the refusal is remembered (five seconds) past its last
// datagram. An operator's close makes room.
func TestSessionCap(t *testing.T) {
	be := startBackend(t, "127.0.0.1", echo)
	f := start(t, options{cfg: backends("", be.addr()), rule: Rule{MaxSessions: 2}})
	c1, c2, c3 := client(t, ""), client(t, ""), client(t, "")
	f.mustExchange(t, c1, "a", "a")
	f.mustExchange(t, c2, "b", "b")
	for range 3 {
		if _, err := c3.WriteToUDP([]byte("c"), f.addr); err != nil {
			t.Fatal(err)
		}
	}
	rec := f.logs.waitN(t, 1, "the refusal", accessOf(c3.LocalAddr(), "rejected:max-sessions"))
	if len(rec) != 1 || rec[0].Int(t, "dropped") != 3 || rec[0].Int(t, "up") != 0 || rec[0].Attrs["backend"] != "" {
		t.Fatalf("want one refusal line with 3 datagrams dropped; got %v", rec)
	}
	nothingWaiting(t, c3)
	if st := f.svc.Stats(); st.Rejected[string(ReasonMaxSessions)] != 1 || st.Dropped != 3 {
		t.Fatalf("stats %+v: want one max-sessions rejection, 3 dropped", st)
	}
	if !f.table.Stop(entryOf(t, f, c1), "closed") {
		t.Fatal("c1's session was not in the table")
	}
	f.logs.waitN(t, 1, "c1's end", accessOf(c1.LocalAddr(), "closed"))
	f.mustExchange(t, c3, "c", "c")
}

// entryOf returns the id of c's session in f's connection table.
func entryOf(t *testing.T, f *fixture, c *net.UDPConn) uint64 {
	t.Helper()
	for _, snap := range f.table.Snapshots() {
		if snap.Client == clientName(c.LocalAddr()) {
			return snap.ID
		}
	}
	t.Fatalf("no session of %s in the table", c.LocalAddr())
	return 0
}

// TestAdmissionGate refuses a denied client, once per refusal memory,
// while others pass. The refusal memory (the session timeout here) is long
// enough that all five datagrams, sent at once, fall in one on a loaded
// machine too.
func TestAdmissionGate(t *testing.T) {
	be := startBackend(t, "127.0.0.1", echo)
	gate := admit.NewGate(admit.Policy{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	f := start(t, options{cfg: backends("", be.addr()), rule: Rule{SessionTimeout: 2 * time.Second, Gate: gate}})
	denied, allowed := client(t, "127.0.0.2"), client(t, "127.0.0.1")
	for range 5 {
		if _, err := denied.WriteToUDP([]byte("let me in"), f.addr); err != nil {
			t.Fatal(err)
		}
	}
	f.mustExchange(t, allowed, "hi", "hi")
	rec := f.logs.waitN(t, 1, "the refusal", accessOf(denied.LocalAddr(), "rejected:denied"))
	if len(rec) != 1 || rec[0].Int(t, "dropped") != 5 {
		t.Fatalf("want one refusal line with 5 dropped; got %v", rec)
	}
	if be.sourceCount() != 1 {
		t.Fatalf("the backend saw %d sessions, want 1", be.sourceCount())
	}
	f.logs.waitN(t, 1, "the allowed session's end", accessOf(allowed.LocalAddr(), "idle-timeout"))
	if n := gate.Live(); n != 0 {
		t.Fatalf("the gate holds %d tickets after every session ended", n)
	}
	if _, err := denied.WriteToUDP([]byte("again"), f.addr); err != nil {
		t.Fatal(err)
	}
	f.logs.waitN(t, 2, "the second refusal", accessOf(denied.LocalAddr(), "rejected:denied"))
}

// TestBackendRefusesWithICMP sends to a port nobody listens on: each session
// ends connect-failed with the ICMP error and counts against the backend,
// which goes down after three; then the client is refused for want of a
// backend, once (both its datagrams, sent at once, fall in one refusal
// memory of 2 s).
func TestBackendRefusesWithICMP(t *testing.T) {
	f := start(t, options{cfg: backends("", deadAddr(t)), rule: Rule{SessionTimeout: 2 * time.Second}})
	c := client(t, "")
	b := f.pool.Backends()[0]
	for i := 1; i <= 3; i++ {
		if _, err := c.WriteToUDP([]byte("anyone?"), f.addr); err != nil {
			t.Fatal(err)
		}
		rec := f.logs.waitN(t, i, "a failed session", accessOf(c.LocalAddr(), "connect-failed"))[i-1]
		if !strings.Contains(rec.Attrs["error"], "connection refused") || rec.Int(t, "dgrams_up") != 1 {
			t.Fatalf("session %d: access line %v, want the ICMP refusal", i, rec.Attrs)
		}
	}
	if b.Up() || b.ConnectErrors() != 3 {
		t.Fatalf("backend up=%v with %d connect errors; want down after 3", b.Up(), b.ConnectErrors())
	}
	for range 2 {
		if _, err := c.WriteToUDP([]byte("anyone?"), f.addr); err != nil {
			t.Fatal(err)
		}
	}
	rec := f.logs.waitN(t, 4, "the refusal for want of a backend", accessOf(c.LocalAddr(), "connect-failed"))[3]
	if !strings.Contains(rec.Attrs["error"], backend.ErrNoBackend.Error()) || rec.Int(t, "dropped") != 2 {
		t.Fatalf("access line %v, want no usable backend, 2 dropped", rec.Attrs)
	}
	if b.Active() != 0 {
		t.Fatalf("backend counts %d active sessions", b.Active())
	}
}

// TestICMPFailsOverToNextBackend: with balance "first", a refusing first
// backend is taken out after three refusals and the second one answers.
func TestICMPFailsOverToNextBackend(t *testing.T) {
	good := startBackend(t, "127.0.0.1", echo)
	f := start(t, options{cfg: backends("first", deadAddr(t), good.addr())})
	c := client(t, "")
	for i := 1; i <= 3; i++ {
		if _, err := c.WriteToUDP([]byte("q"), f.addr); err != nil {
			t.Fatal(err)
		}
		f.logs.waitN(t, i, "a refused session", accessOf(c.LocalAddr(), "connect-failed"))
	}
	f.mustExchange(t, c, "q", "q")
	if bs := f.pool.Backends(); bs[0].Up() || !bs[1].Up() {
		t.Fatalf("first backend up=%v, second up=%v; want down, up", bs[0].Up(), bs[1].Up())
	}
}

// TestOperatorClose ends a session through the connection table.
func TestOperatorClose(t *testing.T) {
	be := startBackend(t, "127.0.0.1", echo)
	f := start(t, options{cfg: backends("", be.addr())})
	c := client(t, "")
	f.mustExchange(t, c, "hello", "hello")
	// The reply is counted once sent, which may be after it arrived.
	waitFor(t, "the exchange to be counted", func() bool { st := f.svc.Stats(); return st.BytesUp == 5 && st.BytesDown == 5 })
	snaps := f.table.Snapshots()
	if len(snaps) != 1 || snaps[0].Proto != "udp" || snaps[0].Client != clientName(c.LocalAddr()) || snaps[0].Up != 5 || snaps[0].Down != 5 {
		t.Fatalf("table %+v", snaps)
	}
	if !f.table.Stop(snaps[0].ID, "closed") {
		t.Fatal("the session was not in the table")
	}
	f.logs.waitN(t, 1, "the closed session", accessOf(c.LocalAddr(), "closed"))
	f.mustExchange(t, c, "again", "again")
}

// TestQueuedWhileResolving holds a backend name's resolution while the
// client sends, and checks that the queued datagrams arrive in order once it
// resolves; a name that fails to resolve ends the session connect-failed.
func TestQueuedWhileResolving(t *testing.T) {
	be := startBackend(t, "127.0.0.1", echo)
	release := make(chan struct{})
	lookup := func(ctx context.Context, host string) ([]netip.Addr, error) {
		if host != "backend.test" {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		select {
		case <-release:
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	named := backend.Address{Network: "tcp", Host: "backend.test", Port: be.addr().Port}
	f := start(t, options{cfg: backends("", named), resolver: backend.NewResolver(lookup, nil)})
	c := client(t, "")
	for _, m := range []string{"1", "2", "3"} {
		if _, err := c.WriteToUDP([]byte(m), f.addr); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "3 datagrams queued", func() bool { return sessionOf(f, c) != nil && queued(sessionOf(f, c)) == 3 })
	close(release)
	buf := make([]byte, 16)
	for _, want := range []string{"1", "2", "3"} {
		got, err := receive(c, f.addr, buf, waitLimit)
		if err != nil || string(got) != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	}

	bad := start(t, options{cfg: backends("", backend.Address{Network: "tcp", Host: "nowhere.test", Port: 53}), resolver: backend.NewResolver(lookup, nil)})
	if _, err := c.WriteToUDP([]byte("x"), bad.addr); err != nil {
		t.Fatal(err)
	}
	rec := bad.logs.waitN(t, 1, "the failed session", accessOf(c.LocalAddr(), "connect-failed"))[0]
	if !strings.Contains(rec.Attrs["error"], "no such host") || rec.Int(t, "dropped") != 1 {
		t.Fatalf("access line %v", rec.Attrs)
	}
}

// sessionOf returns c's session in f, or nil.
func sessionOf(f *fixture, c *net.UDPConn) *session {
	for _, m := range membersOf(f) {
		m.mu.Lock()
		for k, ss := range m.sessions {
			if k.client().String() == clientName(c.LocalAddr()) {
				m.mu.Unlock()
				return ss
			}
		}
		m.mu.Unlock()
	}
	return nil
}

// queued returns how many datagrams ss holds for its backend.
func queued(ss *session) int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.pending)
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", waitLimit, what)
		}
		time.Sleep(time.Millisecond)
	}
}
