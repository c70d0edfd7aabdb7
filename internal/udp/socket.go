package udp

import (
	"net"
	"os"
)

// Socket is a rule's listening UDP socket, as the Service reads it. Make it
// with NewSocket. On Linux it is a descriptor kept out of the Go runtime's
// poller, which the service's event loop polls by itself: otherwise every
// datagram would also wake a runtime thread that has nothing to do with it.
type Socket struct {
	sys  socketSys
	addr net.Addr
}

// NewSocket takes c over: on Linux it keeps a duplicate of c's descriptor
// and closes c; elsewhere it keeps c. Either way the caller must not use c
// afterwards, and closes the Socket instead.
func NewSocket(c *net.UDPConn) (*Socket, error) {
	s := &Socket{addr: c.LocalAddr()}
	if err := s.sys.take(c); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the socket.
func (s *Socket) Close() error { return s.sys.close() }

// File returns a duplicate of the socket as a file, for handing it to
// another process. The caller closes it.
func (s *Socket) File() (*os.File, error) { return s.sys.file() }
