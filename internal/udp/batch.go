package udp

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
)

// slotSize is the buffer for one datagram. It is larger than any UDP payload
// (65,507 bytes over IPv4, 65,527 over IPv6), so nothing is ever truncated.
const slotSize = 1 << 16

// Datagrams per batched receive. The listening socket's batch is allocated
// once per rule (32 × 64 KiB = 2 MiB of address space, of which only the
// pages datagrams touch become resident); a session takes a reply batch from
// a shared pool only while replies are in hand.
const (
	listenBatch = 32
	replyBatch  = 8
)

// peer is a datagram's sender or receiver as the socket reports it: on a
// dual-stack socket an IPv4 client is an IPv4-mapped IPv6 address. It is
// comparable and is the key of the session table.
type peer struct {
	ap    netip.AddrPort // without zone on Linux; the portable path keeps it
	scope uint32         // Linux: IPv6 scope (interface index) of a link-local peer
}

// client returns the peer as logged and admitted: IPv4-mapped addresses
// unmapped, zone dropped.
func (p peer) client() netip.AddrPort {
	return netip.AddrPortFrom(p.ap.Addr().Unmap().WithZone(""), p.ap.Port())
}

// batch is a set of datagram buffers filled by one batched receive, and the
// scratch space to send some of them on. A batch is used by one goroutine
// at a time.
type batch struct {
	bufs [][]byte   // each slotSize long
	lens []int      // bytes received per slot
	from []peer     // senders, on the listening socket
	dest []*session // the listening side's dispatch: each slot's session
	idx  []int      // scratch: the slots of one send
	sys  sysBatch   // the platform's batched-call state
}

// newBatch returns a batch of n slots.
func newBatch(n int) *batch {
	b := &batch{
		bufs: make([][]byte, n),
		lens: make([]int, n),
		from: make([]peer, n),
		dest: make([]*session, n),
		idx:  make([]int, 0, n),
	}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, slotSize)
	}
	b.sys.init(b)
	return b
}

// batchPool keeps spare batches of one size. Unlike a sync.Pool it survives
// garbage collections, so a steady load does not reallocate 64 KiB slots.
type batchPool struct {
	size int // slots per batch
	keep int // spare batches kept at most

	mu   sync.Mutex // guards free
	free []*batch
}

// newBatchPool returns a pool of batches with size slots, keeping at most
// keep spares.
func newBatchPool(size, keep int) *batchPool {
	return &batchPool{size: size, keep: keep}
}

// get returns a spare batch or a new one.
func (p *batchPool) get() *batch {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	return newBatch(p.size)
}

// put returns b to the pool, or drops it when enough are spare.
func (p *batchPool) put(b *batch) {
	p.mu.Lock()
	if len(p.free) < p.keep {
		p.free = append(p.free, b)
	}
	p.mu.Unlock()
}

// dgramIO is datagram I/O on one socket: batched system calls on Linux, one
// datagram per call elsewhere (or when a test asks for the portable path).
type dgramIO interface {
	// batchSize is how many slots a receive fills at most.
	batchSize() int
	// recvFrom waits for datagrams on an unconnected socket and fills b's
	// slots and senders from the front; it returns how many.
	recvFrom(b *batch) (int, error)
	// recv waits for datagrams on a connected socket and returns a batch
	// from pool holding them; the caller puts it back. While no datagram is
	// waiting it holds no batch where the platform allows.
	recv(pool *batchPool) (*batch, int, error)
	// send sends the slots b.idx of b to the connected peer (to == nil) or
	// to *to. With wait it waits while the socket's buffer is full;
	// otherwise what does not fit is dropped. It returns how many datagrams
	// were sent, their bytes, and the first error; a datagram the kernel
	// refuses by itself is skipped, but after an error that ends the
	// session (see unreachable) or a closed socket nothing more is sent.
	send(b *batch, to *peer, wait bool) (sent, bytes int, err error)
}

// unreachable reports whether err is an ICMP error the kernel reported on a
// connected socket: the backend refused the datagram or cannot be reached.
func unreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTDOWN)
}
