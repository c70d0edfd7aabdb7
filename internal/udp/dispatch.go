package udp

import (
	"time"

	"sluice/internal/access"
	"sluice/internal/admit"
	"sluice/internal/conntrack"
)

// dispatch hands the n datagrams of b to their sessions, opening sessions
// for new clients, and sends each session's share with one call. A client's
// datagrams keep their order. A new session's datagrams are queued first
// and its socket set up after, outside the lock, so that a setup that
// fails at once still counts them.
func (s *Service) dispatch(b *batch, n int) {
	now := s.now()
	dest := b.dest[:n]
	fresh := b.fresh[:0]
	dropped := 0
	s.mu.Lock()
	var last *session
	for i := range n {
		p := b.from[i]
		if last == nil || last.key != p {
			last = s.sessions[p]
			// A read may still complete just after StopReading (the
			// runtime lets data that races the deadline through); it
			// opens no session.
			if last == nil && !s.stopping.Load() {
				if last = s.openLocked(p, now); last != nil && last.refusal == "" {
					fresh = append(fresh, last)
				}
			}
		}
		if last == nil {
			dropped++
		}
		dest[i] = last
	}
	s.mu.Unlock()
	if dropped > 0 {
		s.dropped.Add(int64(dropped))
	}
	for i, ss := range dest {
		if ss == nil {
			continue
		}
		b.idx = b.idx[:0]
		for j := i; j < n; j++ {
			if dest[j] == ss {
				b.idx = append(b.idx, j)
				dest[j] = nil
			}
		}
		ss.forward(b, now)
	}
	for i, ss := range fresh {
		s.plane.open(ss)
		fresh[i] = nil
	}
}

// openLocked starts a session for a new client p, or remembers a refusal.
// While new sessions are paused it returns the pause's refusal, which is
// not p's alone. It returns nil when p is refused and no more refusals can
// be remembered.
func (s *Service) openLocked(p peer, now int64) *session {
	rs := s.rule.Load()
	if s.pausedLocked(now) {
		return s.turnAwayLocked(p, rs, now)
	}
	rule := rs.rule
	client := p.client()
	var ticket admit.Ticket
	var reason access.Reason
	if rule.Gate != nil {
		ticket, reason = rule.Gate.Admit(client.Addr())
	}
	if reason == "" && rule.MaxSessions > 0 && s.live >= rule.MaxSessions {
		ticket.Release()
		reason = ReasonMaxSessions
	}
	if reason != "" {
		rule.Metrics.Rejected(reason)
		s.rejected[string(reason)]++
		return s.refuseLocked(p, rs, access.Rejected(reason), nil, now)
	}
	b, err := rule.Pool.Pick(client.Addr())
	if err != nil {
		ticket.Release()
		return s.refuseLocked(p, rs, access.ConnectFailed, err, now)
	}
	ss := &session{
		svc: s, rs: rs, key: p, name: client.String(), start: time.Now(), born: now,
		timeout: rule.SessionTimeout, backend: b, ticket: ticket,
	}
	ss.last.Store(now)
	ss.entry = conntrack.Entry{
		ID: s.deps.IDs.Next(), Rule: rule.Name, Proto: "udp",
		Client: ss.name, Backend: b.Address().String(), Since: ss.start, Bytes: ss,
		Stop: func(reason access.End) { ss.stop(reason, nil) },
	}
	s.sessions[p] = ss
	s.live++
	s.deps.Table.Add(&ss.entry)
	rule.Metrics.ConnOpened()
	rule.Metrics.UDPSessionOpened()
	s.wg.Add(1)
	return ss
}

// refuseLocked remembers that p was refused (or found no backend), so that
// its datagrams are dropped until the refusal expires, which writes its one
// access line. It returns nil when too many refusals are remembered.
func (s *Service) refuseLocked(p peer, rs *ruleState, end access.End, err error, now int64) *session {
	if s.refusals >= maxRefusals {
		return nil
	}
	ss := newRefusal(s, p, rs, end, err, now)
	s.sessions[p] = ss
	s.refusals++
	return ss
}

// newRefusal returns the record of a refusal of p at now, which drops the
// client's datagrams until it expires and then writes its access line with
// end and err.
func newRefusal(s *Service, p peer, rs *ruleState, end access.End, err error, now int64) *session {
	return &session{
		svc: s, rs: rs, key: p, name: p.client().String(), start: time.Now(), born: now,
		timeout: min(refusalMemory, rs.rule.SessionTimeout), refusal: end, refusalErr: err,
	}
}

// forget removes a session from the table (when it is still there), so that
// the client's next datagram opens a new one.
func (s *Service) forget(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[ss.key] != ss {
		return
	}
	delete(s.sessions, ss.key)
	if ss.refusal != "" {
		s.refusals--
	} else {
		s.live--
	}
}
