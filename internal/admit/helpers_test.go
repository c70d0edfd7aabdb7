package admit

import (
	"net/netip"
	"testing"
	"time"

	"sluice/internal/access"
)

// fakeClock is a clock that moves only when a test says so. It is not safe
// for concurrent use; tests that use it run on one goroutine.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newTestGate returns a gate on a fake clock with the default idle cap.
func newTestGate(p Policy) (*Gate, *fakeClock) {
	clk := newFakeClock()
	return newGate(p, clk.now, defaultMaxIdle), clk
}

// addr parses an address; "" is the zero Addr (a unix-socket client).
func addr(t testing.TB, s string) netip.Addr {
	t.Helper()
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("parse address %q: %v", s, err)
	}
	return a
}

// prefixes parses CIDRs.
func prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatalf("parse prefix %q: %v", s, err)
		}
		out = append(out, p)
	}
	return out
}

// admit asks g for client and fails the test unless it is admitted.
func admit(t testing.TB, g *Gate, client string) Ticket {
	t.Helper()
	tk, r := g.Admit(addr(t, client))
	if r != "" {
		t.Fatalf("Admit(%q) refused with %q, want admitted", client, r)
	}
	if tk.g == nil {
		t.Fatalf("Admit(%q) admitted but returned an empty ticket", client)
	}
	return tk
}

// refuse asks g for client and fails the test unless it is refused for want.
func refuse(t testing.TB, g *Gate, client string, want access.Reason) {
	t.Helper()
	live := g.Live()
	tk, r := g.Admit(addr(t, client))
	if r != want {
		tk.Release()
		t.Fatalf("Admit(%q) = %q, want refused with %q", client, r, want)
	}
	if tk != (Ticket{}) {
		t.Fatalf("Admit(%q) refused but returned a non-zero ticket %+v", client, tk)
	}
	if got := g.Live(); got != live {
		t.Fatalf("refusing %q changed Live from %d to %d", client, live, got)
	}
}

// tracked returns how many client IPs g keeps state for, and how many of
// them are idle.
func tracked(g *Gate) (all, idle int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.clients.m), g.clients.nIdle
}
