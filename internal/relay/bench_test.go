package relay

import (
	"io"
	"testing"
)

// BenchmarkPingPong measures one 64-byte request and its 64-byte answer
// through a relay, with splice and with buffers.
func BenchmarkPingPong(b *testing.B) {
	for _, tc := range []struct {
		name  string
		pools *Pools
	}{{"splice", NewPools(0)}, {"buffers", NewPools(-1)}} {
		b.Run(tc.name, func(b *testing.B) {
			p := startPairB(b, tc.pools)
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(p.server, buf); err != nil {
						return
					}
					if _, err := p.server.Write(buf); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 64)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.client.Write(buf)
				if _, err := io.ReadFull(p.client, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBulk measures one-way bulk throughput through a relay.
func BenchmarkBulk(b *testing.B) {
	for _, tc := range []struct {
		name  string
		pools *Pools
	}{{"splice64k", NewPools(0)}, {"splice256k", NewPools(256 << 10)}, {"splice1m", NewPools(1 << 20)}, {"buffers", NewPools(-1)}} {
		b.Run(tc.name, func(b *testing.B) {
			p := startPairB(b, tc.pools)
			go io.Copy(io.Discard, p.server)
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.client.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
