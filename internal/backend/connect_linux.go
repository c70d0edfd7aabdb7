package backend

import (
	"net"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// canConnect says that connectSocket works here.
const canConnect = true

// connectSocket opens a non-blocking TCP socket to addr with Nagle's
// algorithm off (as the net package's are) and the congestion control
// algorithm cc when not empty (best effort: the rule's was checked at
// start), and starts connecting it.
//
// None of these calls can block, so they are made raw: the Go scheduler
// does not hand the caller's processor to another thread around each (see
// the relay package's engine).
func connectSocket(addr netip.AddrPort, cc string) (int, error) {
	var sa unix.RawSockaddrAny
	var salen uintptr
	family := unix.AF_INET
	port := uint16(addr.Port()>>8 | addr.Port()<<8) // network order
	if ip := addr.Addr(); ip.Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family, sa4.Port, sa4.Addr = unix.AF_INET, port, ip.As4()
		salen = unix.SizeofSockaddrInet4
	} else {
		family = unix.AF_INET6
		sa6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
		sa6.Family, sa6.Port, sa6.Addr, sa6.Scope_id = unix.AF_INET6, port, ip.As16(), zoneID(ip.Zone())
		salen = unix.SizeofSockaddrInet6
	}
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if e != 0 {
		return -1, openFailed("socket", e)
	}
	fd := int(r)
	one := int32(1)
	if _, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, r, unix.IPPROTO_TCP, unix.TCP_NODELAY, uintptr(unsafe.Pointer(&one)), 4, 0); e != 0 {
		unix.RawSyscall(unix.SYS_CLOSE, r, 0, 0)
		return -1, openFailed("setsockopt", e)
	}
	if cc != "" {
		name := []byte(cc)
		unix.RawSyscall6(unix.SYS_SETSOCKOPT, r, unix.IPPROTO_TCP, unix.TCP_CONGESTION, uintptr(unsafe.Pointer(&name[0])), uintptr(len(name)), 0)
	}
	switch _, _, e := unix.RawSyscall(unix.SYS_CONNECT, r, uintptr(unsafe.Pointer(&sa)), salen); e {
	case 0, unix.EINPROGRESS, unix.EINTR:
		return fd, nil // EINTR: the connect goes on without us
	default:
		unix.RawSyscall(unix.SYS_CLOSE, r, 0, 0)
		return -1, os.NewSyscallError("connect", e)
	}
}

// openFailed words the failure of call on a new socket. Running short of
// descriptors or memory is an OpenError, a shortage of sluice's own. Any
// other errno says that this host cannot open a socket towards the backend
// at all (EAFNOSUPPORT: an IPv6 backend where the kernel has no IPv6;
// EACCES or EPERM: a security policy), which it cannot until the host's
// configuration changes: as the net package's dial and a health check do,
// the attempt fails and counts against the backend.
func openFailed(call string, e unix.Errno) error {
	err := os.NewSyscallError(call, e)
	if shortageOf(err) == shortOfSockets {
		return &OpenError{err}
	}
	return err
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
