package udp

import (
	"errors"
	"net"
	"sync"
	"time"
)

// goPlane is the portable data plane: one goroutine reads the listening
// socket and one per session reads its backend's replies, a datagram per
// system call through the net package. Idle sessions each hold a goroutine
// and a 64 KiB buffer.
type goPlane struct {
	svc      *Service
	m        *member
	replies  *batchPool
	quitOnce sync.Once
	quitCh   chan struct{}

	mu      sync.Mutex // guards the following fields, which serve sets once
	conn    *net.UDPConn
	lio     plainIO
	err     error
	stopped bool // stopReading came first
}

// newGoPlane returns the portable plane of m.
func newGoPlane(m *member) *goPlane {
	return &goPlane{svc: m.svc, m: m, replies: newBatchPool(1, spareReplyBatches), quitCh: make(chan struct{})}
}

// start serves sock on a goroutine of its own.
func (p *goPlane) start(sock *Socket, done func(error)) {
	go func() { done(p.serve(sock)) }()
}

// serve reads until stopReading, then waits for quit.
func (p *goPlane) serve(sock *Socket) error {
	conn, done, err := sock.sys.udpConn()
	p.mu.Lock()
	p.conn, p.lio, p.err = conn, plainIO{conn}, err
	stopped := p.stopped
	p.mu.Unlock()
	if err != nil {
		p.m.readingStopped()
		return err
	}
	defer done()
	if !stopped {
		p.readLoop(newBatch(1))
	}
	p.m.readingStopped()
	<-p.quitCh
	return nil
}

// readLoop receives datagrams and dispatches them until reading stops.
func (p *goPlane) readLoop(b *batch) {
	s := p.svc
	for {
		n, err := p.lio.recvFrom(b)
		switch {
		case err == nil:
			p.m.receiving()
			s.dispatch(p.m, b, n)
		case s.stopping.Load() || errors.Is(err, net.ErrClosed):
			return
		default:
			p.m.receiveFailed(err)
		}
	}
}

// stopReading wakes the reader with a deadline in the past, which leaves
// the socket open for replies. (A datagram that races the deadline may
// still be read; dispatch opens no session for it.)
func (p *goPlane) stopReading() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.conn != nil {
		_ = p.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// cut fails the replies waiting for room in the socket's buffer.
func (p *goPlane) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		_ = p.conn.SetWriteDeadline(time.Unix(1, 0))
	}
}

// quit makes serve return.
func (p *goPlane) quit() { p.quitOnce.Do(func() { close(p.quitCh) }) }

// open runs the session on its own goroutine: dial, send what was queued,
// then relay replies.
func (p *goPlane) open(ss *session) {
	go func() {
		defer ss.finish()
		addr, err := ss.resolve()
		if err != nil {
			ss.setupFailed(err, true)
			return
		}
		if !p.svc.mayOpen(ss) {
			return
		}
		conn, err := ss.dial(addr)
		if err != nil {
			ss.openFailed(err)
			return
		}
		p.svc.opened()
		if err := p.attach(ss, conn); err != nil {
			if unreachable(err) {
				ss.fail(err)
			}
			return
		}
		p.relayReplies(ss, conn)
	}()
}

// attach makes conn the session's backend socket and sends what was
// queued. It fails with net.ErrClosed when the session ended meanwhile,
// and with the error of a queued datagram's send that ends the session.
func (p *goPlane) attach(ss *session, conn *net.UDPConn) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.ended {
		conn.Close()
		return net.ErrClosed
	}
	ss.owned, ss.conn, ss.up = true, conn, plainIO{conn}
	for _, q := range ss.pending {
		if _, err := conn.Write(q); err != nil {
			ss.drop(1)
			if unreachable(err) {
				return err
			}
			continue
		}
		ss.count(true, 1, len(q), 1)
	}
	ss.pending, ss.pendingBytes = nil, 0
	ss.ready.Store(true)
	return nil
}

// relayReplies passes the backend's datagrams to the client until the
// session ends.
func (p *goPlane) relayReplies(ss *session, conn *net.UDPConn) {
	up := plainIO{conn}
	for {
		b, n, err := up.recv(p.replies)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				ss.fail(err)
			}
			return
		}
		ss.replyArrived(p.svc.now())
		b.idx = append(b.idx[:0], 0)
		sent, bytes, _ := p.lio.send(b, &ss.key, true)
		ss.count(false, sent, bytes, n)
		p.replies.put(b)
	}
}

// release closes the session's socket, which ends its goroutine.
func (p *goPlane) release(ss *session) { ss.conn.Close() }
