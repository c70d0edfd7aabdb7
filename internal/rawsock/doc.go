// Package rawsock is sluice's one place for sockets held as bare
// descriptors, outside the net package and the Go runtime's poller: accept4,
// non-blocking TCP and UDP sockets, their connect and a send, getsockname and
// getpeername, socket addresses converted to and from netip.AddrPort (IPv6
// zones as interface names, IPv4-mapped addresses unmapped), a close that
// resets, and dup.
//
// It exists on Linux, where the relay engine, the TCP direct path and the
// UDP event loop hold such descriptors; elsewhere it holds only what the
// portable code needs to compile.
//
// None of its calls can block (every socket is non-blocking, and a close
// never lingers), so they are made raw: the Go scheduler does not hand the
// caller's processor to another thread around each one. On an event loop's
// thread, which makes little else but such calls, that bookkeeping (and the
// runtime's monitor thread waking to take the processor from calls it takes
// for blocked) would cost more than the calls themselves.
//
// Errors: Accept returns the bare errno, so that an accept loop sees the
// EAGAIN that ends every batch without an allocation; the other calls
// return an *os.SyscallError naming the call that failed.
package rawsock
