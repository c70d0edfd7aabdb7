package relay

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls of the event loops never block (every descriptor is
// non-blocking), so they are made raw: the Go scheduler does not hand the
// loop's processor to another thread around each one. With ordinary calls,
// a loop moving bulk data spends much of its time in calls that the
// runtime's monitor thread then watches every 20µs, waking up for nothing
// tens of thousands of times a second.

// sysRead reads from a non-blocking socket. recvfrom costs the kernel less
// than read: it goes straight to the socket, not through the file layer.
func sysRead(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// sysWrite writes to a non-blocking socket, with sendto for the same
// reason. A peer that has gone away is an error (EPIPE), never a signal.
func sysWrite(fd int, p []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), unix.MSG_NOSIGNAL, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// sysSplice moves up to n bytes between a socket and a pipe without
// blocking.
func sysSplice(in, out, n int) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), spliceFlags)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// sysClose closes a descriptor. Closing a socket never waits here (no
// relay socket lingers), so the call is raw too.
func sysClose(fd int) {
	unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// sysShutdown shuts down the writing side of a socket (sends its FIN).
func sysShutdown(fd int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SHUTDOWN, uintptr(fd), unix.SHUT_WR, 0); e != 0 {
		return e
	}
	return nil
}

// sysSocketError returns a socket's pending error (SO_ERROR): how its
// non-blocking connect ended.
func sysSocketError(fd int) (unix.Errno, error) {
	var v int32
	size := uint32(unsafe.Sizeof(v))
	if _, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR, uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		return 0, e
	}
	return unix.Errno(v), nil
}
