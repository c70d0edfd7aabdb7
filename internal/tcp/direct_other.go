//go:build !linux

package tcp

// openDirect does nothing here: connections take the net package's path.
func (s *Service) openDirect(*listening, int, func(error)) {}

// loopAccept exists only where the engine's loops accept (Linux); here
// l.direct is always nil.
type loopAccept struct{}

func (a *loopAccept) close()  {}
func (a *loopAccept) pause()  {}
func (a *loopAccept) resume() {}
