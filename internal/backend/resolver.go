package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

const (
	// lookupTimeout bounds one lookup. It runs detached from the callers
	// that wait for it, so one impatient caller cannot fail the others.
	lookupTimeout = 10 * time.Second
	// staleRetry is the longest pause between refresh attempts while a
	// name's server fails and its last good answer is being served.
	staleRetry = 5 * time.Second
)

// Resolver caches host name → addresses for a caller-chosen TTL. It is shared
// by all rules and safe for concurrent use. Concurrent callers asking for
// the same name share one lookup (single flight). When a refresh fails and an
// earlier answer exists, that answer keeps being served, the failure is
// logged, and the refresh is retried after a short pause rather than on every
// call.
type Resolver struct {
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	logger *slog.Logger
	now    func() time.Time // the clock; tests replace it

	mu      sync.Mutex // guards entries and every cacheEntry in it
	entries map[string]*cacheEntry
}

// cacheEntry is what the Resolver knows about one name.
type cacheEntry struct {
	addrs   []netip.Addr // last good answer; nil before the first success
	at      time.Time    // when addrs was fetched
	retryAt time.Time    // after a failed refresh: serve addrs as they are until then
	flight  *flight      // the lookup in progress, or nil
}

// flight is one lookup in progress; done is closed once addrs/err are set.
type flight struct {
	done    chan struct{}
	addrs   []netip.Addr
	err     error
	waiters int // callers waiting on done; guarded by Resolver.mu
}

// NewResolver returns a Resolver that looks names up with lookup. A nil
// lookup means net.DefaultResolver.LookupNetIP(ctx, "ip", host). A nil logger
// discards logs.
func NewResolver(lookup func(ctx context.Context, host string) ([]netip.Addr, error), logger *slog.Logger) *Resolver {
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Resolver{
		lookup:  lookup,
		logger:  logger,
		now:     time.Now,
		entries: make(map[string]*cacheEntry),
	}
}

// Resolve returns the addresses of host, from the cache when the cached
// answer is younger than ttl (ttl <= 0 means always look up, still shared
// with concurrent callers). An IP literal is returned as it is, without a
// lookup. When ctx ends first, Resolve returns at once; the lookup itself
// carries on for the other callers and the cache. The returned slice is the
// caller's own.
func (r *Resolver) Resolve(ctx context.Context, host string, ttl time.Duration) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip.Unmap()}, nil
	}
	r.mu.Lock()
	e := r.entries[host]
	if e == nil {
		e = &cacheEntry{}
		r.entries[host] = e
	}
	if e.addrs != nil {
		now := r.now()
		if now.Before(e.at.Add(ttl)) || now.Before(e.retryAt) {
			addrs := slices.Clone(e.addrs)
			r.mu.Unlock()
			return addrs, nil
		}
	}
	f := e.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		e.flight = f
		go r.refresh(host, ttl, e, f)
	}
	f.waiters++
	r.mu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		return slices.Clone(f.addrs), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("resolve %q: %w", host, context.Cause(ctx))
	}
}

// refresh runs one lookup of host and publishes its outcome to the entry e
// and to everyone waiting on f. After a failure with an earlier answer to
// fall back on, the next attempt waits min(ttl, staleRetry).
func (r *Resolver) refresh(host string, ttl time.Duration, e *cacheEntry, f *flight) {
	ctx, cancel := context.WithTimeout(context.Background(), lookupTimeout)
	addrs, err := r.lookup(ctx, host)
	cancel()
	addrs = normalize(addrs)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}

	r.mu.Lock()
	now := r.now()
	switch {
	case err == nil:
		e.addrs, e.at, e.retryAt = addrs, now, time.Time{}
		f.addrs = addrs
	case e.addrs != nil:
		e.retryAt = now.Add(min(staleRetry, max(0, ttl)))
		f.addrs = e.addrs
		r.logger.Warn("resolve failed, serving last good answer",
			"host", host, "error", err, "answer", addrsString(e.addrs), "age", now.Sub(e.at).Round(time.Millisecond))
	default:
		f.err = fmt.Errorf("resolve %q: %w", host, err)
		delete(r.entries, host)
	}
	e.flight = nil
	r.mu.Unlock()
	close(f.done)
}

// normalize unmaps IPv4-in-IPv6 addresses and drops invalid and repeated
// ones, keeping the lookup's order.
func normalize(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		if a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// addrsString formats addresses for a log line.
func addrsString(addrs []netip.Addr) string {
	s := make([]byte, 0, 16*len(addrs))
	for i, a := range addrs {
		if i > 0 {
			s = append(s, ',')
		}
		s = a.AppendTo(s)
	}
	return string(s)
}
