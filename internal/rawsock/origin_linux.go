package rawsock

import (
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Apply sets fd up as o says: its options (see SetOptions), then, when o
// has a Local address, the bind. fd must be of Local's family (see
// OpenTCP and OpenUDP). On an error fd is left open, for the caller to
// close; a bind may be tried again with another Local.
func (o Origin) Apply(fd int) error {
	if err := o.SetOptions(fd); err != nil {
		return err
	}
	if !o.Local.IsValid() {
		return nil
	}
	var sa unix.RawSockaddrInet6
	n := Sockaddr(&sa, o.Local)
	if _, _, e := unix.RawSyscall(unix.SYS_BIND, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(n)); e != 0 {
		return os.NewSyscallError("bind", e)
	}
	return nil
}

// SetOptions sets the options of o on fd, which must be of Local's family
// (IPv4 when o has no Local address): the mark, transparency, and, for a Local
// with port 0, IP_BIND_ADDRESS_NO_PORT; the bind is left to the caller
// (Apply, or the net package's dialer with a local address). Options
// that need a capability the process lacks fail with EPERM, named after
// the option.
func (o Origin) SetOptions(fd int) error {
	if o.Mark != 0 {
		m := int32(o.Mark) // the kernel reads the 32 bits as they are
		if err := setsockoptNamed(fd, unix.SOL_SOCKET, unix.SO_MARK, unsafe.Pointer(&m), 4, "SO_MARK"); err != nil {
			return err
		}
	}
	one := int32(1)
	if o.Transparent {
		level, opt, name := unix.SOL_IP, unix.IP_TRANSPARENT, "IP_TRANSPARENT"
		if o.Local.IsValid() && !o.Local.Addr().Unmap().Is4() {
			level, opt, name = unix.SOL_IPV6, unix.IPV6_TRANSPARENT, "IPV6_TRANSPARENT"
		}
		if err := setsockoptNamed(fd, level, opt, unsafe.Pointer(&one), 4, name); err != nil {
			return err
		}
	}
	if o.Local.IsValid() && o.Local.Port() == 0 {
		// Best effort: kernels before 4.2 bind a port at once, as before.
		_ = setsockopt(fd, unix.SOL_IP, unix.IP_BIND_ADDRESS_NO_PORT, unsafe.Pointer(&one), 4)
	}
	return nil
}

// Probe reports whether this process may set o's options: it sets them
// on a UDP socket of Local's family (IPv4 when o has none) opened for the
// purpose, without binding it, and returns the error of the first that
// fails.
func Probe(o Origin) error {
	to := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if o.Local.IsValid() {
		to = o.Local
	}
	fd, err := OpenUDP(to)
	if err != nil {
		return err
	}
	defer Close(fd)
	return o.SetOptions(fd)
}

// setsockoptNamed is setsockopt whose error names the option.
func setsockoptNamed(fd, level, opt int, v unsafe.Pointer, size int, name string) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(v), uintptr(size), 0); e != 0 {
		return os.NewSyscallError("setsockopt "+name, e)
	}
	return nil
}
