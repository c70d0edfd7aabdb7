//go:build !linux

package backend

import (
	"errors"
	"net/netip"

	"sluice/internal/rawsock"
)

// canConnect says that connectSocket does not work here: pools are never
// Direct, and connections are dialed through the net package.
const canConnect = false

// connectSocket is not available here.
func connectSocket(netip.AddrPort, string, rawsock.Origin) (int, error) {
	return -1, errors.New("backend: non-blocking connect needs Linux")
}

// sendPrelude is not available here.
func sendPrelude(int, []byte) error {
	return errors.New("backend: non-blocking connect needs Linux")
}
