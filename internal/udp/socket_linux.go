package udp

import (
	"context"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"sluice/internal/rawsock"
)

// socketSys is a descriptor of the socket outside the runtime's poller.
type socketSys struct{ fd int }

// take duplicates c's descriptor and closes c, which removes c's own
// descriptor from the runtime's poller (the duplicate was never in it).
func (s *socketSys) take(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	s.fd = -1
	var dupErr error
	if err := rc.Control(func(fd uintptr) {
		s.fd, dupErr = rawsock.Dup(int(fd))
	}); err != nil {
		return err
	}
	if dupErr != nil {
		return dupErr
	}
	return c.Close()
}

// udpConn returns a socket for the portable plane (tests), registered with
// the runtime's poller, and the function that closes it when the plane is
// done with it.
func (s *socketSys) udpConn() (*net.UDPConn, func(), error) {
	f, err := s.file()
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, nil, err
	}
	c := pc.(*net.UDPConn)
	return c, func() { c.Close() }, nil
}

// setBuffers asks for receive and send buffers of n bytes (best effort:
// the kernel caps them at net.core.rmem_max and wmem_max).
func (s *socketSys) setBuffers(n int) {
	_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
	_ = unix.SetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n)
}

func (s *socketSys) close() error { return unix.Close(s.fd) }

func (s *socketSys) file() (*os.File, error) {
	fd, err := rawsock.Dup(s.fd)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "udp"), nil
}

// reusePortWorks says whether Listen can bind a group of sockets.
const reusePortWorks = true

// memberDescriptors is what one socket of a group costs while served: the
// socket, and its event loop's epoll set and eventfd.
const memberDescriptors = 1 + loopDescriptors

// joinGroup sets SO_REUSEPORT on first, which is bound, and binds n more
// sockets with it to first's address.
func joinGroup(first *net.UDPConn, n int) ([]*net.UDPConn, error) {
	if err := setReusePort(first); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error { return reusePort(rc) }}
	var conns []*net.UDPConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp", first.LocalAddr().String())
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		conns = append(conns, pc.(*net.UDPConn))
	}
	return conns, nil
}

// setReusePort sets SO_REUSEPORT on c.
func setReusePort(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	return reusePort(rc)
}

// reusePort sets SO_REUSEPORT on the socket of rc.
func reusePort(rc syscall.RawConn) error {
	var err error
	if cerr := rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); cerr != nil {
		return cerr
	}
	return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
}
