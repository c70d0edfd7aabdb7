package udp

import (
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"
)

// TestPackGroupsRuns checks which datagrams share a segmented message:
// consecutive ones for one destination, of one size, the last of a run
// possibly shorter; never empty or large ones.
func TestPackGroupsRuns(t *testing.T) {
	a, b := &session{}, &session{}
	for _, tc := range []struct {
		name  string
		lens  []int
		dests []*session // nil: connected
		gso   bool
		want  []int // datagrams per message
	}{
		{"equal sizes", []int{100, 100, 100}, nil, true, []int{3}},
		{"shorter last", []int{100, 100, 60, 100}, nil, true, []int{3, 1}},
		{"longer breaks", []int{60, 100, 100}, nil, true, []int{1, 2}},
		{"off", []int{100, 100}, nil, false, []int{1, 1}},
		{"empty alone", []int{0, 0, 100, 0}, nil, true, []int{1, 1, 1, 1}},
		{"too large to segment", []int{2000, 2000}, nil, true, []int{1, 1}},
		{"destinations", []int{100, 100, 100, 100}, []*session{a, a, b, b}, true, []int{2, 2}},
		{"segment cap", repeat(100, 70), nil, true, []int{64, 6}},
		{"byte cap", repeat(1400, 50), nil, true, []int{46, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bt := newBatch(len(tc.lens))
			idx := make([]int, len(tc.lens))
			for i, n := range tc.lens {
				bt.lens[i], idx[i] = n, i
			}
			var to func(int) *session
			if tc.dests != nil {
				to = func(i int) *session { return tc.dests[i] }
			}
			hs := bt.sys.pack(bt, idx, tc.gso, to)
			if fmt.Sprint(bt.sys.segs) != fmt.Sprint(tc.want) || len(hs) != len(tc.want) {
				t.Fatalf("messages of %v datagrams, want %v", bt.sys.segs, tc.want)
			}
			for m, h := range hs {
				if segmented := h.Hdr.Controllen != 0; segmented != (tc.want[m] > 1) {
					t.Errorf("message %d: control message %v for %d datagrams", m, segmented, tc.want[m])
				}
			}
		})
	}
}

// repeat returns n copies of v.
func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestBurstsPassUnchanged sends bursts of equal-sized datagrams each way,
// which the loop sends segmented, and checks that each arrives whole, in
// order, as itself: over IPv4, and from a dual-stack listening socket to an
// IPv4 client.
func TestBurstsPassUnchanged(t *testing.T) {
	for _, listen := range []string{"127.0.0.1", "::"} {
		t.Run(listen, func(t *testing.T) { testBursts(t, listen) })
	}
}

// testBursts is TestBurstsPassUnchanged through a listening socket on
// listen.
func testBursts(t *testing.T, listen string) {
	const count, size, window = 320, 1000, 32
	sink := make(chan []byte, count)
	be := startBackend(t, "127.0.0.1", func(p []byte) []byte {
		sink <- append([]byte(nil), p...)
		return nil
	})
	f := start(t, options{listen: listen, cfg: backends("", be.addr())})
	f.addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: f.addr.Port}
	c := client(t, "")
	if err := c.SetReadBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	// Bursts of window datagrams: more would overflow a socket's default
	// buffer (the session's, ~200 KiB) when the loop is slow, as under the
	// race detector, and be dropped by the kernel.
	for start := 0; start < count; start += window {
		for i := start; i < start+window; i++ {
			if _, err := c.WriteToUDP(numbered(i, size), f.addr); err != nil {
				t.Fatal(err)
			}
		}
		for i := start; i < start+window; i++ {
			select {
			case p := <-sink:
				if want := numbered(i, size); string(p) != string(want) {
					t.Fatalf("up: datagram %d: %d bytes, #%d; want %d bytes, #%d", i, len(p), seqOf(p), size, i)
				}
			case <-time.After(waitLimit):
				t.Fatalf("up: the backend got %d of %d datagrams (stats %+v)", i, count, f.svc.Stats())
			}
		}
	}
	for _, m := range membersOf(f) {
		// A member with a session has dispatched, under m.mu, after its
		// loop's setup; the others never sent anything.
		m.mu.Lock()
		if l, ok := m.plane.(*loopPlane); ok && len(m.sessions) > 0 && !l.loop.gso {
			t.Error("the kernel refused a segmented send over loopback")
		}
		m.mu.Unlock()
	}
	src := <-be.first
	buf := make([]byte, slotSize)
	for start := 0; start < count; start += window {
		for i := start; i < start+window; i++ {
			if _, err := be.conn.WriteToUDPAddrPort(numbered(i, size), src); err != nil {
				t.Fatal(err)
			}
		}
		for i := start; i < start+window; i++ {
			p, err := receive(c, f.addr, buf, waitLimit)
			if err != nil {
				t.Fatalf("down: datagram %d of %d: %v (stats %+v)", i, count, err, f.svc.Stats())
			}
			if want := numbered(i, size); string(p) != string(want) {
				t.Fatalf("down: datagram %d: %d bytes, #%d; want %d bytes, #%d", i, len(p), seqOf(p), size, i)
			}
		}
	}
}

// numbered returns a datagram of size bytes that carries i.
func numbered(i, size int) []byte {
	p := make([]byte, size)
	binary.BigEndian.PutUint32(p, uint32(i))
	for j := 4; j < size; j++ {
		p[j] = byte(i + j)
	}
	return p
}

// seqOf returns the number numbered put in p.
func seqOf(p []byte) int {
	if len(p) < 4 {
		return -1
	}
	return int(binary.BigEndian.Uint32(p))
}
