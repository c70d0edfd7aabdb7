//go:build !linux

package tcp

// openDirect does nothing here: connections take the net package's path.
func (s *Service) openDirect(*listening) {}

// acceptDirect is never called here (openDirect leaves l.file nil).
func (s *Service) acceptDirect(l *listening) error { return nil }

// resetFD is never called here: every connection has a net.Conn.
func resetFD(int) {}
