package udp

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"

	"sluice/internal/admit"
)

// clientsFrom opens perHost client sockets on each of the loopback hosts
// 127.0.0.1 to 127.0.0.hosts, so that the kernel spreads them over the
// sockets of a group by address and port.
func clientsFrom(t *testing.T, hosts, perHost int) []*net.UDPConn {
	var conns []*net.UDPConn
	for h := 1; h <= hosts; h++ {
		for range perHost {
			conns = append(conns, client(t, fmt.Sprintf("127.0.0.%d", h)))
		}
	}
	return conns
}

// membersOf returns the members of f's service.
func membersOf(f *fixture) []*member {
	f.svc.mu.Lock()
	defer f.svc.mu.Unlock()
	return f.svc.members
}

// memberOf returns the member holding c's session or refusal, and that
// record; nil when none does. It fails the test when more than one does.
func memberOf(t *testing.T, f *fixture, c *net.UDPConn) (*member, *session) {
	t.Helper()
	var found *member
	var rec *session
	name := clientName(c.LocalAddr())
	for _, m := range membersOf(f) {
		m.mu.Lock()
		for k, ss := range m.sessions {
			if k.client().String() == name {
				if found != nil {
					t.Errorf("%s has records on two members", name)
				}
				found, rec = m, ss
			}
		}
		m.mu.Unlock()
	}
	return found, rec
}

// TestLoopsShareARule serves clients from many addresses and ports through
// a group of three sockets, each with its own loop: every question is
// answered from the address the client sent to, the clients spread over
// the loops, a client's session stays on the loop (and is the same session)
// from its first datagram to its last, and each session writes exactly one
// access line counting all of its datagrams.
func TestLoopsShareARule(t *testing.T) {
	ioModes(t, func(t *testing.T, portable bool) {
		be := startBackend(t, "127.0.0.1", echo)
		f := start(t, options{portable: portable, workers: 3, cfg: backends("", be.addr())})
		conns := clientsFrom(t, 8, 8)
		const rounds = 5
		homes := make([]*member, len(conns))
		first := make([]*session, len(conns))
		for round := range rounds {
			err := forEach(len(conns), 16, func(i int) error {
				q := fmt.Sprintf("client %d round %d", i, round)
				_, err := f.exchange(conns[i], f.addr, []byte(q), make([]byte, 64), equal([]byte(q)))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range conns {
				m, ss := memberOf(t, f, c)
				if round == 0 {
					homes[i], first[i] = m, ss
				} else if m != homes[i] || ss != first[i] {
					t.Fatalf("%s: round %d on another member or session than round 0", c.LocalAddr(), round)
				}
			}
		}
		used := map[*member]bool{}
		for _, m := range homes {
			used[m] = true
		}
		if len(used) < 2 {
			t.Fatalf("%d clients all on one of %d members", len(conns), len(membersOf(f)))
		}
		f.table.StopAll("closed")
		for _, c := range conns {
			lines := f.logs.waitN(t, 1, "the access line of "+c.LocalAddr().String(), accessOf(c.LocalAddr(), ""))
			if n := lines[0].Int(t, "dgrams_up"); n < rounds || (f.lossFree() && n != rounds) {
				t.Fatalf("%s: access line %v: want %d datagrams up in one session", c.LocalAddr(), lines[0].Attrs, rounds)
			}
		}
		if st := f.svc.Stats(); st.Sessions != 0 {
			t.Fatalf("stats %+v after every session was closed", st)
		}
		for _, c := range conns {
			if n := len(f.logs.find(accessOf(c.LocalAddr(), ""))); n != 1 {
				t.Fatalf("%s: %d access lines, want 1", c.LocalAddr(), n)
			}
		}
	})
}

// TestLimitsHoldAcrossLoops starts 80 clients at once (20 ports on each of
// four loopback addresses) against a rule served by two loops, so that both
// loops admit at the same moment: max_sessions, and the per-IP limit of
// the admission gate, are never passed, and every other client is refused
// once with the limit's reason.
func TestLimitsHoldAcrossLoops(t *testing.T) {
	const hosts, perHost = 4, 20
	cases := []struct {
		name   string
		rule   Rule
		admits int
		reason string
	}{
		{"max_sessions", Rule{MaxSessions: 7}, 7, string(ReasonMaxSessions)},
		{"max_connections_per_ip", Rule{Gate: admit.NewGate(admit.Policy{MaxConnectionsPerIP: 2})}, 2 * hosts, string(admit.ReasonMaxConnectionsPerIP)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be := startBackend(t, "127.0.0.1", echo)
			f := start(t, options{workers: 2, rule: tc.rule, cfg: backends("", be.addr())})
			conns := clientsFrom(t, hosts, perHost)
			sendAllAtOnce(t, conns, f.addr)
			waitFor(t, "every client to be admitted or refused", func() bool {
				st := f.svc.Stats()
				return st.Sessions+st.Refused == len(conns)
			})
			st := f.svc.Stats()
			if st.Sessions != tc.admits || st.Rejected[tc.reason] != int64(len(conns)-tc.admits) || f.table.Len() != tc.admits {
				t.Fatalf("stats %+v, %d in the table; want %d sessions and %d refused for %s",
					st, f.table.Len(), tc.admits, len(conns)-tc.admits, tc.reason)
			}
			for _, m := range membersOf(f) {
				if m.empty() {
					t.Fatal("a member took no client: the loops did not admit side by side")
				}
			}
			if tc.name == "max_connections_per_ip" {
				perIP := map[netip.Addr]int{}
				for _, snap := range f.table.Snapshots() {
					perIP[netip.MustParseAddrPort(snap.Client).Addr()]++
				}
				for ip, n := range perIP {
					if n != 2 {
						t.Fatalf("%s has %d sessions, want 2 (%v)", ip, n, perIP)
					}
				}
			}
			f.svc.Drain()
			f.logs.waitN(t, len(conns)-tc.admits, "the refusals", func(r record) bool { return r.Attrs["end"] == "rejected:"+tc.reason })
		})
	}
}

// sendAllAtOnce has every client send one datagram to to, all released at
// the same moment.
func sendAllAtOnce(t *testing.T, conns []*net.UDPConn, to *net.UDPAddr) {
	t.Helper()
	var wg sync.WaitGroup
	release := make(chan struct{})
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Go(func() {
			<-release
			if _, err := c.WriteToUDP([]byte("hello"), to); err != nil {
				errs <- err
			}
		})
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
