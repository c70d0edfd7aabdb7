// Package discovery turns the places a rule's backends_from names into sets
// of backends, as they change: the keys under an etcd prefix (read through
// a Follower, which the fleet's etcd client provides) and the SRV records
// of a DNS name (asked again every interval). A discovered backend is an IP
// address and port: nothing is left to resolve when connecting.
package discovery

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
)

// Backend is one discovered backend.
type Backend struct {
	Addr   netip.AddrPort
	Weight int  // at least 1
	Backup bool // takes traffic only while no primary is up
}

// Entry is one key under a prefix, its value and the revision it was last
// written at (etcd's mod revision).
type Entry struct {
	Key      string
	Value    []byte
	Revision int64
}

// Follower follows the keys under prefix: it calls set with all of them,
// then again with all of them after each change, until ctx ends; then it
// returns. Keys whose lease expired are simply gone from the next set.
type Follower func(ctx context.Context, prefix string, set func([]Entry))

// Keys makes backends of the keys under an etcd prefix: each key's value
// is "ip:port" or {"address": "ip:port", "weight": N}. A value that is
// neither is skipped, and logged once per revision of its key.
type Keys struct {
	Prefix string
	Logger *slog.Logger // with the rule (and route) named; nil: discards
	warned map[string]int64
}

// Follow follows the keys with follow and calls set with the backends they
// make, each time they change, until ctx ends.
func (k *Keys) Follow(ctx context.Context, follow Follower, set func([]Backend)) {
	var last []Backend
	first := true
	follow(ctx, k.Prefix, func(es []Entry) {
		bs := k.Backends(es)
		if first || !slices.Equal(bs, last) {
			first, last = false, bs
			set(bs) // before the line: once it is logged, the pool has them
			k.logger().Info("backends discovered", "from", "etcd:"+k.Prefix, "backends", len(bs))
		}
	})
}

// Backends reads the entries' values, in key order, skipping (and
// warning of) bad ones and later duplicates of an address.
func (k *Keys) Backends(es []Entry) []Backend {
	es = slices.Clone(es)
	slices.SortFunc(es, func(a, b Entry) int { return strings.Compare(a.Key, b.Key) })
	var out []Backend
	seen := make(map[string]int64, len(es))
	for _, e := range es {
		b, err := ParseValue(e.Value)
		if err == nil && slices.ContainsFunc(out, func(o Backend) bool { return o.Addr == b.Addr }) {
			continue
		}
		seen[e.Key] = e.Revision
		if err != nil {
			if k.warned[e.Key] != e.Revision {
				k.logger().Warn("discovered backend skipped", "from", "etcd:"+k.Prefix, "key", e.Key, "revision", e.Revision, "error", err.Error())
			}
			continue
		}
		out = append(out, b)
	}
	k.warned = make(map[string]int64, len(seen))
	for key, rev := range seen {
		k.warned[key] = rev
	}
	return out
}

// logger returns the Logger, or one that discards.
func (k *Keys) logger() *slog.Logger {
	if k.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return k.Logger
}
