//go:build !linux

package tcp

// openDirect does nothing here: connections take the net package's path.
func (s *Service) openDirect(*listening) {}

// acceptDirect is never called here (openDirect leaves l.file nil).
func (s *Service) acceptDirect(l *listening) error { return nil }
