package udp

import (
	"encoding/binary"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux datagrams move with recvmmsg and sendmmsg. The calls are made
// directly rather than through golang.org/x/net/ipv4's ReadBatch, which
// allocates a net.UDPAddr for every datagram it receives; here the headers
// and addresses live in the batch and a datagram costs no allocation.

// sysBatch is a batch's mmsghdr state, reused by every call on it.
type sysBatch struct {
	rh    []unix.Mmsghdr          // receive: one header per slot
	riov  []unix.Iovec            // receive: one iovec per slot, slotSize long
	names []unix.RawSockaddrInet6 // receive: senders; send from the loop: destinations
	sh    []unix.Mmsghdr          // send: one header per message
	siov  []unix.Iovec            // send: iovecs of the slots sent, in order
	segs  []int                   // send: datagrams in each message (see pack)
	ctl   []byte                  // send: a UDP_SEGMENT control message per header
}

// init points b's receive headers at its slots.
func (s *sysBatch) init(b *batch) {
	n := len(b.bufs)
	s.rh = make([]unix.Mmsghdr, n)
	s.riov = make([]unix.Iovec, n)
	s.names = make([]unix.RawSockaddrInet6, n)
	s.sh = make([]unix.Mmsghdr, n)
	s.siov = make([]unix.Iovec, n)
	s.segs = make([]int, 0, n)
	s.ctl = make([]byte, n*cmsgGSO)
	for i := range n {
		s.riov[i].Base = &b.bufs[i][0]
		s.riov[i].SetLen(slotSize)
		s.rh[i].Hdr.Iov = &s.riov[i]
		s.rh[i].Hdr.SetIovlen(1)
	}
}

// recvmmsg receives into hs from the non-blocking socket fd.
//
// It and sendmmsg enter the kernel without telling the Go scheduler (a raw
// syscall): they never block, and on the event loop's thread, which makes
// little else but these calls, the scheduler's bookkeeping around each one
// (and the monitor thread waking to take the processor away from calls it
// takes for blocked) cost more than the calls themselves.
func recvmmsg(fd int, hs []unix.Mmsghdr) (int, unix.Errno) {
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return int(r), errno
		}
	}
}

// sendmmsg sends hs on the non-blocking socket fd.
func sendmmsg(fd int, hs []unix.Mmsghdr) (int, unix.Errno) {
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hs[0])), uintptr(len(hs)), unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return int(r), errno
		}
	}
}

// rawConn is a session's socket to its backend, owned by the event loop:
// only the loop sends on it, reads it and closes it.
type rawConn struct {
	fd  int
	gso *bool // the loop's: segmentation works
}

// send sends b.idx to the connected backend without waiting: what does not
// fit in the socket's buffer is dropped.
func (c rawConn) send(b *batch, _ *peer, _ bool) (int, int, error) {
	sent, bytes, err := b.sys.sendSlots(c.fd, b, b.idx, c.gso, nil, nil)
	if err == unix.EAGAIN {
		err = nil // dropped, and counted so by the caller
	}
	return sent, bytes, err
}

// connectRaw opens a non-blocking UDP socket connected to addr.
func connectRaw(addr netip.AddrPort) (int, error) {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
	if addr.Addr().Unmap().Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().Unmap().As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("connect", err)
	}
	return fd, nil
}

// decodePeer reads a sockaddr the kernel filled in.
func decodePeer(sa *unix.RawSockaddrInet6, n uint32) peer {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch {
	case sa.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		return peer{ap: netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port), scope: sa.Scope_id}
	case sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return peer{ap: netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)}
	}
	return peer{}
}

// encodePeer writes p as a sockaddr into sa and returns its length: IPv4 or
// IPv6 as the peer was received, so that it suits the socket's family.
func encodePeer(sa *unix.RawSockaddrInet6, p peer) uint32 {
	*sa = unix.RawSockaddrInet6{}
	port := (*[2]byte)(unsafe.Pointer(&sa.Port))[:]
	binary.BigEndian.PutUint16(port, p.ap.Port())
	if a := p.ap.Addr(); a.Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		sa4.Addr = a.As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	sa.Addr = p.ap.Addr().As16()
	sa.Scope_id = p.scope
	return unix.SizeofSockaddrInet6
}
