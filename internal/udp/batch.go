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

// Datagrams per batched call (Linux). The event loop of a rule has one batch
// for the listening socket (32 × 64 KiB = 2 MiB of address space, of which
// only the pages datagrams touch become resident) and one for the replies
// on their way out (64 × 64 KiB); a session's socket is read at most
// replyBatch datagrams at a time, so that one busy backend cannot starve
// the others.
const (
	listenBatch = 32
	outBatch    = 64
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
	bufs  [][]byte   // each slotSize long
	lens  []int      // bytes received per slot
	ok    []bool     // the slot was sent (Linux send path)
	from  []peer     // senders, on the listening socket
	dest  []*session // the listening side's dispatch: each slot's session
	fresh []*session // the listening side's dispatch: sessions it opened
	idx   []int      // scratch: the slots of one send
	sys   sysBatch   // the platform's batched-call state
}

// newBatch returns a batch of n slots.
func newBatch(n int) *batch {
	b := &batch{
		bufs:  make([][]byte, n),
		lens:  make([]int, n),
		ok:    make([]bool, n),
		from:  make([]peer, n),
		dest:  make([]*session, n),
		fresh: make([]*session, 0, n),
		idx:   make([]int, 0, n),
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

// sender sends datagrams on one socket.
type sender interface {
	// send sends the slots b.idx of b to the connected peer (to == nil) or
	// to *to. With wait it waits while the socket's buffer is full;
	// otherwise what does not fit is dropped. It returns how many datagrams
	// were sent, their bytes, and the first error; a datagram the kernel
	// refuses by itself is skipped, but after an error that ends the
	// session (see unreachable) or a closed socket nothing more is sent.
	send(b *batch, to *peer, wait bool) (sent, bytes int, err error)
}

// plane moves the datagrams of one member (one listening socket of the
// rule's group) and of its sessions. On Linux an event loop does all of it
// with batched system calls (loopPlane: a loop per member, or loops that
// the ports of a range share); elsewhere, and in tests that ask for it, a
// goroutine reads the listening socket and one per session reads its
// replies (goPlane).
type plane interface {
	// start receives and forwards in the background until the service
	// quits, calling m.readingStopped once it no longer reads the
	// listening socket, and then done with the error that stopped it, if
	// any.
	start(sock *Socket, done func(error))
	// stopReading stops reading the listening socket.
	stopReading()
	// open sets a new session's backend socket up (in the background if
	// its backend's name must be resolved), sends what the session queued
	// and relays its replies until it ends; whoever holds the socket then
	// calls ss.finish. It runs on the reading goroutine.
	open(ss *session)
	// release closes the socket of a session that has ended.
	release(ss *session)
	// cut unblocks whatever waits to send on the listening socket: the
	// drain has run out.
	cut()
	// quit makes serve return; every session has finished.
	quit()
}

// unreachable reports whether err is an ICMP error the kernel reported on a
// connected socket: the backend refused the datagram or cannot be reached.
func unreachable(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTDOWN)
}
