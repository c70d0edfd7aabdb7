package conntrack

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/access"
)

// counts is a fixed pair of byte counts.
type counts struct{ up, down int64 }

func (c counts) BytesUp() int64   { return c.up }
func (c counts) BytesDown() int64 { return c.down }

// stopper records the reasons its entry was stopped with.
type stopper struct {
	mu      sync.Mutex
	reasons []access.End
}

func (s *stopper) stop(reason access.End) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reasons = append(s.reasons, reason)
}

func TestTable(t *testing.T) {
	var ids IDs
	tab := NewTable()
	stops := map[uint64]*stopper{}
	for i := 0; i < 3; i++ {
		st := &stopper{}
		e := &Entry{ID: ids.Next(), Rule: "r", Proto: "tcp", Client: "c", Backend: "b", Since: time.Unix(int64(i), 0),
			Bytes: counts{int64(i), int64(10 * i)}, Stop: st.stop}
		stops[e.ID] = st
		tab.Add(e)
	}
	if tab.Len() != 3 {
		t.Fatalf("len %d", tab.Len())
	}
	snaps := tab.Snapshots()
	var got []uint64
	for _, s := range snaps {
		got = append(got, s.ID)
	}
	if !slices.Equal(got, []uint64{1, 2, 3}) || snaps[2].Up != 2 || snaps[2].Down != 20 {
		t.Fatalf("snapshots %+v", snaps)
	}
	if !tab.Stop(2, "closed") || tab.Stop(99, "closed") {
		t.Fatal("Stop reports the wrong liveness")
	}
	tab.Remove(2, nil)
	tab.StopAll("drained")
	if r := stops[2].reasons; !slices.Equal(r, []access.End{"closed"}) {
		t.Fatalf("entry 2 stopped with %v", r)
	}
	for _, id := range []uint64{1, 3} {
		if r := stops[id].reasons; !slices.Equal(r, []access.End{"drained"}) {
			t.Fatalf("entry %d stopped with %v", id, r)
		}
	}
	if tab.Len() != 2 {
		t.Fatalf("len %d after removing one of three", tab.Len())
	}
}

// TestIDsAreUnique: ids from concurrent callers never repeat.
func TestIDsAreUnique(t *testing.T) {
	var ids IDs
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				id := ids.Next()
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestSetBackend: a listed entry's backend, set once it connected, shows in
// the snapshots, also while snapshots are being taken.
func TestSetBackend(t *testing.T) {
	tab := NewTable()
	e := &Entry{ID: 1, Rule: "r", Proto: "tcp", Client: "c"}
	tab.Add(e)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			tab.Snapshots()
		}
	}()
	e.SetBackend("127.0.0.1:80", nil)
	<-done
	if s := tab.Snapshots(); len(s) != 1 || s[0].Backend != "127.0.0.1:80" {
		t.Fatalf("snapshots %+v: want backend 127.0.0.1:80", s)
	}
}

// liveCounts are byte counts a test moves while the entry is listed.
type liveCounts struct{ up, down atomic.Int64 }

func (c *liveCounts) BytesUp() int64   { return c.up.Load() }
func (c *liveCounts) BytesDown() int64 { return c.down.Load() }

// TestTraffic: Traffic sums the live entries by tally, and an entry's
// bytes settled as it is removed are seen once, never twice nor lost:
// live bytes plus settled ones never go back while entries come and go.
func TestTraffic(t *testing.T) {
	tab := NewTable()
	a, b := new(int), new(int) // two tallies
	tab.Add(&Entry{ID: 1, Bytes: counts{1, 10}, Tally: a})
	tab.Add(&Entry{ID: 2, Bytes: counts{2, 20}, Tally: a})
	tab.Add(&Entry{ID: 3, Bytes: counts{4, 40}, Tally: b})
	tab.Add(&Entry{ID: 4, Bytes: counts{8, 80}}) // no tally
	tab.Traffic(func(live map[any]Traffic) {
		if live[a] != (Traffic{3, 30}) || live[b] != (Traffic{4, 40}) || len(live) != 2 {
			t.Errorf("live traffic %v: want a {3 30}, b {4 40}", live)
		}
	})

	var settled atomic.Int64 // the tally's own counter
	total := func() int64 {
		var n int64
		tab.Traffic(func(live map[any]Traffic) { n = settled.Load() + live[a].Up })
		return n
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for id := uint64(10); ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			c := new(liveCounts)
			e := &Entry{ID: id, Bytes: c, Tally: a}
			tab.Add(e)
			c.up.Add(5)
			tab.Remove(id, func() { settled.Add(c.up.Load()) })
		}
	}()
	last := total()
	for range 2000 {
		n := total()
		if n < last {
			t.Fatalf("total went back from %d to %d", last, n)
		}
		last = n
	}
	close(stop)
	wg.Wait()
}
