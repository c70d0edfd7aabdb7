package rawsock

import (
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Accept takes a connection from the non-blocking listening socket lfd and
// returns its descriptor, non-blocking and close-on-exec, with the
// client's address (see AddrPort). The error is the bare unix.Errno:
// EAGAIN when no connection waits.
func Accept(lfd int) (int, netip.AddrPort, error) {
	var sa unix.RawSockaddrInet6
	n := uint32(unsafe.Sizeof(sa))
	r, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(lfd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if e != 0 {
		return -1, netip.AddrPort{}, e
	}
	return int(r), AddrPort(&sa, n), nil
}

// OpenTCP opens a non-blocking, close-on-exec TCP socket of the family
// that Connect needs for addr, with Nagle's algorithm off (as the net
// package's are) and the congestion control algorithm cc when it is not
// empty (best effort: a name the kernel does not know leaves its default).
// Something may go between it and Connect, such as a bind.
func OpenTCP(addr netip.AddrPort, cc string) (int, error) {
	fd, err := open(addr, unix.SOCK_STREAM)
	if err != nil {
		return -1, err
	}
	one := int32(1)
	if err := setsockopt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, unsafe.Pointer(&one), 4); err != nil {
		Close(fd)
		return -1, err
	}
	if cc != "" {
		name := []byte(cc)
		_ = setsockopt(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, unsafe.Pointer(&name[0]), len(name))
	}
	return fd, nil
}

// OpenUDP opens a non-blocking, close-on-exec UDP socket of the family
// that Connect needs for addr.
func OpenUDP(addr netip.AddrPort) (int, error) {
	return open(addr, unix.SOCK_DGRAM)
}

// open opens a non-blocking, close-on-exec socket of type typ for addr's
// family.
func open(addr netip.AddrPort, typ int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_SOCKET, uintptr(family(addr)), uintptr(typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC), 0)
	if e != 0 {
		return -1, os.NewSyscallError("socket", e)
	}
	return int(r), nil
}

// Connect starts connecting the non-blocking socket fd to addr (see
// Sockaddr). A TCP connect goes on after Connect returned nil: the socket
// becomes writable when it is done, and its SO_ERROR says how it went. On
// an error fd is left open, for the caller to close.
func Connect(fd int, addr netip.AddrPort) error {
	var sa unix.RawSockaddrInet6
	n := Sockaddr(&sa, addr)
	switch _, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(n)); e {
	case 0, unix.EINPROGRESS, unix.EINTR:
		return nil // EINTR: the connect goes on without us
	default:
		return os.NewSyscallError("connect", e)
	}
}

// Send writes what of b fits into the send buffer of the connected
// non-blocking socket fd, and returns how much that was: less than len(b)
// when the buffer filled up (nothing at all: EAGAIN). A peer that has
// gone away is an error (EPIPE, ECONNRESET), never a signal.
func Send(fd int, b []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, os.NewSyscallError("sendto", e)
	}
	return int(r), nil
}

// LocalAddr returns the address socket fd is bound to (getsockname; see
// AddrPort), zero for one that is not IP.
func LocalAddr(fd int) (netip.AddrPort, error) {
	return name(unix.SYS_GETSOCKNAME, "getsockname", fd)
}

// PeerAddr returns the address socket fd is connected to (getpeername; see
// AddrPort), zero for one that is not IP.
func PeerAddr(fd int) (netip.AddrPort, error) {
	return name(unix.SYS_GETPEERNAME, "getpeername", fd)
}

// name asks for one of a socket's addresses with call, named op in errors.
func name(call uintptr, op string, fd int) (netip.AddrPort, error) {
	var sa unix.RawSockaddrInet6
	n := uint32(unsafe.Sizeof(sa))
	if _, _, e := unix.RawSyscall(call, uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&n))); e != 0 {
		return netip.AddrPort{}, os.NewSyscallError(op, e)
	}
	return AddrPort(&sa, n), nil
}

// ResetClose closes a socket so that its peer sees a reset (ECONNRESET)
// rather than an end of stream: SO_LINGER with a zero timeout makes close
// drop what is unsent and send an RST, without waiting.
func ResetClose(fd int) {
	l := unix.Linger{Onoff: 1, Linger: 0}
	_ = setsockopt(fd, unix.SOL_SOCKET, unix.SO_LINGER, unsafe.Pointer(&l), unix.SizeofLinger)
	Close(fd)
}

// Close closes a descriptor. A socket of sluice's never lingers on close,
// so the call cannot wait.
func Close(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// Dup returns a close-on-exec duplicate of descriptor fd: the same socket
// under a second number, which stays open until both are closed.
func Dup(fd int) (int, error) {
	r, _, e := unix.RawSyscall(unix.SYS_FCNTL, uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, os.NewSyscallError("fcntl", e)
	}
	return int(r), nil
}

// setsockopt sets option opt at level to the size bytes at v.
func setsockopt(fd, level, opt int, v unsafe.Pointer, size int) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(v), uintptr(size), 0); e != 0 {
		return os.NewSyscallError("setsockopt", e)
	}
	return nil
}
