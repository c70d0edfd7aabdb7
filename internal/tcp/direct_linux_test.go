package tcp

import (
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestRawAddrPort: accepted addresses decode as the net package's would:
// IPv4, IPv4-mapped IPv6 unmapped, and a link-local IPv6 address with its
// interface as the zone.
func TestRawAddrPort(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no loopback interface named lo:", err)
	}
	v4 := func(a [4]byte, port uint16) *unix.RawSockaddrAny {
		var sa unix.RawSockaddrAny
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family, sa4.Addr = unix.AF_INET, a
		*(*[2]byte)(unsafe.Pointer(&sa4.Port)) = [2]byte{byte(port >> 8), byte(port)}
		return &sa
	}
	v6 := func(a string, port uint16, scope uint32) *unix.RawSockaddrAny {
		var sa unix.RawSockaddrAny
		sa6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa))
		sa6.Family, sa6.Addr, sa6.Scope_id = unix.AF_INET6, netip.MustParseAddr(a).As16(), scope
		*(*[2]byte)(unsafe.Pointer(&sa6.Port)) = [2]byte{byte(port >> 8), byte(port)}
		return &sa
	}
	for _, tc := range []struct {
		sa   *unix.RawSockaddrAny
		want string
	}{
		{v4([4]byte{127, 0, 0, 2}, 8080), "127.0.0.2:8080"},
		{v6("::ffff:10.1.2.3", 443, 0), "10.1.2.3:443"},
		{v6("2001:db8::7", 53, 0), "[2001:db8::7]:53"},
		{v6("fe80::1", 22, uint32(lo.Index)), "[fe80::1%lo]:22"},
	} {
		if got := rawAddrPort(tc.sa).String(); got != tc.want {
			t.Errorf("rawAddrPort = %s, want %s", got, tc.want)
		}
	}
}
