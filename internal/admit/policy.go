package admit

import (
	"math"
	"net/netip"
	"time"
)

// maxInterval bounds the time one token takes to refill (about 31 years), so
// that tiny rates cannot overflow the nanosecond arithmetic.
const maxInterval = int64(1e18)

// rules is a Policy compiled for checking: prefixes normalised, limits
// clamped, the rate turned into token-bucket times. It is never modified
// after compile, so it may be read without a lock.
type rules struct {
	allow, deny []netip.Prefix
	maxConns    int // 0: unlimited
	maxPerIP    int // 0: unlimited
	v6Bits      int // leading bits of an IPv6 address that per-IP limits count by

	// The token bucket, kept as a theoretical arrival time (GCRA): each new
	// connection pushes a client's time forward by interval, and a
	// connection conforms while that time stays within span of now.
	interval int64 // nanoseconds to refill one token; 0: no rate limit
	span     int64 // burst * interval: how far ahead of now the time may run
}

// compile turns p into rules, copying its slices so that later changes to
// them by the caller have no effect.
func compile(p Policy) *rules {
	r := &rules{
		allow:    normalisePrefixes(p.Allow),
		deny:     normalisePrefixes(p.Deny),
		maxConns: max(p.MaxConnections, 0),
		maxPerIP: max(p.MaxConnectionsPerIP, 0),
		v6Bits:   128,
	}
	if p.PerIPPrefixV6 >= 1 && p.PerIPPrefixV6 < 128 {
		r.v6Bits = p.PerIPPrefixV6
	}
	r.interval, r.span = bucket(p.RatePerIP)
	return r
}

// perIPKey returns the address that the per-IP limits count client under:
// client itself, or for an IPv6 client the first address of its prefix of
// v6Bits bits.
func (r *rules) perIPKey(client netip.Addr) netip.Addr {
	if client.Is4() || r.v6Bits >= 128 {
		return client
	}
	return netip.PrefixFrom(client, r.v6Bits).Masked().Addr()
}

// bucket returns the refill interval and span of a token bucket for rate
// tokens per second with burst max(1, ceil(rate)). Rates that are not
// positive and finite, or too fast to express in whole nanoseconds, give
// (0, 0): no limit.
func bucket(rate float64) (interval, span int64) {
	if !(rate > 0) || math.IsInf(rate, 1) {
		return 0, 0
	}
	iv := float64(time.Second) / rate
	if iv < 1 {
		return 0, 0
	}
	interval = int64(math.Min(math.Round(iv), float64(maxInterval)))
	burst := int64(math.Max(1, math.Ceil(rate)))
	return interval, burst * interval
}

// conforms reports whether a client whose theoretical arrival time is tat
// has a token at time now.
func (r *rules) conforms(tat, now int64) bool {
	return max(tat, now)+r.interval-now <= r.span
}

// permits reports whether the ACL lets the normalised client address a in.
func (r *rules) permits(a netip.Addr) bool {
	for _, p := range r.deny {
		if p.Contains(a) {
			return false
		}
	}
	if len(r.allow) == 0 {
		return true
	}
	for _, p := range r.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// normalisePrefixes returns a copy of ps with every prefix normalised; nil
// for an empty list.
func normalisePrefixes(ps []netip.Prefix) []netip.Prefix {
	if len(ps) == 0 {
		return nil
	}
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = normalisePrefix(p)
	}
	return out
}

// normalisePrefix masks p and rewrites an IPv4-mapped IPv6 prefix of /96 or
// longer as the IPv4 prefix it covers, to match clients after Unmap. An
// invalid prefix is returned as it is; it matches nothing.
func normalisePrefix(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return p
	}
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}
