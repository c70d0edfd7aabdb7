package backend

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// TestDrainExcludesFromPicksAndRetries: a drained or maintained backend
// gets no new connection, neither as a pick nor as the retry after a
// failed connect; back to ready it takes its share again.
func TestDrainExcludesFromPicksAndRetries(t *testing.T) {
	a := startNameServer(t, "a", "127.0.0.1:0")
	b := startNameServer(t, "b", "127.0.0.1:0")
	p := NewPool(Settings{Name: "web", Balance: RoundRobin,
		Backends: backends([]Address{a.addr, b.addr}, nil)}, nil, nil)
	for _, st := range []State{Drain, Maint} {
		p.backends[0].SetState(st)
		for range 10 {
			if name, _ := dialName(t, p); name != "b" {
				t.Fatalf("%v: served by %q, want b only", st, name)
			}
		}
	}
	p.backends[0].SetState(Ready)
	seen := map[string]bool{}
	for range 4 {
		name, _ := dialName(t, p)
		seen[name] = true
	}
	if !seen["a"] {
		t.Fatal("a ready again got no connection")
	}

	// First tries the refused backend, and its retry skips the drained one.
	refused := refusedAddr(t)
	p = NewPool(Settings{Name: "web", Balance: First, Retries: 2,
		Backends: backends([]Address{refused, a.addr, b.addr}, nil)}, nil, nil)
	p.backends[1].SetState(Drain)
	if name, _ := dialName(t, p); name != "b" {
		t.Fatalf("retry went to %q, want b (a is drained)", name)
	}
	p.backends[2].SetState(Drain)
	if _, _, err := p.Dial(context.Background(), netip.Addr{}); err == nil {
		t.Fatal("dial succeeded with every live backend drained")
	}
	if a.addr.String() == "" || p.backends[1].Active() != 0 || p.backends[2].Active() != 0 {
		t.Fatal("a drained backend counts a connection")
	}
}

// TestDrainedDownBackendGetsNoTrial: a passively downed backend that is
// drained is not given its trial connection.
func TestDrainedDownBackendGetsNoTrial(t *testing.T) {
	p := NewPool(Settings{Name: "web", Backends: backends([]Address{testAddr(1), testAddr(2)}, nil)}, nil, nil)
	clock := newFakeClock()
	p.now = clock.Now
	markDown(t, p.backends[0])
	p.backends[0].SetState(Drain)
	clock.Advance(cooldownMax)
	for range 5 {
		if i := mustPick(t, p, netip.Addr{}); i != 1 {
			t.Fatalf("picked %d, want 1: a drained backend had its trial", i)
		}
	}
}

// probeCounter is a health check target that counts the connections it
// accepts.
type probeCounter struct {
	addr   Address
	probes atomic.Int64
}

func startProbeCounter(t *testing.T) *probeCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	pc := &probeCounter{addr: tcpAddr(t, ln.Addr())}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			pc.probes.Add(1)
			c.Close()
		}
	}()
	return pc
}

// waitProbes waits until the counter has seen more than n probes.
func (pc *probeCounter) waitProbes(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for pc.probes.Load() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no health check past %d within %v", n, waitLimit)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMaintStopsHealthChecks: checks go on while a backend drains and stop
// while it is in maintenance, which leaves its health as it was.
func TestMaintStopsHealthChecks(t *testing.T) {
	pc := startProbeCounter(t)
	hc := fastCheck()
	p := NewPool(Settings{Name: "web", HealthCheck: hc, Backends: backends([]Address{pc.addr}, nil)}, nil, nil)
	p.Start()
	t.Cleanup(p.Stop)
	b := p.backends[0]
	pc.waitProbes(t, 0)

	b.SetState(Drain)
	pc.waitProbes(t, pc.probes.Load()+2)

	b.SetState(Maint)
	settled := pc.probes.Load()  // and the check under way when it was set, at most
	time.Sleep(40 * hc.Interval) // absence of checks: forty intervals
	if n := pc.probes.Load(); n > settled+1 {
		t.Fatalf("%d health checks in maintenance, want none", n-settled)
	}
	if !b.Up() {
		t.Fatal("maintenance marked the backend down")
	}
	b.SetState(Ready)
	pc.waitProbes(t, pc.probes.Load()+2)
}

// TestWeightChangeMovesTheSplit: a runtime weight applies to the next
// picks of every weighted strategy: 1:1 becomes 3:1, measured over 2,000
// picks within 5 points.
func TestWeightChangeMovesTheSplit(t *testing.T) {
	for _, strategy := range []string{RoundRobin, LeastConn, Random, SourceHash} {
		t.Run(strategy, func(t *testing.T) {
			p := NewPool(Settings{Name: "web", Balance: strategy,
				Backends: backends([]Address{testAddr(1), testAddr(2)}, nil)}, nil, nil)
			if share := firstShare(t, p); math.Abs(share-0.5) > 0.05 {
				t.Fatalf("share before %.3f, want 0.5", share)
			}
			if err := p.backends[0].SetWeight(3); err != nil {
				t.Fatal(err)
			}
			if share := firstShare(t, p); math.Abs(share-0.75) > 0.05 {
				t.Fatalf("share after weight 3:1 is %.3f, want 0.75", share)
			}
		})
	}
}

// firstShare returns the share of 2,000 picks (by 2,000 distinct
// clients) that went to the pool's first backend.
func firstShare(t *testing.T, p *Pool) float64 {
	n := 0
	for i := range 2000 {
		if mustPick(t, p, clientIP(i)) == 0 {
			n++
		}
	}
	return float64(n) / 2000
}

func TestSetWeightBounds(t *testing.T) {
	p := NewPool(Settings{Name: "web", Backends: backends([]Address{testAddr(1)}, []int{4})}, nil, nil)
	b := p.backends[0]
	for _, w := range []int{0, -1, MaxWeight + 1} {
		if err := b.SetWeight(w); err == nil {
			t.Errorf("SetWeight(%d) succeeded", w)
		}
	}
	if b.Weight() != 4 || b.ConfigWeight() != 4 {
		t.Fatalf("weight %d (configured %d) after refused changes, want 4", b.Weight(), b.ConfigWeight())
	}
	if err := b.SetWeight(MaxWeight); err != nil || b.Weight() != MaxWeight {
		t.Fatalf("SetWeight(MaxWeight) = %v, weight %d", err, b.Weight())
	}
}

func TestParseState(t *testing.T) {
	for _, st := range States {
		if got, err := ParseState(st.String()); err != nil || got != st {
			t.Errorf("ParseState(%q) = %v, %v", st.String(), got, err)
		}
	}
	if _, err := ParseState("down"); err == nil {
		t.Error("ParseState(down) succeeded")
	}
}

// TestInheritKeepsStateAndWeight: a reload keeps the admin state, the
// runtime weight and the time of the last change, unless the file changed
// the backend's weight, which then wins; a change after the reload
// reaches the old pool's backend too (a retry still running there).
func TestInheritKeepsStateAndWeight(t *testing.T) {
	a, b := testAddr(1), testAddr(2)
	old := NewPool(Settings{Name: "web", Backends: backends([]Address{a, b}, nil)}, nil, nil)
	old.backends[0].SetState(Drain)
	if err := old.backends[0].SetWeight(7); err != nil {
		t.Fatal(err)
	}
	if err := old.backends[1].SetWeight(9); err != nil {
		t.Fatal(err)
	}
	changed := old.backends[0].LastChange()
	if changed.IsZero() {
		t.Fatal("a state change left no time")
	}
	next := NewPool(Settings{Name: "web", Backends: backends([]Address{a, b}, []int{1, 2})}, nil, nil)
	next.Inherit(old)
	na, nb := next.backends[0], next.backends[1]
	if na.State() != Drain || na.Weight() != 7 || !na.LastChange().Equal(changed) {
		t.Fatalf("a after reload: %v weight %d changed %v; want drain, 7, %v", na.State(), na.Weight(), na.LastChange(), changed)
	}
	if nb.Weight() != 2 || nb.ConfigWeight() != 2 {
		t.Fatalf("b after a reload that changed its weight to 2: weight %d", nb.Weight())
	}
	na.SetState(Ready)
	if old.backends[0].State() != Ready {
		t.Fatal("the old pool's backend did not see the change")
	}
}

func TestRestore(t *testing.T) {
	p := NewPool(Settings{Name: "web", Backends: backends([]Address{testAddr(1), testAddr(2)}, []int{2, 2})}, nil, nil)
	at := time.Unix(1700000000, 0)
	p.backends[0].Restore(Maint, 5, 2, at)
	p.backends[1].Restore(Drain, 5, 3, time.Time{}) // the file's weight changed since
	a, b := p.backends[0], p.backends[1]
	if a.State() != Maint || a.Weight() != 5 || !a.LastChange().Equal(at) {
		t.Fatalf("restored a: %v weight %d at %v", a.State(), a.Weight(), a.LastChange())
	}
	if b.State() != Drain || b.Weight() != 2 || !b.LastChange().IsZero() {
		t.Fatalf("restored b: %v weight %d at %v", b.State(), b.Weight(), b.LastChange())
	}
	if _, err := p.Pick(netip.Addr{}); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("Pick with every backend out: %v", err)
	}
}
