package admit

import (
	"net/netip"
	"sync/atomic"
	"testing"
)

// benchClients returns n distinct IPv4 clients.
func benchClients(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return out
}

// benchPolicy sets every kind of check, loose enough that the benchmark's
// clients are always admitted.
func benchPolicy(b *testing.B) Policy {
	return Policy{
		Allow:               prefixes(b, "192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8"),
		Deny:                prefixes(b, "10.255.0.0/16", "2001:db8::/32"),
		MaxConnections:      1 << 30,
		MaxConnectionsPerIP: 1 << 30,
		RatePerIP:           1e8,
	}
}

// BenchmarkAdmitRelease measures one Admit and its Release.
func BenchmarkAdmitRelease(b *testing.B) {
	clients := benchClients(4096)
	cases := []struct {
		name   string
		policy Policy
	}{
		{"open", Policy{}},
		{"full-policy", benchPolicy(b)},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			g := NewGate(bc.policy)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tk, r := g.Admit(clients[i%len(clients)])
				if r != "" {
					b.Fatalf("refused: %s", r)
				}
				tk.Release()
				i++
			}
		})
		b.Run(bc.name+"-parallel", func(b *testing.B) {
			g := NewGate(bc.policy)
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 997
				for pb.Next() {
					tk, r := g.Admit(clients[i%len(clients)])
					if r != "" {
						b.Errorf("refused: %s", r)
						return
					}
					tk.Release()
					i++
				}
			})
		})
	}
}
