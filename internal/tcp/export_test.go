package tcp

import "net"

// Methods for tests only.

// Serve accepts on ln until it is closed by CloseListeners, and returns
// what Take's ended was told.
func (s *Service) Serve(ln net.Listener) error { return s.take(ln)() }

// take is Take, returning a function that waits for the end of the
// service accepting on ln and returns what ended was told.
func (s *Service) take(ln net.Listener) (wait func() error) {
	done := make(chan error, 1)
	s.Take(ln, func(err error) { done <- err })
	return func() error { return <-done }
}
