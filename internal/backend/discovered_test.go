package backend

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// addresses returns the addresses of p's backends, in order.
func addresses(p *Pool) []string {
	var out []string
	for _, b := range p.Backends() {
		out = append(out, b.Address().String())
	}
	return out
}

// TestSetDiscoveredKeepsBackends: a discovered address that stays keeps
// its Backend (admin state and counters), one that goes leaves, one that
// comes starts up; a configured backend is not doubled, a name not taken.
func TestSetDiscoveredKeepsBackends(t *testing.T) {
	p := NewPool(Settings{Name: "web", Backends: backends([]Address{testAddr(1)}, nil), From: "etcd:/web/"}, nil, nil)
	defer p.Stop()
	p.SetDiscovered([]Target{{Address: testAddr(2), Weight: 1}, {Address: testAddr(3), Weight: 1}})
	if got, want := addresses(p), []string{"192.0.2.1:80", "192.0.2.2:80", "192.0.2.3:80"}; !slices.Equal(got, want) {
		t.Fatalf("backends %v, want %v", got, want)
	}
	two := p.Backends()[1]
	two.SetState(Drain)
	name := Address{Network: "tcp", Host: "web.example.org", Port: 80}
	p.SetDiscovered([]Target{{Address: testAddr(1), Weight: 1}, {Address: testAddr(2), Weight: 1}, {Address: testAddr(4), Weight: 1}, {Address: name, Weight: 1}})
	if got, want := addresses(p), []string{"192.0.2.1:80", "192.0.2.2:80", "192.0.2.4:80"}; !slices.Equal(got, want) {
		t.Fatalf("backends %v, want %v", got, want)
	}
	if p.Backends()[1] != two || two.State() != Drain {
		t.Errorf("the backend that stayed lost its Backend or its state")
	}
	p.SetDiscovered([]Target{{Address: testAddr(2), Weight: 5}})
	if b := p.Backends()[1]; b.Weight() != 5 || b.State() != Drain {
		t.Errorf("changed weight: got weight %d state %v, want 5 and drain kept", b.Weight(), b.State())
	}
	if !p.Direct() {
		t.Errorf("pool of IP addresses not Direct")
	}
}

// TestSetDiscoveredEmpty: a pool with only discovered backends and none
// discovered has no usable backend; one discovered is picked.
func TestSetDiscoveredEmpty(t *testing.T) {
	p := NewPool(Settings{Name: "web", From: "etcd:/web/"}, nil, nil)
	defer p.Stop()
	if _, err := p.Pick(clientIP(1)); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("Pick with none discovered: %v, want ErrNoBackend", err)
	}
	p.SetDiscovered([]Target{{Address: testAddr(7), Weight: 1}})
	b, err := p.Pick(clientIP(1))
	if err != nil {
		t.Fatal(err)
	}
	b.Release()
	if b.Address() != testAddr(7) {
		t.Errorf("picked %v", b.Address())
	}
	p.SetDiscovered(nil)
	if _, err := p.Pick(clientIP(1)); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("Pick once none is left: %v, want ErrNoBackend", err)
	}
}

// TestSetDiscoveredChecksHealth: a discovered backend is health checked
// once it comes, and its check stops when it goes.
func TestSetDiscoveredChecksHealth(t *testing.T) {
	h := newLogRecorder()
	st := Settings{Name: "web", From: "srv:x", HealthCheck: &HealthCheck{Interval: 20 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1}}
	p := NewPool(st, nil, h.logger())
	p.Start()
	defer p.Stop()
	dead := refusedAddr(t)
	p.SetDiscovered([]Target{{Address: dead, Weight: 1}})
	h.waitCount(t, "backend down", dead.String(), 1)
	p.SetDiscovered(nil)
	p.runMu.Lock()
	checks := len(p.checkOf)
	p.runMu.Unlock()
	if checks != 0 {
		t.Errorf("%d health checks run after the backend left", checks)
	}
}

// TestFeedAndInherit: a Feed's sets become the pool's; a pool built anew
// with the same From starts with the old one's discovered backends and
// their state; Stop ends the feed.
func TestFeedAndInherit(t *testing.T) {
	st := Settings{Name: "web", From: "etcd:/web/"}
	p := NewPool(st, nil, nil)
	ended := make(chan struct{})
	p.Feed(func(ctx context.Context, set func([]Target)) {
		set([]Target{{Address: testAddr(9), Weight: 1}})
		<-ctx.Done()
		close(ended)
	})
	deadline := time.Now().Add(waitLimit)
	for len(p.Backends()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.Backends()[0].SetState(Maint)
	st.Retries = 2
	np := NewPool(st, nil, nil)
	np.Inherit(p)
	p.Stop()
	select {
	case <-ended:
	default:
		t.Errorf("Stop returned with the feed running")
	}
	if got := addresses(np); len(got) != 1 || got[0] != "192.0.2.9:80" || np.Backends()[0].State() != Maint {
		t.Errorf("new pool's backends %v, want the old one's discovered one in maint", got)
	}
	np.Stop()
}
