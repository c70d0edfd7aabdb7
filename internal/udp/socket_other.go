//go:build !linux

package udp

import (
	"net"
	"os"
)

// socketSys is the socket itself where the service reads it through the
// net package.
type socketSys struct{ c *net.UDPConn }

// take keeps c.
func (s *socketSys) take(c *net.UDPConn) error {
	s.c = c
	return nil
}

// udpConn returns the socket for the portable plane, and what to call when
// the plane is done with it (nothing: the socket is the Socket's own).
func (s *socketSys) udpConn() (*net.UDPConn, func(), error) { return s.c, func() {}, nil }

// setBuffers asks for receive and send buffers of n bytes (best effort).
func (s *socketSys) setBuffers(n int) {
	_ = s.c.SetReadBuffer(n)
	_ = s.c.SetWriteBuffer(n)
}

func (s *socketSys) close() error            { return s.c.Close() }
func (s *socketSys) file() (*os.File, error) { return s.c.File() }

// reusePortWorks says whether Listen can bind a group of sockets: not here.
const reusePortWorks = false

// memberDescriptors is what one socket of a group costs while served: the
// socket alone (the portable plane uses the Go runtime's poller).
const memberDescriptors = 1

// joinGroup is never called where reusePortWorks is false.
func joinGroup(*net.UDPConn, int) ([]*net.UDPConn, error) { return nil, nil }
