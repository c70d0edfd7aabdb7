package admit

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrent hammers one gate from several goroutines while the policy
// is swapped under them. Each goroutine counts what it holds only between a
// successful Admit and its Release, so the counts seen by the test never
// exceed the gate's own: if they pass a limit, the gate over-admitted.
func TestConcurrent(t *testing.T) {
	const (
		workers  = 8
		rounds   = 3000
		maxConns = 12
		maxPerIP = 3
	)
	clients := make([]netip.Addr, 16)
	for i := range clients {
		clients[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
	}
	clients = append(clients, netip.Addr{}, netip.MustParseAddr("::ffff:192.0.2.1"))
	policies := []Policy{
		{MaxConnections: maxConns, MaxConnectionsPerIP: maxPerIP, RatePerIP: 1e6},
		{MaxConnections: maxConns, MaxConnectionsPerIP: maxPerIP, Deny: prefixes(t, "192.0.2.2/32")},
	}
	g := NewGate(policies[0])

	var total atomic.Int64
	perIP := make(map[netip.Addr]*atomic.Int64)
	for _, c := range clients {
		perIP[c.Unmap()] = new(atomic.Int64)
	}
	var admitted, refused atomic.Int64
	var over atomic.Value // first limit violation seen, as a string

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var held []Ticket
			var heldFrom []netip.Addr
			for i := range rounds {
				c := clients[(i*7+w*5)%len(clients)]
				if tk, r := g.Admit(c); r == "" {
					admitted.Add(1)
					n := perIP[c.Unmap()].Add(1)
					if tot := total.Add(1); tot > maxConns {
						over.CompareAndSwap(nil, "total over MaxConnections")
					}
					if c.IsValid() && n > maxPerIP {
						over.CompareAndSwap(nil, "per-IP count over MaxConnectionsPerIP for "+c.String())
					}
					held = append(held, tk)
					heldFrom = append(heldFrom, c)
				} else {
					refused.Add(1)
				}
				if len(held) > 2 || (len(held) > 0 && i%3 == 0) {
					perIP[heldFrom[0].Unmap()].Add(-1)
					total.Add(-1)
					held[0].Release()
					held, heldFrom = held[1:], heldFrom[1:]
				}
				if w == 0 && i%50 == 0 {
					g.Update(policies[(i/50)%2])
				}
			}
			for i := range held {
				perIP[heldFrom[i].Unmap()].Add(-1)
				total.Add(-1)
				held[i].Release()
			}
		})
	}
	wg.Wait()

	if v := over.Load(); v != nil {
		t.Fatal(v)
	}
	if admitted.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("admitted %d, refused %d: the test did not exercise both paths", admitted.Load(), refused.Load())
	}
	if g.Live() != 0 {
		t.Fatalf("Live = %d after every ticket was released", g.Live())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for a, c := range g.clients.m {
		if c.live != 0 || !c.idle {
			t.Fatalf("client %v still has %d live (idle %v) after every ticket was released", a, c.live, c.idle)
		}
	}
}
