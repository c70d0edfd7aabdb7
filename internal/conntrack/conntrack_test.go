package conntrack

import (
	"slices"
	"sync"
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
	tab.Remove(2)
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
	e.SetBackend("127.0.0.1:80")
	<-done
	if s := tab.Snapshots(); len(s) != 1 || s[0].Backend != "127.0.0.1:80" {
		t.Fatalf("snapshots %+v: want backend 127.0.0.1:80", s)
	}
}
