package udp

import (
	"errors"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"

	"sluice/internal/rawsock"
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

// connectRaw opens a non-blocking UDP socket, sets it up as o says (see
// session.origin) and connects it to addr.
func connectRaw(addr netip.AddrPort, o rawsock.Origin) (int, error) {
	fd, err := rawsock.OpenUDP(addr)
	if err != nil {
		return -1, err
	}
	if o != (rawsock.Origin{}) {
		err = o.Apply(fd)
		if errors.Is(err, unix.EADDRINUSE) && o.Local.Port() != 0 {
			o.Local = netip.AddrPortFrom(o.Local.Addr(), 0)
			err = o.Apply(fd)
		}
		if err != nil {
			rawsock.Close(fd)
			return -1, err
		}
	}
	if err := rawsock.Connect(fd, addr); err != nil {
		rawsock.Close(fd)
		return -1, err
	}
	return fd, nil
}
