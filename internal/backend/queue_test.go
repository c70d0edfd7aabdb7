package backend

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// fullPool returns a pool of two documentation backends (never dialed)
// with max_connections each, and the queue settings given.
func fullPool(t *testing.T, maxConns int, timeout time.Duration, maxQueue int) *Pool {
	t.Helper()
	bs := backends([]Address{testAddr(1), testAddr(2)}, nil)
	for i := range bs {
		bs[i].MaxConns = maxConns
	}
	return NewPool(Settings{Name: "q", Backends: bs, QueueTimeout: timeout, MaxQueue: maxQueue}, nil, nil)
}

// TestFullBackendIsNotPicked checks that a backend at its max_connections
// takes no pick until a connection of its ends, and that with every
// backend full a pick fails with ErrFull, not ErrNoBackend.
func TestFullBackendIsNotPicked(t *testing.T) {
	p := fullPool(t, 2, 0, 0)
	held := map[*Backend]int{}
	var got []*Backend
	for range 4 {
		b, err := p.Pick(netip.Addr{})
		if err != nil {
			t.Fatalf("pick %d: %v", len(got)+1, err)
		}
		held[b]++
		got = append(got, b)
	}
	for b, n := range held {
		if n != 2 {
			t.Errorf("backend %v took %d of 4 picks; want 2 (its max_connections)", b.Address(), n)
		}
	}
	_, err := p.Pick(netip.Addr{})
	if !errors.Is(err, ErrFull) || errors.Is(err, ErrNoBackend) {
		t.Fatalf("pick with every backend full: %v; want ErrFull", err)
	}
	got[0].Release()
	b, err := p.Pick(netip.Addr{})
	if err != nil || b != got[0] {
		t.Fatalf("pick after a release: %v, %v; want the backend released", b, err)
	}
}

// queued is one waiting client of a test: its attempts and what ready said.
type queued struct {
	a    Attempts
	done chan error
}

// enqueue begins attempts on p and has them wait, failing the test unless
// they are queued.
func enqueue(t *testing.T, p *Pool, i int) *queued {
	t.Helper()
	q := &queued{done: make(chan error, 1)}
	p.Begin(&q.a, clientIP(i), nil, nil)
	if _, err := q.a.next(); !errors.Is(err, ErrFull) {
		t.Fatalf("client %d: first pick: %v; want ErrFull", i, err)
	}
	ok, err := q.a.Wait(func(err error) { q.done <- err })
	if !ok || err != nil {
		t.Fatalf("client %d: Wait: %v, %v; want queued", i, ok, err)
	}
	return q
}

// TestQueueServesInArrivalOrder fills both backends, queues three
// clients, refuses a fourth (queue full) and a new first pick (others
// wait), and checks that each freed slot goes to the oldest waiter, with
// the backend that freed it reserved for its next attempt.
func TestQueueServesInArrivalOrder(t *testing.T) {
	p := fullPool(t, 1, time.Minute, 3)
	b1, _ := p.Pick(netip.Addr{})
	b2, _ := p.Pick(netip.Addr{})
	var waiting []*queued
	for i := range 3 {
		waiting = append(waiting, enqueue(t, p, i))
	}
	if n := p.QueueLength(); n != 3 {
		t.Fatalf("QueueLength = %d; want 3", n)
	}
	var extra Attempts
	p.Begin(&extra, clientIP(9), nil, nil)
	if ok, err := extra.Wait(func(error) { t.Error("the refused client's ready was called") }); ok || !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fourth Wait: %v, %v; want ErrQueueFull", ok, err)
	}
	for i, freed := range []*Backend{b2, b1, b2} {
		if _, err := p.Pick(netip.Addr{}); !errors.Is(err, ErrFull) {
			t.Fatalf("new client's pick while %d wait: %v; want ErrFull", 3-i, err)
		}
		freed.Release()
		select {
		case err := <-waiting[i].done:
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		default:
			t.Fatalf("client %d not served by the release", i)
		}
		for _, later := range waiting[i+1:] {
			if len(later.done) > 0 {
				t.Fatalf("a later client was served before client %d", i)
			}
		}
		b, err := waiting[i].a.next()
		if err != nil || b != freed {
			t.Fatalf("client %d: next: %v, %v; want the freed backend %v", i, b, err, freed.Address())
		}
	}
	if n := p.QueueLength(); n != 0 {
		t.Fatalf("QueueLength = %d; want 0", n)
	}
}

// TestQueueTimeout checks that a waiter with no slot freed is told
// ErrQueueTimeout after queue_timeout, not before, and leaves the queue;
// and that Leave takes a waiter out so that ready is never called.
func TestQueueTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	p := fullPool(t, 1, timeout, 0)
	p.Pick(netip.Addr{})
	p.Pick(netip.Addr{})
	began := time.Now()
	q := enqueue(t, p, 1)
	left := enqueue(t, p, 2)
	if !left.a.Leave() {
		t.Fatal("Leave of a waiting client: false")
	}
	err := <-q.done
	if waited := time.Since(began); !errors.Is(err, ErrQueueTimeout) || waited < timeout {
		t.Fatalf("after %v: %v; want ErrQueueTimeout after %v", waited, err, timeout)
	}
	if n := p.QueueLength(); n != 0 {
		t.Fatalf("QueueLength = %d; want 0", n)
	}
	if left.a.Leave() || len(left.done) > 0 {
		t.Fatal("the client that left was still told")
	}
}

// TestQueueWithoutTimeoutRefuses checks that without queue_timeout Wait
// queues nothing and returns the ErrFull.
func TestQueueWithoutTimeoutRefuses(t *testing.T) {
	p := fullPool(t, 1, 0, 0)
	p.Pick(netip.Addr{})
	p.Pick(netip.Addr{})
	var a Attempts
	p.Begin(&a, netip.Addr{}, nil, nil)
	if ok, err := a.Wait(func(error) {}); ok || !errors.Is(err, ErrFull) {
		t.Fatalf("Wait: %v, %v; want ErrFull", ok, err)
	}
}

// TestQueueRace has many clients wait on and release a one-slot pool
// at once, for the race detector, and checks that every one is served.
func TestQueueRace(t *testing.T) {
	p := fullPool(t, 1, time.Minute, 1000)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a Attempts
			p.Begin(&a, clientIP(i), nil, nil)
			b, err := a.next()
			if errors.Is(err, ErrFull) {
				done := make(chan error, 1)
				ok, werr := a.Wait(func(err error) { done <- err })
				if werr != nil {
					t.Error(werr)
					return
				}
				if ok {
					if err := <-done; err != nil {
						t.Error(err)
						return
					}
				}
				b, err = a.next()
			}
			if err != nil {
				t.Error(fmt.Errorf("client %d: %w", i, err))
				return
			}
			b.Release()
		}()
	}
	wg.Wait()
	if n := p.QueueLength(); n != 0 {
		t.Fatalf("QueueLength = %d; want 0", n)
	}
}
