package backend

import (
	"net/netip"

	"sluice/internal/rawsock"
)

// canConnect says that connectSocket works here.
const canConnect = true

// connectSocket opens a non-blocking TCP socket to addr with Nagle's
// algorithm off (as the net package's are) and the congestion control
// algorithm cc when not empty (best effort: the rule's was checked at
// start), and starts connecting it. A socket that could not be opened is
// an OpenError.
//
// None of these calls can block, so they are made raw: the Go scheduler
// does not hand the caller's processor to another thread around each (see
// the rawsock package).
func connectSocket(addr netip.AddrPort, cc string) (int, error) {
	fd, err := rawsock.OpenTCP(addr, cc)
	if err != nil {
		return -1, &OpenError{err}
	}
	if err := rawsock.Connect(fd, addr); err != nil {
		rawsock.Close(fd)
		return -1, err
	}
	return fd, nil
}
