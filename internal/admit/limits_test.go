package admit

import (
	"fmt"
	"testing"
	"time"
)

func TestMaxConnections(t *testing.T) {
	for _, n := range []int{1, 3, 10} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			g, _ := newTestGate(Policy{MaxConnections: n})
			held := make([]Ticket, n)
			for i := range held {
				held[i] = admit(t, g, fmt.Sprintf("192.0.2.%d", i+1))
			}
			if g.Live() != n {
				t.Fatalf("Live = %d, want %d", g.Live(), n)
			}
			refuse(t, g, "198.51.100.1", ReasonMaxConnections)
			refuse(t, g, "2001:db8::1", ReasonMaxConnections)
			refuse(t, g, "", ReasonMaxConnections)

			held[0].Release()
			held[0] = admit(t, g, "198.51.100.1")
			refuse(t, g, "198.51.100.2", ReasonMaxConnections)

			for i := range held {
				held[i].Release()
			}
			if g.Live() != 0 {
				t.Fatalf("Live = %d after releasing everything", g.Live())
			}
			if all, _ := tracked(g); all != 0 {
				t.Fatalf("%d clients tracked after every ticket was released", all)
			}
		})
	}
}

func TestMaxConnectionsPerIP(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			g, _ := newTestGate(Policy{MaxConnectionsPerIP: n})
			var held []Ticket
			// Plain and IPv4-mapped forms of one address are one client.
			for i := range n {
				c := "192.0.2.1"
				if i%2 == 1 {
					c = "::ffff:192.0.2.1"
				}
				held = append(held, admit(t, g, c))
			}
			refuse(t, g, "192.0.2.1", ReasonMaxConnectionsPerIP)
			refuse(t, g, "::ffff:192.0.2.1", ReasonMaxConnectionsPerIP)

			// Other clients are unaffected.
			other := admit(t, g, "192.0.2.2")
			v6 := admit(t, g, "2001:db8::1")

			held[n-1].Release()
			held[n-1] = admit(t, g, "192.0.2.1")
			refuse(t, g, "192.0.2.1", ReasonMaxConnectionsPerIP)

			for i := range held {
				held[i].Release()
			}
			other.Release()
			v6.Release()
			if g.Live() != 0 {
				t.Fatalf("Live = %d after releasing everything", g.Live())
			}
			if all, _ := tracked(g); all != 0 {
				t.Fatalf("%d clients tracked after every ticket was released", all)
			}
		})
	}
}

// TestPerIPZonesAreOneClient: an IPv6 zone does not make a new client.
func TestPerIPZonesAreOneClient(t *testing.T) {
	g, _ := newTestGate(Policy{MaxConnectionsPerIP: 1})
	tk := admit(t, g, "fe80::1%eth0")
	defer tk.Release()
	refuse(t, g, "fe80::1%eth1", ReasonMaxConnectionsPerIP)
	refuse(t, g, "fe80::1", ReasonMaxConnectionsPerIP)
}

// TestUnixClients: clients without an IP skip per-IP limits but count
// toward MaxConnections.
func TestUnixClients(t *testing.T) {
	g, _ := newTestGate(Policy{MaxConnections: 3, MaxConnectionsPerIP: 1, RatePerIP: 1})
	a := admit(t, g, "")
	b := admit(t, g, "")
	c := admit(t, g, "192.0.2.1")
	refuse(t, g, "", ReasonMaxConnections)
	refuse(t, g, "192.0.2.2", ReasonMaxConnections)
	if all, _ := tracked(g); all != 1 {
		t.Fatalf("%d clients tracked, want 1: unix clients keep no per-IP state", all)
	}
	a.Release()
	a = admit(t, g, "")
	for _, tk := range []*Ticket{&a, &b, &c} {
		tk.Release()
	}
	if g.Live() != 0 {
		t.Fatalf("Live = %d after releasing everything", g.Live())
	}
}

// TestReleaseIdempotent: releasing one ticket twice gives back one slot, and
// the zero ticket gives back none.
func TestReleaseIdempotent(t *testing.T) {
	g, _ := newTestGate(Policy{MaxConnections: 3, MaxConnectionsPerIP: 2})
	a := admit(t, g, "192.0.2.1")
	b := admit(t, g, "192.0.2.1")
	u := admit(t, g, "")
	a.Release()
	a.Release()
	var zero Ticket
	zero.Release()
	if g.Live() != 2 {
		t.Fatalf("Live = %d, want 2 after releasing one of three tickets twice", g.Live())
	}
	a = admit(t, g, "192.0.2.1")
	refuse(t, g, "192.0.2.1", ReasonMaxConnectionsPerIP)
	refuse(t, g, "192.0.2.2", ReasonMaxConnections)
	u.Release()
	u.Release()
	if g.Live() != 2 {
		t.Fatalf("Live = %d, want 2 after releasing the unix ticket twice", g.Live())
	}
	a.Release()
	b.Release()
	b.Release()
	if g.Live() != 0 {
		t.Fatalf("Live = %d after releasing everything", g.Live())
	}
}

// TestReasonOrder: with several limits hit at once, the most specific
// reason is reported.
func TestReasonOrder(t *testing.T) {
	g, clk := newTestGate(Policy{
		Deny:                prefixes(t, "192.0.2.9/32"),
		MaxConnections:      1,
		MaxConnectionsPerIP: 1,
		RatePerIP:           1,
	})
	tk := admit(t, g, "192.0.2.1")
	defer tk.Release()
	// Per-IP, rule-wide and rate all refuse 192.0.2.1; rate is reported.
	refuse(t, g, "192.0.2.1", ReasonRateLimited)
	clk.advance(time.Second)
	// The bucket has refilled: per-IP and rule-wide remain.
	refuse(t, g, "192.0.2.1", ReasonMaxConnectionsPerIP)
	refuse(t, g, "192.0.2.2", ReasonMaxConnections)
	refuse(t, g, "192.0.2.9", ReasonDenied)
}

func TestUpdateKeepsCounts(t *testing.T) {
	g, _ := newTestGate(Policy{})
	held := []Ticket{
		admit(t, g, "192.0.2.1"),
		admit(t, g, "192.0.2.1"),
		admit(t, g, "192.0.2.2"),
	}

	g.Update(Policy{MaxConnections: 2, MaxConnectionsPerIP: 2})
	if g.Live() != 3 {
		t.Fatalf("Live = %d after Update, want 3", g.Live())
	}
	refuse(t, g, "192.0.2.3", ReasonMaxConnections)
	held[2].Release()
	refuse(t, g, "192.0.2.3", ReasonMaxConnections)

	g.Update(Policy{MaxConnections: 10, MaxConnectionsPerIP: 2})
	// Connections admitted before the per-IP limit existed still count.
	refuse(t, g, "192.0.2.1", ReasonMaxConnectionsPerIP)
	held[2] = admit(t, g, "192.0.2.3")

	g.Update(Policy{Allow: prefixes(t, "192.0.2.3/32")})
	refuse(t, g, "192.0.2.1", ReasonDenied)
	extra := admit(t, g, "192.0.2.3")

	// Tickets from before the updates release into the same counts.
	for i := range held {
		held[i].Release()
	}
	extra.Release()
	if g.Live() != 0 {
		t.Fatalf("Live = %d after releasing everything", g.Live())
	}
	if all, _ := tracked(g); all != 0 {
		t.Fatalf("%d clients tracked after every ticket was released", all)
	}
}

func TestNegativeLimitsMeanUnlimited(t *testing.T) {
	g, _ := newTestGate(Policy{MaxConnections: -1, MaxConnectionsPerIP: -5, RatePerIP: -2})
	var held []Ticket
	for range 50 {
		held = append(held, admit(t, g, "192.0.2.1"))
	}
	for i := range held {
		held[i].Release()
	}
}

// TestUpdateBetweenCheckAndLock: the ACL check and the clock read run before
// the gate's lock is taken. An Update that lands in between is still obeyed
// by the Admit or Release in flight. The clock hook runs the Update exactly
// in that window.
func TestUpdateBetweenCheckAndLock(t *testing.T) {
	clk := newFakeClock()
	var hook func()
	now := func() time.Time {
		if h := hook; h != nil {
			hook = nil
			h()
		}
		return clk.now()
	}
	g := newGate(Policy{RatePerIP: 1}, now, defaultMaxIdle)

	hook = func() { g.Update(Policy{RatePerIP: 1, Deny: prefixes(t, "192.0.2.0/24")}) }
	refuse(t, g, "192.0.2.1", ReasonDenied)
	if hook != nil {
		t.Fatal("Admit did not read the clock; the test no longer covers the window")
	}

	g.Update(Policy{RatePerIP: 1})
	tk := admit(t, g, "192.0.2.1")
	hook = func() { g.Update(Policy{}) }
	tk.Release()
	if hook != nil {
		t.Fatal("Release did not read the clock; the test no longer covers the window")
	}
	// Under the new policy there is no bucket to remember.
	if all, _ := tracked(g); all != 0 {
		t.Fatalf("tracked %d clients after release under a policy without a rate, want 0", all)
	}
}

// TestPerIPPrefixV6: with a prefix length set, the IPv6 addresses of one
// prefix are one client for the per-IP limits (connections and rate), the
// ACL still sees each whole address, and IPv4 clients are unaffected.
func TestPerIPPrefixV6(t *testing.T) {
	g, clk := newTestGate(Policy{
		MaxConnectionsPerIP: 2, RatePerIP: 3, PerIPPrefixV6: 64,
		Deny: prefixes(t, "2001:db8:1:1::dead/128"),
	})
	a := admit(t, g, "2001:db8:1:1::1")
	b := admit(t, g, "2001:db8:1:1:ffff::2")
	refuse(t, g, "2001:db8:1:1::3", ReasonMaxConnectionsPerIP)
	refuse(t, g, "2001:db8:1:1::dead", ReasonDenied)
	other := admit(t, g, "2001:db8:1:2::1") // the next /64
	v4a, v4b := admit(t, g, "192.0.2.1"), admit(t, g, "192.0.2.2")

	// The /64 has used 2 of its 3 tokens; freeing a slot leaves it one.
	a.Release()
	c := admit(t, g, "2001:db8:1:1::4")
	c.Release()
	refuse(t, g, "2001:db8:1:1::5", ReasonRateLimited)
	clk.advance(time.Second)
	c = admit(t, g, "2001:db8:1:1::5")

	for _, tk := range []Ticket{b, c, other, v4a, v4b} {
		tk.Release()
	}
	if g.Live() != 0 {
		t.Fatalf("Live = %d after releasing everything", g.Live())
	}

	// The whole address (the default) keeps every address its own client.
	g, _ = newTestGate(Policy{MaxConnectionsPerIP: 1})
	a = admit(t, g, "2001:db8:1:1::1")
	b = admit(t, g, "2001:db8:1:1::2")
	refuse(t, g, "2001:db8:1:1::1", ReasonMaxConnectionsPerIP)
	a.Release()
	b.Release()
}
