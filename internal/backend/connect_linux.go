package backend

import (
	"net/netip"
	"os"
	"syscall"

	"sluice/internal/rawsock"
)

// canConnect says that connectSocket works here.
const canConnect = true

// connectSocket opens a non-blocking TCP socket to addr with Nagle's
// algorithm off (as the net package's are) and the congestion control
// algorithm cc when not empty (best effort: the rule's was checked at
// start), sets it up as o says (bind, transparency, mark), and starts
// connecting it. A socket that could not be opened for
// want of descriptors or memory is an OpenError (see openFailed).
//
// None of these calls can block, so they are made raw: the Go scheduler
// does not hand the caller's processor to another thread around each (see
// the rawsock package).
func connectSocket(addr netip.AddrPort, cc string, o rawsock.Origin) (int, error) {
	fd, err := rawsock.OpenTCP(addr, cc)
	if err != nil {
		return -1, openFailed(err)
	}
	if o != (rawsock.Origin{}) {
		if err := o.Apply(fd); err != nil {
			rawsock.Close(fd)
			return -1, err
		}
	}
	if err := rawsock.Connect(fd, addr); err != nil {
		rawsock.Close(fd)
		return -1, err
	}
	return fd, nil
}

// openFailed words the failure to open a new socket. Running short of
// descriptors or memory is an OpenError, a shortage of sluice's own. Any
// other error says that this host cannot open a socket towards the backend
// at all (EAFNOSUPPORT: an IPv6 backend where the kernel has no IPv6;
// EACCES or EPERM: a security policy), which it cannot until the host's
// configuration changes: as the net package's dial and a health check do,
// the attempt fails and counts against the backend.
func openFailed(err error) error {
	if shortageOf(err) == shortOfSockets {
		return &OpenError{err}
	}
	return err
}

// sendPrelude writes the prelude b to the backend socket fd, which has
// just connected: its send buffer is empty, so b goes whole at once or
// not at all (EAGAIN).
func sendPrelude(fd int, b []byte) error {
	n, err := rawsock.Send(fd, b)
	if err == nil && n < len(b) {
		err = os.NewSyscallError("sendto", syscall.EAGAIN)
	}
	return err
}
