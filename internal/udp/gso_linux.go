package udp

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"sluice/internal/rawsock"
)

// UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18): a run of
// datagrams of one size for one destination goes to the kernel as one
// message, which it cuts back into the same datagrams late, on the way out.
// The datagrams on the wire are the ones received, byte for byte; only the
// cost per datagram of the send path falls.
const (
	// gsoMaxSegments is the kernel's UDP_MAX_SEGMENTS on older kernels.
	gsoMaxSegments = 64
	// gsoMaxSize is the largest datagram sent by segmentation: one that
	// fits a 1500-byte MTU over IPv6, since segments are never fragmented.
	gsoMaxSize = 1452
	// gsoMaxBytes bounds a segmented message, as an IP packet's length does.
	gsoMaxBytes = 65_000
)

// cmsgGSO is the room for one UDP_SEGMENT control message.
var cmsgGSO = unix.CmsgSpace(2)

// pack fills s.sh with the messages that send the slots idx of b, in order:
// each run of datagrams for the same destination of one size (the last may
// be shorter) becomes one segmented message when gso is set. to gives a
// slot's destination; nil means the socket's connected peer.
func (s *sysBatch) pack(b *batch, idx []int, gso bool, to func(slot int) *session) []unix.Mmsghdr {
	s.segs = s.segs[:0]
	m := 0
	for k := 0; k < len(idx); m++ {
		n := s.run(b, idx[k:], gso, to)
		for q := range n {
			i := idx[k+q]
			s.siov[k+q].Base = &b.bufs[i][0]
			s.siov[k+q].SetLen(b.lens[i])
		}
		h := &s.sh[m].Hdr
		h.Iov = &s.siov[k]
		h.SetIovlen(n)
		h.Name, h.Namelen = nil, 0
		if to != nil {
			h.Name = (*byte)(unsafe.Pointer(&s.names[m]))
			p := &to(idx[k]).key
			h.Namelen = rawsock.Encode(&s.names[m], p.ap, p.scope)
		}
		h.Control = nil
		h.SetControllen(0)
		if n > 1 {
			c := s.ctl[m*cmsgGSO : (m+1)*cmsgGSO]
			ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
			ch.Level, ch.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			ch.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(b.lens[idx[k]])
			h.Control = &c[0]
			h.SetControllen(cmsgGSO)
		}
		s.sh[m].Len = unsent
		s.segs = append(s.segs, n)
		k += n
	}
	return s.sh[:m]
}

// run returns how many of the slots idx (at least one) go in one message.
func (s *sysBatch) run(b *batch, idx []int, gso bool, to func(slot int) *session) int {
	size := b.lens[idx[0]]
	if !gso || size == 0 || size > gsoMaxSize {
		return 1
	}
	n := 1
	for n < len(idx) && n < gsoMaxSegments && (n+1)*size <= gsoMaxBytes {
		j := idx[n]
		if l := b.lens[j]; l == 0 || l > size || (to != nil && to(j) != to(idx[0])) {
			break
		}
		n++
		if b.lens[j] < size {
			break // a shorter datagram ends the run
		}
	}
	return n
}

// sendSlots sends the slots idx of b on fd, segmented where gso allows,
// marks b.ok for each slot sent, and returns the datagrams and bytes sent
// and the first error. A full socket buffer ends the send unless wait says
// there is room now. A message the kernel refuses by itself is skipped,
// except that a refused segmented message turns gso off and is sent again
// datagram by datagram. An error that ends the session ends the send.
func (s *sysBatch) sendSlots(fd int, b *batch, idx []int, gso *bool, to func(slot int) *session, wait func() bool) (sent, bytes int, first error) {
	hs := s.pack(b, idx, *gso, to)
	done := 0 // slots of idx covered by the messages before hs[m]
send:
	for m := 0; m < len(hs); {
		r, errno := sendmmsg(fd, hs[m:])
		if errno == 0 {
			for j := m; j < m+r; j++ {
				for q := range s.segs[j] {
					b.ok[idx[done+q]] = true
				}
				done += s.segs[j]
				sent += s.segs[j]
				bytes += int(hs[j].Len)
			}
			m += r
			continue
		}
		switch {
		case errno == unix.EAGAIN:
			if wait != nil && wait() {
				continue
			}
		case s.segs[m] > 1 && gsoRefused(errno):
			*gso = false
			idx = idx[done:]
			hs, m, done = s.pack(b, idx, false, to), 0, 0
			continue
		case !unreachable(errno):
			if first == nil {
				first = errno
			}
			done += s.segs[m]
			m++
			continue
		}
		if first == nil {
			first = errno
		}
		break send
	}
	return sent, bytes, first
}

// gsoRefused reports whether errno says the kernel or the path cannot take
// a segmented message (no UDP_SEGMENT, or a segment over the path's MTU).
func gsoRefused(errno unix.Errno) bool {
	return errno == unix.EINVAL || errno == unix.EIO || errno == unix.EMSGSIZE ||
		errno == unix.ENOPROTOOPT || errno == unix.EOPNOTSUPP
}
