package tcp

import (
	"sluice/internal/access"
	"sluice/internal/relay"
)

// queueDirect is the direct path's queue step (see connect): it reports
// whether cn may connect at once. Otherwise cn has ended or waits, and
// its connect starts on a goroutine once a slot is reserved for it.
func (s *Service) queueDirect(cn *conn, l *listening) bool {
	resume := func(err error) {
		s.spawn(func() {
			cn.onLoop = false
			if err != nil {
				s.reject(cn, access.ReasonQueueTimeout, err)
				return
			}
			if err := s.connectNext(cn, l, relay.Loop{}); err != nil && l.direct != nil {
				l.direct.shortage(err)
			}
		})
	}
	return s.awaitSlot(cn, resume) == slotNow
}
