package udp

import (
	"sync"
	"time"

	"sluice/internal/access"
)

// Bounds on how often the sweeper looks for expired sessions. It looks ten
// times per shortest limit in force, so a session ends within a tenth of
// its timeout after it expired.
const (
	minSweep = 5 * time.Millisecond
	maxSweep = time.Second
)

// sweeper ends the expired sessions and refusals of services until their
// drain is complete: one goroutine per service, or per rule for the
// services of a rule's ports (see Ports), whatever the number of sessions:
// traffic only stores a timestamp. It runs while it has a service: the
// first one added starts it, and it returns once the last is drained.
type sweeper struct {
	wake chan struct{} // nudges the sweeper

	mu      sync.Mutex // guards the following fields
	svcs    map[*Service]struct{}
	running bool
}

// newSweeper returns a sweeper that runs once a service is added.
func newSweeper() *sweeper {
	return &sweeper{wake: make(chan struct{}, 1), svcs: make(map[*Service]struct{})}
}

// add sweeps s from now on, until its drain is complete; then s.sweepDone
// closes.
func (w *sweeper) add(s *Service) {
	w.mu.Lock()
	w.svcs[s] = struct{}{}
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go w.run()
	}
	w.nudge()
}

// nudge wakes the sweeper to look again at once.
func (w *sweeper) nudge() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run sweeps until no service is left.
func (w *sweeper) run() {
	timer := time.NewTimer(maxSweep)
	defer timer.Stop()
	var svcs []*Service
	for {
		select {
		case <-timer.C:
		case <-w.wake:
		}
		w.mu.Lock()
		svcs = svcs[:0]
		for s := range w.svcs {
			svcs = append(svcs, s)
		}
		w.mu.Unlock()
		next := maxSweep
		for i, s := range svcs {
			if s.expire() {
				w.mu.Lock()
				delete(w.svcs, s)
				w.mu.Unlock()
				close(s.sweepDone)
			} else {
				next = min(next, s.sweepInterval())
			}
			svcs[i] = nil
		}
		if w.stopIfEmpty() {
			return
		}
		timer.Reset(next)
	}
}

// stopIfEmpty reports whether the sweeper has no service left, and then
// stops it: the next service added starts it anew.
func (w *sweeper) stopIfEmpty() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.svcs) > 0 {
		return false
	}
	w.running = false
	return true
}

// sweepInterval returns the time to the sweeper's next look.
func (s *Service) sweepInterval() time.Duration {
	d := min(s.Rule().SessionTimeout, refusalMemory)
	if s.stopping.Load() {
		d = min(d, drainQuiet)
		s.mu.Lock()
		left := time.Duration(s.drainEnd - s.now())
		s.mu.Unlock()
		return max(min(d/10, left), minSweep)
	}
	return min(max(d/10, minSweep), maxSweep)
}

// expire ends the sessions whose limit has passed and writes the access
// lines of expired refusals (the pause's too), on every member. During a
// drain the limit of a session is also the drain's quiet time, every
// refusal expires, and at the drain's end every session does. It reports
// whether the drain is complete: reading has stopped and no session is
// left.
func (s *Service) expire() (drained bool) {
	now := s.now()
	draining := s.stopping.Load()
	var ended, refused []*session
	s.mu.Lock()
	cut := draining && now >= s.drainEnd
	if w := s.expireWindowLocked(now, draining); w != nil {
		refused = append(refused, w)
	}
	s.mu.Unlock()
	for _, m := range s.members {
		ended, refused = m.expired(now, draining, cut, ended, refused)
	}
	if cut {
		s.cancel() // abandon name resolutions in progress
		for _, m := range s.members {
			m.plane.cut()
		}
	}
	for _, ss := range refused {
		s.forget(ss)
		s.logAccess(ss, "", ss.refusal, ss.refusalErr)
	}
	for _, ss := range ended {
		end := access.Drained
		if time.Duration(now-ss.last.Load()) >= ss.timeout {
			end = access.IdleTimeout
		}
		ss.stop(end, nil)
	}
	if !draining || !isClosed(s.readStopped) {
		return false
	}
	// No socket is read any more, so no session can start: a member found
	// empty stays empty.
	for _, m := range s.members {
		if !m.empty() {
			return false
		}
	}
	return true
}

// expired appends the member's sessions that are to end at now to ended,
// and its refusals that expire to refused (see expire).
func (m *member) expired(now int64, draining, cut bool, ended, refused []*session) ([]*session, []*session) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ss := range m.sessions {
		idle := time.Duration(now - ss.last.Load())
		switch {
		case ss.refusal != "":
			if draining || time.Duration(now-ss.born) >= ss.timeout {
				refused = append(refused, ss)
			}
		case idle >= ss.timeout || (draining && (cut || idle >= min(ss.timeout, drainQuiet))):
			ended = append(ended, ss)
		}
	}
	return ended, refused
}

// isClosed reports whether ch is closed.
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
