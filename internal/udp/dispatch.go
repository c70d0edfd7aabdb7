package udp

import (
	"math"
	"net/netip"
	"time"

	"sluice/internal/access"
	"sluice/internal/admit"
	"sluice/internal/backend"
	"sluice/internal/conntrack"
)

// dispatch hands the n datagrams of b, received on m's socket, to their
// sessions, opening sessions for new clients, and sends each session's
// share with one call. A client's datagrams keep their order. A new
// session's datagrams are queued first and its socket set up after, outside
// the lock, so that a setup that fails at once still counts them.
func (s *Service) dispatch(m *member, b *batch, n int) {
	now := s.now()
	dest := b.dest[:n]
	fresh := b.fresh[:0]
	dropped := 0
	m.mu.Lock()
	var last *session
	for i := range n {
		p := b.from[i]
		if last == nil || last.key != p {
			last = m.sessions[p]
			// A read may still complete just after StopReading (the
			// runtime lets data that races the deadline through); it
			// opens no session.
			if last == nil && !s.stopping.Load() {
				if last = m.openLocked(p, now); last != nil && last.refusal == "" {
					fresh = append(fresh, last)
				}
			}
		}
		if last == nil {
			dropped++
		}
		dest[i] = last
	}
	m.mu.Unlock()
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
		m.plane.open(ss)
		fresh[i] = nil
	}
}

// openLocked starts a session on m for a new client p, or remembers a
// refusal; m.mu is held. While new sessions are paused it returns the
// pause's refusal, which is not p's alone. It returns nil when p is refused
// and no more refusals can be remembered.
func (m *member) openLocked(p peer, now int64) *session {
	s := m.svc
	rs := s.rule.Load()
	client := p.client()
	s.mu.Lock()
	if s.pausedLocked(now) {
		w := s.turnAwayLocked(p, rs, now)
		s.mu.Unlock()
		return w
	}
	ticket, b, end, err := s.admitLocked(client, rs)
	s.mu.Unlock()
	if end != "" {
		return m.refuseLocked(p, rs, end, err, now)
	}
	rule := rs.rule
	ss := &session{
		svc: s, m: m, rs: rs, key: p, name: client.String(), start: time.Now(), born: now,
		timeout: rule.SessionTimeout, backend: b, ticket: ticket,
	}
	ss.last.Store(now)
	ss.entry = conntrack.Entry{
		ID: s.deps.IDs.Next(), Rule: rule.Name, Proto: "udp",
		Client: ss.name, Listen: rule.Port, Backend: b.Address().String(), Since: ss.start, Bytes: ss, Tally: b.Tally(),
		Stop: func(reason access.End) { ss.stop(reason, nil) },
	}
	m.sessions[p] = ss
	s.deps.Table.Add(&ss.entry)
	rule.Metrics.ConnOpened()
	rule.Metrics.UDPSessionOpened()
	s.wg.Add(1)
	return ss
}

// admitLocked decides for a new client across every member of the rule:
// the admission gate, then max_sessions, then a backend. Admitted, it
// counts the session as live and returns its ticket and backend; refused,
// it returns the end of the refusal's access line (and error) and counts
// the rejection. Since live grows only here, by reserve, no two members
// (nor the services of the rule's other ports) can take the rule past
// max_sessions together.
func (s *Service) admitLocked(client netip.AddrPort, rs *ruleState) (admit.Ticket, *backend.Backend, access.End, error) {
	rule := rs.rule
	var ticket admit.Ticket
	var reason access.Reason
	if rule.Gate != nil {
		ticket, reason = rule.Gate.Admit(client.Addr())
	}
	limit := int64(math.MaxInt64)
	if rule.MaxSessions > 0 {
		limit = int64(rule.MaxSessions)
	}
	if reason == "" && !reserve(s.live, limit) {
		ticket.Release()
		reason = ReasonMaxSessions
	}
	if reason != "" {
		rule.Metrics.Rejected(reason)
		s.rejected[string(reason)]++
		return admit.Ticket{}, nil, access.Rejected(reason), nil
	}
	b, err := rule.Pool.Pick(client.Addr())
	if err != nil {
		s.live.Add(-1)
		ticket.Release()
		return admit.Ticket{}, nil, access.ConnectFailed, err
	}
	return ticket, b, "", nil
}

// refuseLocked remembers on m that p was refused (or found no backend), so
// that its datagrams are dropped until the refusal expires, which writes
// its one access line; m.mu is held. It returns nil when too many refusals
// are remembered across the rule's members.
func (m *member) refuseLocked(p peer, rs *ruleState, end access.End, err error, now int64) *session {
	if !reserve(&m.svc.refusals, maxRefusals) {
		return nil
	}
	ss := newRefusal(m.svc, p, rs, end, err, now)
	ss.m = m
	m.sessions[p] = ss
	return ss
}

// newRefusal returns the record of a refusal of p at now, which drops the
// client's datagrams until it expires and then writes its access line with
// end and err. It belongs to no member until one remembers it.
func newRefusal(s *Service, p peer, rs *ruleState, end access.End, err error, now int64) *session {
	return &session{
		svc: s, rs: rs, key: p, name: p.client().String(), start: time.Now(), born: now,
		timeout: min(refusalMemory, rs.rule.SessionTimeout), refusal: end, refusalErr: err,
	}
}

// forget removes a session from its member's table (when it is still
// there), so that the client's next datagram opens a new one. The pause's
// refusal is in no table.
func (s *Service) forget(ss *session) {
	if ss.m != nil {
		ss.m.forget(ss)
	}
}
