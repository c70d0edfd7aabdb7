package backend

import (
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// canConnect says that connectSocket works here.
const canConnect = true

// connectSocket opens a non-blocking TCP socket to addr with Nagle's
// algorithm off (as the net package's are) and the congestion control
// algorithm cc when not empty (best effort: the rule's was checked at
// start), and starts connecting it.
func connectSocket(addr netip.AddrPort, cc string) (int, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	if ip := addr.Addr(); ip.Is4() {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: ip.As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: ip.As16(), ZoneId: zoneID(ip.Zone())}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, &OpenError{os.NewSyscallError("socket", err)}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return -1, &OpenError{os.NewSyscallError("setsockopt", err)}
	}
	if cc != "" {
		_ = unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
	}
	switch err := unix.Connect(fd, sa); err {
	case nil, unix.EINPROGRESS, unix.EINTR:
		return fd, nil // EINTR: the connect goes on without us
	default:
		unix.Close(fd)
		return -1, os.NewSyscallError("connect", err)
	}
}

// zoneID returns the interface index of an IPv6 zone, 0 when none.
func zoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}
