package backend

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// pickPool returns a pool over n documentation addresses (never dialed) with
// a fake clock.
func pickPool(t *testing.T, balance string, weights []int) (*Pool, *fakeClock) {
	t.Helper()
	addrs := make([]Address, len(weights))
	for i := range addrs {
		addrs[i] = testAddr(i + 1)
	}
	p := NewPool(Settings{Name: "t", Balance: balance, Backends: backends(addrs, weights)}, nil, nil)
	clock := newFakeClock()
	p.now = clock.Now
	return p, clock
}

// sequence returns the indexes of n picks, each released at once.
func sequence(t *testing.T, p *Pool, n int) string {
	t.Helper()
	var sb strings.Builder
	for range n {
		sb.WriteByte(byte('a' + mustPick(t, p, netip.Addr{})))
	}
	return sb.String()
}

func TestRoundRobinIsSmoothAndWeighted(t *testing.T) {
	tests := []struct {
		weights []int
		want    string
	}{
		{[]int{1, 1, 1}, "abcabcabc"},
		{[]int{5, 1, 1}, "aabacaa" + "aabacaa"},
		{[]int{2, 1}, "abaaba"},
		{[]int{0, 0}, "abab"}, // weight 0 counts as 1
	}
	for _, tt := range tests {
		p, _ := pickPool(t, RoundRobin, tt.weights)
		if got := sequence(t, p, len(tt.want)); got != tt.want {
			t.Errorf("weights %v: picks %s, want %s", tt.weights, got, tt.want)
		}
	}
}

func TestRoundRobinSkipsDownBackends(t *testing.T) {
	p, _ := pickPool(t, RoundRobin, []int{1, 1, 1})
	markDown(t, p.backends[1])
	if got := sequence(t, p, 6); got != "acacac" {
		t.Fatalf("picks %s with b down, want acacac", got)
	}
}

func TestLeastConnFillsTheEmptiest(t *testing.T) {
	p, _ := pickPool(t, LeastConn, []int{1, 2, 1})
	held := make([]*Backend, 0, 40)
	for range 40 {
		b, err := p.Pick(netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, b)
	}
	// Held connections spread by weight: 10, 20, 10 exactly.
	for i, want := range []int64{10, 20, 10} {
		if got := p.backends[i].Active(); got != want {
			t.Fatalf("backend %d holds %d connections, want %d", i, got, want)
		}
	}
	// Free three connections on backend c: the next three picks go there.
	released := 0
	for _, b := range held {
		if b == p.backends[2] && released < 3 {
			b.Release()
			released++
		}
	}
	for range 3 {
		if i := indexOfPick(t, p); i != 2 {
			t.Fatalf("picked %d, want the least loaded backend 2", i)
		}
	}
	// With nothing held, ties follow weighted round robin: a share by weight.
	p2, _ := pickPool(t, LeastConn, []int{1, 2, 1})
	if got := sequence(t, p2, 8); got != "bacbbacb" {
		t.Fatalf("least-conn tie picks %s, want bacbbacb", got)
	}
}

// indexOfPick picks without releasing and returns the backend's index.
func indexOfPick(t *testing.T, p *Pool) int {
	t.Helper()
	b, err := p.Pick(netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	return indexOf(t, p, b)
}

func TestRandomHonoursWeights(t *testing.T) {
	p, _ := pickPool(t, Random, []int{3, 1})
	const n = 20000
	counts := make([]int, 2)
	for range n {
		counts[mustPick(t, p, netip.Addr{})]++
	}
	if share := float64(counts[0]) / n; math.Abs(share-0.75) > 0.02 {
		t.Fatalf("weight 3 of 4 got share %.3f, want 0.75±0.02", share)
	}
}

func TestRandomBalancesLiveConnections(t *testing.T) {
	p, _ := pickPool(t, Random, []int{1, 1, 1, 1})
	for range 4000 {
		if _, err := p.Pick(netip.Addr{}); err != nil {
			t.Fatal(err)
		}
	}
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, b := range p.backends {
		lo, hi = min(lo, b.Active()), max(hi, b.Active())
	}
	// Two random choices keep the spread tiny; one random choice would
	// spread about ±60 at this size.
	if hi-lo > 12 {
		t.Fatalf("held connections range %d..%d, want a spread of at most 12", lo, hi)
	}
}

// hashAssign maps n clients to backend indexes.
func hashAssign(t *testing.T, p *Pool, n int) []int {
	t.Helper()
	out := make([]int, n)
	for i := range out {
		out[i] = mustPick(t, p, clientIP(i))
	}
	return out
}

func TestSourceHashIsStableAndConsistent(t *testing.T) {
	p, _ := pickPool(t, SourceHash, []int{1, 1, 1, 1})
	const n = 10000
	before := hashAssign(t, p, n)
	shares := make([]int, 4)
	for _, b := range before {
		shares[b]++
	}
	for i, s := range shares {
		if math.Abs(float64(s)/n-0.25) > 0.03 {
			t.Fatalf("backend %d got %d of %d clients, want 25%%±3%%", i, s, n)
		}
	}
	if again := hashAssign(t, p, n); !equalInts(before, again) {
		t.Fatal("the same clients were sent to different backends")
	}

	markDown(t, p.backends[2])
	after := hashAssign(t, p, n)
	moved := 0
	for i := range after {
		switch {
		case before[i] == 2 && after[i] == 2:
			t.Fatalf("client %d still sent to the down backend", i)
		case before[i] == 2:
			moved++
		case after[i] != before[i]:
			t.Fatalf("client %d moved from %d to %d though its backend stayed up", i, before[i], after[i])
		}
	}
	if moved != shares[2] {
		t.Fatalf("%d clients moved, want exactly the %d of the removed backend", moved, shares[2])
	}

	p.backends[2].ReportSuccess() // back up (no active checks)
	if back := hashAssign(t, p, n); !equalInts(before, back) {
		t.Fatal("clients did not return to their backend when it came back")
	}
}

func TestSourceHashHonoursWeights(t *testing.T) {
	p, _ := pickPool(t, SourceHash, []int{1, 2, 1})
	const n = 10000
	shares := make([]float64, 3)
	for _, b := range hashAssign(t, p, n) {
		shares[b] += 1.0 / n
	}
	for i, want := range []float64{0.25, 0.5, 0.25} {
		if math.Abs(shares[i]-want) > 0.03 {
			t.Fatalf("backend %d share %.3f, want %.2f±0.03", i, shares[i], want)
		}
	}
}

func TestSourceHashKeepsClientsAcrossPools(t *testing.T) {
	// A reload builds a new pool, possibly in another order: clients keep
	// their backend because the hash depends on addresses, not positions.
	p1, _ := pickPool(t, SourceHash, []int{1, 1, 1})
	rule := Settings{Name: "t", Balance: SourceHash, Backends: backends(
		[]Address{testAddr(3), testAddr(1), testAddr(2)}, nil)}
	p2 := NewPool(rule, nil, nil)
	for i := range 1000 {
		a, _ := p1.Pick(clientIP(i))
		b, _ := p2.Pick(clientIP(i))
		if a.Address() != b.Address() {
			t.Fatalf("client %d: %v in one pool, %v in the other", i, a.Address(), b.Address())
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestFirstTakesFirstUsable(t *testing.T) {
	p, _ := pickPool(t, First, []int{1, 5, 1})
	if got := sequence(t, p, 3); got != "aaa" {
		t.Fatalf("picks %s, want aaa", got)
	}
	markDown(t, p.backends[0])
	if got := sequence(t, p, 3); got != "bbb" {
		t.Fatalf("picks %s with a down, want bbb", got)
	}
}

func TestBackupTakesOverAndHandsBack(t *testing.T) {
	for _, balance := range []string{RoundRobin, LeastConn, Random, SourceHash, First} {
		t.Run(balance, func(t *testing.T) {
			rule := Settings{Name: "t", Balance: balance, Backends: []Target{
				{Address: testAddr(1)}, {Address: testAddr(2)},
				{Address: testAddr(3), Backup: true}, {Address: testAddr(4), Backup: true},
			}}
			p := NewPool(rule, nil, nil)
			p.now = newFakeClock().Now
			for i, b := range p.Backends() {
				if b.Backup() != (i >= 2) || b.Address() != testAddr(i+1) || b.Weight() != 1 {
					t.Fatalf("Backends()[%d] = %v backup=%v weight=%d", i, b.Address(), b.Backup(), b.Weight())
				}
			}
			for i := range 200 {
				if got := mustPick(t, p, clientIP(i)); got > 1 {
					t.Fatalf("backup %d picked while primaries are up", got)
				}
			}
			markDown(t, p.backends[0])
			markDown(t, p.backends[1])
			for i := range 200 {
				if got := mustPick(t, p, clientIP(i)); got < 2 {
					t.Fatalf("down primary %d picked", got)
				}
			}
			p.backends[1].ReportSuccess()
			for i := range 200 {
				if got := mustPick(t, p, clientIP(i)); got != 1 {
					t.Fatalf("picked %d, want the primary that came back", got)
				}
			}
		})
	}
}

func TestPassiveTrialAfterCooldown(t *testing.T) {
	p, clock := pickPool(t, RoundRobin, []int{1, 1})
	a := p.backends[0]
	markDown(t, a)
	if got := sequence(t, p, 4); got != "bbbb" {
		t.Fatalf("picks %s with a down, want bbbb", got)
	}
	clock.Advance(cooldownMin)
	if got := sequence(t, p, 4); got != "abbb" {
		t.Fatalf("picks %s after the cool-down, want one trial of a then bbb", got)
	}
	// The trial failed silently: the next one comes after twice the pause.
	clock.Advance(cooldownMin)
	if got := sequence(t, p, 2); got != "bb" {
		t.Fatalf("picks %s before the doubled pause, want bb", got)
	}
	clock.Advance(cooldownMin)
	if got := sequence(t, p, 2); got != "ab" {
		t.Fatalf("picks %s after the doubled pause, want ab", got)
	}
	// The pause doubles up to its cap.
	for range 10 {
		clock.Advance(cooldownMax)
		sequence(t, p, 1)
	}
	clock.Advance(cooldownMax - time.Nanosecond)
	if got := sequence(t, p, 1); got != "b" {
		t.Fatalf("pick %s before the capped pause, want b", got)
	}
	clock.Advance(time.Nanosecond)
	b, _ := p.Pick(netip.Addr{})
	if b != a {
		t.Fatal("no trial after the capped pause")
	}
	b.ReportSuccess()
	b.Release()
	if !a.Up() {
		t.Fatal("a successful trial did not bring the backend up")
	}
	if got := sequence(t, p, 4); got != "abab" && got != "baba" {
		t.Fatalf("picks %s after recovery, want both again", got)
	}
}

func TestNoUsableBackend(t *testing.T) {
	p, _ := pickPool(t, RoundRobin, []int{1, 1})
	markDown(t, p.backends[0])
	markDown(t, p.backends[1])
	if _, err := p.Pick(netip.Addr{}); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("Pick with all down: %v, want ErrNoBackend", err)
	}
	empty := NewPool(Settings{Name: "empty"}, nil, nil)
	if _, err := empty.Pick(netip.Addr{}); !errors.Is(err, ErrNoBackend) || !strings.Contains(err.Error(), `"empty"`) {
		t.Fatalf("Pick with no backends: %v, want ErrNoBackend naming the rule", err)
	}
}
