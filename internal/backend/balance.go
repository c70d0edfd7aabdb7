package backend

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/netip"
)

// The balancing strategies a rule may name.
const (
	RoundRobin = "round-robin"
	LeastConn  = "least-conn"
	Random     = "random"
	SourceHash = "source-hash"
	First      = "first"
)

// chooseLocked picks one of cands (non-empty, in config order) by the pool's
// strategy. The caller holds p.mu.
func (p *Pool) chooseLocked(cands []*Backend, client netip.Addr) *Backend {
	if len(cands) == 1 {
		return cands[0]
	}
	switch p.balance {
	case LeastConn:
		return smoothRoundRobin(leastLoaded(cands))
	case Random:
		return twoRandomChoices(cands)
	case SourceHash:
		return rendezvous(cands, client)
	case First:
		return cands[0]
	default:
		return smoothRoundRobin(cands)
	}
}

// The strategies weigh candidates by Backend.eff, the weight that pick
// works out for the pick at hand (see slowstart.go), not Weight.

// smoothRoundRobin is nginx-style smooth weighted round robin: every
// candidate gains its weight, the richest is chosen and pays the total. With
// weights 5,1,1 it yields a a b a c a a: interleaved, never in bursts. The
// state lives in Backend.current, guarded by the pool's mutex.
func smoothRoundRobin(cands []*Backend) *Backend {
	var best *Backend
	total := 0
	for _, b := range cands {
		w := b.eff
		b.current += w
		total += w
		if best == nil || b.current > best.current {
			best = b
		}
	}
	best.current -= total
	return best
}

// lessLoaded reports whether a carries fewer live connections per unit of
// weight than b.
func lessLoaded(a, b *Backend) bool {
	return a.Active()*int64(b.eff) < b.Active()*int64(a.eff)
}

// leastLoaded returns the candidates with the fewest live connections per
// unit of weight (with equal weights: the fewest live connections).
func leastLoaded(cands []*Backend) []*Backend {
	best := cands[:0:0]
	for _, b := range cands {
		switch {
		case len(best) == 0 || lessLoaded(b, best[0]):
			best = append(best[:0], b)
		case !lessLoaded(best[0], b):
			best = append(best, b)
		}
	}
	return best
}

// twoRandomChoices picks two distinct candidates at random, each with
// probability proportional to its weight, and returns the less loaded one
// (the first on a tie).
func twoRandomChoices(cands []*Backend) *Backend {
	a := weightedRandom(cands, nil)
	b := weightedRandom(cands, a)
	if lessLoaded(b, a) {
		return b
	}
	return a
}

// weightedRandom picks one of cands other than skip, with probability
// proportional to weight.
func weightedRandom(cands []*Backend, skip *Backend) *Backend {
	total := 0
	for _, b := range cands {
		if b != skip {
			total += b.eff
		}
	}
	n := rand.IntN(total)
	for _, b := range cands {
		if b == skip {
			continue
		}
		if n -= b.eff; n < 0 {
			return b
		}
	}
	panic("backend: weightedRandom ran past the total weight")
}

// rendezvous is weighted highest-random-weight hashing of the client
// address: each (client, backend) pair gets a score from a hash alone, and
// the best score wins. A client changes backend only when its backend leaves
// the candidates (or a better one joins), so removing a backend moves only
// its own clients. Scores are w / -ln(u) for u uniform in (0,1), which makes
// a backend's share proportional to its weight.
func rendezvous(cands []*Backend, client netip.Addr) *Backend {
	c := clientHash(client)
	var best *Backend
	bestScore := math.Inf(-1)
	for _, b := range cands {
		h := mix64(c ^ b.key)
		u := (float64(h>>11) + 0.5) / (1 << 53)
		score := float64(b.eff) / -math.Log(u)
		if score > bestScore {
			best, bestScore = b, score
		}
	}
	return best
}

// clientHash hashes a client address; IPv4 and its IPv4-mapped IPv6 form hash
// the same.
func clientHash(client netip.Addr) uint64 {
	b := client.Unmap().As16()
	h := fnv.New64a()
	h.Write(b[:])
	return mix64(h.Sum64())
}

// hashString hashes a backend's key (its address as written), so that a
// backend keeps its clients across restarts and reloads.
func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return mix64(h.Sum64())
}

// mix64 is the SplitMix64 finaliser: a bijection with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
