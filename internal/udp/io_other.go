//go:build !linux

package udp

import "net"

// sysBatch holds nothing where datagrams move one per call.
type sysBatch struct{}

// init does nothing.
func (s *sysBatch) init(*batch) {}

// newIO returns the portable I/O for c.
func newIO(c *net.UDPConn, _ int, _ bool) (dgramIO, error) { return plainIO{c}, nil }
