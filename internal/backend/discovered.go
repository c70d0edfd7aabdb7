package backend

import (
	"context"
	"slices"
)

// A pool's backends are the ones its Settings list, in config order, then
// the discovered ones (Settings.From), which SetDiscovered replaces while
// the pool runs. A Feed keeps them current.

// Feed runs follow on a goroutine of its own until the pool stops; follow
// calls set with each new set of discovered targets, which SetDiscovered
// makes the pool's, and returns when its ctx ends. After Stop, Feed does
// nothing.
func (p *Pool) Feed(follow func(ctx context.Context, set func([]Target))) {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.stopped {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.feeds = append(p.feeds, cancel)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		follow(ctx, p.SetDiscovered)
	}()
}

// SetDiscovered makes ts the pool's discovered backends, each a TCP IP
// address and port (others are skipped: nothing is resolved for them).
// A target whose address the pool has already, with the same weight,
// backup and max_connections, keeps its Backend: health, admin state and
// counters; one whose address stays but whose values changed gets a new
// Backend that inherits them (taking the new weight); a new one starts up;
// one no longer listed leaves the pool, and its live connections go on
// to their end. A configured backend's address is never added twice.
// After Stop it does nothing.
func (p *Pool) SetDiscovered(ts []Target) {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	if p.stopped {
		return
	}
	p.mu.Lock()
	static := p.backends[:len(p.settings.Backends)]
	next := slices.Clone(static)
	old := p.backends[len(static):]
	kept := make([]bool, len(old))
	var added []*Backend
	for _, t := range ts {
		if _, ok := literalAddr(t.Address); !ok || slices.ContainsFunc(next, func(b *Backend) bool { return b.cfg.Address == t.Address }) {
			continue
		}
		i := slices.IndexFunc(old, func(b *Backend) bool { return b.cfg.Address == t.Address })
		switch {
		case i >= 0 && old[i].cfg == t:
			kept[i] = true
			next = append(next, old[i])
			continue
		case i >= 0:
			nb := newBackend(t, p)
			nb.inherit(old[i])
			next, added = append(next, nb), append(added, nb)
		default:
			nb := newBackend(t, p)
			p.recallLocked(nb)
			next, added = append(next, nb), append(added, nb)
		}
	}
	p.backends = next
	p.discovered = slices.Clone(ts)
	p.mu.Unlock()
	for i, b := range old {
		if !kept[i] {
			p.stopCheckLocked(b)
		}
	}
	for _, b := range added {
		p.startCheckLocked(b)
	}
	p.serveQueue() // a new backend may have room for the clients waiting
}

// Recall says what a backend that joins a pool by discovery starts as,
// when ok: its admin state, and its runtime weight (0: its own). The
// fleet recalls what it stored for the address (state/backends/ in etcd),
// so a drained backend that left and comes back is drained still.
type Recall func(Address) (state State, weight int, ok bool)

// SetRecall makes r what the pool asks of each backend that discovery
// adds; it is asked before the backend is in the pool, so no connection
// finds it as it would otherwise start (ready). Call it before Feed.
func (p *Pool) SetRecall(r Recall) {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	p.recall = r
}

// recallLocked sets on b, new to the pool, what the pool's Recall says.
// p.runMu is held.
func (p *Pool) recallLocked(b *Backend) {
	if p.recall == nil {
		return
	}
	if st, w, ok := p.recall(b.cfg.Address); ok {
		if w > 0 {
			_ = b.SetWeight(w) // out of range: its own weight stays
		}
		b.SetState(st)
	}
}

// Discovered returns the targets the pool was last given by
// SetDiscovered, as given.
func (p *Pool) Discovered() []Target {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.discovered)
}
