package admit

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// sprayAddr returns the i-th address of a spray: IPv4 for even i, IPv6 for
// odd, all distinct.
func sprayAddr(i int) netip.Addr {
	if i%2 == 0 {
		return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	}
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
}

// TestStateDroppedWhenDone: a client is forgotten once it has no live
// connection and a full bucket.
func TestStateDroppedWhenDone(t *testing.T) {
	t.Run("no rate", func(t *testing.T) {
		g, _ := newTestGate(Policy{MaxConnectionsPerIP: 2})
		tk := admit(t, g, "192.0.2.1")
		if all, _ := tracked(g); all != 1 {
			t.Fatalf("tracked %d clients with one live connection, want 1", all)
		}
		tk.Release()
		if all, _ := tracked(g); all != 0 {
			t.Fatalf("tracked %d clients after release, want 0", all)
		}
	})
	t.Run("bucket full at release", func(t *testing.T) {
		g, clk := newTestGate(Policy{RatePerIP: 1})
		tk := admit(t, g, "192.0.2.1")
		clk.advance(time.Second)
		tk.Release()
		if all, _ := tracked(g); all != 0 {
			t.Fatalf("tracked %d clients after release with a full bucket, want 0", all)
		}
	})
	t.Run("bucket refills later", func(t *testing.T) {
		g, clk := newTestGate(Policy{RatePerIP: 1})
		for _, c := range []string{"192.0.2.1", "192.0.2.2"} {
			tk := admit(t, g, c)
			tk.Release()
		}
		if all, idle := tracked(g); all != 2 || idle != 2 {
			t.Fatalf("tracked %d clients, %d idle; want 2 idle", all, idle)
		}
		clk.advance(time.Second)
		// The next admission sweeps the oldest-idle clients it finds full.
		tk := admit(t, g, "192.0.2.3")
		if all, idle := tracked(g); all != 1 || idle != 0 {
			t.Fatalf("tracked %d clients, %d idle; want only the live one", all, idle)
		}
		tk.Release()
	})
}

// TestIdleCapEvictsOldestIdle: past the cap the oldest-idle client is
// forgotten (and so gets a fresh bucket); a client seen again, even when
// refused, counts as recent; clients with live connections are never
// forgotten.
func TestIdleCapEvictsOldestIdle(t *testing.T) {
	clk := newFakeClock()
	g := newGate(Policy{RatePerIP: 1, MaxConnectionsPerIP: 1}, clk.now, 3)

	live := admit(t, g, "2001:db8::1")
	for _, c := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		tk := admit(t, g, c)
		tk.Release()
	}
	refuse(t, g, "192.0.2.1", ReasonRateLimited) // now the most recent idle client
	tk := admit(t, g, "192.0.2.4")
	tk.Release() // over the cap: 192.0.2.2 is the oldest idle
	if all, idle := tracked(g); all != 4 || idle != 3 {
		t.Fatalf("tracked %d clients, %d idle; want 4 with 3 idle", all, idle)
	}
	tk = admit(t, g, "192.0.2.2") // forgotten, so its bucket is full again
	tk.Release()
	for _, c := range []string{"192.0.2.1", "192.0.2.4"} {
		refuse(t, g, c, ReasonRateLimited)
	}

	for i := range 1000 {
		tk, _ := g.Admit(sprayAddr(i))
		tk.Release()
	}
	if all, idle := tracked(g); all != 4 || idle != 3 {
		t.Fatalf("after a spray tracked %d clients, %d idle; want 4 with 3 idle", all, idle)
	}
	clk.advance(time.Hour)
	refuse(t, g, "2001:db8::1", ReasonMaxConnectionsPerIP)
	live.Release()
}

// TestSprayBounded: 200,000 distinct addresses, each leaving a bucket that
// is not yet full, keep at most the default cap of clients, and the memory
// is given back once they are forgotten.
func TestSprayBounded(t *testing.T) {
	const n = 200_000
	g, clk := newTestGate(Policy{RatePerIP: 1})
	base := heapInUse()
	for i := range n {
		tk, r := g.Admit(sprayAddr(i))
		if r != "" {
			t.Fatalf("spray address %d (%v) refused with %q", i, sprayAddr(i), r)
		}
		tk.Release()
	}
	all, idle := tracked(g)
	if all != defaultMaxIdle || idle != defaultMaxIdle {
		t.Fatalf("tracked %d clients, %d idle, after %d distinct clients; want the cap %d", all, idle, n, defaultMaxIdle)
	}
	full := heapInUse() - base
	t.Logf("%d idle clients take %d KiB", all, full>>10)

	// The earliest clients were forgotten and get a fresh bucket; the
	// latest are still limited.
	refuse(t, g, sprayAddr(n-1).String(), ReasonRateLimited)
	tk := admit(t, g, sprayAddr(0).String())
	tk.Release()

	// Once the buckets are full, traffic sweeps the idle clients away and
	// the table shrinks, down to the one client that did the sweeping.
	clk.advance(time.Second)
	sweeper := netip.AddrFrom4([4]byte{192, 0, 2, 1})
	for range defaultMaxIdle {
		tk, _ := g.Admit(sweeper)
		tk.Release()
		if all, _ := tracked(g); all <= 1 {
			break
		}
	}
	if all, _ := tracked(g); all != 1 || g.clients.get(sweeper) == nil {
		t.Fatalf("tracked %d clients after every sprayed bucket refilled; want only %v", all, sweeper)
	}
	left := heapInUse() - base
	t.Logf("after the sweep: %d KiB", left>>10)
	if left > full/8 {
		t.Fatalf("after forgetting every client the gate still holds %d KiB of the %d KiB it took", left>>10, full>>10)
	}
	runtime.KeepAlive(g)
}

// heapInUse returns the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
