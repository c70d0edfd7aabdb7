package tcp

import "net"

// Methods for tests only.

// Serve accepts on ln until it is closed by CloseListeners; see Take.
func (s *Service) Serve(ln net.Listener) error { return s.Take(ln)() }
