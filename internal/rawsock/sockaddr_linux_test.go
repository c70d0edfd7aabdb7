package rawsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ports are the ports every conversion is tried with: both bytes zero,
// one or the other set, and all set, so that a swapped byte order shows.
var ports = []uint16{0, 1, 255, 256, 0x1234, 65535}

// loIndex returns the index of the loopback interface "lo".
func loIndex(t *testing.T) uint32 {
	t.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no loopback interface named lo:", err)
	}
	return uint32(lo.Index)
}

// bytesOf returns the first n bytes of a socket address buffer.
func bytesOf(sa *unix.RawSockaddrInet6, n uint32) []byte {
	return (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(sa))[:n]
}

// TestEncodePortInNetworkOrder: the port's bytes in an encoded address
// are high byte first whatever the host's byte order; the family field
// (host order, read as a field) and the address bytes are where the kernel
// looks for them.
func TestEncodePortInNetworkOrder(t *testing.T) {
	for _, port := range ports {
		for _, a := range []string{"192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"} {
			var sa unix.RawSockaddrInet6
			n := Encode(&sa, netip.AddrPortFrom(netip.MustParseAddr(a), port), 0)
			b := bytesOf(&sa, n)
			if b[2] != byte(port>>8) || b[3] != byte(port) {
				t.Errorf("Encode(%s port %d): port bytes % x, want %02x %02x", a, port, b[2:4], byte(port>>8), byte(port))
			}
			ip := netip.MustParseAddr(a)
			switch {
			case ip.Is4():
				if n != unix.SizeofSockaddrInet4 || sa.Family != unix.AF_INET || [4]byte(b[4:8]) != ip.As4() {
					t.Errorf("Encode(%s): length %d, family %d, bytes % x", a, n, sa.Family, b)
				}
			default:
				if n != unix.SizeofSockaddrInet6 || sa.Family != unix.AF_INET6 || [16]byte(b[8:24]) != ip.As16() {
					t.Errorf("Encode(%s): length %d, family %d, bytes % x", a, n, sa.Family, b)
				}
			}
		}
	}
}

// TestEncodeDecodeRoundTrip: Decode gives back exactly what Encode wrote,
// IPv4-mapped addresses mapped and the scope as an index; Sockaddr and
// AddrPort follow the net package: mapped addresses unmapped, the zone
// named by interface ("lo" and its index "1"-style number alike).
func TestEncodeDecodeRoundTrip(t *testing.T) {
	lo := loIndex(t)
	for _, port := range ports {
		for _, tc := range []struct {
			in    string
			scope uint32
			net   string // as Sockaddr then AddrPort return it
		}{
			{"127.0.0.1", 0, "127.0.0.1"},
			{"0.0.0.0", 0, "0.0.0.0"},
			{"255.255.255.255", 0, "255.255.255.255"},
			{"::", 0, "::"},
			{"::1", 0, "::1"},
			{"2001:db8:1:2:3:4:5:6", 0, "2001:db8:1:2:3:4:5:6"},
			{"::ffff:10.1.2.3", 0, "10.1.2.3"},
			{"fe80::1%lo", lo, "fe80::1%lo"},
			{fmt.Sprintf("fe80::1%%%d", lo), lo, "fe80::1%lo"},
		} {
			ap := netip.AddrPortFrom(netip.MustParseAddr(tc.in), port)
			var sa unix.RawSockaddrInet6
			got, scope := Decode(&sa, Encode(&sa, ap, tc.scope))
			if want := netip.AddrPortFrom(ap.Addr().WithZone(""), port); got != want || scope != tc.scope {
				t.Errorf("Decode(Encode(%v, %d)) = %v, %d", ap, tc.scope, got, scope)
			}
			n := Sockaddr(&sa, ap)
			if ap.Addr().Zone() != "" && sa.Scope_id != lo {
				t.Errorf("Sockaddr(%v): scope %d, want %d", ap, sa.Scope_id, lo)
			}
			want := netip.AddrPortFrom(netip.MustParseAddr(tc.net), port)
			if got := AddrPort(&sa, n); got != want {
				t.Errorf("AddrPort(Sockaddr(%v)) = %v, want %v", ap, got, want)
			}
		}
	}
}

// TestDecodeRefusesShortAndForeign: a truncated or non-IP address decodes
// to nothing, and Sockaddr of no address writes none.
func TestDecodeRefusesShortAndForeign(t *testing.T) {
	var sa unix.RawSockaddrInet6
	n := Encode(&sa, netip.MustParseAddrPort("[2001:db8::1]:80"), 0)
	if ap, _ := Decode(&sa, n-1); ap.IsValid() {
		t.Errorf("Decode of a truncated IPv6 address = %v", ap)
	}
	n = Encode(&sa, netip.MustParseAddrPort("192.0.2.1:80"), 0)
	if ap, _ := Decode(&sa, n-1); ap.IsValid() {
		t.Errorf("Decode of a truncated IPv4 address = %v", ap)
	}
	sa.Family = unix.AF_UNIX
	if ap := AddrPort(&sa, unix.SizeofSockaddrInet6); ap.IsValid() {
		t.Errorf("AddrPort of a unix address = %v", ap)
	}
	if n := Sockaddr(&sa, netip.AddrPort{}); n != 0 || sa.Family != 0 {
		t.Errorf("Sockaddr of no address: length %d, family %d", n, sa.Family)
	}
}

// TestEncodeDecodeAllocatesNothing: the per-datagram conversions of the
// UDP plane, and the net package's conventions for addresses without a
// zone, allocate nothing.
func TestEncodeDecodeAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	var sa unix.RawSockaddrInet6
	v4 := netip.MustParseAddrPort("192.0.2.1:53")
	v6 := netip.MustParseAddrPort("[fe80::1]:53")
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.1]:53")
	allocs := testing.AllocsPerRun(100, func() {
		for _, ap := range []netip.AddrPort{v4, v6, mapped} {
			if got, _ := Decode(&sa, Encode(&sa, ap, 2)); got != ap {
				t.Fatalf("Decode(Encode(%v)) = %v", ap, got)
			}
			if got := AddrPort(&sa, Sockaddr(&sa, ap)); got != netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) {
				t.Fatalf("AddrPort(Sockaddr(%v)) = %v", ap, got)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("Encode, Decode, Sockaddr and AddrPort allocate %.1f times per round, want none", allocs)
	}
}

// freebind lets a socket bind an address that no interface has, so that
// any address can be tried without configuring one (nothing is sent).
func freebind(fd uintptr) {
	unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
	unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
}

// bound lists the addresses that the socket tests bind, with freebind.
func bound(t *testing.T) []string {
	t.Helper()
	lo := loIndex(t)
	var list []string
	for _, port := range ports[1:] { // 0 asks the kernel for one: it is tried apart
		for _, a := range []string{"127.0.0.1", "127.3.4.5", "192.0.2.7", "::1", "2001:db8::7", "::ffff:127.0.0.1", "fe80::1%lo", fmt.Sprintf("fe80::2%%%d", lo)} {
			list = append(list, netip.AddrPortFrom(netip.MustParseAddr(a), port).String())
		}
	}
	return append(list, "127.0.0.1:0", "[::1]:0")
}

// binders bind a UDP socket (with freebind) to an address, each with its
// own encoding of it: the net package's, x/sys's and Sockaddr's. Each
// returns the socket, or an error.
var binders = []struct {
	name string
	bind func(ap netip.AddrPort) (int, error)
}{
	{"net", func(ap netip.AddrPort) (int, error) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error { return c.Control(freebind) }}
		pc, err := lc.ListenPacket(context.Background(), "udp", ap.String())
		if err != nil {
			return -1, err
		}
		defer pc.Close()
		f, err := pc.(*net.UDPConn).File()
		if err != nil {
			return -1, err
		}
		defer f.Close()
		return Dup(int(f.Fd()))
	}},
	{"x/sys", func(ap netip.AddrPort) (int, error) {
		family := unix.AF_INET
		var sa unix.Sockaddr
		if a := ap.Addr(); a.Is4() {
			sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
		} else { // an IPv4-mapped address stays IPv6 here
			family = unix.AF_INET6
			sa = &unix.SockaddrInet6{Port: int(ap.Port()), ZoneId: zoneIndex(a.Zone()), Addr: a.As16()}
		}
		fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		freebind(uintptr(fd))
		if err := unix.Bind(fd, sa); err != nil {
			unix.Close(fd)
			return -1, err
		}
		return fd, nil
	}},
	{"Sockaddr", func(ap netip.AddrPort) (int, error) {
		fd, err := OpenUDP(ap)
		if err != nil {
			return -1, err
		}
		freebind(uintptr(fd))
		var sa unix.RawSockaddrInet6
		n := Sockaddr(&sa, ap)
		if _, _, e := unix.RawSyscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(n)); e != 0 {
			Close(fd)
			return -1, e
		}
		return fd, nil
	}},
}

// TestAddrPortAsNetReadsIt: whoever encoded the address a socket was bound
// to (net, x/sys or Sockaddr), LocalAddr reads the address that net and
// x/sys read (each decoding in its own way): IPv4-mapped addresses
// unmapped, zones named after the interface. The kernel's bytes are those
// Encode writes for what Decode read from them.
func TestAddrPortAsNetReadsIt(t *testing.T) {
	for _, addr := range bound(t) {
		ap := netip.MustParseAddrPort(addr)
		for _, b := range binders {
			fd, err := b.bind(ap)
			if errors.Is(err, syscall.EADDRINUSE) {
				t.Logf("%s by %s: %v", addr, b.name, err)
				continue
			}
			if err != nil {
				t.Fatalf("%s by %s: %v", addr, b.name, err)
			}
			checkLocal(t, fmt.Sprintf("%s by %s", addr, b.name), fd, ap)
			Close(fd)
		}
	}
}

// checkLocal checks how LocalAddr, x/sys and net read socket fd's address,
// which should be want's.
func checkLocal(t *testing.T, what string, fd int, want netip.AddrPort) {
	t.Helper()
	got, err := LocalAddr(fd)
	if err != nil {
		t.Fatalf("%s: LocalAddr: %v", what, err)
	}
	wantAddr := want.Addr().Unmap()
	if z := wantAddr.Zone(); z != "" {
		wantAddr = wantAddr.WithZone(zoneName(zoneIndex(z)))
	}
	if got.Addr() != wantAddr || (want.Port() != 0 && got.Port() != want.Port()) || got.Port() == 0 {
		t.Errorf("%s: LocalAddr = %v", what, got)
	}
	sa, err := unix.Getsockname(fd)
	if xs := xsysAddrPort(sa); err != nil || xs != got {
		t.Errorf("%s: x/sys reads %v, %v; LocalAddr %v", what, xs, err, got)
	}
	dup, _ := Dup(fd)
	f := os.NewFile(uintptr(dup), "udp")
	defer f.Close()
	pc, err := net.FilePacketConn(f)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	na := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	if na = netip.AddrPortFrom(na.Addr().Unmap(), na.Port()); na != got {
		t.Errorf("%s: net reads %v; LocalAddr %v", what, na, got)
	}
	var kernel, ours unix.RawSockaddrInet6
	n := uint32(unsafe.Sizeof(kernel))
	unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&kernel)), uintptr(unsafe.Pointer(&n)))
	ap, scope := Decode(&kernel, n)
	if m := Encode(&ours, ap, scope); m != n || string(bytesOf(&ours, m)) != string(bytesOf(&kernel, n)) {
		t.Errorf("%s: the kernel wrote % x, Encode % x", what, bytesOf(&kernel, n), bytesOf(&ours, m))
	}
}

// xsysAddrPort converts an address decoded by x/sys, mapped addresses
// unmapped and the zone named.
func xsysAddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		a := netip.AddrFrom16(sa.Addr).Unmap()
		if sa.ZoneId != 0 {
			ifi, err := net.InterfaceByIndex(int(sa.ZoneId))
			if err != nil {
				return netip.AddrPort{}
			}
			a = a.WithZone(ifi.Name)
		}
		return netip.AddrPortFrom(a, uint16(sa.Port))
	}
	return netip.AddrPort{}
}
