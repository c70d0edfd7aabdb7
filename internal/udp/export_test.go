package udp

import "net"

// Types and methods for tests only.

// Stats are a service's counts.
type Stats struct {
	Sessions      int              // live sessions
	Refused       int              // refused clients remembered
	DatagramsUp   int64            // client→backend datagrams passed on
	DatagramsDown int64            // backend→client datagrams passed on
	BytesUp       int64            // client→backend bytes passed on
	BytesDown     int64            // backend→client bytes passed on
	Dropped       int64            // datagrams received but not passed on
	Rejected      map[string]int64 // refused session attempts by reason
}

// Stats returns the service's counts now.
func (s *Service) Stats() Stats {
	st := Stats{Dropped: s.dropped.Load(), Rejected: make(map[string]int64)}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.members {
		st.DatagramsUp += m.totals.upDgrams.Load()
		st.DatagramsDown += m.totals.downDgrams.Load()
		st.BytesUp += m.totals.upBytes.Load()
		st.BytesDown += m.totals.downBytes.Load()
	}
	st.Sessions, st.Refused = int(s.live.Load()), int(s.refusals.Load())
	for k, v := range s.rejected {
		st.Rejected[k] = v
	}
	return st
}

// LocalAddr returns the address the socket is bound to.
func (s *Socket) LocalAddr() net.Addr { return s.addr }
