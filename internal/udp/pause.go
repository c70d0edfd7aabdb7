package udp

import (
	"errors"
	"fmt"
	"time"

	"sluice/internal/access"
	"sluice/internal/backend"
	"sluice/internal/backoff"
)

// pause is a rule's state while its sessions cannot get a socket (the
// process is out of descriptors, say): as the TCP accept loop stops
// accepting, the rule stops opening sessions. After a failed socket it
// tries again no sooner than 5 ms later, doubling up to 1 s while the
// tries fail; the first socket that opens ends the pause. Meanwhile a new
// client's datagrams are dropped at once, and the clients turned away
// share one refusal (window): one access line per refusal memory, naming
// the first of them and counting every datagram in dropped, instead of a
// line per datagram. Each client turned away counts once per refusal in
// the rejections (ReasonNoSocket), as a refused client does.
type pause struct {
	delay  backoff.Delay // the backoff in force; none: not paused
	until  int64         // service clock before which no socket is tried
	err    error         // why: the last socket error, a *backend.OpenError
	window *session      // the refusal that counts what the pause turned away; nil: none now
	// counted holds the clients turned away and counted while window is
	// on, at most maxRefusals; past that, each attempt counts.
	counted map[peer]struct{}
}

// pausedLocked reports whether new sessions are paused at now.
func (s *Service) pausedLocked(now int64) bool {
	return s.pause.delay.Current() > 0 && now < s.pause.until
}

// turnAwayLocked returns the refusal that counts the datagrams of clients
// turned away by the pause, starting one with client p if there is none,
// and counts p's rejection unless it was counted in this refusal already.
func (s *Service) turnAwayLocked(p peer, rs *ruleState, now int64) *session {
	if s.pause.window == nil {
		s.pause.window = newRefusal(s, p, rs, access.ConnectFailed, s.pause.err, now)
	}
	if _, seen := s.pause.counted[p]; !seen {
		if s.pause.counted == nil {
			s.pause.counted = make(map[peer]struct{})
		}
		if len(s.pause.counted) < maxRefusals {
			s.pause.counted[p] = struct{}{}
		}
		rs.rule.Metrics.Rejected(ReasonNoSocket)
		s.rejected[ReasonNoSocket]++
	}
	return s.pause.window
}

// expireWindowLocked returns the pause's refusal when it has expired at
// now (or a drain is on), and lets go of it.
func (s *Service) expireWindowLocked(now int64, draining bool) *session {
	w := s.pause.window
	if w == nil || (!draining && time.Duration(now-w.born) < w.timeout) {
		return nil
	}
	s.pause.window, s.pause.counted = nil, nil
	return w
}

// mayOpen reports whether ss may try to open its socket now. While new
// sessions are paused it may not: it ends, connect-failed for the pause's
// reason, and the caller finishes it.
func (s *Service) mayOpen(ss *session) bool {
	s.mu.Lock()
	paused, err := s.pausedLocked(s.now()), s.pause.err
	s.mu.Unlock()
	if paused {
		ss.stop(access.ConnectFailed, err)
	}
	return !paused
}

// opened notes that a session's socket opened: new sessions may open
// again at once, but the pause's episode ends (and says so) only a second
// after its last failure (see backoff.Delay.Recover), so that sockets
// opening between failures, as descriptors come and go or sessions on
// other loops race the failure, make one warning and one all-clear.
func (s *Service) opened() {
	s.mu.Lock()
	was := s.pause.delay.Recover(time.Now())
	s.mu.Unlock()
	if was {
		s.deps.Logger.Info("opening sessions again", "rule", s.Rule().Name)
	}
}

// openFailed ends a session whose socket could not be set up; the caller
// finishes it. See judgeOpenFailure for what it pauses and whom it blames.
func (ss *session) openFailed(err error) {
	err = fmt.Errorf("backend %s: %w", ss.backend.Address(), err)
	pause, blame := judgeOpenFailure(err)
	if pause {
		err = &backend.OpenError{Err: err}
		ss.svc.pauseFor(err)
	}
	ss.setupFailed(err, blame)
}

// judgeOpenFailure says what a failure to set up a session's socket means.
// A shortage of sluice's own (no descriptor, no memory, no local port)
// pauses new sessions and blames no backend. A backend that cannot be
// reached (no route, say) ends this session only. Any other failure says
// that this host cannot open a socket towards the backend at all (an IPv6
// backend where the kernel has no IPv6, a security policy): as on TCP, it
// counts against that backend, and the rule's other backends go on.
func judgeOpenFailure(err error) (pause, blame bool) {
	switch {
	case unreachable(err), errors.Is(err, backend.ErrSourceFamily):
		return false, false
	case !backend.Blames(err):
		return true, false
	}
	return false, true
}

// pauseFor starts or prolongs the pause after a socket failed with err,
// warning once per pause. A failure of a try made while a pause was
// already in force (by a session set up at the same time) changes
// nothing.
func (s *Service) pauseFor(err error) {
	now := s.now()
	s.mu.Lock()
	if s.pausedLocked(now) {
		s.mu.Unlock()
		return
	}
	wait, first := s.pause.delay.Next()
	s.pause.until, s.pause.err = now+int64(wait), err
	s.mu.Unlock()
	if first {
		s.deps.Logger.Warn("new sessions paused: cannot open sockets; backing off",
			"rule", s.Rule().Name, "error", err.Error())
	}
}

// fold adds a finished session that ended (with err) for want of a socket
// to the pause's refusal, whose access line then counts its datagrams, and
// reports whether it did. During a drain it does not: no more sessions
// open then, so the session writes its own line.
func (s *Service) fold(ss *session, err error) bool {
	if !errors.As(err, new(*backend.OpenError)) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return false
	}
	w := s.pause.window
	if w == nil {
		w = newRefusal(s, ss.key, ss.rs, access.ConnectFailed, err, s.now())
		s.pause.window = w
	}
	w.dropped.Add(ss.dropped.Load())
	return true
}
