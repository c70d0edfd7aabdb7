package udp

import (
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/backoff"
)

// member is one listening socket of a rule's group and what serves it: its
// plane (on Linux an event loop of its own) and the sessions of the clients
// whose datagrams arrive on it. A rule with workers > 1 listens through
// several sockets bound to one address with SO_REUSEPORT; the kernel hashes
// each client (address and port) to one of them, so a client's datagrams
// all arrive on one member, its session lives there and its replies leave
// through that member's socket: from the address the client sent to.
// Sessions never move between members.
//
// Only the member's own plane adds sessions to its table; other goroutines
// (the sweeper, a session ending) only look or remove, so the table's lock
// is seldom contended. What must hold across members (max_sessions, the
// refusals remembered, the admission gate, the pause) is counted by the
// Service.
type member struct {
	svc   *Service
	plane plane
	once  sync.Once // notes that the socket is no longer read

	totals    counters      // over every session of the member, finished or not
	readDelay backoff.Delay // after receive errors; the plane's reading goroutine's

	mu       sync.Mutex // guards sessions
	sessions map[peer]*session
}

// newMember returns the member of s that serves one socket.
func newMember(s *Service) *member {
	return &member{svc: s, sessions: make(map[peer]*session)}
}

// readingStopped notes that the member's socket is no longer read; once
// every member's is, the service's readStopped closes. Safe to call more
// than once.
func (m *member) readingStopped() {
	m.once.Do(func() {
		if m.svc.reading.Add(-1) == 0 {
			close(m.svc.readStopped)
		}
	})
}

// receiveFailed handles an unexpected error receiving on the member's
// socket (out of memory, say): reading never stops for it, but backs off
// from 5 ms doubling to 1 s, and says so once per episode.
func (m *member) receiveFailed(err error) {
	wait, first := m.readDelay.Next()
	if first {
		m.svc.deps.Logger.Warn("cannot receive; backing off", "rule", m.svc.Rule().Name, "error", err.Error())
	}
	time.Sleep(wait)
}

// receiving notes a successful receive, ending a backoff episode.
func (m *member) receiving() {
	if m.readDelay.Reset() {
		m.svc.deps.Logger.Info("receiving again", "rule", m.svc.Rule().Name)
	}
}

// forget removes a session from the member's table (when it is still
// there), so that the client's next datagram opens a new one.
func (m *member) forget(ss *session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sessions[ss.key] != ss {
		return
	}
	delete(m.sessions, ss.key)
	if ss.refusal != "" {
		m.svc.refusals.Add(-1)
	} else {
		m.svc.live.Add(-1)
	}
}

// empty reports whether the member holds no session and no refusal.
func (m *member) empty() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions) == 0
}

// reserve adds one to n unless that would pass limit, and reports whether
// it did. Concurrent callers never take n past limit together.
func reserve(n *atomic.Int64, limit int64) bool {
	for {
		v := n.Load()
		if v >= limit {
			return false
		}
		if n.CompareAndSwap(v, v+1) {
			return true
		}
	}
}
