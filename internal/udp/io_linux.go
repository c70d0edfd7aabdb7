package udp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux datagrams move with recvmmsg and sendmmsg. The calls are made
// directly rather than through golang.org/x/net/ipv4's ReadBatch, which
// allocates a net.UDPAddr for every datagram it receives; here the headers,
// addresses and callbacks live in the batch and a datagram costs no
// allocation.

// sysBatch is a batch's mmsghdr state, reused by every call on it.
type sysBatch struct {
	rh    []unix.Mmsghdr          // receive: one header per slot
	riov  []unix.Iovec            // receive: one iovec per slot, slotSize long
	names []unix.RawSockaddrInet6 // receive: senders
	sh    []unix.Mmsghdr          // send: headers of the slots in idx
	siov  []unix.Iovec            // send: iovecs of the slots in idx
	dst   unix.RawSockaddrInet6   // send: the destination, when not connected
	dstN  uint32                  // length of dst; 0 when connected

	// The state of the call in progress, for the callbacks below, which are
	// bound once so that RawConn calls allocate nothing.
	hdrs   []unix.Mmsghdr // headers still to send or to receive into
	wait   bool           // send: wait for room instead of dropping
	sent   int            // send: datagrams sent so far
	bytes  int            // send: their bytes
	n      int            // receive: datagrams received
	err    error
	recvFn func(fd uintptr) bool
	sendFn func(fd uintptr) bool
}

// init points b's headers at its slots.
func (s *sysBatch) init(b *batch) {
	n := len(b.bufs)
	s.rh = make([]unix.Mmsghdr, n)
	s.riov = make([]unix.Iovec, n)
	s.names = make([]unix.RawSockaddrInet6, n)
	s.sh = make([]unix.Mmsghdr, n)
	s.siov = make([]unix.Iovec, n)
	for i := range n {
		s.riov[i].Base = &b.bufs[i][0]
		s.riov[i].SetLen(slotSize)
		s.rh[i].Hdr.Iov = &s.riov[i]
		s.rh[i].Hdr.SetIovlen(1)
	}
	s.recvFn = s.recvCall
	s.sendFn = s.sendCall
}

// recvCall is the RawConn callback of a receive into s.hdrs.
func (s *sysBatch) recvCall(fd uintptr) bool {
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(len(s.hdrs)), 0, 0, 0)
		switch errno {
		case 0:
			s.n, s.err = int(r), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			s.n, s.err = 0, errno
			return true
		}
	}
}

// sendCall is the RawConn callback of a send of s.hdrs. A datagram the
// kernel rejects for itself (too big for the path, say) is dropped and the
// rest carry on; an error that ends the session stops the send.
func (s *sysBatch) sendCall(fd uintptr) bool {
	for len(s.hdrs) > 0 {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(len(s.hdrs)), 0, 0, 0)
		switch {
		case errno == 0:
			for i := range int(r) {
				s.bytes += int(s.hdrs[i].Len)
			}
			s.sent += int(r)
			s.hdrs = s.hdrs[r:]
		case errno == unix.EINTR:
		case errno == unix.EAGAIN:
			if s.wait {
				return false
			}
			return true
		default:
			if s.err == nil {
				s.err = errno
			}
			if unreachable(errno) {
				return true
			}
			s.hdrs = s.hdrs[1:]
		}
	}
	return true
}

// mmsgIO is batched I/O on one socket.
type mmsgIO struct {
	rc   syscall.RawConn
	size int // slots per receive

	// Lazy receive on a session's socket, by its one reading goroutine.
	pool   *batchPool
	cur    *batch
	lazyFn func(fd uintptr) bool
}

// newIO returns the I/O for c: batched with recvmmsg/sendmmsg, or one
// datagram per call with portable set. size is the batch size of receives.
func newIO(c *net.UDPConn, size int, portable bool) (dgramIO, error) {
	if portable {
		return plainIO{c}, nil
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	m := &mmsgIO{rc: rc, size: size}
	m.lazyFn = m.lazyCall
	return m, nil
}

// batchSize returns the receive batch size.
func (m *mmsgIO) batchSize() int { return m.size }

// recvFrom receives into b's slots and decodes each sender.
func (m *mmsgIO) recvFrom(b *batch) (int, error) {
	s := &b.sys
	n := min(len(s.rh), m.size)
	for i := range n {
		s.rh[i].Hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
		s.rh[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	s.hdrs = s.rh[:n]
	if err := m.rc.Read(s.recvFn); err != nil {
		return 0, err
	}
	if s.err != nil {
		return 0, s.err
	}
	for i := range s.n {
		b.lens[i] = int(s.rh[i].Len)
		b.from[i] = decodePeer(&s.names[i], s.rh[i].Hdr.Namelen)
	}
	runtime.KeepAlive(b)
	return s.n, nil
}

// recv waits on a connected socket; the batch is taken from pool only once
// datagrams are there, and given back when there were none after all.
func (m *mmsgIO) recv(pool *batchPool) (*batch, int, error) {
	m.pool = pool
	err := m.rc.Read(m.lazyFn)
	b := m.cur
	m.cur = nil
	if err == nil && b != nil && b.sys.err != nil {
		err = b.sys.err
	}
	if err != nil {
		if b != nil {
			pool.put(b)
		}
		return nil, 0, err
	}
	for i := range b.sys.n {
		b.lens[i] = int(b.sys.rh[i].Len)
	}
	return b, b.sys.n, nil
}

// lazyCall is the RawConn callback of recv.
func (m *mmsgIO) lazyCall(fd uintptr) bool {
	if m.cur == nil {
		m.cur = m.pool.get()
	}
	s := &m.cur.sys
	n := min(len(s.rh), m.size)
	for i := range n {
		s.rh[i].Hdr.Name, s.rh[i].Hdr.Namelen = nil, 0
	}
	s.hdrs = s.rh[:n]
	if !s.recvCall(fd) {
		m.pool.put(m.cur)
		m.cur = nil
		return false
	}
	return true
}

// send sends the slots b.idx with one sendmmsg where they fit.
func (m *mmsgIO) send(b *batch, to *peer, wait bool) (int, int, error) {
	s := &b.sys
	s.dstN = 0
	if to != nil {
		s.dstN = encodePeer(&s.dst, *to)
	}
	for k, i := range b.idx {
		s.siov[k].Base = &b.bufs[i][0]
		s.siov[k].SetLen(b.lens[i])
		h := &s.sh[k].Hdr
		h.Iov = &s.siov[k]
		h.SetIovlen(1)
		h.Name, h.Namelen = nil, 0
		if s.dstN != 0 {
			h.Name, h.Namelen = (*byte)(unsafe.Pointer(&s.dst)), s.dstN
		}
	}
	s.hdrs, s.wait, s.sent, s.bytes, s.err = s.sh[:len(b.idx)], wait, 0, 0, nil
	if err := m.rc.Write(s.sendFn); err != nil {
		return s.sent, s.bytes, err
	}
	runtime.KeepAlive(b)
	return s.sent, s.bytes, s.err
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
