package rawsock

import (
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A socket address lives in a unix.RawSockaddrInet6, the largest IP socket
// address: an IPv4 one (unix.RawSockaddrInet4) fits in its first bytes,
// and its family field tells which it holds. Callers keep such buffers
// (the UDP plane has one per batch slot), so converting allocates nothing.
//
// The port is in network byte order whatever the host's: it is written and
// read as its two bytes, high one first, never as a uint16 swapped on the
// assumption that the host is little-endian.

// Encode writes ap into sa and returns the address's length: an IPv4
// socket address when ap's address is IPv4, else an IPv6 one with scope
// (the interface index of a link-local address; 0 for none). ap is taken
// as it is: an IPv4-mapped address stays IPv6 (as a dual-stack socket
// wants it) and its zone is ignored. Encode allocates nothing; see
// Sockaddr for the net package's conventions.
func Encode(sa *unix.RawSockaddrInet6, ap netip.AddrPort, scope uint32) uint32 {
	*sa = unix.RawSockaddrInet6{}
	putPort(&sa.Port, ap.Port())
	if a := ap.Addr(); a.Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family, sa4.Addr = unix.AF_INET, a.As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family, sa.Addr, sa.Scope_id = unix.AF_INET6, ap.Addr().As16(), scope
	return unix.SizeofSockaddrInet6
}

// Decode reads the socket address of length n that the kernel wrote into
// sa, as it is: an IPv4-mapped address stays mapped, and a link-local
// address comes without zone, its interface index returned as scope.
// Anything but a whole IPv4 or IPv6 address is the zero AddrPort. Decode
// allocates nothing; see AddrPort for the net package's conventions.
func Decode(sa *unix.RawSockaddrInet6, n uint32) (ap netip.AddrPort, scope uint32) {
	port := getPort(&sa.Port)
	switch {
	case sa.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port), sa.Scope_id
	case sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), 0
	}
	return netip.AddrPort{}, 0
}

// Sockaddr writes ap into sa as the net package would and returns the
// address's length, 0 when ap is not valid: an IPv4-mapped address as
// IPv4, and a zone as the index of the interface it names (or the number
// it is). A zone costs a look-up of the system's interfaces.
func Sockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort) uint32 {
	if !ap.IsValid() {
		*sa = unix.RawSockaddrInet6{}
		return 0
	}
	a := ap.Addr()
	return Encode(sa, netip.AddrPortFrom(a.Unmap(), ap.Port()), zoneIndex(a.Zone()))
}

// AddrPort returns the socket address of length n in sa as the net
// package would: an IPv4-mapped address unmapped, and the scope of an IPv6
// address as the zone, named after its interface (or the index, when no
// interface has it any more). A scope costs a look-up of the system's
// interfaces. Anything but an IPv4 or IPv6 address is the zero AddrPort.
func AddrPort(sa *unix.RawSockaddrInet6, n uint32) netip.AddrPort {
	ap, scope := Decode(sa, n)
	a := ap.Addr().Unmap()
	if scope != 0 && a.Is6() {
		a = a.WithZone(zoneName(scope))
	}
	return netip.AddrPortFrom(a, ap.Port())
}

// family returns the address family that Sockaddr writes for ap.
func family(ap netip.AddrPort) int {
	if ap.Addr().Unmap().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// putPort writes port into p in network byte order.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// getPort reads a port in network byte order from p.
func getPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// zoneIndex returns the interface index that an IPv6 zone names: the
// interface's of that name, else the zone read as a number, else 0 (none),
// as the net package does.
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	if i, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(i)
	}
	return 0
}

// zoneName returns the name of the interface with index i, or the index
// when it has none any more, as the net package does.
func zoneName(i uint32) string {
	if ifi, err := net.InterfaceByIndex(int(i)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(i), 10)
}
