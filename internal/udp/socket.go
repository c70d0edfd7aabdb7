package udp

import (
	"errors"
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

// Listen binds n sockets (at least one) to addr ("host:port", as
// net.ListenPacket takes it) for one Service: a group whose members share
// the address through SO_REUSEPORT, where the kernel hashes each client
// (address and port) to one member. The first socket is bound as a plain
// one, so an address in use fails as it would with n = 1 (EADDRINUSE);
// only then is SO_REUSEPORT set on it and the others bound to its address
// (its port, if addr asked for port 0). Where sockets cannot share an
// address (not Linux) the group is one socket, whatever n.
func Listen(addr string, n int) ([]*Socket, error) {
	first, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	conns := []*net.UDPConn{first.(*net.UDPConn)}
	if n = GroupSize(n); n > 1 {
		more, err := joinGroup(conns[0], n-1)
		if err != nil {
			conns[0].Close()
			return nil, err
		}
		conns = append(conns, more...)
	}
	var socks []*Socket
	for i, c := range conns {
		sock, err := NewSocket(c)
		if err != nil {
			for _, c := range conns[i+1:] {
				c.Close()
			}
			return nil, errors.Join(err, closeSockets(socks))
		}
		socks = append(socks, sock)
	}
	return socks, nil
}

// GroupSize returns how many sockets Listen binds for a rule with the given
// workers: workers where sockets can share an address (Linux), else one.
func GroupSize(workers int) int {
	if !reusePortWorks {
		return 1
	}
	return max(workers, 1)
}

// Descriptors returns how many file descriptors the group that Listen binds
// for a rule with the given workers holds while a Service serves it,
// without the sessions (one backend socket each).
func Descriptors(workers int) int { return GroupSize(workers) * memberDescriptors }

// closeSockets closes socks and returns the errors.
func closeSockets(socks []*Socket) error {
	var errs []error
	for _, s := range socks {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}
