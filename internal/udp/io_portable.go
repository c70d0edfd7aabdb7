package udp

import (
	"errors"
	"net"
)

// plainIO moves one datagram per system call through the net package: the
// portable path, used where batched calls are not available (and by tests
// on Linux, to cover it). Its receives hold their buffer while they wait.
type plainIO struct{ c *net.UDPConn }

// recvFrom receives one datagram into slot 0.
func (p plainIO) recvFrom(b *batch) (int, error) {
	n, ap, err := p.c.ReadFromUDPAddrPort(b.bufs[0])
	if err != nil {
		return 0, err
	}
	b.lens[0], b.from[0] = n, peer{ap: ap}
	return 1, nil
}

// recv receives one datagram from the connected peer.
func (p plainIO) recv(pool *batchPool) (*batch, int, error) {
	b := pool.get()
	n, err := p.c.Read(b.bufs[0])
	if err != nil {
		pool.put(b)
		return nil, 0, err
	}
	b.lens[0] = n
	return b, 1, nil
}

// send writes the slots b.idx one by one. It always waits while the
// socket's buffer is full: the net package has no write that gives up at
// once (an expired deadline fails before trying).
func (p plainIO) send(b *batch, to *peer, _ bool) (int, int, error) {
	sent, bytes := 0, 0
	var first error
	for _, i := range b.idx {
		var err error
		if to != nil {
			_, err = p.c.WriteToUDPAddrPort(b.bufs[i][:b.lens[i]], to.ap)
		} else {
			_, err = p.c.Write(b.bufs[i][:b.lens[i]])
		}
		if err == nil {
			sent++
			bytes += b.lens[i]
			continue
		}
		if first == nil {
			first = err
		}
		if unreachable(err) || errors.Is(err, net.ErrClosed) {
			return sent, bytes, first
		}
	}
	return sent, bytes, first
}
